"""A proven-safe shortcut for StructureMatcher on slab cells: "these two cannot match".

pymatgen's ``StructureMatcher.fit`` tries every lattice mapping within the length and
angle tolerances. A bilayer cell (in-plane vectors ~4 A, ~34 A along the stacking
direction) has ~400 of them under the paper's loose tolerances (ltol 0.3, angle_tol 10°),
so one fit costs ~0.1 s, and a novel crystal is fitted against every training stacking
of its formula (53 on average, up to 274). Most of those pairs differ in *heights*: which
element sits in which atomic plane, the layer order, the interlayer gap. Heights survive
every lattice mapping the matcher may try, so a cheap one-dimensional test rules such
pairs out without changing a single verdict.

Why it is exact (read with ``StructureMatcher._strict_match``, ``attempt_supercell=False``):

1. Both structures are reduced (primitive + Niggli) and scaled to a common volume; the
   matcher maps struct1's lattice onto struct2's: new vectors a', b', c' with lengths
   within a factor (1 + ltol) of struct2's and angles within angle_tol.
2. Any lattice vector of struct1 outside the plane of its reduced a, b is at least as long
   as the cell's thickness h1 (the spacing of those lattice planes). When the scaled h1
   exceeds (1 + ltol) times struct2's longest in-plane vector, a' and b' must lie in that
   plane; they then span its whole 2D lattice (a', b', c' is a basis), so c' = ±c + (in-plane)
   and struct1's third fractional coordinates in the new basis are ±(its own) mod 1.
3. Distances are measured in the lattice with the averaged parameters; the component of a
   displacement along that lattice's plane normal is h_avg times the (wrapped) difference of
   third fractional coordinates. A match needs every displacement below
   stol · (V_avg / n)^(1/3), hence every height difference below
   eps = stol · n^(-1/3) · A_avg / V_avg^(2/3) for one sign, one shift and one
   species-preserving assignment.
4. The averaged lengths lie within [(1 + 1/(1 + ltol))/2, 1 + ltol/2] of struct2's and the
   averaged angles within angle_tol/2 of struct2's, which bounds A_avg from above and V_avg
   from below, so eps has an upper bound computed from struct2 alone.

If no sign, shift and assignment keeps all height differences within that bound, the
matcher cannot return True. Whenever a premise fails (disordered sites, a thin cell, a matcher
that ignores species or compares anything but species, a bound that is too loose to be useful)
the filter says "may match" and the caller runs the full matcher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.analysis.structure_matcher import SpeciesComparator, StructureMatcher
from pymatgen.core import Structure
from scipy.optimize import linear_sum_assignment

_RELATIVE_SLACK = 1e-9  # float rounding, always on the side of "may match"


@dataclass(frozen=True)
class SlabProfile:
    """What the height test needs of one reduced structure."""

    reduced: Structure  # primitive + Niggli, exactly as the matcher reduces it
    heights: np.ndarray  # third fractional coordinates in the reduced basis, in [0, 1)
    species: np.ndarray  # species string per site
    volume: float
    thickness: float  # V / |a x b|
    in_plane_max: float  # max(|a|, |b|) of the reduced lattice
    eps_as_target: float  # bound on the height tolerance when this structure is struct2 (inf: no bound)


def _volume_factor_min(alpha: float, beta: float, gamma: float, half_width: float) -> float:
    """Lower bound of G = V / (abc) over angles within ``half_width`` degrees of the given ones.

    G^2 = 1 - cos^2 a - cos^2 b - cos^2 g + 2 cos a cos b cos g is evaluated on a 0.25° grid;
    each partial derivative of G^2 is at most 4 per radian, which bounds the error between
    grid points."""
    steps = 41
    grid = [np.radians(np.linspace(x - half_width, x + half_width, steps)) for x in (alpha, beta, gamma)]
    ca, cb, cg = (np.cos(g) for g in np.meshgrid(*grid, indexing="ij"))
    g2 = 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg
    spacing = np.radians(2 * half_width / (steps - 1))
    lower = float(g2.min()) - 3 * 4 * spacing / 2
    return float(np.sqrt(lower)) if lower > 0 else 0.0


def _sin_max(gamma: float, half_width: float) -> float:
    lo, hi = gamma - half_width, gamma + half_width
    if lo <= 90.0 <= hi:
        return 1.0
    return float(max(np.sin(np.radians(lo)), np.sin(np.radians(hi))))


def slab_profile(structure: Structure, matcher: StructureMatcher) -> SlabProfile | None:
    """The profile of ``structure`` as ``matcher`` sees it (None: the test does not apply)."""
    if not structure.is_ordered or matcher._supercell or not matcher._primitive_cell or not matcher._scale:
        return None
    if matcher._ignored_species or not isinstance(matcher._comparator, SpeciesComparator):
        return None  # the profile groups every site by its species, and the reduced form keeps them all
    reduced = matcher._get_reduced_structure(structure, primitive_cell=True, niggli=True)
    lat = reduced.lattice
    area = float(np.linalg.norm(np.cross(lat.matrix[0], lat.matrix[1])))
    n = len(reduced)
    ltol, half = matcher.ltol, matcher.angle_tol / 2
    grow, shrink = 1 + ltol / 2, (1 + 1 / (1 + ltol)) / 2
    g_min = _volume_factor_min(*lat.angles, half)
    a, b, c = lat.abc
    if g_min > 0:
        area_max = grow**2 * a * b * _sin_max(lat.gamma, half)
        volume_min = shrink**3 * a * b * c * g_min
        eps = matcher.stol * n ** (-1 / 3) * area_max / volume_min ** (2 / 3)
    else:
        eps = float("inf")
    return SlabProfile(reduced=reduced, heights=np.mod(reduced.frac_coords[:, 2], 1.0),
                       species=np.array([site.species_string for site in reduced]),
                       volume=float(lat.volume), thickness=float(lat.volume) / area,
                       in_plane_max=float(max(a, b)), eps_as_target=float(eps))


def _in_plane_premise(s1: SlabProfile, s2: SlabProfile, ltol: float) -> bool:
    """Step 2 of the module docstring: s1's mapped a', b' must lie in its layer plane."""
    scale2 = (s2.volume / s1.volume) ** (1 / 3)  # (r1 / r2)^2 after scaling to a common volume
    return scale2 * s1.thickness > (1 + ltol) * s2.in_plane_max * (1 + _RELATIVE_SLACK)


