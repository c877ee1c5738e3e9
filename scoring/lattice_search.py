"""``StructureMatcher.fit`` with the same verdicts, its lattice search done in one vectorised pass.

The matcher (``_strict_match``, no supercells) answers True when *some* lattice mapping of struct1 onto
struct2 (``Lattice.find_all_mappings`` within ltol and angle_tol) and *some* translation (one struct1 site of the
rarest species onto one struct2 site) pass two tests: a coarse one (every struct2 site has a struct1 site of its
species within a fractional tolerance on each axis, ``_cmp_fstruct``) and the real one (after the best assignment
and the mean translation, every displacement is below stol, ``_cart_dists``). The answer does not depend on the
order lattices are tried. A slab cell (4 A in-plane, ~30 A high) has ~350 mappings, most with the long vector
sheared by in-plane lattice vectors, and pymatgen visits them one by one in Python: ~60 ms per fit, nearly all of
it building Lattice objects. Most fits between generated bilayers fail, and a failing fit visits every mapping.

Here the same mappings are enumerated at once (the same points in the same sphere, the same length, angle and
determinant tests) and the coarse test is evaluated for all mappings and translations in one array, with its
tolerance widened by a relative 1e-6 so that rounding can only let more through. Only the mappings that pass go
through pymatgen's own steps (its averaged lattice, its coarse test, its ``_cart_dists``), so every True comes
from pymatgen's arithmetic and a False needs every mapping to fail a test at least as lenient as pymatgen's.
Anything outside that setting (supercells, subsets, unequal sizes after reduction, cells so large that one
mapping's array would pass ~2 M numbers, non-finite coordinates) goes to ``matcher.fit``.
"""

from __future__ import annotations

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher, get_linear_assignment_solution
from pymatgen.core import Lattice, Structure

_WIDEN = 1e-6  # relative widening of the coarse tolerance in the vectorised pass
_BLOCK = 64  # mappings per vectorised pass, at most
_BUDGET = 1 << 21  # floats in one pass's (mappings, translations, n2, n1, 3) array: ~16 MB, a few times that at peak


def _mappings(lattice: Lattice, target: Lattice, ltol: float, angle_tol: float) -> np.ndarray:
    """(N, 3, 3) the aligned matrices ``lattice.find_all_mappings(target, ltol, angle_tol)`` yields whose integer
    scale matrix has determinant 1 (what ``StructureMatcher._get_lattices`` keeps without supercells)."""
    lengths = np.asarray(target.lengths)
    alpha, beta, gamma = target.angles
    frac, dist, _, _ = lattice.get_points_in_sphere([[0, 0, 0]], [0, 0, 0], max(lengths) * (1 + ltol),
                                                    zip_results=False)
    cart = lattice.get_cartesian_coords(frac)
    picks = [np.logical_and(dist / x < 1 + ltol, dist / x > 1 / (1 + ltol)) for x in lengths]
    (c_a, c_b, c_c), (f_a, f_b, f_c) = ([cart[i] for i in picks], [frac[i] for i in picks])
    l_a, l_b, l_c = (np.sum(c**2, axis=-1) ** 0.5 for c in (c_a, c_b, c_c))

    def angles(v1: np.ndarray, v2: np.ndarray, l1: np.ndarray, l2: np.ndarray) -> np.ndarray:
        x = np.clip(np.inner(v1, v2) / l1[:, None] / l2, -1, 1)
        return np.rad2deg(np.arccos(x))

    alpha_ok = np.isclose(angles(c_b, c_c, l_b, l_c), alpha, atol=angle_tol, rtol=0)  # (B, C)
    beta_ok = np.isclose(angles(c_a, c_c, l_a, l_c), beta, atol=angle_tol, rtol=0)  # (A, C)
    gamma_ok = np.isclose(angles(c_a, c_b, l_a, l_b), gamma, atol=angle_tol, rtol=0)  # (A, B)
    i, j, k = np.nonzero(gamma_ok[:, :, None] & alpha_ok[None, :, :] & beta_ok[:, None, :])
    if len(i) == 0:
        return np.zeros((0, 3, 3))
    scale = np.stack([f_a[i], f_b[j], f_c[k]], axis=1).astype(np.int64)
    det = np.abs(np.linalg.det(scale))
    keep = (det >= 1e-8) & np.isclose(det, 1, atol=0.5, rtol=0)
    return np.stack([c_a[i], c_b[j], c_c[k]], axis=1)[keep]


