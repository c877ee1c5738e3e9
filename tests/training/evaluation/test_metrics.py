"""Validity and reconstruction metrics on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from scoring.validity import compositionally_valid, min_distance, structurally_valid
from training.data.crystal import Crystal
from training.data.janus import load_janus_dataset
from training.evaluation.reconstruction import reconstruction_metrics


def _pair(distance: float) -> Structure:
    return Structure(Lattice.cubic(5.0), ["Ga", "S"], [[0, 0, 0], [0, 0, distance / 5.0]])


def test_structural_validity_threshold() -> None:
    assert min_distance(_pair(0.3)) == pytest.approx(0.3)
    assert not structurally_valid(_pair(0.3))
    assert structurally_valid(_pair(2.3))
    # minimum image: atoms at z = 0.02 and 0.98 of a 5 A cell are 0.2 A apart
    wrapped = Structure(Lattice.cubic(5.0), ["Ga", "S"], [[0, 0, 0.02], [0, 0, 0.98]])
    assert min_distance(wrapped) == pytest.approx(0.2) and not structurally_valid(wrapped)


def test_compositional_validity() -> None:
    assert compositionally_valid("NaCl") and not compositionally_valid("NaCl2")
    assert compositionally_valid("Ga2In2S2Se2") and compositionally_valid("Al4S4")  # smact14: Al(II) allowed
    assert compositionally_valid("AlGa")  # all-metal alloys count as valid


def test_every_training_formula_is_compositionally_valid() -> None:
    data = load_janus_dataset(split="random", part="train")
    formulas = {"".join(sorted(c.species)) for c in data}
    assert all(compositionally_valid("".join(c.species)) for c in {c.species: c for c in data}.values())
    assert len(formulas) > 100


def test_identical_crystals_match_with_zero_rms() -> None:
    test = load_janus_dataset(split="random", part="test")
    crystals = [test[i] for i in range(3)]
    result = reconstruction_metrics(crystals, crystals)
    assert result.match_rate == 1.0 and result.rmse == pytest.approx(0.0, abs=1e-8)


def test_shifted_and_broken_reconstructions() -> None:
    test = load_janus_dataset(split="random", part="test")
    truth = [test[0], test[1], test[2]]
    # 1: a rigid translation still matches with zero RMS
    moved = Crystal("moved", truth[0].lattice, truth[0].species, np.remainder(truth[0].frac_coords + 0.37, 1.0))
    # 2: a small rattle matches with a small positive RMS
    rng = np.random.default_rng(0)
    rattled = Crystal("rattled", truth[1].lattice, truth[1].species,
                      truth[1].frac_coords + rng.normal(0, 0.003, truth[1].frac_coords.shape))
    # 3: all atoms collapsed onto one plane: invalid, so never counted as matched
    flat = truth[2].frac_coords.copy()
    flat[:, 2] = 0.5
    collapsed = Crystal("flat", truth[2].lattice, truth[2].species, flat)
    result = reconstruction_metrics([moved, rattled, collapsed], truth)
    assert result.match_rate == pytest.approx(2 / 3)
    assert result.rms[0] == pytest.approx(0.0, abs=1e-6) and 0 < result.rms[1] < 0.05 and result.rms[2] is None
    assert result.rmse == pytest.approx(np.mean([result.rms[0], result.rms[1]]))
    with pytest.raises(ValueError, match="reconstructions"):
        reconstruction_metrics([moved], truth)


def test_plot_window_shows_the_bulk_and_leaves_far_outliers_off_scale() -> None:
    from training.evaluation.plots import bulk_window

    bulk = list(np.linspace(-0.9, -0.5, 97))
    lo, hi = bulk_window(bulk + [3.2, 3.5, 4.1])
    assert lo <= -0.9 and -0.5 <= hi < 3.0  # every bulk value inside, the three outliers outside
    assert bulk_window(bulk) == pytest.approx((-0.95, -0.45))  # never wider than the data (+ padding)
