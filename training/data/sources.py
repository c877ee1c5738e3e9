"""Where a training run's crystals come from: the committed Janus bilayers, or any CDVAE-layout dataset.

:func:`load_parts` turns a :class:`~training.train.config.DataConfig` into the train, val and test parts
of one property, and names the table that holds all three (the novelty reference of the exported model):

- ``path == ""``: the committed Janus III-VI table, split by its ``split_<name>`` column;
- a CSV in the CDVAE layout (``cif`` column plus properties): imported (:func:`import_cdvae_csv`), then
  split here, seeded, by ``ratio``;
- a folder with ``train.csv``, ``val.csv`` and ``test.csv`` (the public benchmarks' layout): its split;
- a Parquet written by ``vdwgen dataset import``: split here, like a CSV.

A dataset that is not the Janus table is written once, with a ``split_data`` column, as ``data.parquet``
in the run folder, so the run (and the artifact exported from it) carries the exact crystals it learned
from. Rows the import skips are reported by row number; rows whose property is not finite are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import VdwgenError
from training.data.cdvae_csv import import_cdvae_csv
from training.data.crystal import CrystalDataset, read_parquet, write_parquet
from training.data.janus import load_janus_dataset

PARTS = ("train", "val", "test")
SPLIT = "data"
"""The split column's suffix of a split made here (``split_data``)."""
TABLE_NAME = "data.parquet"
BENCHMARK_FILES = tuple(f"{part}.csv" for part in PARTS)


@dataclass(frozen=True)
class DataConfig:
    """Which crystals a run learns from, and which of their columns is the property.

    Attributes:
        path: ``""`` for the committed Janus III-VI bilayers (split by ``train.split``); else a CSV in the
            CDVAE layout (split here, seeded, by ``ratio``), a folder with ``train.csv``, ``val.csv`` and
            ``test.csv`` (its own split), or a Parquet written by ``vdwgen dataset import``.
        property: the column the model is conditioned on and predicts.
        unit: the property's unit, shown with it (``""``: none given).
        ratio: train : val : test fractions of a split made here.
        seed: the seed of a split made here.
        max_atoms: rows with larger cells are refused, by row number (as the import does).
        extra_properties: further label columns carried along (rows where any is not finite are dropped).
    """

    path: str = ""
    property: str = "formation_energy_per_atom"
    unit: str = "eV/atom"
    ratio: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 42
    max_atoms: int = 20
    extra_properties: tuple[str, ...] = ()

    def columns(self) -> tuple[str, ...]:
        """Every label column read: the property, then the extra ones (a multi-property predictor's)."""
        return (self.property, *[c for c in self.extra_properties if c != self.property])

    def __post_init__(self) -> None:
        if len(self.ratio) != 3 or any(r < 0 for r in self.ratio) or not sum(self.ratio) > 0:
            raise ValueError(f"data.ratio must be three fractions >= 0 (train, val, test), got {self.ratio}")
        if self.max_atoms < 1:
            raise ValueError(f"data.max_atoms must be at least 1, got {self.max_atoms}")


class DataError(VdwgenError):
    """A dataset a run cannot learn from; the message names the file, row or column to fix."""


@dataclass(frozen=True)
class DataParts:
    """The three parts of one dataset with one property, and the table that holds them all.

    ``data_id`` is ``<dataset>:<split>:train`` (the manifest's training data id); ``table`` has the
    columns ``lattice``, ``species``, ``frac_coords``, ``reduced_formula``, ``num_atoms`` and
    ``split_<split>``; ``skipped`` lists one line per row left out (by row number).
    """

    train: CrystalDataset
    val: CrystalDataset
    test: CrystalDataset
    name: str
    split: str
    table: Path
    property: str
    unit: str
    skipped: tuple[str, ...] = ()

    @property
    def data_id(self) -> str:
        return f"{self.name}:{self.split}:train"


def _janus(cfg: DataConfig, split: str) -> DataParts:
    from core.paths import dataset_dir

    parts = [load_janus_dataset(split=split, part=part, properties=cfg.columns()) for part in PARTS]  # type: ignore[arg-type]
    return DataParts(*parts, name="janus_iii_vi", split=split, table=dataset_dir() / "bilayers.parquet",
                     property=cfg.property, unit=cfg.unit)


def _import_csv(path: Path, cfg: DataConfig) -> tuple[CrystalDataset, list[str]]:
    try:
        result = import_cdvae_csv(path, list(cfg.columns()), max_atoms=cfg.max_atoms)
    except (ValueError, FileNotFoundError) as exc:
        raise DataError(f"{path}: {exc}") from None
    skipped = [f"{path.name} row {p.row} ({p.id}): {p.reason}" for p in result.problems]
    if len(result.dataset) == 0:
        first = f"; first: {skipped[0]}" if skipped else ""
        raise DataError(f"{path}: no usable row ({result.summary()}){first}")
    return result.dataset, skipped


def _seeded_split(n: int, ratio: tuple[float, float, float], seed: int) -> np.ndarray:
    """``n`` labels train/val/test in the given proportions (largest remainder), seeded order."""
    weights = np.asarray(ratio, dtype=float) / float(sum(ratio))
    counts = np.floor(weights * n).astype(int)
    for k in np.argsort(-(weights * n - counts), kind="stable")[: n - int(counts.sum())]:
        counts[k] += 1
    labels = np.repeat(np.array(PARTS), counts)
    return labels[np.random.default_rng(seed).permutation(n)]


