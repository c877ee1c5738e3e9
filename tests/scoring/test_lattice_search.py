"""The vectorised lattice search gives StructureMatcher's verdicts: its coarse pass lets through every mapping
pymatgen's coarse test passes, and whole fits agree on real stackings, strained and jiggled, both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from scoring import lattice_search
from scoring.novelty import matcher, table_structure

TABLE = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi" / "bilayers.parquet"


@pytest.fixture(scope="module")
def stackings() -> list[Structure]:
    """Twelve stackings of two formulas (four elements with 1-3 sites each; one metal and one chalcogen), spread
    over each formula's rows."""
    table = pd.read_parquet(TABLE)
    out = []
    for formula in ("Al2InGaTeS3", "InSe"):
        rows = table[table["reduced_formula"] == formula]
        rows = rows.iloc[np.linspace(0, len(rows) - 1, 6).astype(int)]
        out += [table_structure(r.lattice, r.species, r.frac_coords) for r in rows.itertuples()]
    return out


def _strained(s: Structure, seed: int) -> Structure:
    """In-plane strain up to 12 %, a tilt of the long axis and 0.1 A jiggles: near the tolerances, where verdicts
    turn."""
    rng = np.random.default_rng(seed)
    strain = np.eye(3)
    strain[:2, :2] += rng.uniform(-0.12, 0.12, (2, 2))
    strain[2, :2] = rng.uniform(-0.1, 0.1, 2)
    moved = Structure(Lattice(s.lattice.matrix @ strain), s.species, s.frac_coords)
    cart = moved.cart_coords + rng.uniform(-0.1, 0.1, (len(s), 3))
    return Structure(moved.lattice, moved.species, cart, coords_are_cartesian=True)


def _reduced(s: Structure, m: StructureMatcher) -> Structure:
    return m._get_reduced_structure(s, primitive_cell=True, niggli=True)


def test_the_coarse_pass_lets_through_every_mapping_pymatgen_passes(stackings: list[Structure]) -> None:
    """Strained copies against their own stacking (even i) and the next one (odd i)."""
    m = matcher()
    checked = passed = 0
    for i, a in enumerate(stackings[:6]):
        s1, s2 = m._preprocess(_strained(a, i), stackings[(i + i % 2) % 6], skip_structure_reduction=False)[:2]
        mask, s1_t_inds, s2_t_ind = m._get_mask(s1, s2, 1, True)
        mappings = lattice_search._mappings(s1.lattice, s2.lattice, m.ltol, m.angle_tol)
        ours = lattice_search._coarse_pass(s1, s2, mappings, mask, np.asarray(s1_t_inds), int(s2_t_ind), m.stol)
        tolerances = lattice_search.coarse_tolerance(mappings, s2.lattice, len(s1), m.stol)
        theirs = [latt.matrix for latt, _ in m._get_lattices(s2.lattice, s1, 1)]
        assert len(theirs) == len(mappings)
        assert np.allclose(np.array(theirs), mappings)  # the same mappings, in the same order
        for n, fc1, _, avg_l, _ in ((n, *x) for n, x in enumerate(m._get_supercells(s1, s2, 1, True))):
            normalization = (len(fc1) / avg_l.volume) ** (1 / 3)
            frac_tol = np.array(avg_l.reciprocal_lattice.abc) * m.stol / (np.pi * normalization)
            assert np.allclose(tolerances[n], frac_tol, rtol=1e-9, atol=0)
            for t, s1i in enumerate(s1_t_inds):
                shifted = s2.frac_coords + (fc1[s1i] - s2.frac_coords[s2_t_ind])
                pymatgen_passes = m._cmp_fstruct(fc1, shifted, frac_tol, mask)
                checked += 1
                passed += pymatgen_passes
                assert ours[n, t] == pymatgen_passes  # widened by 1e-6 only: never looser in practice either
    assert checked > 1000 and 0 < passed < checked  # both outcomes occur, or the test proves nothing


