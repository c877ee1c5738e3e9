"""Training data from any CDVAE-layout dataset: seeded splits, the benchmark folder layout, Parquet, and a
one-line refusal of what a run cannot learn from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.data.sources import PARTS, TABLE_NAME, DataConfig, DataError, load_parts


def test_a_csv_is_split_6_2_2_seeded_and_kept_with_the_run(perovskite_csv, tmp_path: Path) -> None:
    src = perovskite_csv(tmp_path / "perov.csv", 20)
    cfg = DataConfig(path=str(src), property="heat_ref", unit="eV/atom")
    parts = load_parts(cfg, out=tmp_path / "run")
    assert (len(parts.train), len(parts.val), len(parts.test)) == (12, 4, 4)
    ids = [c.id for part in (parts.train, parts.val, parts.test) for c in part]
    assert sorted(ids) == sorted(f"p{k}" for k in range(20))  # a partition: nothing lost, nothing twice
    assert parts.data_id == "perov:data:train" and parts.table == tmp_path / "run" / TABLE_NAME
    table = pd.read_parquet(parts.table)
    assert table["split_data"].value_counts().to_dict() == {"train": 12, "val": 4, "test": 4}
    assert {"lattice", "species", "frac_coords", "reduced_formula", "num_atoms", "heat_ref"} <= set(table.columns)
    again = load_parts(DataConfig(path=str(src), property="heat_ref"), out=tmp_path / "other")
    assert [c.id for c in again.train] == [c.id for c in parts.train]  # same seed, same split
    other = load_parts(DataConfig(path=str(src), property="heat_ref", seed=7), out=tmp_path / "seed7")
    assert [c.id for c in other.train] != [c.id for c in parts.train]
    resumed = load_parts(DataConfig(path=str(src), property="heat_ref", seed=7), out=tmp_path / "run")
    assert [c.id for c in resumed.train] == [c.id for c in parts.train]  # a run keeps the split it started with


def test_rows_without_a_finite_property_are_left_out_and_named(perovskite_csv, tmp_path: Path) -> None:
    src = perovskite_csv(tmp_path / "perov.csv", 20)
    parts = load_parts(DataConfig(path=str(src), property="band_gap"), out=tmp_path / "run")
    assert sum(len(p) for p in (parts.train, parts.val, parts.test)) == 19
    assert len(parts.skipped) == 1 and "row 5 (p3)" in parts.skipped[0]


def test_the_benchmark_folder_layout_keeps_its_split(perovskite_csv, tmp_path: Path) -> None:
    folder = tmp_path / "bench"
    folder.mkdir()
    for part, n in zip(PARTS, (6, 3, 3), strict=True):
        perovskite_csv(folder / f"{part}.csv", n, seed=len(part), edit=lambda r, part=part: {
            **r, "material_id": f"{part}-{r['material_id']}"})
    parts = load_parts(DataConfig(path=str(folder), property="heat_ref"), out=tmp_path / "run")
    assert [c.id for c in parts.train] == [f"train-p{k}" for k in range(6)]
    assert [c.id for c in parts.test] == ["test-p0", "test-p1", "test-p2"] and parts.data_id == "bench:data:train"


def test_a_parquet_from_the_import_is_split_like_a_csv(perovskite_csv, tmp_path: Path) -> None:
    from training.data.cdvae_csv import import_cdvae_csv
    from training.data.crystal import write_parquet

    src = perovskite_csv(tmp_path / "perov.csv", 20)
    table = write_parquet(import_cdvae_csv(src, ["heat_ref"]).dataset, tmp_path / "perov.parquet")
    parts = load_parts(DataConfig(path=str(table), property="heat_ref"), out=tmp_path / "run")
    assert (len(parts.train), len(parts.val), len(parts.test)) == (12, 4, 4)
    with pytest.raises(DataError, match=r"no usable row: all 20 rows have more than data.max_atoms=4 atoms"):
        load_parts(DataConfig(path=str(table), property="heat_ref", max_atoms=4), out=tmp_path / "small")


@pytest.mark.parametrize(("make", "prop", "message"), [
    (lambda d, _csv: d / "missing.csv", "heat_ref", "no dataset at"),
    (lambda d, _csv: (d / "half").mkdir() or d / "half", "heat_ref", "lacks train.csv, val.csv, test.csv"),
    (lambda d, csv: csv(d / "p.csv", 20), "bandgap", "available: .*heat_ref"),
    (lambda d, csv: csv(d / "p.csv", 5, edit=lambda r: {**r, "heat_ref": "nan"}), "heat_ref",
     r"no usable row \(read 5 rows, kept 0.*first: p.csv row 2 \(p0\)"),
])
def test_what_cannot_be_learned_from_is_refused_in_one_line(perovskite_csv, tmp_path: Path, make, prop: str,  # noqa: ANN001
                                                            message: str) -> None:
    path = make(tmp_path, perovskite_csv)
    with pytest.raises(DataError, match=message) as err:
        load_parts(DataConfig(path=str(path), property=prop), out=tmp_path / "run")
    assert "\n" not in str(err.value)