def _circular(d: np.ndarray) -> np.ndarray:
    d = np.mod(d, 1.0)
    return np.minimum(d, 1.0 - d)


def _assignable(x: np.ndarray, y: np.ndarray, tol: float) -> bool:
    """Is there a one-to-one assignment of ``x`` to ``y`` with every circular distance <= tol?"""
    ok = _circular(x[:, None] - y[None, :]) <= tol
    if not (ok.any(axis=0).all() and ok.any(axis=1).all()):
        return False
    rows, cols = linear_sum_assignment(~ok)
    return bool(ok[rows, cols].all())


def cannot_match(s1: SlabProfile | None, s2: SlabProfile | None, matcher: StructureMatcher) -> bool:
    """True only when ``matcher.fit`` of the two structures is proven False by their heights."""
    if s1 is None or s2 is None or len(s1.species) != len(s2.species):
        return False
    if sorted(s1.species) != sorted(s2.species):
        return False  # the matcher's own composition check is cheap; leave it to the matcher
    ltol = matcher.ltol
    if not (_in_plane_premise(s1, s2, ltol) and _in_plane_premise(s2, s1, ltol)):
        return False
    eps = max(s1.eps_as_target, s2.eps_as_target)
    if not eps < 0.25:  # arcs of translations longer than half a turn: the shift search below is not exhaustive
        return False
    tol = eps * (1 + _RELATIVE_SLACK) + 1e-12
    kinds = np.unique(s2.species)
    groups1 = [s1.species == k for k in kinds]
    groups2 = [s2.species == k for k in kinds]
    for sign in (1.0, -1.0):
        g = np.mod(sign * s1.heights, 1.0)
        # a feasible shift, if any, can be taken at the left end of one pair's arc of feasible shifts
        starts = np.concatenate(
            [(s2.heights[m2][None, :] - g[m1][:, None]).ravel() for m1, m2 in zip(groups1, groups2)]
        )
        for t in np.unique(np.mod(starts - eps, 1.0)):
            if all(_assignable(g[m1] + t, s2.heights[m2], tol) for m1, m2 in zip(groups1, groups2)):
                return False
    return True


def height_distances(s1: SlabProfile | None, others: list[SlabProfile | None]) -> np.ndarray:
    """(len(others),) how far ``s1``'s atomic planes are from each other profile's: the smallest, over both signs
    and the shifts that put one atom of ``s1`` on one atom of the other, of the largest circular height difference
    when each element's heights are paired in sorted order (inf: no profile, or another composition).

    A heuristic for trying the most similar crystal first, never a verdict: pairs that fit have small distances
    (on generated bilayers, the training stacking that fits was the nearest in each of 36 cases measured)."""
    out = np.full(len(others), np.inf)
    if s1 is None:
        return out
    composition = sorted(s1.species)
    rows = [i for i, o in enumerate(others) if o is not None and sorted(o.species) == composition]
    if not rows:
        return out
    kinds = np.unique(s1.species)
    heights = np.stack([others[i].heights for i in rows])  # (R, n)
    targets = [np.stack([np.sort(others[i].heights[others[i].species == k]) for i in rows]) for k in kinds]
    best = np.full(len(rows), np.inf)
    for sign in (1.0, -1.0):
        g = np.mod(sign * s1.heights, 1.0)
        shifts = np.mod(heights[:, :, None] - g[None, None, :], 1.0).reshape(len(rows), -1)  # (R, T)
        worst = np.zeros_like(shifts)
        for k, target in zip(kinds, targets):
            moved = np.sort(np.mod(g[s1.species == k][None, None, :] + shifts[:, :, None], 1.0), axis=2)
            d = np.abs(moved - target[:, None, :])  # (R, T, n_k)
            worst = np.maximum(worst, np.minimum(d, 1.0 - d).max(axis=2))
        best = np.minimum(best, worst.min(axis=1))
    out[rows] = best
    return out


__all__ = ["SlabProfile", "cannot_match", "height_distances", "slab_profile"]
