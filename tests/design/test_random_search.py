"""The random-search baseline: as many predictor calls as SMOACS, only allowed elements, the best draw kept."""

from __future__ import annotations

import math

import torch

from design.batch import build_batch
from design.masks import FAMILY_STATES, neutral, site_patterns
from design.random_search import random_search
from design.smoacs import DesignSettings, optimise
from design.targets import Target
from design.templates import template_from_structure

JANUS = ("Al", "S", "Ga", "Se", "In", "Te")
LABELS = ("formation_energy_per_atom", "interlayer_energy_per_atom", "binding_energy_per_area", "interlayer_gap",
          "a_common")
STD = [0.1, 0.01, 5.0, 0.3, 0.13]


def _batch(bilayer):  # noqa: ANN001, ANN202
    templates = [template_from_structure(bilayer(0.2 * i), f"t{i}") for i in range(2)]
    return build_batch(templates, [site_patterns(t.species, JANUS) for t in templates], [0, 1, 0, 1], len(JANUS))


def test_random_search_spends_the_calls_of_smoacs_and_keeps_its_best_draw(bilayer, tiny_predictor) -> None:
    predictor = tiny_predictor()
    targets = [Target("formation_energy_per_atom", -math.inf, -0.9)]
    settings = DesignSettings(steps=6, mutation_steps=())
    found = random_search(predictor, LABELS, STD, targets, _batch(bilayer), JANUS, settings, seed=0)
    gradient = optimise(predictor, LABELS, STD, targets, _batch(bilayer), JANUS, settings, seed=0)
    assert found.predictor_calls == gradient.predictor_calls == 8 * 4  # 7 draws or steps, 1 to place the gaps
    losses = [h[0] for h in found.history]
    assert all(b <= a + 1e-9 for a, b in zip(losses, losses[1:]))  # the kept best never gets worse
    batch = _batch(bilayer)
    for b in range(batch.size):
        atoms = batch.atoms_of(b)
        symbols = [JANUS[int(t)] for t in found.types[atoms]]
        assert neutral(symbols, [FAMILY_STATES[s][0] for s in symbols], FAMILY_STATES)
        moved = found.frac[atoms] - batch.frac0[atoms]
        upper = batch.layers[atoms] == 1  # its gap placed at the end: one rigid move along c beyond the bounds
        moved[upper, 2] -= moved[upper, 2].mean()
        bounds = batch.bounds[atoms].clone()
        bounds[upper, 2] *= 2
        assert bool(moved.abs().le(bounds + 1e-7).all())
    assert torch.isfinite(found.loss).all()
