"""The stacking key (:mod:`scoring.stacking`): one name per stacking, whatever the copy, and the dataset crystal a
bilayer *is* (:meth:`scoring.novelty.TrainingSet.match`), which the paper's tolerances alone cannot say."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.core.operations import SymmOp

from scoring.novelty import TrainingSet, matcher, table_structure
from scoring.stacking import stacking_key

TABLE = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi" / "bilayers.parquet"
FORMULA = "Al2InGaTeS3"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.read_parquet(TABLE)


def _structure(row) -> Structure:  # noqa: ANN001
    return table_structure(row.lattice, row.species, row.frac_coords)


def test_every_dataset_stacking_has_its_own_key_and_symmetry_duplicates_share_it(table: pd.DataFrame) -> None:
    duplicates = table[table["symmetry_duplicate_of"].notna()]
    originals = table.set_index("id").loc[duplicates["symmetry_duplicate_of"]]
    # every duplicate with its original, and 3,000 other rows (all 19,926: 19,845 keys, measured, 14 s)
    others = table[table["symmetry_duplicate_of"].isna()].sample(3000, random_state=0)
    keys = {r.id: stacking_key(_structure(r)) for r in pd.concat([others, duplicates]).itertuples()}
    original_keys = [stacking_key(_structure(r)) for r in originals.itertuples()]
    assert None not in keys.values()
    assert [keys[i] for i in duplicates["id"]] == original_keys
    assert len({keys[i] for i in others["id"]}) == len(others)


def test_the_key_ignores_translation_rotation_mirror_and_the_cell_setting(table: pd.DataFrame) -> None:
    row = next(table[table["reduced_formula"] == FORMULA].itertuples())
    crystal = _structure(row)
    key = stacking_key(crystal)
    shifted = crystal.copy()
    shifted.translate_sites(range(len(crystal)), [0.37, 0.11, 0.2], frac_coords=True)
    mirrored = Structure(crystal.lattice, crystal.species, crystal.frac_coords * [1, 1, -1])
    rotated = crystal.copy()
    rotated.apply_operation(SymmOp.from_axis_angle_and_translation([0, 0, 1], 60.0))
    m = crystal.lattice.matrix
    sixty = Structure(Lattice([m[0], m[0] + m[1], m[2]]), crystal.species, crystal.cart_coords,
                      coords_are_cartesian=True)  # the same crystal in the 60° setting of its cell
    turn = SymmOp.from_axis_angle_and_translation([0, 0, 1], 60.0).rotation_matrix
    turned = Structure(crystal.lattice, crystal.species, crystal.cart_coords @ turn.T,
                       coords_are_cartesian=True)  # the atoms turned 60° in the same cell: B and C swap
    assert stacking_key(turned) is not None
    wrapped = crystal.copy()
    wrapped.translate_sites(range(len(crystal)), [0.0, 0.0, 0.45], frac_coords=True)  # across the cell's boundary
    assert wrapped.frac_coords[:, 2].min() < 0.1 and wrapped.frac_coords[:, 2].max() > 0.9
    for copy in (shifted, mirrored, rotated, sixty, turned, wrapped):
        assert stacking_key(copy) == key


def test_stackings_the_papers_tolerances_confuse_have_different_keys(table: pd.DataFrame) -> None:
    crystals = [_structure(r) for r in table[table["reduced_formula"] == FORMULA].head(12).itertuples()]
    confused = [(a, b) for a, b in itertools.combinations(crystals, 2) if matcher().fit(a, b)]
    assert len(confused) >= 20  # measured: 30 of 66 pairs
    assert all(stacking_key(a) != stacking_key(b) for a, b in confused)


def test_off_site_or_ambiguous_crystals_have_no_key(table: pd.DataFrame) -> None:
    crystal = _structure(next(table.itertuples()))
    off = crystal.copy()
    off.translate_sites([5], [0.5, 0.0, 0.0], frac_coords=False, to_unit_cell=True)  # 0.5 Å off its site
    assert stacking_key(off) is None
    square = Structure(Lattice.tetragonal(4.0, 20.0), ["Ga", "S"], [[0, 0, 0.5], [0.5, 0.5, 0.6]])
    assert stacking_key(square) is None
    flat = Structure(Lattice.hexagonal(3.8, 20.0), ["Ga", "S"], [[0, 0, 0.5], [1 / 3, 2 / 3, 0.5]])
    assert stacking_key(flat) is None  # two atoms at one height: no order along the normal


def test_a_dataset_bilayer_is_known_as_itself(table: pd.DataFrame) -> None:
    rows = table[table["reduced_formula"] == FORMULA].head(12)
    reference = TrainingSet(rows, rows["split_random"])
    for row in rows.itertuples():
        moved = _structure(row)
        moved.translate_sites(range(len(moved)), [0.2, 0.3, 0.0])
        found = reference.match(moved)
        assert found is not None and found.exact and found.id == row.id
    off = _structure(next(rows.itertuples()))
    off.translate_sites([5], [0.5, 0.0, 0.0], frac_coords=False, to_unit_cell=True)
    found = reference.match(off)  # no key: the first fit by the paper's tolerances, as before
    assert found is not None and not found.exact
    assert np.isin(found.id, rows["id"])
