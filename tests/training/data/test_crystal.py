"""Crystal / CrystalDataset: table and Parquet round trips, pymatgen round trip, tensor round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from pymatgen.core import Lattice, Structure

from training.data.crystal import Crystal, CrystalDataset, read_parquet, write_parquet
from training.data.featurize import (
    crystal_from_tensors,
    crystals_from_tensors,
    featurize,
    lattice_from_params,
    params_from_lattice,
)


def random_crystal(seed: int) -> Crystal:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 9))
    lattice = Lattice.from_parameters(*rng.uniform(3, 8, 3), *rng.uniform(70, 110, 3)).matrix
    species = tuple(rng.choice(["H", "C", "O", "Ga", "In", "Se", "Te"], n))
    return Crystal(id=f"c{seed}", lattice=lattice, species=species, frac_coords=rng.uniform(0, 1, (n, 3)),
                   properties={"energy": float(rng.normal()), "gap": float(rng.uniform(0, 3))})


@pytest.fixture
def dataset() -> CrystalDataset:
    return CrystalDataset([random_crystal(s) for s in range(5)], name="toy")


def assert_same(a: Crystal, b: Crystal, atol: float = 0.0) -> None:
    assert a.id == b.id and a.species == b.species
    np.testing.assert_allclose(a.lattice, b.lattice, rtol=0, atol=atol)
    np.testing.assert_allclose(a.frac_coords, b.frac_coords, rtol=0, atol=atol)
    assert dict(a.properties) == dict(b.properties)


def test_table_schema_and_round_trip(dataset: CrystalDataset) -> None:
    table = dataset.to_table()
    assert list(table.columns) == ["id", "lattice", "species", "frac_coords", "energy", "gap"]
    first = table.iloc[0]
    assert len(first["lattice"]) == 9 and len(first["frac_coords"]) == 3 * len(first["species"])
    np.testing.assert_array_equal(np.reshape(first["lattice"], (3, 3)), dataset[0].lattice)
    back = CrystalDataset.from_table(table, name="toy", property_columns=["energy", "gap"])
    assert back.ids == dataset.ids and back.property_names == ("energy", "gap")
    for a, b in zip(dataset, back):
        assert_same(a, b)
    assert CrystalDataset.from_table(table).property_names == ()


def test_parquet_round_trip_keeps_metadata(dataset: CrystalDataset, tmp_path: Path) -> None:
    table = dataset.to_table().assign(split=["train", "train", "val", "test", "train"], flag=True)
    path = write_parquet(table, tmp_path / "sub" / "toy.parquet")
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    back = read_parquet(path, property_columns=["gap"])
    assert back.name == "toy" and back.property_names == ("gap",)
    for a, b in zip(dataset, back):
        assert a.id == b.id and a.species == b.species and a.properties["gap"] == b.properties["gap"]
        np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
    assert list(back.table["split"]) == ["train", "train", "val", "test", "train"]
    val = back.subset(np.flatnonzero(back.table["split"] == "val"))
    assert val.ids == ("c2",) and list(val.table["split"]) == ["val"]
    # a dataset written directly keeps the extra columns too
    again = read_parquet(write_parquet(back, tmp_path / "again.parquet"), property_columns=["gap", "energy"])
    assert list(again.table.columns)[:6] == ["id", "lattice", "species", "frac_coords", "gap", "energy"]
    assert list(again.table["flag"]) == [True] * 5
    assert again.property_array("energy").tolist() == dataset.property_array("energy").tolist()


def test_from_table_errors(dataset: CrystalDataset) -> None:
    table = dataset.to_table()
    with pytest.raises(ValueError, match="lacks columns \\['species'\\]"):
        CrystalDataset.from_table(table.drop(columns="species"))
    with pytest.raises(ValueError, match="unknown property column.*available: energy, gap"):
        CrystalDataset.from_table(table, property_columns=["band_gap"])
    with pytest.raises(ValueError, match="duplicate crystal id 'c0'"):
        CrystalDataset.from_table(pd.concat([table, table.iloc[:1]]))


def test_dataset_sequence_behaviour(dataset: CrystalDataset) -> None:
    assert len(dataset) == 5 and [c.id for c in dataset] == list(dataset.ids)
    assert dataset[-1].id == "c4" and dataset[1:3].ids == ("c1", "c2")
    assert dataset.subset([3, 0]).ids == ("c3", "c0")
    with pytest.raises(IndexError, match="index 5 out of range for dataset of 5"):
        dataset.subset([5])
    with pytest.raises(ValueError, match="unknown property 'x'; available: energy, gap"):
        dataset.property_array("x")


def test_crystal_validation_and_params() -> None:
    crystal = Crystal("hex", Lattice.hexagonal(3.8, 30.0).matrix, ("S", "In"), [[0, 0, 0.1], [1 / 3, 2 / 3, 0.2]])
    assert crystal.num_atoms == 2 and crystal.properties == {}
    np.testing.assert_allclose(crystal.lattice_params(), (3.8, 3.8, 30.0, 90.0, 90.0, 120.0), atol=1e-9)
    assert crystal.atomic_numbers().tolist() == [16, 49]
    with pytest.raises(ValueError, match="frac_coords must have shape \\(2, 3\\)"):
        Crystal("x", np.eye(3), ("S", "In"), [[0, 0, 0]])
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        Crystal("x", np.eye(3), ("Xx",), [[0, 0, 0]])
    with pytest.raises(ValueError, match="singular"):
        Crystal("x", np.zeros((3, 3)), ("S",), [[0, 0, 0]])
    with pytest.raises(ValueError):
        crystal.lattice[0, 0] = 1.0  # read-only


def test_structure_round_trip() -> None:
    crystal = random_crystal(3)
    structure = crystal.to_structure()
    np.testing.assert_allclose(structure.lattice.parameters, crystal.lattice_params(), atol=1e-9)
    np.testing.assert_allclose(structure.cart_coords, crystal.cart_coords(), atol=1e-12)
    back = Crystal.from_structure(structure, id=crystal.id, properties=crystal.properties)
    assert_same(crystal, back)
    ionic = Structure(Lattice.cubic(4.0), ["Fe2+", "O2-"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert Crystal.from_structure(ionic, id="feo").species == ("Fe", "O")
    disordered = Structure(Lattice.cubic(4.0), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    with pytest.raises(ValueError, match="disordered"):
        Crystal.from_structure(disordered, id="alloy")


def test_featurize_round_trip(dataset: CrystalDataset) -> None:
    crystals = list(dataset)
    t = featurize(crystals, dtype=torch.float64)
    n = sum(c.num_atoms for c in crystals)
    assert t.frac_coords.shape == (n, 3) and t.atom_types.dtype == torch.long
    assert t.lattice.shape == (5, 3, 3) and t.lengths.shape == (5, 3) and t.angles.shape == (5, 3)
    assert t.num_atoms.tolist() == [c.num_atoms for c in crystals]
    assert t.batch.tolist() == [k for k, c in enumerate(crystals) for _ in range(c.num_atoms)]
    np.testing.assert_allclose(t.lengths.numpy(), [c.lattice_params()[:3] for c in crystals], atol=1e-12)
    np.testing.assert_allclose(t.angles.numpy(), [c.lattice_params()[3:] for c in crystals], atol=1e-9)
    back = crystals_from_tensors(t, ids=dataset.ids)
    for a, b in zip(crystals, back):
        assert_same(a, Crystal(b.id, b.lattice, b.species, b.frac_coords, a.properties))
    single = crystal_from_tensors(featurize(crystals), index=2)  # float32
    assert single.id == "crystal-2" and single.species == crystals[2].species
    np.testing.assert_allclose(single.frac_coords, crystals[2].frac_coords, atol=1e-6)


def test_lattice_params_conversions_match_pymatgen() -> None:
    params = np.array([[3.0, 4.0, 5.0, 70.0, 80.0, 100.0], [3.8, 3.8, 30.0, 90.0, 90.0, 120.0]])
    matrices = lattice_from_params(torch.tensor(params[:, :3]), torch.tensor(params[:, 3:]))
    for p, m in zip(params, matrices):
        np.testing.assert_allclose(m.numpy(), Lattice.from_parameters(*p).matrix, atol=1e-12)
    lengths, angles = params_from_lattice(matrices)
    np.testing.assert_allclose(torch.cat([lengths, angles], dim=1).numpy(), params, atol=1e-9)
