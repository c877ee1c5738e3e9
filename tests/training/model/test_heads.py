"""Tests of the prediction heads, the lattice scaler and the stage-1 losses."""

from __future__ import annotations

import math

import pytest
import torch

from training.model.heads import (
    LOSS_WEIGHTS,
    CompositionHead,
    HeadConfig,
    LatticeHead,
    LatticeScaler,
    NumAtomsHead,
    PropertyHead,
    composition_loss,
    kl_loss,
    lattice_loss,
    natoms_loss,
    property_loss,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_head_shapes() -> None:
    cfg = HeadConfig(hidden_dim=16, num_layers=2)
    z_c = torch.randn(3, 12)
    assert NumAtomsHead(12, max_atoms=20, config=cfg)(z_c).shape == (3, 20)
    assert LatticeHead(12, cfg)(z_c).shape == (3, 6)
    assert CompositionHead(12, vocab_size=6, config=cfg)(z_c).shape == (3, 6)
    assert PropertyHead(12, cfg)(z_c).shape == (3,)
    with pytest.raises(ValueError, match="hidden_dim"):
        HeadConfig(hidden_dim=0)


def test_num_atoms_predict_is_one_based() -> None:
    logits = torch.tensor([[0.0, 5.0, 0.0], [9.0, 0.0, 0.0]])
    assert NumAtomsHead.predict(logits).tolist() == [2, 1]


def test_lattice_scaler_round_trip() -> None:
    f64 = torch.float64
    lengths = torch.tensor([[4.0, 4.0, 20.0], [3.8, 3.8, 25.0], [6.0, 6.0, 30.0]], dtype=f64)
    angles = torch.tensor([[90.0, 90.0, 120.0], [90.0, 90.0, 120.0], [90.0, 90.0, 60.0]], dtype=f64)
    num_atoms = torch.tensor([8, 8, 27])
    scaler = LatticeScaler.fit(lengths, angles, num_atoms)
    y = scaler.transform(lengths, angles, num_atoms)
    assert y.shape == (3, 6)
    # Standardised columns with spread have zero mean and unit std.
    assert torch.allclose(y[:, [0, 1, 2, 5]].mean(dim=0), torch.zeros(4, dtype=f64), atol=1e-6)
    spread = y[:, [0, 2, 5]].std(dim=0, unbiased=False)
    assert torch.allclose(spread, torch.ones(3, dtype=f64), atol=1e-6)
    # Constant columns (alpha, beta = 90) keep std 1 and map to 0.
    assert torch.allclose(scaler.std[3:5], torch.ones(2))
    assert torch.allclose(y[:, 3:5], torch.zeros(3, 2, dtype=torch.float64), atol=1e-5)
    # Scaled lengths: a / N^(1/3).
    raw = LatticeScaler.raw_vector(lengths, angles, num_atoms)
    assert raw[2, 0].item() == pytest.approx(6.0 / 3.0)
    back_lengths, back_angles = scaler.inverse(y, num_atoms)
    torch.testing.assert_close(back_lengths, lengths, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(back_angles, angles, atol=1e-4, rtol=1e-6)


def test_natoms_loss_known_values() -> None:
    uniform = torch.zeros(2, 8)
    assert natoms_loss(uniform, torch.tensor([1, 8])).item() == pytest.approx(math.log(8))
    logits = torch.log(torch.tensor([[0.25, 0.25, 0.5]]))
    assert natoms_loss(logits, torch.tensor([3])).item() == pytest.approx(-math.log(0.5), rel=1e-6)
    with pytest.raises(ValueError, match=r"1\.\.8"):
        natoms_loss(uniform, torch.tensor([0, 9]))


def test_composition_loss_known_values() -> None:
    # Crystal 0: composition probabilities (0.25, 0.75), atoms of types 1, 1, 0.
    # Crystal 1: uniform over two elements, one atom.
    logits = torch.log(torch.tensor([[0.25, 0.75], [0.5, 0.5]]))
    atom_types = torch.tensor([1, 1, 0, 0])
    num_atoms = torch.tensor([3, 1])
    crystal0 = (-2 * math.log(0.75) - math.log(0.25)) / 3
    crystal1 = math.log(2)
    expected = (crystal0 + crystal1) / 2
    loss = composition_loss(logits, atom_types, num_atoms)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="sums to"):
        composition_loss(logits, atom_types, torch.tensor([2, 1]))


def test_regression_and_kl_losses() -> None:
    assert lattice_loss(torch.ones(2, 6), torch.zeros(2, 6)).item() == pytest.approx(1.0)
    loss = property_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    assert loss.item() == pytest.approx(5.0)
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    assert kl_loss(mu, logvar).item() == pytest.approx(0.0)
    # KL of N(1, e) to N(0, 1) per dim: 0.5 * (e + 1 - 1 - 1) = 0.5 * (e - 1); two dims.
    mu, logvar = torch.ones(1, 2), torch.ones(1, 2)
    assert kl_loss(mu, logvar).item() == pytest.approx(math.e - 1, rel=1e-6)


def test_loss_weights_match_reference() -> None:
    assert LOSS_WEIGHTS == {
        "natoms": 1.0,
        "lattice": 10.0,
        "coord": 10.0,
        "type": 1.0,
        "kl": 0.01,
        "composition": 1.0,
        "property": 1.0,
    }
