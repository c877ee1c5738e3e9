"""The app's pages as a user meets them: which results the candidates page treats as candidates, the 3D
viewer (whole layers, element legend, no external host), the model page's labelled figures, parameter count
and parity table, the dataset histograms' size, and the offline favicon and toolbar settings."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES_PAGE = "views/candidates.py"
MODEL_PAGE = "views/model.py"
DATASET_PAGE = "views/dataset.py"
# Jmol colours (as 3Dmol.js's "Jmol" scheme has them) of the bilayer fixture's elements
JMOL = {"S": "#FFFF30", "Ga": "#C28F8F"}


def _texts(elements) -> str:  # noqa: ANN001
    return "\n".join(str(e.value) for e in elements)


def _run_sql(at: AppTest, sql: str) -> AppTest:
    at.text_area(key="candidates_sql").set_value(sql)
    at.button(key="candidates_run").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _offers_candidates(at: AppTest) -> bool:
    picker = [s for s in at.selectbox if s.key == "candidates_pick"]
    zips = [d for d in at.get("download_button") if "ZIP" in d.proto.label]
    assert bool(picker) == bool(zips), "the picker and the ZIP download go together"
    return bool(picker)


# -- candidates page: which results hold candidate ids ----------------------------------------------------
def test_runs_example_is_not_taken_for_candidates(bilayer, app_dirs: Path, open_app, store_candidates) -> None:
    ids = store_candidates([bilayer(0.0), bilayer(0.5), bilayer(1.0)])  # runs 1-3 and candidates 1-3
    at = open_app(CANDIDATES_PAGE)
    assert any("candidate ids" in c and "`candidates`" in c for c in (x.value for x in at.caption)), \
        "the page states which results select and download work on"

    at.selectbox(key="candidates_example").select("Runs").run(timeout=60)
    at.button(key="candidates_run").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe[0].value["id"].tolist() == [3, 2, 1]  # run ids, in the same range as candidate ids
    assert not _offers_candidates(at) and not at.get("iframe")
    assert "no candidate ids" in _texts(at.info)

    at.selectbox(key="candidates_example").select("Latest candidates").run(timeout=60)
    at.button(key="candidates_run").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert _offers_candidates(at) and "no candidate ids" not in _texts(at.info)
    picker = at.selectbox(key="candidates_pick")
    formula = at.dataframe[0].value["formula"].iloc[0]
    assert list(picker.options) == [f"#{i} {formula}" for i in sorted(ids, reverse=True)]


QUERIES = [  # (SQL, whether its result holds candidate ids)
    ("SELECT r.id, c.formula FROM runs r JOIN candidates c ON c.run_id = r.id", False),  # run ids beside formulas
    ("SELECT run_id AS id, formula FROM candidates", False),
    ("WITH candidates AS (SELECT * FROM runs) SELECT id FROM candidates", False),
    ("SELECT id FROM candidates UNION ALL SELECT id FROM runs", False),
    ("SELECT c.id, c.formula, r.mode FROM candidates c JOIN runs r ON r.id = c.run_id", True),
    ("SELECT r.mode, c.id AS candidate_id FROM runs r JOIN candidates c ON c.run_id = r.id", True),
    ("SELECT * FROM candidates", True),
    ("SELECT id AS cid, formula FROM candidates", True),
]


def test_only_candidate_ids_are_selected(bilayer, app_dirs: Path, open_app, store_candidates) -> None:
    store_candidates([bilayer(0.0), bilayer(0.5)])
    at = open_app(CANDIDATES_PAGE)
    for sql, offered in QUERIES:
        _run_sql(at, sql)
        assert not at.dataframe[0].value.empty, sql
        assert _offers_candidates(at) is offered, sql
        assert ("no candidate ids" in _texts(at.info)) is not offered, sql


# -- candidates page: the 3D viewer ---------------------------------------------------------------------
def _viewer(at: AppTest) -> str:
    (frame,) = at.get("iframe")
    return frame.proto.srcdoc


def _drawn_structure(html: str) -> Structure:
    """The crystal the viewer draws: the CIF handed to 3Dmol's addModel."""
    (text,) = re.findall(r'\.addModel\(("(?:[^"\\]|\\.)*"),\s*"cif"\)', html)
    return Structure.from_str(json.loads(text), fmt="cif")


