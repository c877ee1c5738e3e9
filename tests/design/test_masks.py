"""Oxidation-number masks: every designed crystal is neutral by construction and masked elements never appear."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from design.batch import build_batch, decoded_types, site_distribution
from design.masks import FAMILY_STATES, neutral, oxidation_states, site_patterns, unmasked
from design.templates import template_from_structure

JANUS = ("Al", "S", "Ga", "Se", "In", "Te")


def test_the_iii_vi_family_has_one_pattern_by_site_role(bilayer) -> None:
    structure = bilayer(0.0)
    patterns = site_patterns([s.specie.symbol for s in structure], JANUS)
    assert patterns is not None and patterns.count == 1
    allowed = {tuple(sorted(np.array(JANUS)[row])) for row in patterns.allowed[0]}
    assert allowed == {("Al", "Ga", "In"), ("S", "Se", "Te")}
    for site, row in zip(structure, patterns.allowed[0]):  # chalcogen sites stay chalcogens, metals metals
        metal = site.specie.symbol in ("Al", "Ga", "In")
        assert set(np.array(JANUS)[row]) == ({"Al", "Ga", "In"} if metal else {"S", "Se", "Te"})
    assert patterns.oxidation.sum(axis=1).tolist() == [0]


def test_other_chemistries_get_every_neutral_pattern_of_their_oxidation_states() -> None:
    vocabulary = ("O", "Ti", "Sr", "Ba", "Zr", "N", "La")
    states = oxidation_states(vocabulary)
    patterns = site_patterns(["Sr", "Ti", "O", "O", "O"], vocabulary, states)
    assert patterns is not None and patterns.count >= 1
    assert (patterns.oxidation.sum(axis=1) == 0).all()
    for k in range(patterns.count):
        for site, q in enumerate(patterns.oxidation[k]):
            holders = {el for el, ok in zip(vocabulary, patterns.allowed[k, site]) if ok}
            assert holders == {el for el in vocabulary if q in states[el]}
    assert site_patterns(["Sr", "O"], ("Sr", "O"), {"Sr": (2,), "O": (-1,)}) is None  # no neutral pattern


def test_decoded_crystals_are_neutral_and_keep_masked_elements_out(bilayer) -> None:
    templates = [template_from_structure(bilayer(0.0), "t")] * 6
    patterns = [site_patterns(t.species, JANUS) for t in templates]
    batch = build_batch(templates, patterns, list(range(6)), len(JANUS))
    generator = torch.Generator().manual_seed(0)
    logits = 5 * torch.randn(batch.frac0.size(0), len(JANUS), generator=generator)  # push for anything
    weights = torch.randn(batch.size, batch.allowed.size(1), generator=generator)
    p = site_distribution(batch, logits, weights, 1e-2)
    assert float(p[~batch.allowed[:, 0]].abs().max()) == 0.0  # exactly zero, at any temperature
    types, pattern = decoded_types(batch, logits, weights)
    for b in range(batch.size):
        atoms = batch.atoms_of(b)
        symbols = [JANUS[int(t)] for t in types[atoms]]
        oxidation = batch.oxidation[atoms, pattern[b]].tolist()
        assert neutral(symbols, oxidation, FAMILY_STATES)
        assert bool(batch.allowed[atoms, pattern[b], types[atoms]].all())


def test_without_masks_every_element_is_allowed(bilayer) -> None:
    species = [s.specie.symbol for s in bilayer(0.0)]
    free = unmasked(species, JANUS)
    assert free.allowed.all() and free.count == 1


@pytest.mark.parametrize("vocabulary", [JANUS, ("Al", "Ga", "S")])
def test_family_states_are_used_inside_the_family(vocabulary: tuple[str, ...]) -> None:
    assert oxidation_states(vocabulary) == {el: FAMILY_STATES[el] for el in vocabulary}


def test_a_cubic_perovskite_template_is_neutral_under_every_pattern() -> None:
    s = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                  [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    t = template_from_structure(s, "srtio3")
    assert not t.slab
    patterns = site_patterns(t.species, ("Sr", "Ba", "Ti", "Zr", "O"))
    assert patterns is not None and (patterns.oxidation.sum(axis=1) == 0).all()
