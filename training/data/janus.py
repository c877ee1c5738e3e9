"""Load the committed Janus III-VI bilayer dataset as a :class:`CrystalDataset`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from training.data.crystal import CrystalDataset

TABLE_NAME = "bilayers.parquet"
SPLIT_COLUMNS = {"random": "split_random", "pair": "split_pair"}
PARTS = ("train", "val", "test")
LABELS = (
    "formation_energy_per_atom",
    "formation_energy_per_atom_raw",
    "interlayer_energy_per_atom",
    "binding_energy_per_area",
    "interlayer_gap",
    "a_common",
)


def default_dataset_dir() -> Path:
    """``data/janus_iii_vi`` of the checkout (overridable with ``VDWGEN_DATASET_DIR``)."""
    from core.paths import dataset_dir

    return dataset_dir()


def janus_species(folder: Path | None = None) -> list:
    """Every bilayer's site element symbols (one sequence per crystal, all parts), read from the table's
    ``species`` column without building crystals."""
    path = Path(folder or default_dataset_dir()) / TABLE_NAME
    return list(pd.read_parquet(path, columns=["species"])["species"])


def load_janus_dataset(
    folder: Path | None = None,
    split: Literal["random", "pair"] | None = None,
    part: Literal["train", "val", "test"] | None = None,
    properties: tuple[str, ...] = ("formation_energy_per_atom",),
) -> CrystalDataset:
    """The bilayer table as crystals, optionally one part of one split.

    Args:
        folder: dataset folder holding ``bilayers.parquet`` (default: the shipped one).
        split: ``"random"`` (the paper's 6:2:2) or ``"pair"`` (grouped by monolayer pair).
        part: ``"train"``, ``"val"`` or ``"test"``; requires ``split``.
        properties: label columns carried as crystal properties.
    """
    path = Path(folder or default_dataset_dir()) / TABLE_NAME
    if not path.exists():
        raise FileNotFoundError(
            f"no dataset at {path}; build it with `vdwgen dataset build` (see the README)"
        )
    if (split is None) != (part is None):
        raise ValueError("give both split ('random' or 'pair') and part ('train', 'val' or 'test'), or neither")
    unknown = [p for p in properties if p not in LABELS]
    if unknown:
        raise ValueError(f"unknown label(s) {unknown}; available: {', '.join(LABELS)}")
    df = pd.read_parquet(path)
    name = "janus_iii_vi"
    if split is not None:
        if split not in SPLIT_COLUMNS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_COLUMNS)}")
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; choose one of {', '.join(PARTS)}")
        df = df[df[SPLIT_COLUMNS[split]] == part].reset_index(drop=True)
        name = f"{name}:{split}:{part}"
    return CrystalDataset.from_table(df, name=name, property_columns=list(properties))
