"""The J2DH recipe: 45 monolayers with the right symmetry, 3,321 flip classes, 19,926 bilayers."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from training.data.geometry import LayerGeometry, bilayer_structure, initial_heights, monolayer_structure
from training.data.recipe import (
    enumerate_bilayers,
    enumerate_flip_classes,
    enumerate_monolayers,
    symmetry_duplicates,
)


def test_45_monolayers_in_four_families() -> None:
    layers = enumerate_monolayers()
    assert len(layers) == 45
    assert len({m.name for m in layers}) == 45
    assert Counter(m.family for m in layers) == {"MX": 9, "MM'X2": 9, "M2XX'": 9, "MM'XX'": 18}
    assert sum(m.mirror_symmetric for m in layers) == 9
    # no monolayer is another one turned upside down
    names = {m.name for m in layers}
    assert not any("-".join(m.sequence[::-1]) in names for m in layers if not m.mirror_symmetric)


def test_monolayer_space_groups() -> None:
    """Mirror-symmetric layers are P-6m2 (187), Janus layers P3m1 (156), as built."""
    found = Counter()
    for layer in enumerate_monolayers():
        geometry = LayerGeometry(3.8, initial_heights(layer, 3.8))
        sga = SpacegroupAnalyzer(monolayer_structure(layer, geometry), symprec=1e-3)
        assert sga.get_space_group_number() == layer.space_group_number, layer.name
        found[sga.get_space_group_symbol()] += 1
    assert found == {"P-6m2": 9, "P3m1": 36}


def test_flip_classes_and_configurations() -> None:
    classes = enumerate_flip_classes()
    assert len(classes) == 3321
    hetero_janus = [c for c in classes if c.bottom != c.top and not c.bottom.mirror_symmetric
                    and not c.top.mirror_symmetric]
    assert len(hetero_janus) == 630 * 4
    homo_janus = [c for c in classes if c.bottom == c.top and not c.bottom.mirror_symmetric]
    assert len(homo_janus) == 36 * 3
    configs = enumerate_bilayers()
    assert len(configs) == 19926
    assert len({c.id for c in configs}) == 19926
    assert [c.index for c in configs] == list(range(19926))
    assert Counter(c.stacking for c in configs) == {s: 3321 for s in Counter(c.stacking for c in configs)}
    assert len({c.stacking for c in configs}) == 6


def test_six_stackings_put_top_columns_on_all_site_pairs() -> None:
    configs = enumerate_bilayers()[:6]
    assert sorted(c.top_sites() for c in configs) == sorted(
        (x, m) for x in "OPQ" for m in "OPQ" if x != m
    )


def test_symmetry_duplicates_are_homo_pairs_and_same_crystal() -> None:
    configs = enumerate_bilayers()
    duplicates = symmetry_duplicates(configs)
    assert len(configs) - len(duplicates) == 19845
    assert all(configs[i].flip_class.bottom == configs[i].flip_class.top for i in duplicates)
    # a sample checked independently: duplicates match their original, other stackings do not
    matcher = StructureMatcher(ltol=1e-3, stol=1e-3, angle_tol=0.1, primitive_cell=False,
                               scale=False)
    rng = random.Random(0)
    for i in rng.sample(sorted(duplicates), 6):
        dup, orig = configs[i], configs[duplicates[i]]
        layer = dup.flip_class.bottom
        geometry = LayerGeometry(3.8, initial_heights(layer, 3.8))
        heights = [geometry.oriented(dup.flip_class.bottom_flipped),
                   geometry.oriented(dup.flip_class.top_flipped)]
        s_dup = bilayer_structure(dup, 3.8, *heights, gap=3.0)
        heights_o = [geometry.oriented(orig.flip_class.bottom_flipped),
                     geometry.oriented(orig.flip_class.top_flipped)]
        s_orig = bilayer_structure(orig, 3.8, *heights_o, gap=3.0)
        assert matcher.fit(s_dup, s_orig), (dup.id, orig.id)
        other = next(c for c in configs if c.flip_class == dup.flip_class and c.index not in duplicates
                     and c.index != orig.index)
        s_other = bilayer_structure(other, 3.8, *heights, gap=3.0)
        assert not matcher.fit(s_dup, s_other), (dup.id, other.id)


@pytest.mark.parametrize("index", [0, 77, 6000, 19925])
def test_bilayer_cell_geometry(index: int) -> None:
    config = enumerate_bilayers()[index]
    fc = config.flip_class
    gb = LayerGeometry(3.7, initial_heights(fc.bottom, 3.7))
    gt = LayerGeometry(3.7, initial_heights(fc.top, 3.7))
    s = bilayer_structure(config, 3.7, gb.oriented(fc.bottom_flipped), gt.oriented(fc.top_flipped), 3.1)
    assert len(s) == 8
    z = s.cart_coords[:, 2]
    assert z[4:].min() - z[:4].max() == pytest.approx(3.1)
    assert s.lattice.c - (z.max() - z.min()) == pytest.approx(20.0)
    assert [str(sp) for sp in s.species] == [el for el, _ in config.atom_columns()]
