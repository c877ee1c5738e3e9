"""CDVAE CSV import/export: round trips, and every malformed row reported with row, id, reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from training.data.cdvae_csv import DatasetImportError, canonical_structure, export_cdvae_csv, import_cdvae_csv
from training.data.crystal import Crystal, CrystalDataset

PROPERTY = "formation_energy_per_atom"


def hand_built() -> CrystalDataset:
    rng = np.random.default_rng(0)
    crystals = [
        Crystal.from_structure(Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
                               id="mp-nacl", properties={PROPERTY: -2.0912345678901234}),
        Crystal.from_structure(
            Structure(Lattice.hexagonal(3.19, 13.1), ["Mo", "S", "S"],
                      [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.13], [2 / 3, 1 / 3, 0.37]]),
            id="mp-mos2", properties={PROPERTY: -0.9}),
        Crystal.from_structure(
            Structure(Lattice.from_parameters(4.1, 5.3, 6.2, 78.0, 95.0, 104.0), ["Al", "Si", "O", "O"],
                      rng.uniform(0, 1, (4, 3))),
            id="tri-1", properties={PROPERTY: 1e-300}),
    ]  # sites in pymatgen's CIF order (by electronegativity), which the CIF parser imposes
    return CrystalDataset(crystals, name="hand")


def assert_same_crystals(a: CrystalDataset, b: CrystalDataset) -> None:
    assert a.ids == b.ids
    for x, y in zip(a, b):
        assert x.species == y.species
        np.testing.assert_allclose(x.lattice_params(), y.lattice_params(), atol=1e-6)
        delta = x.frac_coords - y.frac_coords
        np.testing.assert_allclose(delta - np.round(delta), 0.0, atol=1e-6)
        assert dict(x.properties) == dict(y.properties)  # exact


def test_round_trip_without_niggli(tmp_path: Path) -> None:
    original = hand_built()
    path = export_cdvae_csv(original, tmp_path / "out.csv")
    assert list(pd.read_csv(path).columns) == ["material_id", "cif", PROPERTY]
    result = import_cdvae_csv(path, [PROPERTY], niggli=False)
    assert result.problems == []
    assert_same_crystals(original, result.dataset)


def test_niggli_import_is_canonical_and_idempotent(tmp_path: Path) -> None:
    first = import_cdvae_csv(export_cdvae_csv(hand_built(), tmp_path / "a.csv"), [PROPERTY]).dataset
    for crystal in first:
        a, b, c, *_ = crystal.lattice_params()
        assert a <= b + 1e-8 <= c + 2e-8
        expected = Lattice.from_parameters(*crystal.lattice_params()).matrix
        np.testing.assert_allclose(crystal.lattice, expected, atol=1e-9)
        assert ((crystal.frac_coords >= 0) & (crystal.frac_coords < 1)).all()
    second = import_cdvae_csv(export_cdvae_csv(first, tmp_path / "b.csv"), [PROPERTY]).dataset
    assert_same_crystals(first, second)


def test_unsorted_sites_come_back_permuted(tmp_path: Path) -> None:
    structure = Structure(Lattice.cubic(4.0), ["O", "Al", "O"], [[0.5, 0, 0], [0, 0, 0], [0, 0.5, 0]])
    original = CrystalDataset([Crystal.from_structure(structure, id="x")])
    back = import_cdvae_csv(export_cdvae_csv(original, tmp_path / "x.csv"), [], niggli=False).dataset[0]
    assert back.species == ("Al", "O", "O")
    np.testing.assert_allclose(back.frac_coords, [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0]], atol=1e-8)


def test_left_handed_cell_is_not_mirrored() -> None:
    structure = Structure(Lattice.from_parameters(3.0, 4.0, 5.0, 80.0, 85.0, 95.0), ["Mo", "S", "Se"],
                          [[0.1, 0.2, 0.3], [0.4, 0.1, 0.7], [0.8, 0.6, 0.2]])
    left = Structure(Lattice(-structure.lattice.matrix), structure.species, -structure.frac_coords)
    for niggli in (False, True):
        a = canonical_structure(structure, niggli=niggli)
        b = canonical_structure(left, niggli=niggli)
        np.testing.assert_allclose(a.lattice.matrix, b.lattice.matrix, atol=1e-9)
        delta = a.frac_coords - b.frac_coords
        np.testing.assert_allclose(delta - np.round(delta), 0.0, atol=1e-9)


def test_niggli_reduces_a_skewed_cell(tmp_path: Path) -> None:
    skewed = Structure(Lattice([[3.0, 0, 0], [2.0, 3.0, 0], [5.0, 4.0, 4.0]]), ["Cu"], [[0.1, 0.2, 0.3]])
    path = tmp_path / "skewed.csv"
    pd.DataFrame({"cif": [str(CifWriter(skewed))], "e": ["0.5"]}).to_csv(path, index=False)
    crystal = import_cdvae_csv(path, ["e"]).dataset[0]
    reduced = skewed.get_reduced_structure()
    np.testing.assert_allclose(crystal.lattice_params(), reduced.lattice.parameters, atol=1e-6)
    assert crystal.id == "row-0"


def write_messy_csv(path: Path) -> None:
    good = hand_built()
    cif = {c.id: str(CifWriter(c.to_structure())) for c in good}
    big = Structure(Lattice.cubic(3.0), ["Po"], [[0, 0, 0]]) * (5, 3, 2)
    rows = [
        ("mp-nacl", cif["mp-nacl"], "-2.5"),        # row 2: kept
        ("garbage", "data_x\nthis is not a CIF\n", "0.1"),  # row 3: bad CIF
        ("no-value", cif["mp-mos2"], ""),           # row 4: missing property
        ("nan-value", cif["mp-mos2"], "NaN"),       # row 5: non-finite property
        ("big", str(CifWriter(big)), "0.2"),        # row 6: 30 atoms > 20
        ("word", cif["tri-1"], "abc"),              # row 7: non-numeric property
        ("mp-nacl", cif["mp-nacl"], "-2.5"),        # row 8: duplicate id
        ("tri-1", cif["tri-1"], "0.25"),            # row 9: kept
    ]
    pd.DataFrame(rows, columns=["material_id", "cif", PROPERTY]).assign(band_gap="1.0").to_csv(path, index=False)


def test_malformed_rows_reported_with_row_id_reason(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    write_messy_csv(path)
    result = import_cdvae_csv(path, [PROPERTY], max_atoms=20)
    assert result.dataset.ids == ("mp-nacl", "tri-1")
    assert result.dataset.property_array(PROPERTY).tolist() == [-2.5, 0.25]
    found = {(p.row, p.id, p.kind) for p in result.problems}
    assert found == {
        (3, "garbage", "bad CIF"),
        (4, "no-value", "missing property"),
        (5, "nan-value", "non-finite property"),
        (6, "big", "too many atoms"),
        (7, "word", "non-numeric property"),
        (8, "mp-nacl", "duplicate id"),
    }
    reasons = {p.id: p.reason for p in result.problems}
    assert "30 atoms" in reasons["big"] and "max_atoms=20" in reasons["big"]
    assert PROPERTY in reasons["no-value"] and PROPERTY in reasons["nan-value"]
    assert "row 2" in reasons["mp-nacl"]
    assert result.summary() == (
        "read 8 rows, kept 2, skipped 6: 1 duplicate id, 1 missing property, 1 non-numeric property, "
        "1 non-finite property, 1 bad CIF, 1 too many atoms"
    )
    assert len(result.dataset) + len(result.problems) == result.rows_read  # nothing silently dropped


def test_larger_max_atoms_keeps_the_big_cell(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    write_messy_csv(path)
    result = import_cdvae_csv(path, [PROPERTY], max_atoms=30)
    assert "big" in result.dataset.ids and result.dataset[result.dataset.ids.index("big")].num_atoms == 30


def test_strict_raises_on_first_problem(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    write_messy_csv(path)
    with pytest.raises(DatasetImportError, match=r"row 3 \(id 'garbage'\): unparseable CIF") as info:
        import_cdvae_csv(path, [PROPERTY], strict=True)
    assert isinstance(info.value, ValueError)
    assert info.value.problem.row == 3


def test_unknown_property_column_names_available(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    write_messy_csv(path)
    with pytest.raises(ValueError, match=rf"unknown property column.*'e_hull'.*available: {PROPERTY}, band_gap"):
        import_cdvae_csv(path, ["e_hull"])


def test_missing_cif_column_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "nocif.csv"
    pd.DataFrame({"material_id": ["a"], "structure": ["x"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="no 'cif' column; columns: material_id, structure"):
        import_cdvae_csv(path, [])


def test_summary_without_problems(tmp_path: Path) -> None:
    path = export_cdvae_csv(hand_built(), tmp_path / "ok.csv")
    assert import_cdvae_csv(path, []).summary() == "read 3 rows, kept 3, skipped 0"
