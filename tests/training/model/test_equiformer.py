"""Tests of the EquiformerV2-style encoder / score decoder: Wigner-D, symmetry, TorchScript."""

import pytest
import torch
from e3nn import o3

from training.model import EquiformerConfig, EquiformerDecoder, EquiformerEncoder, WignerD

TINY = EquiformerConfig(
    num_layers=2,
    sphere_channels=8,
    lmax=2,
    mmax=1,
    num_heads=2,
    attn_alpha_channels=4,
    attn_value_channels=4,
    attn_hidden_channels=8,
    ffn_hidden_channels=16,
    edge_channels=8,
    cutoff=5.0,
    max_neighbors=500,  # no truncation: ties would break the symmetry tests
    num_distance_basis=16,
    num_elements=100,
    grid_resolution=24,
)
NUM_TYPES = 6
LATENT = 16


def random_crystals(num_crystals: int = 2, atoms: tuple[int, ...] = (6, 5)) -> tuple[torch.Tensor, ...]:
    """Random non-symmetric cells ~4-6 Å (float64), random fractional coordinates."""
    lattice = torch.diag_embed(4.0 + 2.0 * torch.rand(num_crystals, 3, dtype=torch.float64))
    lattice = lattice + 0.6 * torch.rand(num_crystals, 3, 3, dtype=torch.float64)
    num_atoms = torch.tensor(atoms[:num_crystals], dtype=torch.long)
    frac = torch.rand(int(num_atoms.sum()), 3, dtype=torch.float64)
    types = torch.randint(1, 60, (int(num_atoms.sum()),))
    return frac, types, lattice, num_atoms


def random_rotation() -> torch.Tensor:
    return o3.rand_matrix(dtype=torch.float64)


def test_wigner_d_matches_e3nn() -> None:
    torch.manual_seed(0)
    wigner = WignerD(4).double()
    alpha, beta, gamma = o3.rand_angles(6, dtype=torch.float64)
    ours = wigner(alpha, beta, gamma)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its generators in the default dtype
    try:
        references = [o3.wigner_D(l, alpha, beta, gamma) for l in range(5)]
    finally:
        torch.set_default_dtype(previous)
    for l, reference in enumerate(references):
        block = slice(l * l, (l + 1) * (l + 1))
        torch.testing.assert_close(ours[:, block, block], reference, atol=1e-10, rtol=0)
    scripted = torch.jit.script(wigner)
    torch.testing.assert_close(scripted(alpha, beta, gamma), ours)


def test_edge_frame_maps_edge_onto_y() -> None:
    torch.manual_seed(1)
    wigner = WignerD(2).double()
    vectors = torch.randn(10, 3, dtype=torch.float64)
    rotation = wigner.to_edge_frame(vectors)
    # e3nn 0.6 orders l = 1 as (x, y, z): the l = 1 block is the Cartesian rotation itself
    rotated = (rotation[:, 1:4, 1:4] @ vectors.unsqueeze(-1)).squeeze(-1)
    expected = torch.zeros_like(vectors)
    expected[:, 1] = vectors.norm(dim=1)
    torch.testing.assert_close(rotated, expected, atol=1e-10, rtol=0)
    sh = o3.spherical_harmonics(1, vectors, normalize=True, normalization="component")
    torch.testing.assert_close(sh, 3**0.5 * vectors / vectors.norm(dim=1, keepdim=True))