def test_viewer_draws_each_layer_whole(bilayer, app_dirs: Path, open_app, store_candidates) -> None:
    # the fixture's bilayer moved up so the cell boundary cuts through the upper layer
    moved = bilayer(19.0)
    split = Structure(moved.lattice, moved.species, np.mod(moved.frac_coords, 1.0))
    c = split.lattice.c
    heights = np.sort(split.frac_coords[:, 2]) * c
    assert heights.max() - heights.min() > 20.0, "precondition: a layer is split across the boundary"
    store_candidates([split])
    html = _viewer(open_app(CANDIDATES_PAGE))
    drawn = _drawn_structure(html)

    # the same crystal (3 x 3 in-plane), only translated
    assert len(drawn) == 9 * len(split)
    assert StructureMatcher().fit(drawn, split * (3, 3, 1))
    # every atom inside the drawn cell and the atoms one contiguous slab: the bilayer's own thickness
    # (two 3.75 Å layers 3.2 Å apart), the vacuum split evenly below and above it
    z = np.sort(drawn.frac_coords[:, 2]) * c
    assert 0.0 <= z.min() and z.max() <= c
    assert z.max() - z.min() == pytest.approx(12.7, abs=1e-3)
    assert z.min() == pytest.approx(c - z.max(), abs=1e-3)
    assert np.diff(z).max() == pytest.approx(3.2, abs=1e-3)  # the largest gap inside the slab: the vdW gap

    from scoring.layers import analyse_layers

    before, after = analyse_layers(split), analyse_layers(drawn)
    assert after.n_layers == before.n_layers == 2
    assert after.interlayer_gap == pytest.approx(before.interlayer_gap, abs=1e-6)


def test_viewer_has_an_element_legend_in_its_colours_and_no_external_host(bilayer, app_dirs: Path, open_app,
                                                                            store_candidates) -> None:
    store_candidates([bilayer(0.0)])
    html = _viewer(open_app(CANDIDATES_PAGE))
    legend = html[html.index('class="element-legend"'):]
    for element, colour in JMOL.items():
        # drawn in its colour ...
        style = re.search(r'setStyle\(\{"elem": "' + element + r'"\},(\{.*?\})\);', html)
        assert style, element
        assert json.loads(style.group(1))["sphere"]["color"].upper() == colour
        # ... and named in the legend with the same colour
        assert re.search(rf"background:{colour}\"></span> {element}</span>", legend, re.IGNORECASE), element
    assert legend.index("> S</span") < legend.index("> Ga</span")  # by atomic number: S (16), Ga (31)
    assert "http" not in html and "/app/static/3Dmol-min.js" in html


# -- model page ------------------------------------------------------------------------------------------
def _metrics_table(at: AppTest):  # noqa: ANN202
    return next(d.value for d in at.dataframe if list(d.value.columns)[:2] == ["figure", "source"])


