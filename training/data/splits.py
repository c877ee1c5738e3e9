"""Train/validation/test splits of the bilayer table.

- ``random_split``: the paper's random 6:2:2 split (seeded).  Configurations that are
  the same crystal by symmetry (``symmetry_duplicate_of``) always share a part, so no
  crystal is in two parts.
- ``grouped_split``: whole monolayer pairs go to one part (no pair in two parts), for
  honest novelty and generalisation tests; parts are filled to 6:2:2 of rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PARTS = ("train", "val", "test")
FRACTIONS = (0.6, 0.2, 0.2)


def _crystal_key(df: pd.DataFrame) -> pd.Series:
    dup = df["symmetry_duplicate_of"] if "symmetry_duplicate_of" in df else None
    if dup is None:
        return df["id"]
    return dup.fillna(df["id"])


def random_split(df: pd.DataFrame, seed: int = 42, fractions=FRACTIONS) -> np.ndarray:
    """Part name per row; symmetry duplicates follow the crystal they repeat."""
    keys = _crystal_key(df)
    unique = pd.unique(keys)
    order = np.random.default_rng(seed).permutation(len(unique))
    n_train = int(round(fractions[0] * len(unique)))
    n_val = int(round(fractions[1] * len(unique)))
    part_of_rank = np.array(["train"] * n_train + ["val"] * n_val
                            + ["test"] * (len(unique) - n_train - n_val), dtype=object)
    part = dict(zip(unique[order], part_of_rank))
    return keys.map(part).to_numpy(dtype=object)


def grouped_split(df: pd.DataFrame, seed: int = 42, fractions=FRACTIONS) -> np.ndarray:
    """Part name per row with every monolayer pair (bottom, top) kept in one part."""
    groups = (df["bottom"] + "|" + df["top"]).to_numpy()
    names, sizes = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    target = np.asarray(fractions) * len(df)
    filled = np.zeros(3)
    part_of: dict[str, str] = {}
    for k in order:
        p = int(np.argmax(target - filled))  # the part furthest below its target
        part_of[names[k]] = PARTS[p]
        filled[p] += sizes[k]
    return np.array([part_of[g] for g in groups], dtype=object)
