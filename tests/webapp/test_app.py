"""The Streamlit app, run in-process with AppTest: both pages, with and without data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Composition, Structure
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
DATASET_PAGE = "views/dataset.py"


def _wait_for_the_run(at: AppTest) -> AppTest:
    """The Generate page runs a request in a background thread: wait for it to end, then show the page again."""
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["generate_job"].wait(120), "the run did not end"
    return at.run(timeout=60)


def _infos(at: AppTest) -> str:
    return "\n".join(str(box.value) for box in at.info)


def test_generate_page_without_model(app_dirs: Path, open_app) -> None:
    at = open_app()
    assert "No model artifacts found" in _infos(at)
    assert not at.radio


def test_generate_page_names_a_broken_manifest(app_dirs: Path, open_app) -> None:
    model = app_dirs / "artifacts" / "cdvae-demo"
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({"name": "cdvae-demo", "version": "0"}))
    at = open_app()
    assert at.error and "cdvae-demo" in at.error[0].value
    assert "No model artifacts found" in _infos(at)


def test_generate_page_formula_request_on_the_shipped_model(shipped_models: Path, open_app) -> None:
    at = open_app()
    assert list(at.radio(key="generate_mode").options) == ["Formation energy", "Formula", "Unconditional"]
    at.radio(key="generate_mode").set_value("formula").run(timeout=60)
    at.text_input(key="generate_formula").set_value("GaInSSe")
    at.number_input(key="generate_count").set_value(2)
    at.number_input(key="generate_steps").set_value(1)
    _wait_for_the_run(at.button(key="generate_run").click().run(timeout=120))
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table["formula"]) == ["Ga2In2S2Se2", "Ga2In2S2Se2"] and list(table["atoms"]) == [8, 8]
    # relaxation is on by default: the relaxed POSCAR and CIF, the POSCAR as generated, the ZIP
    assert [b.label for b in at.get("download_button")] == [
        "POSCAR (relaxed)", "CIF (relaxed)", "POSCAR as generated",
        "All files (ZIP: relaxed and generated POSCARs, CIFs, summary.csv)"]


def test_generate_page_energy_request_and_bad_formula(shipped_models: Path, open_app) -> None:
    at = open_app()
    at.number_input(key="generate_target").set_value(-0.7)
    at.number_input(key="generate_count").set_value(2)
    at.number_input(key="generate_steps").set_value(1)
    at.number_input(key="generate_ratio").set_value(5)
    _wait_for_the_run(at.button(key="generate_run").click().run(timeout=120))
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.dataframe[0].value) == 2
    at.radio(key="generate_mode").set_value("formula").run(timeout=60)
    at.text_input(key="generate_formula").set_value("FeS")
    at.button(key="generate_run").click().run(timeout=60)
    assert at.error and "allowed elements" in at.error[0].value


def test_dataset_page_not_built(app_dirs: Path, open_app) -> None:
    at = open_app(DATASET_PAGE)
    assert "not built" in _infos(at)
    assert "vdwgen dataset build" in _infos(at)
    assert not at.dataframe


def _small_dataset(folder: Path) -> None:
    """Six rows and only some of the columns the page knows (no gap, no relaxed)."""
    pd.DataFrame({
        "id": [f"jb-{i:05d}" for i in range(6)],
        "formula": ["Al4S4", "Al4S4", "Ga2In2S4", "Ga2In2S4", "Ga4Se4", "Ga4Se4"],
        "bottom": ["S-Al-Al-S", "S-Al-Al-S", "S-Ga-Ga-S", "S-Ga-Ga-S", "Se-Ga-Ga-Se",
                   "Se-Ga-Ga-Se"],
        "top": ["S-Al-Al-S", "S-Al-Al-S", "S-In-In-S", "S-In-In-S", "Se-Ga-Ga-Se",
                "Se-Ga-Ga-Se"],
        "stacking": ["r0_sO", "r0_sP", "r0_sO", "r0_sP", "r0_sO", "r0_sP"],
        "formation_energy_per_atom": [-1.05, -1.06, -0.80, -0.81, -0.60, -0.61],
        "unrelated_column": [1, 2, 3, 4, 5, 6],
    }).to_parquet(folder / "bilayers.parquet")


def test_dataset_page_with_partial_columns(app_dirs: Path, open_app) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = app_dirs / "dataset"
    _small_dataset(folder)
    plt.imsave(folder / "hist_formation_energy.png", [[0.0, 1.0], [1.0, 0.0]])

    at = open_app(DATASET_PAGE)
    assert not _infos(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Configurations"] == "6"
    assert metrics["Monolayers"] == "4"
    ranges = at.dataframe[0].value
    row = ranges.set_index("column").loc["formation_energy_per_atom"]
    assert row["label"].startswith("Formation energy") and row["min"] <= row["median"] <= row["max"]
    assert len(at.image) == 1

    table = at.dataframe[1].value
    assert list(table.columns) == ["id", "formula", "bottom", "top", "stacking",
                                   "formation_energy_per_atom"]
    assert len(table) == 6

    at.selectbox(key="dataset_monolayer").select("S-In-In-S").run(timeout=30)
    assert not at.exception
    assert list(at.dataframe[1].value["id"]) == ["jb-00002", "jb-00003"]

    at.selectbox(key="dataset_monolayer").select("All").run(timeout=30)
    at.slider(key="dataset_formation_energy").set_range(-0.9, -0.6).run(timeout=30)
    assert not at.exception
    assert sorted(at.dataframe[1].value["id"]) == ["jb-00002", "jb-00003", "jb-00004",
                                                   "jb-00005"]


def test_dataset_page_with_unreadable_table(app_dirs: Path, open_app) -> None:
    (app_dirs / "dataset" / "bilayers.parquet").write_bytes(b"not a parquet file")
    at = open_app(DATASET_PAGE)
    assert at.error and "Could not read" in at.error[0].value


@pytest.mark.skipif(not (ROOT / "data" / "janus_iii_vi" / "bilayers.parquet").is_file(),
                    reason="the committed dataset is not in this checkout")
def test_dataset_page_on_the_committed_dataset(open_app, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VDWGEN_DATASET_DIR", raising=False)
    monkeypatch.delenv("VDWGEN_ROOT", raising=False)
    at = open_app(DATASET_PAGE)
    assert not _infos(at)
    assert len(at.dataframe) == 2 and len(at.dataframe[1].value) > 0
    assert at.metric


CANDIDATES_PAGE = "views/candidates.py"
MODEL_PAGE = "views/model.py"


def test_candidates_page_on_an_empty_store(app_dirs: Path, open_app) -> None:
    at = open_app(CANDIDATES_PAGE)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Runs": "0", "Candidates": "0", "Valid": "0", "Novel": "0"}
    assert at.text_area(key="candidates_sql").value.startswith("SELECT")
    at.text_area(key="candidates_sql").set_value("SELECT * FROM read_text('/etc/passwd')")
    at.button(key="candidates_run").click().run(timeout=30)
    assert at.error and "outside the store" in at.error[0].value


def test_generated_runs_are_stored_and_filtered_on_the_candidates_page(shipped_models: Path, open_app) -> None:
    at = open_app()
    at.radio(key="generate_mode").set_value("formula").run(timeout=60)
    at.number_input(key="generate_count").set_value(2)
    at.number_input(key="generate_steps").set_value(1)
    _wait_for_the_run(at.button(key="generate_run").click().run(timeout=120))
    assert not at.exception, [e.value for e in at.exception]
    assert any("Stored as run 1" in s.value for s in at.success)

    at.switch_page(CANDIDATES_PAGE).run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric}["Candidates"] == "2"
    at.text_area(key="candidates_sql").set_value(
        "SELECT id, formula, n_layers, valid FROM candidates WHERE formula = 'Ga2In2S2Se2' ORDER BY id DESC")
    at.button(key="candidates_run").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe[0].value["id"].tolist() == [2, 1]
    at.selectbox(key="candidates_pick").select(1).run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    picked = Structure.from_str(at.code[0].value, fmt="poscar")  # the POSCAR of the picked candidate
    assert picked.composition == Composition("Ga2In2S2Se2")


def test_model_page_shows_the_manifest(shipped_models: Path, open_app) -> None:
    at = open_app(MODEL_PAGE)
    assert at.selectbox(key="model_pick").value.name == "cdvae-plus-janus"  # the conditional model before the baseline
    assert at.selectbox(key="model_pick").options == ["cdvae-plus-janus", "cdvae-baseline-janus"]
    assert any(m.label == "Parameters" for m in at.metric)


def test_model_page_shows_the_evaluation_report(shipped_models: Path, open_app, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    reports = tmp_path / "reports"
    monkeypatch.setenv("VDWGEN_REPORTS_DIR", str(reports))
    at = open_app(MODEL_PAGE)
    name = at.selectbox(key="model_pick").value.name
    assert "No evaluation report for this model yet" in _infos(at)
    folder = reports / name
    folder.mkdir(parents=True)
    (folder / "report.md").write_text(f"# Evaluation of `{name}`\n\n## Reconstruction (Table 1)\n\n"
                                      "| model | match |\n|---|---|\n| ours | 4.00 |\n\n## Figures\n\n![x](x.png)\n")
    at = open_app(MODEL_PAGE)
    text = "\n".join(str(m.value) for m in at.markdown)
    assert "Reconstruction (Table 1)" in text and "![x]" not in text


def test_candidates_page_without_dataset_offers_no_oracle_check(bilayer, app_dirs: Path, open_app,
                                                                store_candidates) -> None:
    store_candidates([bilayer()], -0.7)
    at = open_app(CANDIDATES_PAGE)
    assert "oracle check is not available" in _infos(at) and "references.json" in _infos(at)
    assert not [b for b in at.button if b.key == "candidates_oracle_check"]


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "data" / "janus_iii_vi" / "bilayers.parquet").is_file(),
                    reason="the committed dataset is not in this checkout")
def test_candidates_page_checks_a_candidate_with_the_oracle(perturbed_dataset_bilayer, app_dirs: Path, open_app,
                                                            store_candidates) -> None:
    import shutil

    from store.database import open_store
    from webapp.oracle_check import BUTTON_LABEL

    shutil.copy(ROOT / "data" / "janus_iii_vi" / "references.json", app_dirs / "dataset")
    structure, label = perturbed_dataset_bilayer()  # a dataset bilayer with its atoms moved a little
    (cid,) = store_candidates([structure], label + 0.02)
    at = open_app(CANDIDATES_PAGE)
    assert at.button(key="candidates_oracle_check").label == BUTTON_LABEL
    assert any("Not checked by the oracle yet" in c.value for c in at.caption)
    at.button(key="candidates_oracle_check").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]

    stored = open_store(app_dirs / "var" / "candidates.duckdb").candidate(cid)
    assert abs(stored["oracle_formation_energy"] - label) < 0.005 and stored["oracle_converged"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Oracle E_f (eV/atom)"] == f"{stored['oracle_formation_energy']:.3f}"
    assert metrics["Predicted E_f (eV/atom)"] == f"{label + 0.02:.3f}" and metrics["Converged"] == "yes"
    assert metrics["Steps"] == str(stored["oracle_steps"])

    later = open_app(CANDIDATES_PAGE)  # a new session: the stored verdict shows without a click
    assert {m.label: m.value for m in later.metric}["Oracle E_f (eV/atom)"] == metrics["Oracle E_f (eV/atom)"]
    assert any(d.proto.label == "POSCAR (relaxed)" for d in later.get("download_button"))
