"""Validity of generated crystals, in pure pymatgen + SMACT (no ``training`` import).

The CDVAE / ConditionCDVAE+ protocol (method.md, section 3; paper, "Generation"):

- **structural validity**: every interatomic distance (minimum image) is at least 0.5 Å
  and the cell volume at least 0.1 Å^3 (Court et al.);
- **compositional validity**: SMACT charge neutrality with the Pauling electronegativity
  test, alloys (all-metal compositions) counted valid.

SMACT's oxidation-state set matters here. Its 4.x default (ICSD-2024 states) allows
Al only as +3, so 28 of the 225 formulas of our Janus III-VI training data (the Al-rich
MX-type bilayers, 3.6 % of rows; the M-M bonded III-VI layers have formal +2 metals) would
be "invalid". CDVAE's check, which the paper follows, read SMACT's own element table,
the ``smact14`` set, which accepts all 225 training formulas and still rejects NaCl2. We
use ``smact14``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pymatgen.core import Composition, Structure

MIN_DISTANCE = 0.5
"""Smallest interatomic distance (Å) of a structurally valid crystal."""
MIN_VOLUME = 0.1
"""Smallest cell volume (Å^3) of a structurally valid crystal."""
OXIDATION_STATES = "smact14"
"""SMACT oxidation-state set of the compositional check (see the module docstring)."""


def min_distance(structure: Structure) -> float:
    """Shortest distance (Å) between two different sites under periodic boundaries.

    A one-atom cell returns the shortest lattice translation's length.
    """
    if len(structure) == 1:
        return float(min(structure.lattice.abc))
    matrix = structure.distance_matrix + np.diag(np.full(len(structure), np.inf))
    return float(matrix.min())


def structurally_valid(structure: Structure) -> bool:
    """All distances >= :data:`MIN_DISTANCE` and volume >= :data:`MIN_VOLUME`."""
    return structure.volume >= MIN_VOLUME and min_distance(structure) >= MIN_DISTANCE


@lru_cache(maxsize=4096)
def _smact_valid(formula: str) -> bool:
    from smact.screening import smact_validity

    return bool(smact_validity(formula, use_pauling_test=True, include_alloys=True,
                               oxidation_states_set=OXIDATION_STATES))


def compositionally_valid(composition: Composition | str) -> bool:
    """SMACT charge neutrality + Pauling test (smact14 oxidation states)."""
    comp = Composition(composition)
    return _smact_valid(comp.formula.replace(" ", ""))
