"""What the dataset already holds for a request: the honest baseline shown next to what the model generated.

A user who asks for bilayers near a formation energy, or of a formula, should see how many bilayers of the
model's own dataset already meet the request (every split: these are crystals someone has already labelled)
and the best of them, so that what the model adds is plain. A target request counts the rows whose label is
within :data:`TARGET_WINDOW` of the target (the window the oracle's hit rate uses), closest first; a formula
request counts the rows of that reduced formula, lowest label first. Unconditional requests have no
baseline. The table is the one the model was trained on (:func:`services.generation.training_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from pymatgen.core import Composition

from core.manifest import Manifest
from serving.request import GenerationRequest

TARGET_WINDOW = 0.05
"""A crystal meets a target when its property is within this of it (the oracle's hit window, eV/atom)."""
SHOWN = 5
"""Best dataset rows shown."""
DESCRIBING = ("id", "formula", "bottom", "top", "stacking")
"""Columns that say which dataset crystal a row is (those the table has)."""


@dataclass(frozen=True)
class DatasetAnswer:
    """How the dataset meets one request: ``matching`` of ``total`` rows, ``best`` (up to :data:`SHOWN` rows,
    the property last), and the request in words."""

    asked: str
    matching: int
    total: int
    best: pd.DataFrame
    property_name: str
    unit: str

    def line(self) -> str:
        """One line for the command line and the app's caption."""
        if not self.matching:
            return f"dataset baseline: none of its {self.total:,} crystals {self.asked}"
        top = self.best.iloc[0]
        which = str(top["id"]) if "id" in self.best.columns else "row"
        return (f"dataset baseline: {self.matching:,} of its {self.total:,} crystals {self.asked} (best: {which}, "
                f"{top[self.property_name]:+.3f} {self.unit})")


@lru_cache(maxsize=2)
def _table(path: str, property_name: str) -> pd.DataFrame:
    present = set(pq.read_schema(path).names)
    columns = [c for c in (*DESCRIBING, "reduced_formula") if c in present] + [property_name]
    return pd.read_parquet(path, columns=columns)


def dataset_answer(manifest: Manifest, request: GenerationRequest, table: Path | None) -> DatasetAnswer | None:
    """The dataset's own answer to ``request`` (None: an unconditional request, no table, or a table without the
    model's property or formulas)."""
    name, unit = manifest.property.name, manifest.property.unit
    if table is None or request.mode == "unconditional":
        return None
    frame = _table(str(table), name) if name in set(pq.read_schema(table).names) else None
    if frame is None or "reduced_formula" not in frame.columns:
        return None
    shown = [c for c in DESCRIBING if c in frame.columns] + [name]
    if request.mode == "formation_energy" and request.target is not None:
        distance = (frame[name] - request.target).abs()
        inside = distance <= TARGET_WINDOW  # (an empty frame would take a whole Series' index on assign)
        hits = frame[inside].assign(_d=distance[inside]).sort_values("_d")
        asked = f"within ±{TARGET_WINDOW} {unit} of {request.target:+.3f}"
    else:
        formula = Composition(str(request.formula)).reduced_formula
        hits = frame[frame["reduced_formula"] == formula].sort_values(name)
        asked = f"of {formula}"
    return DatasetAnswer(asked, len(hits), len(frame), hits[shown].head(SHOWN).reset_index(drop=True), name, unit)


def dataset_rows(manifest: Manifest, table: Path | None, ids: list[str]) -> pd.DataFrame:
    """The dataset's rows ``ids`` (the bilayers candidates were found to be): which monolayers, which stacking, and
    the label; empty when there is no table or none of the ids is in it."""
    name = manifest.property.name
    if table is None or not ids or name not in set(pq.read_schema(table).names):
        return pd.DataFrame()
    frame = _table(str(table), name)
    if "id" not in frame.columns:
        return pd.DataFrame()
    shown = [c for c in DESCRIBING if c in frame.columns] + [name]
    return frame[frame["id"].isin(ids)][shown].reset_index(drop=True)


__all__ = ["TARGET_WINDOW", "DatasetAnswer", "dataset_answer", "dataset_rows"]