def _unimodular_cell(
    frac: torch.Tensor, lattice: torch.Tensor, num_atoms: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    new_lattice = m @ lattice
    new_frac = torch.remainder(frac @ torch.linalg.inv(m), 1.0)
    return new_frac, new_lattice


def test_encoder_invariances() -> None:
    torch.manual_seed(2)
    encoder = EquiformerEncoder(TINY, latent_dim=LATENT).double().eval()
    frac, types, lattice, num_atoms = random_crystals()
    mu, logvar = encoder(frac, types, lattice, num_atoms)
    assert mu.shape == (2, LATENT) and logvar.shape == (2, LATENT)

    def check(frac2: torch.Tensor, types2: torch.Tensor, lattice2: torch.Tensor) -> None:
        mu2, logvar2 = encoder(frac2, types2, lattice2, num_atoms)
        torch.testing.assert_close(mu2, mu, atol=1e-4, rtol=0)
        torch.testing.assert_close(logvar2, logvar, atol=1e-4, rtol=0)

    check(frac, types, lattice @ random_rotation().T)  # rotation of the Cartesian frame
    check(torch.remainder(frac + torch.rand(3, dtype=torch.float64), 1.0), types, lattice)  # translation
    perm = torch.cat([torch.randperm(6), 6 + torch.randperm(5)])
    check(frac[perm], types[perm], lattice)  # permutation within each crystal
    frac2, lattice2 = _unimodular_cell(frac, lattice, num_atoms)
    check(frac2, types, lattice2)  # equivalent unit cell


def _decoder_inputs() -> tuple[torch.Tensor, ...]:
    frac, _, lattice, num_atoms = random_crystals()
    type_probs = torch.softmax(torch.randn(frac.size(0), NUM_TYPES, dtype=torch.float64), dim=-1)
    z_c = torch.randn(2, LATENT, dtype=torch.float64)
    return frac, type_probs, lattice, num_atoms, z_c


def test_decoder_equivariance_and_permutation() -> None:
    torch.manual_seed(3)
    decoder = EquiformerDecoder(TINY, latent_dim=LATENT, num_types=NUM_TYPES).double().eval()
    frac, type_probs, lattice, num_atoms, z_c = _decoder_inputs()
    score, logits = decoder(frac, type_probs, lattice, num_atoms, z_c)
    assert score.shape == (11, 3) and logits.shape == (11, NUM_TYPES)
    assert score.abs().max() > 1e-3

    rotation = random_rotation()
    score_r, logits_r = decoder(frac, type_probs, lattice @ rotation.T, num_atoms, z_c)
    torch.testing.assert_close(score_r, score @ rotation.T, atol=1e-4, rtol=0)
    torch.testing.assert_close(logits_r, logits, atol=1e-4, rtol=0)

    perm = torch.cat([torch.randperm(6), 6 + torch.randperm(5)])
    score_p, logits_p = decoder(frac[perm], type_probs[perm], lattice, num_atoms, z_c)
    torch.testing.assert_close(score_p, score[perm], atol=1e-6, rtol=0)
    torch.testing.assert_close(logits_p, logits[perm], atol=1e-6, rtol=0)

    shift = torch.rand(3, dtype=torch.float64)
    score_t, logits_t = decoder(torch.remainder(frac + shift, 1.0), type_probs, lattice, num_atoms, z_c)
    torch.testing.assert_close(score_t, score, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits_t, logits, atol=1e-6, rtol=0)


def test_scripted_matches_eager() -> None:
    torch.manual_seed(4)
    encoder = EquiformerEncoder(TINY, latent_dim=LATENT).eval()
    decoder = EquiformerDecoder(TINY, latent_dim=LATENT, num_types=NUM_TYPES).eval()
    frac, types, lattice, num_atoms = (t.float() if t.is_floating_point() else t for t in random_crystals())
    scripted_encoder = torch.jit.script(encoder)
    for eager_out, scripted_out in zip(
        encoder(frac, types, lattice, num_atoms), scripted_encoder(frac, types, lattice, num_atoms)
    ):
        torch.testing.assert_close(scripted_out, eager_out, atol=1e-6, rtol=1e-5)
    type_probs = torch.softmax(torch.randn(frac.size(0), NUM_TYPES), dim=-1)
    z_c = torch.randn(2, LATENT)
    scripted_decoder = torch.jit.script(decoder)
    for eager_out, scripted_out in zip(
        decoder(frac, type_probs, lattice, num_atoms, z_c), scripted_decoder(frac, type_probs, lattice, num_atoms, z_c)
    ):
        torch.testing.assert_close(scripted_out, eager_out, atol=1e-6, rtol=1e-5)


def test_latent_reaches_decoder_through_edges() -> None:
    torch.manual_seed(5)
    decoder = EquiformerDecoder(TINY, latent_dim=LATENT, num_types=NUM_TYPES).double().eval()
    with torch.no_grad():
        decoder.latent_to_node.weight.zero_()
        decoder.latent_to_node.bias.zero_()
    frac, type_probs, lattice, num_atoms, z_c = _decoder_inputs()
    score, logits = decoder(frac, type_probs, lattice, num_atoms, z_c)
    score2, logits2 = decoder(frac, type_probs, lattice, num_atoms, z_c + 1.0)
    assert (score2 - score).abs().max() > 1e-4
    assert (logits2 - logits).abs().max() > 1e-4
    # and only through the edges: with the edge path cut (no edges: cutoff tiny) z_c is silent
    far = EquiformerConfig(**{**TINY.__dict__, "cutoff": 0.1})
    isolated = EquiformerDecoder(far, latent_dim=LATENT, num_types=NUM_TYPES).double().eval()
    with torch.no_grad():
        isolated.latent_to_node.weight.zero_()
        isolated.latent_to_node.bias.zero_()
    score3, logits3 = isolated(frac, type_probs, lattice, num_atoms, z_c)
    score4, logits4 = isolated(frac, type_probs, lattice, num_atoms, z_c + 1.0)
    torch.testing.assert_close(logits3, logits4)


def test_bad_inputs_fail_loudly() -> None:
    with pytest.raises(ValueError, match="mmax"):
        EquiformerConfig(lmax=1, mmax=2)
    decoder = EquiformerDecoder(TINY, latent_dim=LATENT, num_types=NUM_TYPES)
    frac, type_probs, lattice, num_atoms, z_c = _decoder_inputs()
    with pytest.raises(ValueError, match="type_probs"):
        decoder(frac, type_probs[:, :3], lattice, num_atoms, z_c)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(6)
    decoder = EquiformerDecoder(TINY, latent_dim=LATENT, num_types=NUM_TYPES).double()
    frac, type_probs, lattice, num_atoms, z_c = _decoder_inputs()
    score, logits = decoder(frac, type_probs, lattice, num_atoms, z_c)
    (score.square().sum() + logits.square().sum()).backward()
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