def test_model_page_labels_both_reconstruction_figures(shipped_models: Path, open_app) -> None:
    assert (ROOT / "reports" / "cdvae-plus-janus" / "metrics.json").is_file(), "the evaluation report is not shipped"
    at = open_app(MODEL_PAGE)
    table = _metrics_table(at)
    assert list(table.columns) == ["figure", "source", "value", "crystals", "reference"]
    recon = table[table["figure"] == "Reconstruction match rate, random split"].set_index("source")
    report = json.loads((ROOT / "reports" / "cdvae-plus-janus" / "metrics.json").read_text())
    card = json.loads((ROOT / "artifacts" / "cdvae-plus-janus" / "manifest.json").read_text())["metrics"]
    r, m = report["reconstruction"]["model"]["random"], card["reconstruction"]["model"]
    assert recon.loc["evaluation report", "value"].startswith(f"{100 * r['match_rate']:.2f} %")
    assert recon.loc["model card at export", "value"].startswith(f"{100 * m['match_rate']:.2f} %")
    assert recon.loc["evaluation report", "crystals"].startswith(f"{r['count']:,} of {r['available']:,} test")
    assert recon.loc["model card at export", "crystals"].startswith(
        f"{m['count']:,} of {card['test_crystals']['total']:,} test")
    assert set(table["source"]) == {"evaluation report", "model card at export"}

    text = _texts(at.markdown)
    assert "`vdwgen evaluate artifacts/cdvae-plus-janus" in text and "`vdwgen model-card`" in text
    assert "Why two reconstruction figures?" in text
    assert f"sample size: {m['count']:,} crystals (model card at export) against {r['count']:,}" in text
    assert "StructureMatcher(stol 0.5, angle_tol 10, ltol 0.3)" in text


