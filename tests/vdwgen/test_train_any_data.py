"""`vdwgen train --data` on a dataset that is not ours (cubic perovskites), through ship, export and generate:
the property's name and unit, the vocabulary, the cell size and the training table travel in the manifest, and
the served model judges novelty against its own training crystals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from store.database import close_store, open_store
from store.query import run_query
from vdwgen.cli import main


def test_the_manifest_carries_the_datasets_property_vocabulary_and_table(perovskite_artifact: Path) -> None:
    manifest = json.loads((perovskite_artifact / "manifest.json").read_text())
    prop = manifest["model"]["property"]
    assert prop["name"] == "heat_ref" and prop["unit"] == "eV/atom" and prop["min"] < prop["max"]
    assert set(manifest["model"]["vocabulary"]) == {"Sr", "Ba", "Ca", "Ti", "Zr", "O"}
    assert manifest["model"]["cell_sizes"] == {"5": 18}  # the 6:2:2 training part of 30 crystals
    data = manifest["training"]["data"]
    assert data["id"] == "perov:data:train" and data["table"] == "training_data.parquet" and data["rows"] == 18
    assert "training_data.parquet" in manifest["files"]  # hashed with the rest of the artifact


def test_the_served_model_generates_and_judges_novelty_against_its_own_data(
        perovskite_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.duckdb"
    assert main(["generate", "--formula", "SrTiO3", "--n", "2", "--steps-per-level", "1",
                 "--artifacts", str(perovskite_artifact), "--db", str(db)]) == 0
    captured = capsys.readouterr()
    assert "novelty not judged" not in captured.err
    rows = run_query(open_store(db), "SELECT formula, novel, num_atoms FROM candidates ORDER BY id").frame
    close_store(db)
    assert rows["formula"].tolist() == ["O3Sr1Ti1"] * 2 and rows["num_atoms"].tolist() == [5, 5]
    assert rows["novel"].notna().all()  # judged against the artifact's own training table
    assert main(["generate", "--formula", "GaInSSe", "--artifacts", str(perovskite_artifact)]) == 2
    assert "allowed elements: " in capsys.readouterr().err  # the vocabulary is the perovskites'


@pytest.mark.parametrize(("extra", "message"), [
    ([], "--data needs --property COLUMN"),
    (["--property", "bandgap"], "unknown property column"),
    (["--property", "heat_ref", "--property", "band_gap"], "--property takes one column (got heat_ref, band_gap)"),
])
def test_bad_data_options_are_one_line(perovskite_csv: Callable[..., Path], tmp_path: Path, extra: list[str],
                                       message: str, capsys: pytest.CaptureFixture[str]) -> None:
    csv = perovskite_csv(tmp_path / "perov.csv", 10)
    assert main(["train", "--data", str(csv), "--out", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
