"""Novelty against the training set and duplicates among stored candidates.

Both use the paper's StructureMatcher tolerances (stol 0.5, angle_tol 10°, ltol 0.3),
pre-filtered by reduced formula and atom count, so a candidate is compared with a few
dozen structures at most (the Janus data has ~50 stackings per formula in its training
part). The training structures are read from the dataset table that the model manifest
names (``bilayers.parquet``), rows of the training part only, and built lazily per formula.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

STOL, ANGLE_TOL, LTOL = 0.5, 10.0, 0.3


def matcher() -> StructureMatcher:
    """The paper's (and CDVAE's) matcher."""
    return StructureMatcher(stol=STOL, angle_tol=ANGLE_TOL, ltol=LTOL)


def _structure(lattice: np.ndarray, species: Iterable[str], frac: np.ndarray) -> Structure:
    return Structure(Lattice(np.asarray(lattice, dtype=float).reshape(3, 3)), list(species),
                     np.asarray(frac, dtype=float).reshape(-1, 3))


class TrainingSet:
    """Training crystals grouped by (reduced formula, atom count), structures built on demand."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self._rows: dict[tuple[str, int], list[int]] = defaultdict(list)
        self._frame = rows.reset_index(drop=True)
        for i, (formula, n) in enumerate(zip(self._frame["reduced_formula"], self._frame["num_atoms"])):
            self._rows[(str(formula), int(n))].append(i)
        self._built: dict[tuple[str, int], list[Structure]] = {}
        self._matcher = matcher()

    @classmethod
    def load(cls, table: Path, split: str = "random", part: str = "train") -> TrainingSet:
        """Rows of ``part`` of the ``split`` split of a dataset table (``bilayers.parquet``)."""
        column = f"split_{split}"
        frame = pd.read_parquet(table, columns=["lattice", "species", "frac_coords", "reduced_formula",
                                                "num_atoms", column])
        return cls(frame[frame[column] == part])

    def __len__(self) -> int:
        return len(self._frame)

    def _structures(self, key: tuple[str, int]) -> list[Structure]:
        if key not in self._built:
            rows = self._frame.iloc[self._rows.get(key, [])]
            self._built[key] = [_structure(r.lattice, r.species, r.frac_coords) for r in rows.itertuples()]
        return self._built[key]

    def is_novel(self, structure: Structure) -> bool:
        """True when no training crystal of the same formula and size matches ``structure``."""
        key = (structure.composition.reduced_formula, len(structure))
        return not any(self._matcher.fit(structure, known) for known in self._structures(key))


def first_duplicate(structure: Structure, stored: Iterable[tuple[int, Structure]],
                    structure_matcher: StructureMatcher | None = None) -> int | None:
    """Id of the first ``(id, structure)`` in ``stored`` that matches ``structure`` (None: none)."""
    m = structure_matcher or matcher()
    for cid, other in stored:
        if len(other) == len(structure) and m.fit(structure, other):
            return cid
    return None


__all__ = ["TrainingSet", "first_duplicate", "matcher"]