def test_model_page_without_report_labels_the_model_card(shipped_models: Path, open_app, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VDWGEN_REPORTS_DIR", str(tmp_path / "no-reports"))
    at = open_app(MODEL_PAGE)
    table = _metrics_table(at)
    assert set(table["source"]) == {"model card at export"}
    assert "Why two reconstruction figures?" not in _texts(at.markdown)


def test_model_page_counts_parameters_once(shipped_models: Path, open_app) -> None:
    at = open_app(MODEL_PAGE)
    parameters = json.loads((ROOT / "artifacts" / "cdvae-plus-janus" / "manifest.json").read_text())[
        "model"]["parameters"]
    stage1 = parameters["encoder"] + parameters["decoder"] + parameters["fusion_and_heads"]
    assert stage1 + parameters["generator"] == parameters["total"]
    assert {m.label: m.value for m in at.metric}["Parameters"] == f"{parameters['total']:,}"
    assert f"stage 1 {stage1:,} + generator {parameters['generator']:,}" in _texts(at.caption)

    at.selectbox(key="model_pick").select_index(1).run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    base = json.loads((ROOT / "artifacts" / "cdvae-baseline-janus" / "manifest.json").read_text())[
        "model"]["parameters"]
    assert {m.label: m.value for m in at.metric}["Parameters"] == f"{base['total']:,}"
    assert f"stage 1 {base['total']:,} (no generator)" in _texts(at.caption)


def test_model_page_shows_parity_as_a_labelled_table(shipped_models: Path, open_app) -> None:
    at = open_app(MODEL_PAGE)
    table = next(d.value for d in at.dataframe if "tolerance" in d.value.columns).set_index("part")
    parity = json.loads((ROOT / "artifacts" / "cdvae-plus-janus" / "manifest.json").read_text())["parity"]
    assert list(table.columns) == ["compared", "max difference", "unit", "tolerance", "pass"]
    assert set(table.index) == {"condition.onnx", "generator.onnx", "fusion_heads.onnx", "decoder.pt"}
    assert table.loc["decoder.pt", "unit"] == "Å" and "displacement" in table.loc["decoder.pt", "compared"]
    assert table.loc["decoder.pt", "tolerance"] == f"{parity['tolerance']['decoder_angstrom']:.0e}"
    assert table.loc["generator.onnx", "tolerance"] == f"{parity['tolerance']['onnx_scaled']:.0e}"
    assert float(table.loc["generator.onnx", "max difference"]) == pytest.approx(parity["generator.onnx"], rel=1e-2)
    assert (table["pass"] == "yes").all()
    assert not [j for j in at.json if "condition.onnx" in str(j.value)], "no raw parity JSON"


def test_model_page_names_the_sampler_each_model_serves(shipped_models: Path, open_app) -> None:
    at = open_app(MODEL_PAGE)
    for index, name in enumerate(("cdvae-plus-janus", "cdvae-baseline-janus")):
        if index:
            at.selectbox(key="model_pick").select_index(index).run(timeout=60)
        sampling = json.loads((ROOT / "artifacts" / name / "manifest.json").read_text())["sampling"]
        text = next(m.value for m in at.markdown if "Langevin steps per level" in m.value and "noise ×" in m.value)
        assert f"noise × {sampling.get('noise_scale', 1.0):g} (1 = the reference sampler)" in text
        assert f"sites typed by `{sampling.get('site_types', 'argmax')}`" in text
        assert f"free compositions by `{sampling.get('compositions', 'head')}`" in text


# -- dataset page ----------------------------------------------------------------------------------------
def test_dataset_histograms_keep_their_own_size(app_dirs: Path, open_app, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    folder = app_dirs / "dataset"
    pd.DataFrame({"id": ["jb-00000", "jb-00001"], "formula": ["Al4S4", "Ga4Se4"],
                  "formation_energy_per_atom": [-1.0, -0.6]}).to_parquet(folder / "bilayers.parquet")
    for name in ("formation_energy", "interlayer_energy", "interlayer_gap"):
        plt.imsave(folder / f"hist_{name}.png", np.zeros((40, 66)))
    widths: list = []
    real = st.image

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        widths.append(kwargs.get("width"))
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "image", spy)
    at = open_app(DATASET_PAGE)
    # one flowing list at the pictures' own width ("content": never stretched, never squeezed into
    # a column per picture), so as many fit side by side as the screen allows
    (images,) = at.image
    assert [img.caption for img in images.proto.imgs] == ["hist formation energy", "hist interlayer energy",
                                                          "hist interlayer gap"]
    assert widths == ["content"]


def test_the_dataset_of_a_model_trained_on_its_own_data_is_browsable(
        app_dirs: Path, perovskite_artifact: Path, open_app) -> None:  # noqa: ANN001
    import pandas as pd

    shutil.copytree(perovskite_artifact, app_dirs / "artifacts" / "perov")
    table = pd.read_parquet(perovskite_artifact / "training_data.parquet")
    at = open_app(DATASET_PAGE)  # no Janus table in this dataset folder: the model's dataset is offered
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="dataset_choice").options == ["perov (trained perov)"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Crystals"] == f"{len(table):,}" and metrics["Atoms per cell"] == "5"
    assert any("train" in c.value and "learned from the train part" in c.value for c in at.caption)
    ranges = at.dataframe[0].value.set_index("column")
    assert ranges.loc["heat_ref", "unit"] == "eV/atom" and ranges.loc["heat_ref", "model property"] == "yes"
    assert ranges.loc["heat_ref", "min"] == pytest.approx(table["heat_ref"].min())
    at.selectbox(key="dataset_element").set_value("Zr").run()
    crystals = at.dataframe[1].value
    has_zr = table["species"].map(lambda species: "Zr" in set(species))
    assert len(crystals) == int(has_zr.sum()) and all("Zr" in e.split() for e in crystals["elements"])


# -- offline and toolbar ---------------------------------------------------------------------------------
def test_page_icon_needs_no_external_host(app_dirs: Path, open_app, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.commands.page_config import _get_favicon_string

    seen: dict = {}
    real = st.set_page_config

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "set_page_config", spy)
    open_app()
    # an emoji becomes a data: URL in the browser; ":material/...:" an SVG from fonts.gstatic.com
    assert _get_favicon_string(seen["page_icon"]).startswith("emoji:")


def test_streamlit_config_hides_the_deploy_button() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["client"]["toolbarMode"] == "viewer"
    assert config["server"]["enableStaticServing"] is True


def test_pages_folder_is_not_streamlits_magic_pages_folder() -> None:
    # A folder named pages/ beside app.py makes Streamlit build its own file-name navigation, and a deep link
    # such as /candidates on a fresh server then opens the page without app.py (no layout, titles or icon).
    app = Path(__file__).resolve().parents[2] / "webapp"
    assert not (app / "pages").exists()
    assert {p.name for p in (app / "views").glob("*.py")} == {"generate.py", "design.py", "candidates.py", "model.py",
                                                         "dataset.py"}
