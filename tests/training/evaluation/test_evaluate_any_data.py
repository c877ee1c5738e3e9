"""`vdwgen evaluate` on a model trained with `vdwgen train --data` (perovskites): measured on its own held-out part.

The oracle's stages cannot judge a model of another property and other elements: they are skipped, and the
metrics and the report say why. A dataset whose evaluated part holds the model's training crystals is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Structure

from scoring.validity import compositionally_valid, structurally_valid
from vdwgen.cli import main

ORACLE_STAGES = ("energy_targets", "formulas", "relaxation", "new_and_right")


@pytest.fixture(scope="module")
def perov_report(perovskite_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("perov_report")
    assert main(["evaluate", str(perovskite_artifact), "--quick", "--out", str(out), "--steps-per-level", "1",
                 "--workers", "1"]) == 0
    return out


def _carried_test_part(artifact: Path) -> pd.DataFrame:
    table = pd.read_parquet(artifact / "training_data.parquet")
    return table[table["split_data"] == "test"]


def test_the_held_out_part_is_measured_and_the_oracle_stages_say_why_they_were_skipped(
        perov_report: Path, perovskite_artifact: Path) -> None:
    metrics = json.loads((perov_report / "metrics.json").read_text())
    test = _carried_test_part(perovskite_artifact)
    assert metrics["settings"]["dataset"] == "perov" and metrics["settings"]["property"] == "heat_ref"
    assert metrics["settings"]["baseline"] is None
    for stage in ORACLE_STAGES:
        assert "heat_ref" in metrics[stage]["skipped"]  # the reason names what the oracle cannot check
    recon = metrics["reconstruction"]["model"]["data"]
    assert recon["available"] == len(test) and recon["count"] == min(4, len(test))
    assert "baseline" not in metrics["reconstruction"]
    head = metrics["property"]
    assert head["count"] == len(test) and head["unit"] == "eV/atom"
    assert head["label_std"] == pytest.approx(test["heat_ref"].std(ddof=0))
    assert head["model"]["mae"] >= 0 and head["model"]["rmse"] >= head["model"]["mae"]
    report = (perov_report / "report.md").read_text()
    assert "Stages not run" in report and "`heat_ref` (eV/atom)" in report and "perov-5" in report
    assert "Formation-energy targets" not in report


def test_generation_figures_are_those_of_the_stored_perovskites(perov_report: Path) -> None:
    metrics = json.loads((perov_report / "metrics.json").read_text())
    poscars = json.loads((perov_report / "_cache" / "samples_model.json").read_text())["poscars"]
    structures = [Structure.from_str(p, fmt="poscar") for p in poscars]
    assert len(structures) == metrics["samples"]["count"] == 16
    assert {len(s) for s in structures} == {5}  # the model's only cell size
    validity = metrics["generation"]["model"]["validity"]
    assert validity["structural"] == pytest.approx(np.mean([structurally_valid(s) for s in structures]))
    assert validity["compositional"] == pytest.approx(np.mean([compositionally_valid(s.composition)
                                                               for s in structures]))
    assert "baseline" not in metrics["generation"]
    assert metrics["generation"]["reference"]["split"] == "data:test"


def test_the_training_csv_given_as_data_is_split_as_training_split_it(
        perovskite_artifact: Path, tmp_path: Path) -> None:
    csv = perovskite_artifact.parent.parent / "perov.csv"
    assert main(["evaluate", str(perovskite_artifact), "--data", str(csv), "--quick", "--out", str(tmp_path),
                 "--stage", "property", "--workers", "1"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["settings"]["evaluated_on"].endswith("data.parquet")
    assert metrics["property"]["count"] == len(_carried_test_part(perovskite_artifact))


def test_a_dataset_whose_test_part_holds_training_crystals_is_refused(
        perovskite_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = perovskite_artifact.parent.parent / "perov.csv"
    folder = tmp_path / "leaky"
    folder.mkdir()
    for part in ("train", "val", "test"):
        shutil.copy(csv, folder / f"{part}.csv")  # every crystal in every part
    assert main(["evaluate", str(perovskite_artifact), "--data", str(folder), "--quick",
                 "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "in perov's training part" in err and len(err.splitlines()) == 1


def test_a_dataset_without_the_model_property_is_refused_with_its_columns(
        perovskite_artifact: Path, perovskite_csv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = perovskite_csv(tmp_path / "gaps.csv", 12)
    pd.read_csv(csv).drop(columns=["heat_ref"]).to_csv(csv, index=False)
    assert main(["evaluate", str(perovskite_artifact), "--data", str(csv), "--quick",
                 "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "heat_ref" in err and "band_gap" in err and len(err.splitlines()) == 1
