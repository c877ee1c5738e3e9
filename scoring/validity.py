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

The paper's two checks let a crystal with atoms 0.89 Å apart pass. Our own check of **contacts** does not:
no two atoms may be closer than :data:`CONTACT_FRACTION` times the sum of their covalent radii (Cordero,
as tabulated by pymatgen). The fraction is set from the data: across all 19,926 bilayers of the Janus
dataset the shortest contact is 0.958 of its radii sum (In-In, the M-M bond of an In2X2 layer; median
0.994), so 0.85 passes every dataset bilayer with a margin of 0.108 (11 % of a bond). An Al-Se pair, for
example, must then be at least 2.05 Å apart, which refuses the 0.9-1.3 Å contacts generated crystals had.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
from pymatgen.core import Composition, Structure

MIN_DISTANCE = 0.5
"""Smallest interatomic distance (Å) of a structurally valid crystal."""
MIN_VOLUME = 0.1
"""Smallest cell volume (Å^3) of a structurally valid crystal."""
OXIDATION_STATES = "smact14"
"""SMACT oxidation-state set of the compositional check (see the module docstring)."""
CONTACT_FRACTION = 0.85
"""No two atoms closer than this fraction of the sum of their covalent radii (see the module docstring)."""
UNKNOWN_RADIUS = 1.5
"""Covalent radius (Å) taken for an element pymatgen's table lacks."""


def covalent_radius(symbol: str) -> float:
    """Covalent radius of an element in Å (Cordero et al. 2008, as tabulated by pymatgen)."""
    return float(CovalentRadius.radius.get(symbol, UNKNOWN_RADIUS))


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


def contact_problem(structure: Structure, fraction: float = CONTACT_FRACTION) -> str | None:
    """Why two atoms of ``structure`` are too close, or None when none are.

    Too close: nearer than ``fraction`` x (r_cov,i + r_cov,j), periodic images included. The reason names
    the worst pair relative to its limit, e.g. ``Al-Se 1.27 Å apart (limit 2.05 Å = 0.85 x covalent radii)``,
    and how many pairs more are too close.
    """
    symbols = [site.specie.symbol for site in structure]
    radii = np.array([covalent_radius(s) for s in symbols])
    if len(structure) == 0:
        return None
    reach = float(2 * fraction * radii.max()) + 1e-6
    centers, neighbors, _images, distances = structure.get_neighbor_list(reach)
    limits = fraction * (radii[centers] + radii[neighbors])
    close = distances < limits
    if not close.any():
        return None
    ratio = np.where(close, distances / limits, np.inf)
    k = int(ratio.argmin())
    i, j = int(centers[k]), int(neighbors[k])
    pairs = int(close.sum()) // 2  # the neighbour list holds each pair from both ends
    more = f"; {pairs - 1} more pair{'s' if pairs > 2 else ''} too close" if pairs > 1 else ""
    return (f"{symbols[i]}-{symbols[j]} {distances[k]:.2f} Å apart (limit {limits[k]:.2f} Å = {fraction} x covalent "
            f"radii){more}")
