"""SMOACS mechanics: the temperature ends one-hot, gradients reach every learnt tensor, the geometry prior holds the
layers' bonds, mutation copies good candidates, and a small design lowers its objective."""

from __future__ import annotations

import math

import numpy as np
import torch

from design.batch import (
    bond_penalty,
    build_batch,
    design_values,
    interlayer_gap,
    lattice_of,
    site_distribution,
    with_gaps,
)
from design.masks import site_patterns
from design.smoacs import (
    DesignSettings,
    _Adam,
    _mutate,
    covalent_radii,
    follow_gaps,
    initial_state,
    objective,
    optimise,
    temperature_at,
)
from design.targets import Target
from design.templates import template_from_structure

JANUS = ("Al", "S", "Ga", "Se", "In", "Te")
LABELS = ("formation_energy_per_atom", "interlayer_energy_per_atom", "binding_energy_per_area", "interlayer_gap",
          "a_common")


def _batch(structures, n):  # noqa: ANN001, ANN202
    templates = [template_from_structure(s, f"t{i}") for i, s in enumerate(structures)]
    patterns = [site_patterns(t.species, JANUS) for t in templates]
    return build_batch(templates, patterns, [i % len(templates) for i in range(n)], len(JANUS))


def test_temperature_falls_linearly_and_the_last_step_is_one_hot(bilayer) -> None:
    settings = DesignSettings(steps=200)
    assert temperature_at(settings, 0) == 1e-2
    assert math.isclose(temperature_at(settings, 199), 1e-4)
    assert math.isclose(temperature_at(settings, 100) - temperature_at(settings, 99), (1e-4 - 1e-2) / 199)
    batch = _batch([bilayer(0.0)], 4)
    generator = torch.Generator().manual_seed(0)  # logits 1e-3 apart: what one Adam step of the types moves
    logits = torch.stack([1e-3 * torch.randperm(len(JANUS), generator=generator).float()
                          for _ in range(batch.frac0.size(0))])
    weights = torch.zeros(batch.size, 1)
    last = site_distribution(batch, logits, weights, temperature_at(settings, 199))
    assert float(last.max(dim=1).values.min()) > 0.9999
    first = site_distribution(batch, torch.zeros_like(logits), weights, temperature_at(settings, 0))
    torch.testing.assert_close(first.max(dim=1).values, torch.full((batch.frac0.size(0),), 1 / 3))


def test_gradients_reach_coordinates_lattice_and_types(bilayer, tiny_predictor) -> None:
    predictor = tiny_predictor()
    batch = _batch([bilayer(0.0), bilayer(0.3)], 2)
    state = initial_state(batch, len(JANUS), torch.Generator().manual_seed(0))
    for p in (state.frac, state.scale, state.logits, state.weights):
        p.requires_grad_(True)
    types = site_distribution(batch, state.logits, state.weights, 1e-2)
    values, _ = design_values(predictor, LABELS, batch, state.frac, lattice_of(batch, state.scale), types)
    targets = [Target("formation_energy_per_atom", -math.inf, -1.0), Target("interlayer_gap", 3.0, 3.1)]
    loss = objective(values, targets, LABELS, [0.1, 0.01, 5.0, 0.3, 0.13]).sum()
    loss = loss + bond_penalty(batch, state.frac, lattice_of(batch, state.scale), types, covalent_radii(JANUS)).sum()
    loss.backward()
    for name in ("frac", "scale", "logits"):
        grad = getattr(state, name).grad
        assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0, name
    assert float(state.scale.grad[:, 2].abs().max()) == 0.0  # a slab's c (its vacuum) is not learnt


def test_the_geometry_prior_is_zero_on_the_template_and_grows_when_a_bond_stretches(bilayer) -> None:
    batch = _batch([bilayer(0.0)], 1)
    one_hot = torch.nn.functional.one_hot(torch.tensor([JANUS.index(s.specie.symbol) for s in bilayer(0.0)]),
                                          len(JANUS)).float()
    lattice = lattice_of(batch, torch.ones(1, 3))
    radii = covalent_radii(JANUS)
    assert float(bond_penalty(batch, batch.frac0, lattice, one_hot, radii)) < 1e-8
    assert int(batch.bond_ok.sum()) == 14  # 7 bonds per S-Ga-Ga-S layer: 3 + 1 + 3
    stretched = lattice_of(batch, torch.tensor([[1.05, 1.0, 1.0]]))
    assert float(bond_penalty(batch, batch.frac0, stretched, one_hot, radii)) > 1.0
    heavier = one_hot.clone()
    s, te = JANUS.index("S"), JANUS.index("Te")
    heavier[:, [s, te]] = heavier[:, [te, s]]
    assert float(bond_penalty(batch, batch.frac0, lattice, heavier, radii)) > 1.0  # Te asks for longer bonds


