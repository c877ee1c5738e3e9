"""The oracle check of generated crystals (:mod:`scoring.oracle_check`): physics against the dataset's labels.

The dataset's relaxed bilayers are minima of the same oracle, so a check must find them at
rest with their labelled formation energy and gap; a randomly displaced copy must relax
back downhill. Runs CHGNet for real (a few seconds, one model load per session), so it is
marked ``slow``. The RMSD helper is checked on hand-made cells without CHGNet.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from oracle.convention import load_references
from oracle.shared import OracleError, get_oracle
from scoring.novelty import table_structure
from scoring.oracle_check import check_with_oracle, displacement_rmsd, input_problem, refused_summary

DATASET = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi"  # the committed dataset
TABLE = DATASET / "bilayers.parquet"
ROWS = ("jb-06002", "jb-12004")  # relaxed, converged bilayers of two different formulas
needs_dataset = pytest.mark.skipif(not TABLE.is_file(), reason="the committed dataset is not in this checkout")


def row_structure(row: pd.Series) -> Structure:
    """A dataset row as a pymatgen Structure."""
    return table_structure(row["lattice"], row["species"], row["frac_coords"])


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    frame = pd.read_parquet(TABLE).set_index("id").loc[list(ROWS)]
    assert frame["relaxed"].all() and frame["relax_converged"].all()
    return frame


@pytest.fixture(scope="module")
def references() -> dict[str, float]:
    return load_references(DATASET)


def displaced(structure: Structure, distance: float, seed: int) -> Structure:
    """``structure`` with every atom moved ``distance`` Å in a random direction (seeded)."""
    directions = np.random.default_rng(seed).normal(size=(len(structure), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return Structure(structure.lattice, structure.species, structure.cart_coords + distance * directions,
                     coords_are_cartesian=True)


@pytest.mark.slow
@needs_dataset
def test_dataset_bilayers_are_at_rest_with_their_labels(rows: pd.DataFrame, references: dict[str, float]) -> None:
    calls: list[tuple[int, int]] = []
    checks = check_with_oracle([row_structure(r) for _, r in rows.iterrows()], references, get_oracle(),
                               progress=lambda done, total: calls.append((done, total)))
    for (_, row), check in zip(rows.iterrows(), checks):
        assert abs(check.formation_energy - row["formation_energy_per_atom"]) < 0.003
        assert abs(check.initial_formation_energy - row["formation_energy_per_atom"]) < 0.003
        assert check.converged and check.max_force < 0.05 and check.rmsd < 0.1
        assert check.interlayer_gap is not None and abs(check.interlayer_gap - row["interlayer_gap"]) < 0.1
        assert math.isclose(check.energy_drop, check.energy_drop_per_atom * len(check.relaxed))
    assert calls[-1] == (2, 2) and all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))


@pytest.mark.slow
@needs_dataset
def test_a_displaced_copy_relaxes_back(rows: pd.DataFrame, references: dict[str, float]) -> None:
    oracle = get_oracle()
    starts = [displaced(row_structure(r), 0.1, seed=k) for k, (_, r) in enumerate(rows.iterrows())]
    checks = check_with_oracle(starts, references, oracle)
    # the first step's evaluation is the starting energy: the same as a separate single point
    energies = oracle.energies(starts)
    for (_, row), start, check, energy in zip(rows.iterrows(), starts, checks, energies):
        assert check.converged and 0 < check.steps < 500
        assert check.energy_drop > 0.02 and check.energy_drop_per_atom > 0.002
        assert abs(check.initial_formation_energy * len(start)
                   - (energy - sum(references[s.specie.symbol] for s in start))) < 1e-4
        assert abs(check.formation_energy - row["formation_energy_per_atom"]) < 0.005
        assert 0.02 < check.rmsd < 0.2
        # the in-plane cell relaxes too (the vacuum's height stays); the fixed cell is tests/oracle's
        assert check.cell == "in_plane" and abs(check.relaxed.lattice.a - row["a_common"]) < 0.03
        height = start.volume / start.lattice.a / start.lattice.b / math.sin(math.radians(start.lattice.gamma))
        after = check.relaxed
        assert abs(after.volume / after.lattice.a / after.lattice.b / math.sin(math.radians(after.lattice.gamma))
                   - height) < 1e-6
        assert abs(check.interlayer_gap - row["interlayer_gap"]) < 0.1


@needs_dataset
def test_unknown_elements_and_overlaps_are_refused_before_any_work(references: dict[str, float]) -> None:
    fe = Structure(Lattice.hexagonal(3.6, 25.0), ["Fe", "S"], [[0, 0, 0.4], [1 / 3, 2 / 3, 0.45]])
    with pytest.raises(OracleError, match=r"no elemental reference for Fe \(known: Al, Ga, In, S, Se, Te\)"):
        check_with_oracle([fe], references, oracle=object())  # type: ignore[arg-type]  # never reached
    overlap = Structure(Lattice.hexagonal(3.6, 25.0), ["Ga", "S"], [[0, 0, 0.4], [0, 0, 0.401]])
    assert "closer than 0.5" in str(input_problem(overlap, references))
    with pytest.raises(ValueError, match="fmax"):
        check_with_oracle([], references, fmax=0.0)
    assert check_with_oracle([], references) == []


def test_the_refused_are_summed_up_by_reason_in_one_line() -> None:
    references = {"Ga": -3.0, "S": -4.1}
    fine = Structure(Lattice.hexagonal(3.6, 25.0), ["Ga", "S"], [[0, 0, 0.4], [1 / 3, 2 / 3, 0.45]])
    perovskite = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])
    overlap = Structure(Lattice.hexagonal(3.6, 25.0), ["Ga", "S"], [[0, 0, 0.4], [0, 0, 0.401]])
    assert refused_summary([fine], references) is None
    assert refused_summary([fine, perovskite, perovskite, overlap], references) == (
        "3 crystals not relaxed: 2 with an element the oracle has no reference for (O, Sr, Ti; it has Ga, S), "
        "1 with atoms closer than 0.5 Å")


def test_missing_references_are_named(tmp_path: Path) -> None:
    with pytest.raises(OracleError, match="no elemental references at .*references.json"):
        load_references(tmp_path)
    (tmp_path / "references.json").write_text("{not json")
    with pytest.raises(OracleError, match="cannot read the elemental references"):
        load_references(tmp_path)


def test_rmsd_is_zero_for_the_same_structure_and_a_lattice_translation() -> None:
    s = Structure(Lattice.hexagonal(3.6, 25.0), ["Ga", "S", "Se"], [[0, 0, 0.4], [1 / 3, 2 / 3, 0.45], [0.9, 0.1, 0.5]])
    assert displacement_rmsd(s, s) == pytest.approx(0.0, abs=1e-12)
    moved = Structure(s.lattice, s.species, s.frac_coords + [1, -1, 0])  # every atom one cell over
    assert displacement_rmsd(s, moved) == pytest.approx(0.0, abs=1e-12)


def test_rmsd_takes_the_minimum_image_across_the_boundary() -> None:
    lattice = Lattice.hexagonal(3.6, 25.0)
    start = Structure(lattice, ["Ga", "S"], [[0.99, 0.5, 0.4], [0.5, 0.5, 0.5]])
    end = Structure(lattice, ["Ga", "S"], [[0.01, 0.5, 0.4], [0.5, 0.5, 0.5]])  # 0.02 a across the face
    assert displacement_rmsd(start, end) == pytest.approx(0.02 * 3.6 / math.sqrt(2), rel=1e-9)
    # in a 120-degree cell, rounding the fractional step (0.4, -0.4) alone would give 0.69 a;
    # the nearest image is (-0.6, -0.4) (or (0.4, 0.6)), sqrt(0.28) a away
    one = Structure(lattice, ["Ga"], [[0.1, 0.5, 0.4]])
    other = Structure(lattice, ["Ga"], [[0.5, 0.1, 0.4]])
    assert displacement_rmsd(one, other) == pytest.approx(math.sqrt(0.28) * 3.6, rel=1e-9)
