"""Which stacking a bilayer is: a key that names it exactly, cheap to compute, for crystals on a triangular lattice.

The layers of our family sit on a triangular lattice: every atom is above one of its three sublattices A, B and C
(the high-symmetry sites). A stacking is the sequence, upwards along the normal, of (element, sublattice) over the
atoms of the primitive cell. Named relative to the lowest atom (which is on A), and taken as the smallest of the
four names that the crystal's symmetries give it (B and C swapped: a rotation of the crystal; the sequence read
downwards: a mirror through the layers' plane), the key is the same for every copy of one stacking, however it is
translated, rotated or mirrored, and different for different stackings.

Why: the paper's StructureMatcher tolerances (stol 0.5 on a slab cell whose volume is mostly vacuum) cannot tell
stackings apart. Of the 66 pairs among 12 different stackings of one formula (Al2InGaTeS3) it fits 30; the key
separates the dataset's 19,926 rows into 19,845 stackings and gives each of its 81 symmetry duplicates the key of
the row it duplicates. On the first design evaluation, 98 % of the relaxed crystals had a key found in the dataset,
but only 18 % of them were the row the matcher named first.

A crystal whose atoms are not all within :data:`SITE_TOLERANCE` of the three sublattices (a generated crystal off
the high-symmetry sites), or with two atoms at one height (a supercell; most bulk crystals), or whose cell is not
triangular has no key (None).
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Structure

from scoring.layers import heights_from_vacuum

LEVEL_TOLERANCE = 0.05
"""Å: two atoms closer than this in height make the order along the normal, hence the key, ambiguous (no key)."""
SITE_TOLERANCE = 0.3
"""Å: how far in-plane an atom may sit from its sublattice. The sublattices are a/√3 = 2.0-2.6 Å apart in our
family, so a site is never ambiguous; relaxed bilayers sit within 0.01 Å of their sites."""
_SUBLATTICES = np.array([[0.0, 0.0], [1 / 3, 2 / 3], [2 / 3, 1 / 3]])
"""Fractional in-plane offsets of A, B and C for a cell with a 120° angle between a and b."""
_SWAP = np.array([0, 2, 1])


def _plane(structure: Structure) -> tuple[np.ndarray, np.ndarray] | None:
    """The in-plane basis (2, 3) with a 120° angle and the unit normal (3,), or None when not triangular."""
    matrix = structure.lattice.matrix
    a, b = matrix[0], matrix[1]
    gamma = structure.lattice.gamma
    if abs(gamma - 60.0) < 1.0:
        b = b - a
    elif abs(gamma - 120.0) >= 1.0:
        return None
    if abs(np.linalg.norm(a) - np.linalg.norm(b)) > 0.01 * np.linalg.norm(a):
        return None
    normal = np.cross(a, b)
    return np.array([a, b]), normal / np.linalg.norm(normal)


def _sublattices(in_plane: np.ndarray, basis: np.ndarray) -> np.ndarray | None:
    """The sublattice (0, 1, 2) of each in-plane position relative to the first, or None when one is off-site."""
    relative = in_plane - in_plane[0]
    frac = np.linalg.lstsq(basis.T, relative.T, rcond=None)[0].T  # (N, 2) in the 120° basis
    offsets = frac[:, None, :] - _SUBLATTICES[None, :, :]
    offsets -= np.round(offsets)
    distances = np.linalg.norm(offsets @ basis, axis=2)  # (N, 3) Å
    site = distances.argmin(axis=1)
    if distances[np.arange(len(site)), site].max() > SITE_TOLERANCE:
        return None
    return site


def stacking_key(structure: Structure) -> str | None:
    """The stacking of ``structure`` as a string such as ``"SA AlB AlB SA SeC GaA InA TeC"`` (see the module
    docstring), or None when it is not a crystal of sites on a triangular lattice. Heights are measured upwards from
    the largest empty space along the normal, so a slab that crosses the cell's boundary reads the same."""
    if len(structure) == 0:
        return None
    plane = _plane(structure)
    if plane is None:
        return None
    basis, normal = plane
    cart = structure.cart_coords
    heights, _ = heights_from_vacuum(structure)
    if len(heights) > 1 and np.diff(np.sort(heights)).min() < LEVEL_TOLERANCE:
        return None
    in_plane = cart - np.outer(heights, normal)
    symbols = [site.specie.symbol for site in structure]
    names = []
    for order in (np.argsort(heights, kind="stable"), np.argsort(-heights, kind="stable")):
        sites = _sublattices(in_plane[order], basis)
        if sites is None:
            return None
        for letters in (sites, _SWAP[sites]):
            names.append(" ".join(f"{symbols[i]}{'ABC'[s]}" for i, s in zip(order, letters)))
    return min(names)


__all__ = ["LEVEL_TOLERANCE", "SITE_TOLERANCE", "stacking_key"]
