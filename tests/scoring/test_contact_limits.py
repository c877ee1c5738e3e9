"""The contacts check takes its limits from the model's own data where that data bonds shorter than covalent radii.

The covalent rule (0.85 x the radii sum) was set on the III-VI bilayers; ionic crystals bond shorter (a cubic
KTaO3 at a = 4.0 Å has Ta-O at 2.00 Å, under the rule's 2.01 Å), so a perovskite model's own training crystals
would be called invalid. With the data's limits they pass, a crystal squeezed well below the data's shortest
contact still fails, and the bilayers' limits stay exactly the covalent rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from scoring.novelty import TrainingSet
from scoring.record import candidate_record
from scoring.validity import (
    CONTACT_FRACTION,
    CONTACT_MARGIN,
    ContactLimits,
    contact_limits,
    contact_problem,
    covalent_radius,
    shortest_contacts,
)

DATASET_TABLE = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi" / "bilayers.parquet"
FRAC = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


def perovskite(a: float, species: tuple[str, ...] = ("K", "Ta", "O", "O", "O")) -> Structure:
    return Structure(Lattice.cubic(a), list(species), FRAC)


def table(structures: list[Structure]) -> pd.DataFrame:
    """The dataset-table columns a :class:`TrainingSet` reads."""
    return pd.DataFrame({
        "id": [f"p{i}" for i in range(len(structures))],
        "lattice": [s.lattice.matrix.ravel() for s in structures],
        "species": [[site.specie.symbol for site in s] for s in structures],
        "frac_coords": [s.frac_coords.ravel() for s in structures],
        "reduced_formula": [s.composition.reduced_formula for s in structures],
        "num_atoms": [len(s) for s in structures],
    })


def test_shortest_contacts_agree_with_pymatgens_neighbour_list() -> None:
    rng = np.random.default_rng(0)
    structures = [Structure(Lattice.from_parameters(*rng.uniform(3.5, 5.0, 3), *rng.uniform(75, 105, 3)),
                            ["Ga", "Ga", "Se", "S"], rng.random((4, 3))) for _ in range(6)]
    expected: dict[tuple[str, str], float] = {}
    for s in structures:
        centers, neighbors, _, distances = s.get_neighbor_list(6.0)
        for i, j, d in zip(centers, neighbors, distances):
            pair = tuple(sorted((s[i].specie.symbol, s[j].specie.symbol)))
            expected[pair] = min(expected.get(pair, np.inf), float(d))
    found = shortest_contacts(np.stack([s.lattice.matrix for s in structures]),
                              np.stack([s.frac_coords for s in structures]),
                              np.array([[site.specie.symbol for site in s] for s in structures]))
    assert found.keys() == expected.keys()  # Ga-Ga and the like include an atom's own images
    for pair, d in expected.items():
        assert found[pair] == pytest.approx(d, abs=1e-4), pair


def test_an_ionic_training_crystal_fails_the_covalent_rule_but_passes_its_datas_limits() -> None:
    data = TrainingSet(table([perovskite(a) for a in (3.95, 4.0, 4.05)]))
    limits = data.contact_limits
    # Ta-O (1.98 Å) and K-Ta (3.42 Å) less 10 % fall under the covalent rule; K-O (2.79 Å) and O-O do not
    assert limits.data_shortest.keys() == {("O", "Ta"), ("K", "Ta")}
    assert limits.data_shortest[("O", "Ta")] == pytest.approx(3.95 / 2, abs=1e-5)
    crystal = perovskite(4.0)
    covalent = CONTACT_FRACTION * (covalent_radius("O") + covalent_radius("Ta"))
    assert contact_problem(crystal) == (f"Ta-O 2.00 Å apart (limit {covalent:.2f} Å = 0.85 x covalent radii); "
                                        "5 more pairs too close")  # the six Ta-O bonds of the octahedron
    assert contact_problem(crystal, limits) is None
    assert candidate_record(0, crystal, -1.0, contacts=limits).contacts_valid


def test_a_crystal_squeezed_below_the_datas_shortest_contact_still_fails_and_says_why() -> None:
    limits = TrainingSet(table([perovskite(a) for a in (3.95, 4.0, 4.05)])).contact_limits
    limit = CONTACT_MARGIN * 3.95 / 2
    squeezed = perovskite(2 * limit - 0.04)  # Ta-O 0.02 Å under the data's limit
    record = candidate_record(0, squeezed, -1.0, contacts=limits)
    assert not record.contacts_valid and not record.valid
    assert record.invalid_reason.startswith(
        f"O-Ta {limit - 0.02:.2f} Å apart (limit {limit:.2f} Å = {CONTACT_MARGIN} x the training data's shortest O-Ta)")
    # a pair the data never holds keeps the covalent rule
    niobate = perovskite(4.0, ("K", "Nb", "O", "O", "O"))
    assert limits.limit("Nb", "O") == (CONTACT_FRACTION * (covalent_radius("Nb") + covalent_radius("O")), False)
    assert contact_problem(niobate, limits) == contact_problem(niobate)


def test_limits_only_ever_loosen_the_covalent_rule() -> None:
    limits = contact_limits([(np.stack([perovskite(3.0).lattice.matrix]), np.array([FRAC], dtype=float),
                              np.array([["K", "Ta", "O", "O", "O"]]))])
    for pair, shortest in limits.data_shortest.items():
        covalent = CONTACT_FRACTION * (covalent_radius(pair[0]) + covalent_radius(pair[1]))
        assert limits.limit(*pair) == (CONTACT_MARGIN * shortest, True) and CONTACT_MARGIN * shortest < covalent
    assert ContactLimits({("O", "Ta"): 5.0}).limit("Ta", "O")[1] is False  # a longer data contact changes nothing


def test_the_bilayers_limits_are_exactly_the_covalent_rule() -> None:
    """Every pair of the 19,926 Janus bilayers sits at 0.958 of its radii sum or more (module docstring of
    :mod:`scoring.validity`), so their data adds no limit and every bilayer figure stays as it was."""
    limits = TrainingSet.load(DATASET_TABLE, part=None).contact_limits
    assert limits.data_shortest == {}
