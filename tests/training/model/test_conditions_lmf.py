"""Tests of the noise schedules, condition embeddings and low-rank fusion."""

from __future__ import annotations

import math

import pytest
import torch

from training.model.conditions import (
    ElementVocabulary,
    FormulaEmbedding,
    GaussianBasis,
    PropertyEmbedding,
    parse_formula,
)
from training.model.lmf import LowRankFusion, full_tensor_fusion
from training.model.noise import COORD_NOISE, TYPE_NOISE, NoiseSchedule

VOCAB = ElementVocabulary(("Al", "Ga", "In", "S", "Se", "Te"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------- noise


def test_noise_schedules_are_geometric() -> None:
    sig = COORD_NOISE.sigmas(torch.float64)
    assert sig.shape == (50,)
    assert sig[0].item() == pytest.approx(10.0)
    assert sig[-1].item() == pytest.approx(0.01)
    ratios = sig[1:] / sig[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-12)
    tsig = TYPE_NOISE.sigmas()
    assert tsig[0].item() == pytest.approx(5.0) and tsig[-1].item() == pytest.approx(0.01, rel=1e-5)


def test_noise_schedule_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="num_levels"):
        NoiseSchedule(1.0, 0.1, 0)
    with pytest.raises(ValueError, match="sigma_begin"):
        NoiseSchedule(0.1, 1.0, 5)


# ---------------------------------------------------------------- vocabulary / formulas


def test_vocabulary_index_and_error() -> None:
    assert VOCAB.size == 6
    assert VOCAB.index("Se") == 4
    with pytest.raises(ValueError, match="Al, Ga, In, S, Se, Te"):
        VOCAB.index("Fe")
    assert ElementVocabulary.from_symbols(["Se", "Ga", "S", "Ga"]).symbols == ("S", "Ga", "Se")


def test_parse_formula_counts_and_scaling() -> None:
    assert parse_formula("GaInSSe", VOCAB).tolist() == [0, 1, 1, 1, 1, 0]
    assert parse_formula("GaInSSe", VOCAB, cell_size=8).tolist() == [0, 2, 2, 2, 2, 0]
    assert parse_formula("Ga2In2S2Se2", VOCAB, cell_size=8).tolist() == [0, 2, 2, 2, 2, 0]
    assert parse_formula("Ga2In2S2Se2", VOCAB).tolist() == [0, 2, 2, 2, 2, 0]


def test_parse_formula_unknown_element_lists_vocabulary() -> None:
    with pytest.raises(ValueError, match="'Fe'.*Al, Ga, In, S, Se, Te"):
        parse_formula("FeGaS2", VOCAB)


def test_parse_formula_cell_size_must_divide() -> None:
    with pytest.raises(ValueError, match=r"3 atoms.*no whole multiple.*\(8 atoms\)"):
        parse_formula("GaInS", VOCAB, cell_size=8)


def test_formula_embedding_distinguishes_cell_sizes() -> None:
    emb = FormulaEmbedding(VOCAB.size, cond_dim=8, hidden_dim=16).double()
    small = parse_formula("GaInSSe", VOCAB).unsqueeze(0)
    large = parse_formula("Ga2In2S2Se2", VOCAB).unsqueeze(0)
    f_small, f_large = emb.features(small), emb.features(large)
    # Same fractions, different counts and totals.
    assert torch.equal(f_small[:, 6:12], f_large[:, 6:12])
    assert f_small[0, -1].item() == 4 and f_large[0, -1].item() == 8
    out = emb(torch.cat([small, large]))
    assert out.shape == (2, 8)
    assert not torch.allclose(out[0], out[1])


# ---------------------------------------------------------------- property embedding


def test_gaussian_basis_peaks_at_the_right_centre() -> None:
    basis = GaussianBasis(50, -2.0, 2.0)
    assert basis.width == pytest.approx(4.0 / 49.0)
    x = basis.centres[[0, 17, 49]]
    phi = basis(x)
    assert phi.shape == (3, 50)
    assert phi.argmax(dim=-1).tolist() == [0, 17, 49]
    assert torch.allclose(phi.max(dim=-1).values, torch.ones(3))
    # Width equals spacing: a neighbouring centre sits at exp(-1/2).
    assert phi[1, 18].item() == pytest.approx(math.exp(-0.5), rel=1e-5)


def test_property_embedding_standardises() -> None:
    emb = PropertyEmbedding(mean=-0.1, std=0.2, cond_dim=8, hidden_dim=16)
    value = torch.tensor([-0.1, 0.3])
    assert torch.allclose(emb.standardise(value), torch.tensor([0.0, 2.0]))
    assert torch.allclose(emb.unstandardise(emb.standardise(value)), value)
    out = emb(value)
    assert out.shape == (2, 8)
    assert torch.allclose(out, emb.embed_standardised(torch.tensor([0.0, 2.0])))
    assert set(emb.state_dict()) >= {"mean", "std", "basis.centres"}
    with pytest.raises(ValueError, match="std"):
        PropertyEmbedding(0.0, 0.0)


# ---------------------------------------------------------------- LMF


def test_lmf_equals_full_tensor_fusion() -> None:
    lmf = LowRankFusion(latent_dim=5, cond_dim=3, out_dim=7, rank=4).double()
    with torch.no_grad():
        lmf.fusion_bias.normal_()  # make the bias non-trivial
    z = torch.randn(6, 5, dtype=torch.float64)
    c = torch.randn(6, 3, dtype=torch.float64)
    weight = lmf.equivalent_full_weight()
    assert weight.shape == (6, 4, 7)
    torch.testing.assert_close(lmf(z, c), full_tensor_fusion(z, c, weight), atol=1e-10, rtol=0)


def test_lmf_is_affine_in_z_and_in_c() -> None:
    lmf = LowRankFusion(latent_dim=4, cond_dim=3, out_dim=5, rank=2).double()
    z1, z2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    c = torch.randn(3, 3, dtype=torch.float64)
    a, b = 1.7, -0.6
    zero = torch.zeros_like(z1)
    lhs = lmf(a * z1 + b * z2, c)
    rhs = a * lmf(z1, c) + b * lmf(z2, c) + (1 - a - b) * lmf(zero, c)
    torch.testing.assert_close(lhs, rhs, atol=1e-10, rtol=0)
    # Without the affine correction the map is not linear (the appended 1 acts).
    assert not torch.allclose(lhs, a * lmf(z1, c) + b * lmf(z2, c))
    c2 = torch.randn(3, 3, dtype=torch.float64)
    torch.testing.assert_close(
        lmf(z1, 0.5 * c + 0.5 * c2), 0.5 * lmf(z1, c) + 0.5 * lmf(z1, c2), atol=1e-10, rtol=0
    )


def test_lmf_shapes_and_errors() -> None:
    lmf = LowRankFusion(latent_dim=8, cond_dim=4)
    assert lmf(torch.randn(2, 8), torch.randn(2, 4)).shape == (2, 256)
    assert lmf.rank == 4
    with pytest.raises(ValueError, match="z must have shape"):
        lmf(torch.randn(2, 7), torch.randn(2, 4))
    with pytest.raises(ValueError, match="weight must have shape"):
        full_tensor_fusion(torch.randn(2, 8), torch.randn(2, 4), torch.randn(8, 5, 3))
