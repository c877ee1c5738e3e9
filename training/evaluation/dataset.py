"""The crystals `vdwgen evaluate` measures a model against: its dataset's training and test parts.

:func:`evaluation_data` finds them for an artifact:

- no ``--data``: the table the model was trained from. For the Janus model that is the committed
  ``bilayers.parquet`` (split by ``split_random``); a model trained with ``vdwgen train --data``
  carries its whole dataset with its split in the artifact (``training_data.parquet``,
  ``split_data``), held-out test part included;
- ``--data DIR`` holding ``bilayers.parquet``: a Janus table, as before;
- ``--data PATH`` of any other dataset (a CDVAE-layout CSV, a folder with ``train.csv``, ``val.csv``
  and ``test.csv``, or an imported Parquet): read and split exactly as ``vdwgen train --data`` did,
  with the model's own split settings (ratio and seed from its training config).

In every case the evaluated part must not hold a crystal of the model's training part (checked
by id against the artifact's training table when the artifact carries one): a test figure on
crystals the model learned from would not be a test figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import VdwgenError
from core.manifest import Manifest

JANUS_TABLE = "bilayers.parquet"
JANUS_NAME = "janus_iii_vi"
ORACLE_PROPERTY = "formation_energy_per_atom"
"""The label the oracle recomputes (CHGNet + D3 energies in the dataset's formation-energy convention)."""


class EvaluationDataError(VdwgenError):
    """The evaluation's dataset cannot be found or does not fit the model; the message says what to pass."""


@dataclass(frozen=True)
class EvaluationData:
    """A dataset table with its split, and which column is the model's property.

    Attributes:
        table: one row per crystal (``id``, ``lattice``, ``species``, ``frac_coords``,
            ``reduced_formula``, the property, ``split_<split>``).
        split: the split column's suffix (``random`` for the Janus table, ``data`` for a split made by
            ``vdwgen train --data``).
        property: the model's property column; ``unit`` its unit.
        name: the dataset's name (``janus_iii_vi`` for the committed table).
        path: the table's file (the oracle's elemental references sit beside the Janus table).
        vocabulary: the model's elements; crystals with other elements cannot be encoded and are left
            out of the parts (:meth:`part` counts them in :attr:`outside_vocabulary`).
    """

    table: pd.DataFrame
    split: str
    property: str
    unit: str
    name: str
    path: Path
    vocabulary: tuple[str, ...]

    @property
    def janus(self) -> bool:
        return self.name == JANUS_NAME

    @property
    def split_column(self) -> str:
        return f"split_{self.split}"

    def part(self, name: str) -> pd.DataFrame:
        """Rows of the part ``name`` whose elements are all in the model's vocabulary."""
        rows = self.table[self.table[self.split_column] == name]
        return rows[self._in_vocabulary(rows)]

    def outside_vocabulary(self, name: str) -> int:
        """How many rows of the part ``name`` hold an element the model does not know."""
        rows = self.table[self.table[self.split_column] == name]
        return int((~self._in_vocabulary(rows)).sum())

    def labels(self, name: str) -> np.ndarray:
        """The property values of the part ``name`` (finite ones)."""
        values = self.part(name)[self.property].to_numpy(dtype=float)
        return values[np.isfinite(values)]

    def _in_vocabulary(self, rows: pd.DataFrame) -> pd.Series:
        known = set(self.vocabulary)
        return rows["species"].map(lambda species: set(species) <= known).astype(bool)


def _janus(path: Path, manifest: Manifest) -> EvaluationData:
    table = pd.read_parquet(path)
    return EvaluationData(table, "random", manifest.property.name, manifest.property.unit, JANUS_NAME, path,
                          manifest.vocabulary)


def _from_dataset(path: Path, manifest: Manifest, work: Path) -> EvaluationData:
    """Read and split ``path`` as ``vdwgen train --data`` did, with the model's split settings."""
    from training.data.sources import DataConfig, DataError, load_parts

    stored = dict(manifest.training_config.get("data", {}))
    settings = {k: stored[k] for k in ("ratio", "seed", "max_atoms") if k in stored}
    if "ratio" in settings:
        settings["ratio"] = tuple(settings["ratio"])
    cfg = DataConfig(path=str(path), property=manifest.property.name, unit=manifest.property.unit, **settings)
    try:
        parts = load_parts(cfg, out=work)
    except DataError as exc:
        raise EvaluationDataError(str(exc)) from None
    table = pd.read_parquet(parts.table)
    return EvaluationData(table, parts.split, cfg.property, cfg.unit, parts.name, parts.table, manifest.vocabulary)


def _check_held_out(data: EvaluationData, manifest: Manifest, part: str) -> None:
    """Refuse an evaluated part that shares crystals with the model's training part."""
    carried = manifest.carried_training_table
    if carried is None or data.path == carried:
        return
    trained = pd.read_parquet(carried, columns=["id", f"split_{manifest.training_data.split}"])
    train_ids = set(trained.loc[trained[f"split_{manifest.training_data.split}"] == manifest.training_data.part, "id"])
    leaked = int(data.table.loc[data.table[data.split_column] == part, "id"].isin(train_ids).sum())
    if leaked:
        raise EvaluationDataError(
            f"{leaked} crystals of the {part} part of {data.name} are in {manifest.name}'s training part; evaluate "
            f"on the dataset and split the model was trained with (or omit --data to use the one it carries)")


def evaluation_data(manifest: Manifest, data: Path | None, part: str, work: Path) -> EvaluationData:
    """The dataset ``manifest``'s model is evaluated on (see the module docstring).

    Args:
        manifest: the evaluated artifact's manifest.
        data: ``--data`` (None: the model's own training table).
        part: the evaluated part (``test`` or ``val``).
        work: a folder for the table of a dataset split here (``<out>/_cache/data``).

    Raises:
        EvaluationDataError: no dataset found, a malformed one, a property column it lacks, or an
            evaluated part that overlaps the model's training part.
    """
    if data is None:
        carried = manifest.carried_training_table
        if carried is not None:
            table = pd.read_parquet(carried)
            result = EvaluationData(table, manifest.training_data.split, manifest.property.name,
                                    manifest.property.unit, manifest.training_data.id.split(":")[0], carried,
                                    manifest.vocabulary)
        else:
            from core.paths import dataset_dir

            path = dataset_dir() / JANUS_TABLE
            if not path.is_file():
                raise EvaluationDataError(f"{manifest.name} carries no training table and there is no {path}; "
                                          "pass --data with the dataset the model was trained on")
            result = _janus(path, manifest)
    elif Path(data).is_dir() and (Path(data) / JANUS_TABLE).is_file():
        result = _janus(Path(data) / JANUS_TABLE, manifest)
    else:
        result = _from_dataset(Path(data), manifest, work)
    if result.property not in result.table.columns:
        raise EvaluationDataError(f"{result.path} has no column {result.property!r} (the property "
                                  f"{manifest.name} predicts)")
    if result.split_column not in result.table.columns:
        raise EvaluationDataError(f"{result.path} has no split column {result.split_column!r}")
    if not len(result.part(part)):
        raise EvaluationDataError(f"the {part} part of {result.name} holds no crystal of {manifest.name}'s elements "
                                  f"({', '.join(manifest.vocabulary)})")
    _check_held_out(result, manifest, part)
    return result


def oracle_reason(data: EvaluationData, references: Path) -> str | None:
    """Why the oracle stages cannot judge this model (None when they can).

    The oracle (CHGNet + D3) recomputes a formation energy in the Janus dataset's convention, from
    elemental references that exist only for that dataset's elements; a model of another property,
    or with elements without a reference, cannot be checked by it.
    """
    if data.property != ORACLE_PROPERTY:
        return (f"the oracle recomputes {ORACLE_PROPERTY} in the Janus dataset's convention, and this model's "
                f"property is {data.property!r}")
    from oracle.convention import load_references
    from oracle.shared import OracleError

    try:
        known = set(load_references(references))
    except OracleError as exc:
        return str(exc)
    missing = sorted(set(data.vocabulary) - known)
    if missing:
        return f"the oracle's elemental references lack {', '.join(missing)} (it has {', '.join(sorted(known))})"
    return None