def test_lattice_parameters_volume_and_reciprocal_lengths_are_pymatgens(stackings: list[Structure]) -> None:
    m = matcher()
    s1, s2 = m._preprocess(_strained(stackings[1], 5), stackings[1], skip_structure_reduction=False)[:2]
    mappings = lattice_search._mappings(s1.lattice, s2.lattice, m.ltol, m.angle_tol)
    parameters = lattice_search._parameters(mappings)
    volume, reciprocal = lattice_search._volume_and_reciprocal(parameters)
    for matrix, p, v, r in zip(mappings, parameters, volume, reciprocal):
        lattice = Lattice(matrix)
        assert np.allclose(p, lattice.parameters, rtol=1e-12)
        assert np.isclose(v, lattice.volume, rtol=1e-10)
        assert np.allclose(r, lattice.reciprocal_lattice.abc, rtol=1e-10)


def test_whole_fits_agree_with_pymatgen_both_ways(stackings: list[Structure]) -> None:
    m = matcher()
    verdicts = []
    for i, a in enumerate(stackings):
        same_formula = [s for s in stackings if s.composition.reduced_formula == a.composition.reduced_formula]
        for j, b in enumerate(same_formula[:4]):
            r1, r2 = _reduced(_strained(a, 10 * i + j), m), _reduced(b, m)
            expected = bool(m.fit(r1, r2, skip_structure_reduction=True))
            assert lattice_search.fit(m, r1, r2) == expected, (i, j)
            verdicts.append(expected)
    assert 5 <= sum(verdicts) <= len(verdicts) - 5, verdicts  # matches and misses, both in number


def test_other_settings_and_sizes_go_to_the_matcher(stackings: list[Structure]) -> None:
    a = stackings[0]
    m = matcher()
    double = a.copy().make_supercell([2, 1, 1])
    double.translate_sites([0], [0.05, 0.0, 0.0], frac_coords=True)  # no longer a multiple of a smaller cell
    r1, r2 = _reduced(a, m), _reduced(double, m)
    assert (len(r1), len(r2)) == (8, 16)
    assert lattice_search.fit(m, r1, r2) == bool(m.fit(r1, r2, skip_structure_reduction=True))
    assert lattice_search.fit(m, r2, r1) == bool(m.fit(r2, r1, skip_structure_reduction=True))
    with_supercells = StructureMatcher(stol=m.stol, ltol=m.ltol, angle_tol=m.angle_tol, primitive_cell=False,
                                       attempt_supercell=True)
    assert lattice_search.fit(with_supercells, a, double) == bool(with_supercells.fit(a, double,
                                                                                      skip_structure_reduction=True))
    other = Structure(a.lattice, ["Na" if str(x) == "Al" else str(x) for x in a.species], a.frac_coords)
    assert not lattice_search.fit(m, _reduced(a, m), _reduced(other, m))  # another composition


def test_passes_sized_to_the_budget_give_the_same_answers(stackings: list[Structure],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of 1,000 numbers: the 8-site stackings (2 translations x 8 x 8 x 3 = 384 per mapping) go through passes
    of 2 mappings; below 384, pymatgen decides alone. Both give pymatgen's verdicts."""
    m = matcher()
    pairs = [(_reduced(_strained(a, 40 + i), m), _reduced(b, m)) for i, a in enumerate(stackings[:6])
             for b in stackings[:6:2]]
    expected = [bool(m.fit(r1, r2, skip_structure_reduction=True)) for r1, r2 in pairs]
    assert 0 < sum(expected) < len(expected)
    for budget in (1000, 300):
        monkeypatch.setattr(lattice_search, "_BUDGET", budget)
        assert [lattice_search.fit(m, r1, r2) for r1, r2 in pairs] == expected


def test_a_large_cell_gives_pymatgens_answers() -> None:
    """One species, 40 sites: 40 translations x 40 x 40 x 3 numbers per mapping, passes of 10 mappings."""
    m = matcher()
    rng = np.random.default_rng(40)
    s = Structure(Lattice.cubic(480 ** (1 / 3)), ["Si"] * 40, rng.random((40, 3)))
    near = Structure(s.lattice, s.species, s.frac_coords + rng.normal(0, 0.01, (40, 3)))
    far = Structure(s.lattice, s.species, rng.random((40, 3)))
    r1, r_near, r_far = (_reduced(x, m) for x in (s, near, far))
    assert lattice_search.fit(m, r1, r_near) and bool(m.fit(r1, r_near, skip_structure_reduction=True))
    assert lattice_search.fit(m, r1, r_far) == bool(m.fit(r1, r_far, skip_structure_reduction=True))
