"""Generation with a (tiny, untrained) ConditionCDVAE+: seeding, formula requests, screening, eval mode."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from training.data.janus import load_janus_dataset
from training.model.langevin import LangevinSettings
from training.sample import Sampler, formula_counts
from training.train.config import load_config
from training.train.stage1 import build_model
from training.train.weights import TrainedModel, make_generator

FAST = LangevinSettings(steps_per_level=1)


@pytest.fixture(scope="module")
def trained(tiny_overrides: tuple[str, ...]) -> TrainedModel:
    torch.manual_seed(0)
    config = load_config("cpu-small", [t for t in tiny_overrides if t.startswith("model.")] + ["gan.noise_dim=8"])
    train = load_janus_dataset(split="random", part="train").subset(range(40))
    model = build_model(config, train)
    generator = make_generator(config, model)
    generator.train()(torch.randn(16, 8), torch.randn(16, model.cond_in))  # non-trivial BatchNorm statistics
    return TrainedModel(config, model.train(), generator.train())


def _key(crystals):
    return [(c.species, c.frac_coords.round(6).tobytes(), c.lattice.round(6).tobytes()) for c in crystals]


def test_sampler_runs_in_eval_mode(trained: TrainedModel) -> None:
    running = trained.generator.net[1].running_mean.clone()
    sampler = Sampler(trained, FAST)
    assert not trained.model.training and not trained.generator.training
    sampler.generate_energy(-0.7, 3, seed=0, ratio=4)
    torch.testing.assert_close(trained.generator.net[1].running_mean, running)  # statistics untouched


def test_same_seed_same_crystals(trained: TrainedModel) -> None:
    sampler = Sampler(trained, FAST)
    a = sampler.generate_energy(-0.7, 3, seed=5, ratio=4)
    b = sampler.generate_energy(-0.7, 3, seed=5, ratio=4)
    c = sampler.generate_energy(-0.7, 3, seed=6, ratio=4)
    assert _key(a.crystals) == _key(b.crystals) and list(a.predicted_property) == list(b.predicted_property)
    assert _key(a.crystals) != _key(c.crystals)
    for crystal in a.crystals:
        assert crystal.frac_coords.min() >= 0 and crystal.frac_coords.max() < 1
        assert abs(crystal.lattice[0] @ crystal.lattice[0]) > 1  # a real cell, not a collapsed one


def test_formula_request_returns_exactly_that_composition(trained: TrainedModel) -> None:
    sampler = Sampler(trained, FAST)
    out = sampler.generate_formula("GaInSSe", 4, seed=1)
    assert len(out.crystals) == 4
    for crystal in out.crystals:
        assert Counter(crystal.species) == {"Ga": 2, "In": 2, "S": 2, "Se": 2}  # scaled to the 8-atom cell


def test_formula_cell_scaling_and_errors(trained: TrainedModel) -> None:
    vocab = trained.vocab
    counts = formula_counts("GaInSSe", trained)
    assert {vocab.symbols[i]: int(n) for i, n in enumerate(counts) if n} == {"Ga": 2, "In": 2, "S": 2, "Se": 2}
    assert int(formula_counts("Ga2In2S2Se2", trained).sum()) == 8
    with pytest.raises(ValueError, match=r"3 atoms.*\b8 atoms"):
        formula_counts("GaS2", trained)
    with pytest.raises(ValueError, match="allowed elements: Al, S, Ga, Se, In, Te"):
        formula_counts("FeS", trained)


def test_screening_keeps_the_latents_closest_to_the_target(trained: TrainedModel) -> None:
    sampler = Sampler(trained, FAST)
    target = -0.75
    kept_z, _, kept_pred = sampler.energy_latents(target, 5, seed=3, ratio=20)
    pool_z, _, pool_pred = sampler.energy_latents(target, 100, seed=3, ratio=1)  # the same 100 draws
    best = torch.sort((pool_pred - target).abs()).values[:5]
    torch.testing.assert_close((kept_pred - target).abs(), best)
    assert all(any(torch.equal(k, p) for p in pool_z) for k in kept_z)
    with pytest.raises(ValueError, match="ratio"):
        sampler.energy_latents(target, 5, seed=3, ratio=0)


def test_reconstruction_and_repredicted_property(trained: TrainedModel) -> None:
    test = load_janus_dataset(split="random", part="test")
    crystals = [test[i] for i in (0, 1)]
    sampler = Sampler(trained, FAST)
    out = sampler.reconstruct(crystals, seed=0)
    assert [c.num_atoms for c in out] == [8, 8]  # the natoms head picks among trained cell sizes only
    assert sampler.predict_property(out).shape == (2,)


def test_unconditional_needs_a_baseline(trained: TrainedModel) -> None:
    with pytest.raises(ValueError, match="condition 'none'"):
        Sampler(trained, FAST).generate_unconditional(2, seed=0)


def test_whole_decoding_scripts_and_equals_eager(trained: TrainedModel) -> None:
    """The decoding loop (starting draws + annealed Langevin + periodic graph) compiles with
    TorchScript and gives the same crystals for the same seed (what decoder.pt ships)."""
    import warnings

    sampler = Sampler(trained, FAST)
    z = torch.randn(3, trained.model.config.latent_dim)
    cond = trained.model.condition_embedding(torch.full((3,), -0.7), None).detach()
    z_c, num_atoms, lattice, composition, _ = sampler.heads(z, cond, torch.zeros(3, dtype=torch.long))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(sampler.decoder)
    fixed = torch.arange(8).remainder(trained.vocab.size).repeat(3)
    for types in (torch.empty(0, dtype=torch.long), fixed):
        with torch.no_grad():
            eager = sampler.decoder(z_c, lattice, num_atoms, composition, types, 11, 2)
            script = scripted(z_c, lattice, num_atoms, composition, types, 11, 2)
        torch.testing.assert_close(script[0], eager[0], atol=1e-5, rtol=0)
        assert torch.equal(script[1], eager[1])
    assert torch.equal(eager[1], fixed)


def test_heads_follow_the_requested_atom_count(trained: TrainedModel) -> None:
    heads = Sampler(trained, FAST).heads
    z = torch.randn(2, trained.model.config.latent_dim)
    cond = trained.model.condition_embedding(torch.full((2,), -0.7), None).detach()
    with torch.no_grad():
        _, n_free, lat_free, comp, prop = heads(z, cond, torch.zeros(2, dtype=torch.long))
        _, n_fixed, lat_fixed, _, _ = heads(z, cond, torch.tensor([8, 1]))
    assert n_free.tolist() == [8, 8] and n_fixed.tolist() == [8, 1]
    torch.testing.assert_close(lat_free[0], lat_fixed[0])
    # lengths are predicted per N^(1/3): one atom instead of eight halves them (until clamped at 2 A)
    ratio = lat_fixed[1].norm(dim=-1) / lat_free[1].norm(dim=-1)
    assert torch.all((ratio - 0.5).abs() < 1e-4) or torch.all(lat_fixed[1].norm(dim=-1) >= 2.0 - 1e-4)
    torch.testing.assert_close(comp.sum(-1), torch.ones(2))
    assert prop.shape == (2,)
