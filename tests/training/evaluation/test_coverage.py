"""COV-R / COV-P, EMD, fingerprints and oracle summaries on hand-made cases with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from training.evaluation import coverage as cov
from training.evaluation.oracle_stats import distinct_structures, relaxation_summary, target_accuracy


def _fp(*rows: list[float]) -> np.ndarray:
    return np.asarray(rows, dtype=float)


def test_emd_of_identical_samples_is_zero_and_of_a_shift_is_the_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    assert cov.emd(a, a) == 0.0
    assert cov.emd(a, a + 0.7) == pytest.approx(0.7)
    assert cov.emd([2, 3, 4], [4, 3, 2]) == 0.0  # order does not matter
    with pytest.raises(ValueError, match="non-empty"):
        cov.emd([], [1.0])


def test_coverage_counts_reference_and_generated_crystals_within_both_cutoffs() -> None:
    ref_s, ref_c = _fp([0, 0], [1, 0], [5, 5]), _fp([0], [0], [0])
    # generated: one on ref 0, one on ref 1 but with a far composition, one invalid on ref 2
    gen_s, gen_c = _fp([0.1, 0], [1, 0.1], [5, 5]), _fp([1.0], [30.0], [0.0])
    valid = np.array([True, True, False])
    result = cov.coverage(gen_s, gen_c, valid, ref_s, ref_c, struc_cutoff=0.4, comp_cutoff=10)
    # recall: ref 0 (struc 0.1, comp 1) yes; ref 1 (struc min 0.1 from gen 1, comp min 1 from gen 0) yes
    # -- CDVAE takes the two minima separately --; ref 2 (only the invalid crystal is near) no
    assert result.recall == pytest.approx(2 / 3)
    # precision over all generated: gen 0 yes; gen 1 no (composition 30 away); gen 2 invalid
    assert result.precision == pytest.approx(1 / 3)
    assert (result.generated, result.valid, result.reference) == (3, 2, 3)


def test_coverage_of_a_set_against_itself_is_complete_and_a_failed_fingerprint_is_invalid() -> None:
    s, c = _fp([0, 1], [2, 3]), _fp([0], [4])
    full = cov.coverage(s, c, np.array([True, True]), s, c)
    assert full.recall == 1.0 and full.precision == 1.0
    broken = cov.coverage(_fp([0, 1], [np.nan, np.nan]), c, np.array([True, True]), s, c)
    assert broken.valid == 1 and broken.precision == 0.5 and broken.recall == 0.5
    none = cov.coverage(s, c, np.array([False, False]), s, c)
    assert none.recall == 0.0 and none.precision == 0.0


def test_composition_scaler_standardises_the_training_features() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(50, 4))
    x[:, 3] = 7.0  # a constant feature keeps a finite scale
    scaler = cov.CompositionScaler.fit(x)
    z = scaler.transform(x)
    assert np.allclose(z[:, :3].mean(axis=0), 0, atol=1e-12) and np.allclose(z[:, :3].std(axis=0), 1)
    assert np.all(z[:, 3] == 0)


def test_magpie_features_depend_on_composition_only() -> None:
    a = cov.composition_fingerprints(["Ga2In2S2Se2", "GaInSSe", "Al4S4"])
    assert a.shape == (3, 132)
    assert np.allclose(a[0], a[1]) and not np.allclose(a[0], a[2])


def test_structure_fingerprint_is_invariant_to_rotation_and_site_order() -> None:
    s = Structure(Lattice.hexagonal(3.6, 25.0), ["S", "Ga", "Ga", "S"],
                  [[1 / 3, 2 / 3, 0.10], [2 / 3, 1 / 3, 0.146], [2 / 3, 1 / 3, 0.244], [1 / 3, 2 / 3, 0.29]])
    shuffled = Structure(s.lattice, [s[i].specie for i in (2, 0, 3, 1)], [s[i].frac_coords for i in (2, 0, 3, 1)])
    a, b = cov.structure_fingerprints([s, shuffled], workers=1)
    assert a.shape == (61,) and np.allclose(a, b)
    assert cov.density(s) == pytest.approx(s.composition.weight / s.volume / 0.602214076)
    assert cov.n_elements(s) == 2


def test_target_accuracy_known_values() -> None:
    out = target_accuracy([-0.70, -0.72, -0.80, -0.60], -0.70)
    assert out["median"] == pytest.approx(-0.71) and out["within_0.05"] == pytest.approx(0.5)
    assert out["median_abs_error"] == pytest.approx(0.06)
    with pytest.raises(ValueError):
        target_accuracy([], -0.7)


def test_relaxation_summary_and_distinct_stackings() -> None:
    checks = [SimpleNamespace(converged=True, steps=10, energy_drop=0.8, energy_drop_per_atom=0.1, rmsd=0.2),
              SimpleNamespace(converged=False, steps=500, energy_drop=0.0, energy_drop_per_atom=0.0, rmsd=0.0)]
    out = relaxation_summary(checks)
    assert out["converged"] == 0.5 and out["mean_steps"] == 255 and out["mean_energy_drop_ev"] == pytest.approx(0.4)
    # one crystal that falls apart (3 eV/atom) carries the mean; the median stays with the typical crystal
    checks.append(SimpleNamespace(converged=True, steps=90, energy_drop=24.0, energy_drop_per_atom=3.0, rmsd=2.0))
    out = relaxation_summary(checks)
    assert out["mean_energy_drop_ev_per_atom"] == pytest.approx(3.1 / 3)
    assert out["median_energy_drop_ev_per_atom"] == pytest.approx(0.1)
    lattice = Lattice.hexagonal(3.6, 25.0)
    a = Structure(lattice, ["Ga", "S", "Se"], [[0, 0, 0.1], [1 / 3, 2 / 3, 0.15], [2 / 3, 1 / 3, 0.15]])
    b = a.copy()
    b.translate_sites([0, 1, 2], [0.2, 0.1, 0.3])  # the same crystal, shifted
    c = Structure(lattice, ["Ga", "S", "Se"], [[0, 0, 0.1], [1 / 3, 2 / 3, 0.15], [1 / 3, 2 / 3, 0.30]])
    assert distinct_structures([a, b, c]) == 2 and distinct_structures([]) == 0
