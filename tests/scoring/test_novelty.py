"""Novelty and known vs new (:meth:`scoring.novelty.TrainingSet.match`): the order in which training stackings are
tried is a matter of speed only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.structure_matcher import FrameworkComparator, StructureMatcher
from pymatgen.core import Lattice, Structure

import scoring.novelty as novelty
from scoring.novelty import ReducedCrystal, TrainingSet, fits, matcher, table_structure

TABLE = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi" / "bilayers.parquet"
FORMULA = "Al2InGaTeS3"


@pytest.fixture(scope="module")
def group() -> pd.DataFrame:
    table = pd.read_parquet(TABLE)
    return table[table["reduced_formula"] == FORMULA].reset_index(drop=True)


def _jiggled(row, rng: np.random.Generator) -> Structure:  # noqa: ANN001
    """A validation or test bilayer with every atom moved by up to 0.02 A: the same stacking, not the same numbers."""
    s = table_structure(row.lattice, row.species, row.frac_coords)
    return Structure(s.lattice, s.species, s.cart_coords + rng.uniform(-0.02, 0.02, (len(s), 3)),
                     coords_are_cartesian=True)


def _answers(reference: TrainingSet, crystals: list[Structure], monkeypatch: pytest.MonkeyPatch) -> tuple[list, int]:
    """What ``match`` answers for each crystal, and how many full fits it ran."""
    calls = [0]
    plain = novelty.fits

    def counted(m, a, b) -> bool:  # noqa: ANN001
        calls[0] += 1
        return plain(m, a, b)

    with monkeypatch.context() as patch:
        patch.setattr(novelty, "fits", counted)
        m = matcher()
        return [reference.match(ReducedCrystal(s, m)) for s in crystals], calls[0]


def test_trying_the_nearest_training_stacking_first_changes_no_answer_and_saves_fits(
        group: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = TrainingSet(group, group["split_random"])
    rng = np.random.default_rng(3)
    others = group[group["split_random"] != "train"]
    crystals = [_jiggled(r, rng) for r in others.iloc[rng.choice(len(others), 6, replace=False)].itertuples()]
    nearest_first, fits_nearest_first = _answers(reference, crystals, monkeypatch)
    monkeypatch.setattr(TrainingSet, "_nearest_training_rows_first", lambda self, me, pairs: pairs)
    table_order, fits_table_order = _answers(reference, crystals, monkeypatch)
    assert nearest_first == table_order
    assert all(found is not None and found.exact for found in table_order)  # the path under test: an exact row
    assert any(found.part == "train" for found in table_order)  # and some that a training stacking fits
    assert fits_nearest_first < fits_table_order


def test_a_prepared_reference_builds_nothing_more_when_it_matches(group: pd.DataFrame,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    reference = TrainingSet(group, group["split_random"])
    reference.prepare()
    profiles = [0]
    plain = novelty.slab_profile

    def counted(structure, m):  # noqa: ANN001, ANN202
        profiles[0] += 1
        return plain(structure, m)

    monkeypatch.setattr(novelty, "slab_profile", counted)
    others = group[group["split_random"] != "train"]
    crystal = _jiggled(next(others.itertuples()), np.random.default_rng(5))
    assert reference.match(crystal) is not None
    assert profiles[0] == 1  # the crystal's own; every reference profile was built by prepare()


def test_matchers_of_other_kinds_get_their_own_answers(group: pd.DataFrame) -> None:
    """The height test and the reduced forms group sites by species: a matcher that ignores a species or compares
    frameworks only is asked directly."""
    row = group.iloc[0]
    s = table_structure(row["lattice"], row["species"], row["frac_coords"])
    species = [str(x) for x in s.species]
    i, j = species.index("Al"), species.index("Te")
    species[i], species[j] = species[j], species[i]
    swapped = Structure(s.lattice, species, s.frac_coords)  # the same framework, two elements swapped
    frameworks = StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10, comparator=FrameworkComparator())
    assert fits(frameworks, ReducedCrystal(s, frameworks), ReducedCrystal(swapped, frameworks))
    assert ReducedCrystal(s, frameworks).profile is None  # no height test for such a matcher
    strip = StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10, ignored_species=["Li"])
    chain = Structure(Lattice.from_parameters(8, 4.1, 30, 90, 90, 90), ["Si", "Si", "Li"],
                      [[0, 0, 0.5], [0.5, 0, 0.5], [0.25, 0.5, 0.55]])
    single = Structure(Lattice.from_parameters(4, 4.1, 30, 90, 90, 90), ["Si"], [[0, 0, 0.5]])
    assert strip.fit(chain, single)
    assert fits(strip, ReducedCrystal(chain, strip), ReducedCrystal(single, strip))
