"""The height test never changes a StructureMatcher verdict, and it does rule pairs out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from scoring.novelty import ReducedCrystal, TrainingSet, fits, matcher, table_structure
from scoring.slab_filter import cannot_match, slab_profile

TABLE = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi" / "bilayers.parquet"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.read_parquet(TABLE)


def _structure(row: pd.Series) -> Structure:
    return table_structure(row["lattice"], row["species"], row["frac_coords"])


def _bilayer(table: pd.DataFrame, index: int = 0) -> Structure:
    return _structure(table[table["split_random"] == "train"].iloc[index])


def _same_crystal_presented_differently(s: Structure) -> list[Structure]:
    """Symmetry-free changes of presentation: none may be ruled out."""
    out = []
    moved = s.copy()
    moved.translate_sites(list(range(len(s))), [0.31, 0.17, 0.42])  # rigid shift, wraps along c
    out.append(moved)
    # c -> -c with z -> -z: the same atoms, heights counted from the other side
    out.append(Structure(Lattice(np.diag([1, 1, -1]) @ s.lattice.matrix), s.species, s.frac_coords * [1, 1, -1]))
    rotation = np.array([[np.cos(0.7), -np.sin(0.7), 0], [np.sin(0.7), np.cos(0.7), 0], [0, 0, 1]])
    out.append(Structure(Lattice(s.lattice.matrix @ rotation.T), s.species, s.frac_coords))
    order = np.random.default_rng(0).permutation(len(s))
    out.append(Structure(s.lattice, [s.species[i] for i in order], s.frac_coords[order]))
    out.append(s.copy().make_supercell([[1, 1, 0], [0, 1, 0], [0, 0, 1]]))  # another in-plane cell, same lattice
    out.append(s.copy().make_supercell([[1, 0, 0], [0, 1, 0], [1, 1, 1]]))  # a sheared c vector
    return out


def test_the_same_crystal_presented_differently_is_never_ruled_out(table: pd.DataFrame) -> None:
    m = matcher()
    s = _bilayer(table)
    for other in _same_crystal_presented_differently(s):
        assert not cannot_match(slab_profile(s, m), slab_profile(other, m), m)
        assert fits(m, ReducedCrystal(s, m), ReducedCrystal(other, m))


def test_a_wider_interlayer_gap_is_ruled_out(table: pd.DataFrame) -> None:
    m = matcher()
    s = _bilayer(table)
    z = s.frac_coords[:, 2]
    shift = 3 * slab_profile(s, m).eps_as_target  # the top layer moves by three tolerances
    wider = Structure(s.lattice, s.species, s.frac_coords + np.where(z > np.mean(z), shift, 0.0)[:, None] * [0, 0, 1])
    assert cannot_match(slab_profile(s, m), slab_profile(wider, m), m)
    assert not m.fit(s, wider)


def test_no_verdict_changes_on_dataset_pairs(table: pd.DataFrame) -> None:
    """Test crystals against training stackings of their formula: each pair the height test rules
    out is checked with the full matcher, and is_novel agrees with the plain loop of fits."""
    m = matcher()
    rng = np.random.default_rng(7)
    test = table[table["split_random"] == "test"]
    chosen = test.iloc[rng.choice(len(test), 6, replace=False)]
    train = table[(table["split_random"] == "train") & table["reduced_formula"].isin(chosen["reduced_formula"])]
    reference = TrainingSet(train.groupby("reduced_formula").head(12))  # 12 stackings per formula keep it quick
    ruled_out = compared = 0
    for _, row in chosen.iterrows():
        s = _structure(row)
        s.perturb(0.05, min_distance=0.0)  # jiggled, so not trivially identical to a stored crystal
        me = ReducedCrystal(s, m)
        known = reference.same_formula(s)
        for k in known:
            compared += 1
            if cannot_match(me.profile, slab_profile(k, m), m):
                ruled_out += 1
                assert not m.fit(s, k)
        assert reference.is_novel(s) == (not any(m.fit(s, k) for k in known))
    assert compared > 0 and ruled_out / compared > 0.3  # the test earns its keep on real stackings


def test_disordered_or_thin_cells_fall_back_to_the_matcher() -> None:
    m = matcher()
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    profile = slab_profile(rocksalt, m)
    shifted = rocksalt.copy()
    shifted.translate_sites([0], [0.0, 0.0, 0.3])
    assert not cannot_match(profile, slab_profile(shifted, m), m)  # a 3D cell: no plane to trust
    alloy = Structure(Lattice.cubic(3.0), [{"Na": 0.5, "K": 0.5}], [[0, 0, 0]])
    assert slab_profile(alloy, m) is None