def _finite_only(data: CrystalDataset, props: tuple[str, ...], origin: str) -> tuple[CrystalDataset, list[str]]:
    dropped: list[str] = []
    for prop in props:
        finite = [math.isfinite(v) for v in data.property_array(prop)]
        keep = [i for i, ok in enumerate(finite) if ok]
        if not keep:
            raise DataError(f"{origin}: the property {prop!r} has no finite value in {len(data)} rows")
        dropped += [f"{origin} id {data[i].id}: property {prop!r} is not finite"
                    for i, ok in enumerate(finite) if not ok]
        data = data if len(keep) == len(data) else data.subset(keep)
    return data, dropped


def _write_table(parts: dict[str, CrystalDataset], out: Path) -> Path:
    frames = []
    for part in PARTS:
        frame = parts[part].to_table()
        frame[f"split_{SPLIT}"] = part
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    structures = [c.to_structure() for part in PARTS for c in parts[part]]
    table["reduced_formula"] = [s.composition.reduced_formula for s in structures]
    table["num_atoms"] = [len(s) for s in structures]
    return write_parquet(table, out / TABLE_NAME)


def load_parts(cfg: DataConfig, janus_split: str = "random", out: Path | None = None) -> DataParts:
    """The train, val and test parts of ``cfg``'s dataset (see the module docstring).

    Args:
        cfg: the run's data settings.
        janus_split: the Janus table's split (``random`` or ``pair``), used when ``cfg.path`` is empty.
        out: the run folder; a dataset other than the Janus table is written there as ``data.parquet``
            (an existing one is reused, so a resumed run sees the same split).

    Raises:
        DataError: a missing or malformed dataset, an unknown property column (the message lists the
            columns), a property with no finite value, or an empty part.
    """
    if not cfg.path:
        return _janus(cfg, janus_split)
    if out is None:
        raise DataError("a dataset other than the Janus table needs a run folder to keep its split in")
    path = Path(cfg.path).expanduser()
    name = path.stem if path.is_file() else path.name
    if (Path(out) / TABLE_NAME).is_file():
        table = Path(out) / TABLE_NAME
        frame = pd.read_parquet(table)
        parts = {part: CrystalDataset.from_table(frame[frame[f"split_{SPLIT}"] == part], name=f"{name}:{part}",
                                                 property_columns=list(cfg.columns())) for part in PARTS}
        return DataParts(parts["train"], parts["val"], parts["test"], name, SPLIT, table, cfg.property, cfg.unit)
    skipped: list[str] = []
    if path.is_dir():
        missing = [f for f in BENCHMARK_FILES if not (path / f).is_file()]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)}: a dataset folder holds train.csv, val.csv and "
                            "test.csv (or give one CSV or Parquet file)")
        parts = {}
        for part in PARTS:
            data, problems = _import_csv(path / f"{part}.csv", cfg)
            parts[part], dropped = _finite_only(data, cfg.columns(), f"{part}.csv")
            skipped += problems + dropped
    elif path.is_file() and path.suffix.lower() in (".csv", ".parquet"):
        if path.suffix.lower() == ".csv":
            data, skipped = _import_csv(path, cfg)
        else:
            try:
                data = read_parquet(path, property_columns=list(cfg.columns()))
            except (ValueError, OSError) as exc:
                raise DataError(f"{path}: {exc}") from None
            sizes = [len(c.species) for c in data]
            too_big = [i for i, n in enumerate(sizes) if n > cfg.max_atoms]
            if too_big:
                skipped += [f"{path.name} row {i + 1} ({data[i].id}): {sizes[i]} atoms, more than "
                            f"data.max_atoms={cfg.max_atoms}" for i in too_big]
                if len(too_big) == len(data):
                    raise DataError(f"{path}: no usable row: all {len(data)} rows have more than "
                                    f"data.max_atoms={cfg.max_atoms} atoms (first: {skipped[0]})")
                data = data.subset([i for i, n in enumerate(sizes) if n <= cfg.max_atoms])
        data, dropped = _finite_only(data, cfg.columns(), path.name)
        skipped += dropped
        labels = _seeded_split(len(data), cfg.ratio, cfg.seed)
        parts = {part: data.subset(np.flatnonzero(labels == part).tolist(), name=f"{name}:{part}") for part in PARTS}
    else:
        raise DataError(f"no dataset at {path}: give a CDVAE-layout CSV, a folder with train.csv, val.csv and "
                        "test.csv, or a Parquet written by `vdwgen dataset import`")
    for part in ("train", "val"):
        if len(parts[part]) == 0:
            raise DataError(f"{path}: the {part} part is empty ({len(parts['train'])} / {len(parts['val'])} / "
                            f"{len(parts['test'])} rows in train / val / test); give more rows or another ratio")
    Path(out).mkdir(parents=True, exist_ok=True)
    table = _write_table(parts, Path(out))
    return DataParts(parts["train"], parts["val"], parts["test"], name, SPLIT, table, cfg.property, cfg.unit,
                     tuple(skipped))