def _parameters(matrices: np.ndarray) -> np.ndarray:
    """(N, 6) lengths and angles (degrees) of each lattice, as ``Lattice.parameters`` computes them."""
    lengths = np.linalg.norm(matrices, axis=2)
    pairs = ((1, 2), (0, 2), (0, 1))
    cos = [np.clip(np.sum(matrices[:, p] * matrices[:, q], axis=1) / (lengths[:, p] * lengths[:, q]), -1, 1)
           for p, q in pairs]
    return np.concatenate([lengths, np.degrees(np.arccos(np.stack(cos, axis=1)))], axis=1)


def _volume_and_reciprocal(parameters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Volume (N,) and reciprocal lengths with the 2 pi factor (N, 3) of lattices given by parameters: what the
    averaged lattice of ``StructureMatcher._get_supercells`` has, whatever its orientation."""
    a, b, c = parameters[:, 0], parameters[:, 1], parameters[:, 2]
    ca, cb, cg = (np.cos(np.radians(parameters[:, i])) for i in (3, 4, 5))
    metric = np.empty((len(parameters), 3, 3))
    metric[:, 0, 0], metric[:, 1, 1], metric[:, 2, 2] = a * a, b * b, c * c
    metric[:, 0, 1] = metric[:, 1, 0] = a * b * cg
    metric[:, 0, 2] = metric[:, 2, 0] = a * c * cb
    metric[:, 1, 2] = metric[:, 2, 1] = b * c * ca
    volume = np.sqrt(np.abs(np.linalg.det(metric)))
    reciprocal = 2 * np.pi * np.sqrt(np.abs(np.diagonal(np.linalg.inv(metric), axis1=1, axis2=2)))
    return volume, reciprocal


def coarse_tolerance(mappings: np.ndarray, target: Lattice, n_sites: int, stol: float) -> np.ndarray:
    """(N, 3) the fractional tolerance per axis of ``_cmp_fstruct`` for each mapping: reciprocal lengths of the
    lattice averaged with ``target``, times stol / (pi * (n / V)^(1/3))."""
    average = (_parameters(mappings) + np.asarray(target.parameters)[None, :]) / 2
    volume, reciprocal = _volume_and_reciprocal(average)
    normalization = (n_sites / volume) ** (1 / 3)
    return reciprocal * stol / (np.pi * normalization[:, None])


def _coarse_pass(s1: Structure, s2: Structure, mappings: np.ndarray, mask: np.ndarray, s1_t_inds: np.ndarray,
                 s2_t_ind: int, stol: float) -> np.ndarray:
    """(N, T) whether mapping n with translation ``s1_t_inds[t]`` may pass ``_cmp_fstruct`` (widened tolerance)."""
    fc1 = np.einsum("sj,njk->nsk", s1.cart_coords, np.linalg.inv(mappings))  # (N, n1, 3)
    fc1 -= np.floor(fc1)
    fc2 = np.asarray(s2.frac_coords)
    tol = coarse_tolerance(mappings, s2.lattice, len(s1), stol) * (1 + _WIDEN) + 1e-12  # (N, 3)
    shift = fc1[:, s1_t_inds, :] - fc2[s2_t_ind][None, None, :]  # (N, T, 3)
    moved = fc2[None, None, :, :] + shift[:, :, None, :]  # (N, T, n2, 3)
    d = fc1[:, None, None, :, :] - moved[:, :, :, None, :]  # (N, T, n2, n1, 3)
    d -= np.round(d)
    close = np.all(np.abs(d) <= tol[:, None, None, None, :], axis=-1) & ~mask.astype(bool)[None, None]
    return np.all(np.any(close, axis=3), axis=2)


def fit(m: StructureMatcher, struct1: Structure, struct2: Structure) -> bool:
    """``m.fit(struct1, struct2, skip_structure_reduction=True)``: the two structures are already reduced."""
    if m._supercell or m._subset:
        return bool(m.fit(struct1, struct2, skip_structure_reduction=True))
    s1, s2 = m._process_species([struct1, struct2])
    if m._comparator.get_hash(s1.composition) != m._comparator.get_hash(s2.composition):
        return False
    s1, s2, fu, s1_supercell = m._preprocess(s1, s2, skip_structure_reduction=True)
    if fu != 1 or not s1_supercell or len(s1) != len(s2):
        return bool(m.fit(struct1, struct2, skip_structure_reduction=True))
    mask, s1_t_inds, s2_t_ind = m._get_mask(s1, s2, 1, True)
    per_mapping = len(s1_t_inds) * len(s1) * len(s2) * 3
    cart1, fc2 = np.array(s1.cart_coords), np.array(s2.frac_coords)
    if per_mapping > _BUDGET or not (np.isfinite(cart1).all() and np.isfinite(fc2).all()):
        # a large cell (pymatgen is quick there: few mappings) or coordinates no comparison can be trusted with
        return bool(m.fit(struct1, struct2, skip_structure_reduction=True))
    if get_linear_assignment_solution(mask)[1] > 0:  # no species-preserving assignment at all
        return False
    mappings = _mappings(s1.lattice, s2.lattice, m.ltol, m.angle_tol)
    step = max(1, min(_BLOCK, _BUDGET // per_mapping))
    for start in range(0, len(mappings), step):  # in pymatgen's order, so a match is found about as early
        block = mappings[start:start + step]
        passing = _coarse_pass(s1, s2, block, mask, np.asarray(s1_t_inds), int(s2_t_ind), m.stol)
        for n in np.nonzero(passing.any(axis=1))[0]:
            if _exact_lattice_matches(m, Lattice(block[n]), cart1, fc2, s2.lattice, mask,
                                      [s1_t_inds[t] for t in np.nonzero(passing[n])[0]], s2_t_ind):
                return True
    return False


def _exact_lattice_matches(m: StructureMatcher, latt: Lattice, cart1: np.ndarray, fc2: np.ndarray, target: Lattice,
                           mask: np.ndarray, s1_indices: list[int], s2_t_ind: int) -> bool:
    """pymatgen's steps for one lattice mapping (``_get_supercells`` and the loop of ``_strict_match``): is there a
    translation among ``s1_indices`` whose displacements all fall below stol?"""
    fc1 = latt.get_fractional_coords(cart1)
    fc1 -= np.floor(fc1)
    avg_l = Lattice.from_parameters(*((np.array(latt.parameters) + np.array(target.parameters)) / 2))
    normalization = (len(fc1) / avg_l.volume) ** (1 / 3)
    frac_tol = np.array(avg_l.reciprocal_lattice.abc) * m.stol / (np.pi * normalization)
    for s1i in s1_indices:
        shifted = fc2 + (fc1[s1i] - fc2[s2_t_ind])
        if not m._cmp_fstruct(fc1, shifted, frac_tol, mask):
            continue
        lll_tol = np.array(avg_l.get_lll_reduced_lattice().reciprocal_lattice.abc) * m.stol / (np.pi * normalization)
        dist, _, _ = m._cart_dists(fc1, shifted, avg_l, mask, normalization, lll_tol)
        if max(dist) < m.stol:
            return True
    return False


__all__ = ["coarse_tolerance", "fit"]
