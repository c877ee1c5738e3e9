"""Generation metrics: validity rates, property re-prediction, formula hit rates.

- validity (paper Table 2): share of generated crystals that are structurally valid, that
  are compositionally valid (SMACT), and both (:mod:`scoring.validity`); and our stricter checks
  (:func:`scoring.record.validity_checks`): contacts, the layer motif and the gap range for the bilayer
  family, and every check that applies;
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

from scoring.layers import motif_problem
from scoring.record import validity_checks
from scoring.validity import COVALENT_RULE, ContactLimits
from training.data.crystal import Crystal


@dataclass(frozen=True)
class ValidityRates:
    """Shares (0..1) of ``count`` crystals that pass each check: the paper's (``structural``, ``compositional``,
    ``both``) and ours (``contacts``; for the bilayer family ``motif`` and ``gap``, the latter among the crystals
    with the motif, else None; ``every``: all checks that apply, the product's ``valid``)."""

    count: int
    structural: float
    compositional: float
    both: float
    contacts: float
    motif: float | None
    gap: float | None
    every: float

    def as_dict(self) -> dict[str, float | int | None]:
        return {"count": self.count, "structural": self.structural, "compositional": self.compositional,
                "both": self.both, "contacts": self.contacts, "motif": self.motif, "gap": self.gap,
                "every": self.every}


def validity_rates(crystals: list[Crystal], family: bool | None = None,
                   contacts: ContactLimits = COVALENT_RULE) -> ValidityRates:
    """Every validity check of a set of crystals (``family`` and ``contacts`` as in
    :func:`scoring.record.validity_checks`)."""
    if not crystals:
        raise ValueError("no crystals to score")
    checks = [validity_checks(c.to_structure(), family, contacts=contacts) for c in crystals]
    structural = np.array([c.structure for c in checks])
    compositional = np.array([c.composition for c in checks])
    motif = [c.motif for c in checks if c.motif is not None]
    gap = [c.gap for c in checks if c.gap is not None]
    return ValidityRates(len(crystals), float(structural.mean()), float(compositional.mean()),
                         float((structural & compositional).mean()), float(np.mean([c.contacts for c in checks])),
                         float(np.mean(motif)) if motif else None, float(np.mean(gap)) if gap else None,
                         float(np.mean([c.valid for c in checks])))


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
