"""What the evaluations look at: the property, the formulas they request, which crystals of a set they take.

Shared by ``vdwgen evaluate`` (:mod:`training.evaluation.evaluate`) and ``vdwgen model-card``
(:mod:`training.evaluation.model_card`), so both measure the same things on the same crystals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymatgen.core import Structure

from scoring.validity import structurally_valid

PROPERTY = "formation_energy_per_atom"
"""The label the model is conditioned on (eV/atom, the dataset's convention)."""

TRAINING_FORMULAS = ("GaInSSe", "AlGaIn2S2SeTe", "In2SeTe")
"""Formula requests whose cells are in the training part."""

ABSENT_FORMULA = "Ga2InS3Se2"
"""Every 4:4 metal:chalcogen cell of the vocabulary is in the training part (225 of 225), so a
formula absent from the data is necessarily off the III-VI stoichiometry; this one is
SMACT-neutral (Te/S/Se in mixed states) and asks whether the model builds a sensible
bilayer for a composition it never saw."""


def evenly(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (all when n is 0 or too large)."""
    if n <= 0 or n >= n_total:
        return np.arange(n_total)
    return np.linspace(0, n_total - 1, n).round().astype(int)


def relaxable(structures: Sequence[Structure]) -> list[int]:
    """Indices of structurally valid crystals (the oracle is not asked about overlapping atoms)."""
    return [i for i, s in enumerate(structures) if structurally_valid(s)]
