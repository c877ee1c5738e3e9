"""The committed Janus III-VI dataset: complete, finite, sensible, with disjoint covering splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.paths import dataset_dir
from training.data.janus import LABELS, load_janus_dataset
from training.data.recipe import enumerate_bilayers


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.read_parquet(dataset_dir() / "bilayers.parquet")


def test_every_configuration_once(table: pd.DataFrame) -> None:
    assert len(table) == 19926
    assert table["id"].is_unique
    assert list(table["id"]) == [c.id for c in enumerate_bilayers()]
    assert table["flip_class"].nunique() == 3321
    assert table["symmetry_duplicate_of"].notna().sum() == 81


def test_labels_finite_and_in_physical_ranges(table: pd.DataFrame) -> None:
    for column in LABELS:
        assert np.isfinite(table[column]).all(), column
    assert table["formation_energy_per_atom"].between(-2.0, 0.5).all()
    assert table["interlayer_gap"].between(2.0, 5.0).all()
    assert table["a_common"].between(3.3, 4.6).all()
    assert (table["binding_energy_per_area"] < 0).mean() > 0.8


def test_at_least_lowest_stacking_relaxed(table: pd.DataFrame) -> None:
    per_class = table.groupby("flip_class")
    assert per_class["relaxed"].any().all()
    lowest = table.loc[per_class["energy_scan"].idxmin()]
    assert lowest["relaxed"].all()


def test_structures_are_8_atom_bilayers(table: pd.DataFrame) -> None:
    sample = table.sample(200, random_state=0)
    for lattice, species, frac in zip(sample["lattice"], sample["species"], sample["frac_coords"]):
        lat = np.asarray(lattice).reshape(3, 3)
        cart = np.asarray(frac).reshape(-1, 3) @ lat
        assert len(species) == 8
        assert np.ptp(cart[:, 2]) < lat[2, 2] - 19.0  # ~20 A of vacuum
        d = cart[:, None, :] - cart[None, :, :]
        # nearest in-plane images included: shift by -1, 0, +1 along a and b
        shifts = np.array([[i, j, 0] for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ lat
        dist = np.linalg.norm(d[:, :, None, :] + shifts[None, None], axis=-1)
        dist[np.arange(8), np.arange(8), 4] = np.inf
        assert dist.min() > 2.0


@pytest.mark.parametrize("column", ["split_random", "split_pair"])
def test_splits_disjoint_and_covering(table: pd.DataFrame, column: str) -> None:
    assert set(table[column]) == {"train", "val", "test"}
    shares = table[column].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6, abs=0.02)
    assert shares["val"] == pytest.approx(0.2, abs=0.02)
    assert shares["test"] == pytest.approx(0.2, abs=0.02)
    parts = [set(load_janus_dataset(split=column.split("_")[1], part=p).ids) for p in ("train", "val", "test")]
    assert sum(len(p) for p in parts) == len(table)
    assert set.union(*parts) == set(table["id"])


def test_pair_split_keeps_pairs_together(table: pd.DataFrame) -> None:
    parts_per_pair = table.groupby(["bottom", "top"])["split_pair"].nunique()
    assert (parts_per_pair == 1).all()


def test_random_split_keeps_symmetry_duplicates_together(table: pd.DataFrame) -> None:
    dups = table[table["symmetry_duplicate_of"].notna()]
    part = table.set_index("id")["split_random"]
    assert (dups["split_random"].to_numpy() == part[dups["symmetry_duplicate_of"]].to_numpy()).all()
