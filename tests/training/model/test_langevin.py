"""The annealed Langevin sampler: recovers a known Gaussian, is seeded, keeps fixed types, scripts."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from training.model.langevin import AnnealedLangevin, LangevinSettings


class GaussianDecoder(nn.Module):
    """Decoder whose coordinate output is s0 * (mu - x): with score = out / sigma, the
    stationary law at level sigma is N(mu, s0^-1 * sigma) per Cartesian coordinate."""

    def __init__(self, mu: Tensor, s0: float, num_types: int) -> None:
        super().__init__()
        self.register_buffer("mu", mu)
        self.s0 = s0
        self.head = nn.Linear(num_types, num_types)

    def forward(self, frac: Tensor, type_probs: Tensor, lattice: Tensor, num_atoms: Tensor,
                z_c: Tensor) -> tuple[Tensor, Tensor]:
        batch = torch.repeat_interleave(torch.arange(num_atoms.shape[0]), num_atoms)
        cart = torch.bmm(frac.unsqueeze(1), lattice[batch]).squeeze(1)
        return self.s0 * (self.mu - cart), self.head(type_probs) + z_c[batch, :3]


def _inputs(n_crystals: int, atoms: int, cell: float, num_types: int = 3):
    lattice = torch.eye(3).expand(n_crystals, 3, 3) * cell
    num_atoms = torch.full((n_crystals,), atoms, dtype=torch.long)
    g = torch.Generator().manual_seed(1)
    frac = torch.rand(n_crystals * atoms, 3, generator=g)
    types = torch.randint(0, num_types, (n_crystals * atoms,), generator=g)
    probs = nn.functional.one_hot(types, num_types).float()
    z_c = torch.randn(n_crystals, 8, generator=g)
    return z_c, lattice.contiguous(), num_atoms, frac, probs, types


def test_recovers_a_known_gaussian() -> None:
    cell = 60.0
    mu = torch.full((3,), cell / 2)
    decoder = GaussianDecoder(mu, s0=1.0, num_types=3)
    sigmas = torch.tensor([2.0, 1.0, 0.5])
    sampler = AnnealedLangevin(decoder, sigmas, LangevinSettings(steps_per_level=300, step_lr=0.01))
    z_c, lattice, num_atoms, frac, probs, _ = _inputs(10, 300, cell)
    out, _ = sampler(z_c, lattice, num_atoms, frac, probs, True, 0)
    cart = out * cell
    # final level sigma_min = 0.5, s0 = 1: variance 0.5 per coordinate, mean mu
    assert torch.allclose(cart.mean(0), mu, atol=0.06)
    assert torch.allclose(cart.var(0), torch.full((3,), 0.5), rtol=0.1)


def test_same_seed_same_sample_and_fixed_types() -> None:
    decoder = GaussianDecoder(torch.full((3,), 5.0), s0=1.0, num_types=3).eval()
    sampler = AnnealedLangevin(decoder, torch.tensor([1.0, 0.1]), LangevinSettings(3, 1e-3))
    z_c, lattice, num_atoms, frac, probs, types = _inputs(2, 4, 10.0)
    a = sampler(z_c, lattice, num_atoms, frac, probs, True, 7)
    b = sampler(z_c, lattice, num_atoms, frac, probs, True, 7)
    c = sampler(z_c, lattice, num_atoms, frac, probs, True, 8)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    assert torch.equal(a[1], types)  # fixed types stay as requested
    assert ((a[0] >= 0) & (a[0] < 1)).all()
    # free types follow the decoder's arg-max at every step (6 calls: 2 levels x 3 steps);
    # this toy decoder's logits do not depend on coordinates, so iterate them by hand
    free = sampler(z_c, lattice, num_atoms, frac, probs, False, 7)[1]
    batch = torch.repeat_interleave(torch.arange(2), num_atoms)
    current = probs
    with torch.no_grad():
        for _ in range(6):
            current = nn.functional.one_hot((decoder.head(current) + z_c[batch, :3]).argmax(1), 3).float()
    assert torch.equal(free, current.argmax(1))


def test_scripted_loop_equals_eager() -> None:
    decoder = GaussianDecoder(torch.full((3,), 5.0), s0=1.0, num_types=3).eval()
    sampler = AnnealedLangevin(decoder, torch.tensor([1.0, 0.3, 0.1]), LangevinSettings(4, 1e-3))
    scripted = torch.jit.script(sampler)
    z_c, lattice, num_atoms, frac, probs, _ = _inputs(2, 4, 10.0)
    for fix in (True, False):
        e = sampler(z_c, lattice, num_atoms, frac, probs, fix, 3)
        s = scripted(z_c, lattice, num_atoms, frac, probs, fix, 3)
        assert torch.allclose(e[0], s[0], atol=1e-6) and torch.equal(e[1], s[1])


def test_noise_scale_multiplies_the_langevin_noise_and_nothing_else() -> None:
    """With a decoder that gives no score the atoms move by the noise term alone: a colder sampler
    (noise_scale 0.5) moves every atom by exactly half the reference sampler's step for the same seed,
    and noise_scale 0 leaves them where they started."""
    decoder = GaussianDecoder(torch.zeros(3), s0=0.0, num_types=3).eval()
    z_c, lattice, num_atoms, frac, probs, _ = _inputs(2, 5, 50.0)
    frac = 0.4 + 0.2 * frac  # far from the cell's edges: no wrapping in one small step
    moved = {}
    for scale in (1.0, 0.5, 0.0):
        sampler = AnnealedLangevin(decoder, torch.tensor([0.1]), LangevinSettings(1, 1e-3, noise_scale=scale))
        moved[scale] = (sampler(z_c, lattice, num_atoms, frac, probs, True, 4)[0] - frac) * 50.0
    assert float(moved[1.0].abs().mean()) > 0.01  # angstrom: sqrt(2 * 1e-3) * N(0, 1)
    assert torch.allclose(moved[0.5], 0.5 * moved[1.0], atol=1e-5)
    assert float(moved[0.0].abs().max()) < 1e-4  # float32 round trip through Cartesian coordinates
    with pytest.raises(ValueError, match=r"noise_scale must lie in \[0, 1\]"):
        LangevinSettings(noise_scale=1.5)


def test_bad_settings_are_refused() -> None:
    decoder = GaussianDecoder(torch.zeros(3), 1.0, 3)
    for settings, word in ((LangevinSettings(0, 1e-3), "steps_per_level"), (LangevinSettings(1, 0.0), "step_lr")):
        try:
            AnnealedLangevin(decoder, torch.tensor([1.0]), settings)
        except ValueError as exc:
            assert word in str(exc)
        else:
            raise AssertionError("accepted bad settings")


def test_counts_rule_keeps_each_crystals_counts_and_follows_the_logits() -> None:
    from training.model.langevin import assign_by_counts, counts_from_composition

    crystal = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    counts = torch.tensor([[2, 1, 1], [0, 3, 0]])
    preferred = torch.tensor([2, 0, 0, 1, 1, 1, 1])  # a labelling with exactly these counts
    logits = nn.functional.one_hot(preferred, 3).float() * 5.0
    assert torch.equal(assign_by_counts(logits, crystal, counts), preferred)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):  # any logits: the counts hold
        labels = assign_by_counts(torch.randn(7, 3, generator=g) * 3, crystal, counts)
        got = torch.zeros(2, 3, dtype=torch.long).index_put_((crystal, labels), torch.ones(7, dtype=torch.long),
                                                             accumulate=True)
        assert torch.equal(got, counts)
    composition = torch.tensor([[0.45, 0.30, 0.25], [0.1, 0.8, 0.1]])
    rounded = counts_from_composition(composition, torch.tensor([8, 3]))
    assert torch.equal(rounded, torch.tensor([[4, 2, 2], [0, 3, 0]]))  # 3.6/2.4/2.0 and 0.3/2.4/0.3


def test_counts_rule_scripts_and_gives_formula_requests_their_formula() -> None:
    from training.model.langevin import CrystalDecoder

    decoder = GaussianDecoder(torch.full((3,), 5.0), s0=1.0, num_types=3).eval()
    settings = LangevinSettings(steps_per_level=2, step_lr=1e-3, site_types="counts")
    crystals = torch.jit.script(CrystalDecoder(AnnealedLangevin(decoder, torch.tensor([1.0, 0.1]), settings), 3))
    z_c = torch.randn(2, 8, generator=torch.Generator().manual_seed(2))
    lattice = (torch.eye(3) * 10.0).expand(2, 3, 3).contiguous()
    num_atoms = torch.tensor([4, 4])
    formula = torch.tensor([0, 0, 1, 2, 0, 0, 1, 2])
    _, types = crystals(z_c, lattice, num_atoms, torch.full((2, 3), 1 / 3), formula, 3, 0)
    for k in range(2):
        assert sorted(types[4 * k:4 * k + 4].tolist()) == [0, 0, 1, 2]
    composition = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]])
    _, free = crystals(z_c, lattice, num_atoms, composition, torch.empty(0, dtype=torch.long), 3, 0)
    assert sorted(free[:4].tolist()) == [0, 0, 1, 1] and sorted(free[4:].tolist()) == [1, 2, 2, 2]
    with pytest.raises(ValueError, match="counts"):
        LangevinSettings(site_types="soft")
