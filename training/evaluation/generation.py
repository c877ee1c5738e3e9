"""Generation metrics: validity rates, property re-prediction, formula hit rates.

- validity (paper Table 2): share of generated crystals that are structurally valid, that
  are compositionally valid (SMACT), and both (:mod:`scoring.validity`);
- conditional accuracy: generated crystals are encoded again by the trained encoder and
  their property predicted by the property head (the issue's in-model check; the physics
  oracle check is the evaluation issue's);
- formula hit rate: the share of crystals whose composition equals the requested formula
  scaled to the model's cell, when the types are decoded freely (paper Fig. 3c-d);
- layer order: the share of crystals that are bilayers of our family in the right order, each
  layer chalcogen-metal-metal-chalcogen (:func:`scoring.layers.motif_problem`; every dataset
  bilayer has it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from scoring.layers import CHALCOGENS, METALS, motif_problem
from scoring.validity import compositionally_valid, structurally_valid
from training.data.crystal import Crystal


@dataclass(frozen=True)
class ValidityRates:
    """Shares (0..1) of ``count`` crystals that pass each check."""

    count: int
    structural: float
    compositional: float
    both: float

    def as_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "structural": self.structural, "compositional": self.compositional,
                "both": self.both}


def validity_rates(crystals: list[Crystal]) -> ValidityRates:
    """Structural, compositional and joint validity of a set of crystals."""
    if not crystals:
        raise ValueError("no crystals to score")
    structural = np.array([structurally_valid(c.to_structure()) for c in crystals])
    compositional = np.array([compositionally_valid("".join(c.species)) for c in crystals])
    return ValidityRates(len(crystals), float(structural.mean()), float(compositional.mean()),
                         float((structural & compositional).mean()))


def layered_family(elements: Sequence[str]) -> bool:
    """True when a model's elements are all metals and chalcogens of our III-VI bilayers, so that the
    layer order is a property its crystals should have."""
    return bool(elements) and set(elements) <= METALS | CHALCOGENS


def motif_share(structures: Sequence[Structure]) -> float | None:
    """Share of ``structures`` in the right layer order (None for an empty set)."""
    if not structures:
        return None
    return float(np.mean([motif_problem(s) is None for s in structures]))


def cell_counts(crystal: Crystal) -> dict[str, int]:
    """Element -> number of atoms in the cell."""
    return dict(Counter(crystal.species))


def formula_hit_rate(crystals: list[Crystal], counts: dict[str, int]) -> float:
    """Share of crystals whose cell holds exactly ``counts`` (element -> atoms)."""
    if not crystals:
        raise ValueError("no crystals to score")
    target = {k: v for k, v in counts.items() if v}
    return float(np.mean([cell_counts(c) == target for c in crystals]))


def summary(values: np.ndarray, target: float | None = None) -> dict[str, float]:
    """Median, mean, spread and (with a target) median absolute error of predicted values."""
    out = {"median": float(np.median(values)), "mean": float(np.mean(values)), "std": float(np.std(values)),
           "p10": float(np.quantile(values, 0.1)), "p90": float(np.quantile(values, 0.9))}
    if target is not None:
        out["median_abs_error"] = float(np.median(np.abs(values - target)))
        out["within_0.05"] = float(np.mean(np.abs(values - target) <= 0.05))
    return out