def test_the_measured_gap_is_the_one_the_layers_have(bilayer) -> None:
    batch = _batch([bilayer(0.0), bilayer(1.5)], 2)
    gap = interlayer_gap(batch, batch.frac0, lattice_of(batch, torch.ones(2, 3)))
    torch.testing.assert_close(gap, torch.tensor([3.2, 3.2]), atol=1e-4, rtol=0)


def test_placing_a_gap_moves_only_the_upper_layer_along_the_normal(bilayer) -> None:
    batch = _batch([bilayer(0.0), bilayer(1.5)], 2)
    lattice = lattice_of(batch, torch.ones(2, 3))
    frac = with_gaps(batch, batch.frac0, lattice, torch.tensor([3.0, 3.9]))
    torch.testing.assert_close(interlayer_gap(batch, frac, lattice), torch.tensor([3.0, 3.9]), atol=1e-4, rtol=0)
    moved = (frac - batch.frac0).abs().sum(1) > 0
    assert torch.equal(moved, batch.layers == 1)
    assert float((frac - batch.frac0)[:, :2].abs().max()) < 1e-6  # the normal is c here: no sliding
    torch.testing.assert_close(with_gaps(batch, batch.frac0, lattice, torch.full((2,), float("nan"))), batch.frac0)
    state = initial_state(batch, len(JANUS), torch.Generator().manual_seed(0))
    state.frac += 0.01  # somewhere inside the bounds
    offset = state.frac - batch.frac0
    follow_gaps(batch, state, torch.tensor([3.4, 3.6]))  # the bounds (around frac0) move with the layer
    torch.testing.assert_close(interlayer_gap(batch, state.frac, lattice), torch.tensor([3.4, 3.6]), atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(state.frac - batch.frac0, offset)


def test_mutation_replaces_poor_candidates_by_noisy_copies_of_good_ones(bilayer) -> None:
    batch = _batch([bilayer(0.0), bilayer(0.5), bilayer(1.0), bilayer(1.5)], 8)
    state = initial_state(batch, len(JANUS), torch.Generator().manual_seed(0))
    optimisers = [_Adam(p) for p in (state.frac, state.scale, state.logits, state.weights)]
    loss = torch.arange(8, dtype=torch.float32)
    met = torch.tensor([True, False, False, False, False, False, False, False])
    # B = candidate 1 (ceil(0.1 x 7)); C = 2..7, none survives
    settings = DesignSettings(top_rate=0.1, survive=0.0, noise=0.5)
    _mutate(batch, state, optimisers, loss, met, settings, torch.Generator().manual_seed(1))
    assert batch.template_index[:2].tolist() == [0, 1]
    assert set(batch.template_index[2:].tolist()) <= {0, 1}
    for b in range(2, 8):
        atoms = batch.atoms_of(b)
        assert bool((state.frac[atoms] - batch.frac0[atoms]).abs().le(batch.bounds[atoms] + 1e-7).all())
        assert float(state.logits[atoms].max()) < 1e-2  # uniform distributions again


def test_a_small_design_lowers_its_objective(bilayer, tiny_predictor) -> None:
    predictor = tiny_predictor()
    batch = _batch([bilayer(0.0), bilayer(0.4)], 6)
    with torch.no_grad():
        start = predictor(batch.frac0, site_distribution(batch, torch.zeros(batch.frac0.size(0), len(JANUS)),
                                                         torch.zeros(batch.size, 1), 1e-2),
                          lattice_of(batch, torch.ones(batch.size, 3)), batch.num_atoms)
    goal = float(start[:, 0].mean()) - 0.05  # below where the untrained model starts
    targets = [Target("formation_energy_per_atom", -math.inf, goal)]
    outcome = optimise(predictor, LABELS, [0.1, 0.01, 5.0, 0.3, 0.13], targets, batch, JANUS,
                       DesignSettings(steps=30, mutation_steps=(15,)), seed=0)
    assert outcome.history[-1][0] < outcome.history[0][0]
    assert outcome.types.shape == (batch.frac0.size(0),)
    assert bool(torch.isfinite(outcome.values).all())
    assert np.isclose(outcome.predictor_calls, 32 * 6)  # one more to place the gap before the last prediction
    gap = interlayer_gap(batch, outcome.frac, outcome.lattice)
    unplaced = optimise(predictor, LABELS, [0.1, 0.01, 5.0, 0.3, 0.13], targets,
                        _batch([bilayer(0.0), bilayer(0.4)], 6), JANUS,
                        DesignSettings(steps=30, mutation_steps=(15,), place_gap=False), seed=0)
    assert unplaced.predictor_calls == 31 * 6
    assert float((gap - interlayer_gap(batch, unplaced.frac, unplaced.lattice)).abs().max()) > 1e-4
