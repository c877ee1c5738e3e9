"""The Design page as a user meets it: targets as rows, one-line refusals, a run in the background, every
criterion of every crystal in the table next to what the dataset already holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from webapp.run_results import design_table

DESIGN_PAGE = "views/design.py"
JOB = "design_job"


def test_without_a_predictor_the_page_says_how_to_make_one(app_dirs: Path, open_app) -> None:
    at = open_app(DESIGN_PAGE)
    assert any("vdwgen export-predictor" in i.value for i in at.info)


def _with_predictor(app_dirs: Path, tiny_predictor_artifact: Path, open_app):  # noqa: ANN001, ANN202
    shutil.copytree(tiny_predictor_artifact, app_dirs / "artifacts" / "predictor-tiny")
    return open_app(DESIGN_PAGE)


def test_a_bad_target_is_refused_in_one_line(app_dirs: Path, tiny_predictor_artifact: Path, open_app) -> None:
    at = _with_predictor(app_dirs, tiny_predictor_artifact, open_app)
    rows = pd.DataFrame([{"label": "interlayer_gap", "condition": "between", "low": 3.4, "high": 3.0}])
    at.session_state["design_targets"] = {"edited_rows": {}, "added_rows": [], "deleted_rows": [0, 1, 2]}
    at.run(timeout=60)
    at.session_state["design_targets"] = {"edited_rows": {}, "deleted_rows": [0, 1, 2],
                                          "added_rows": rows.to_dict("records")}
    at.button(key="design_run").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "empty range" in errors[0] and "\n" not in errors[0]


@pytest.mark.parametrize(("row", "says"), [
    ({"label": None, "condition": "at most", "low": None, "high": 3.3}, "target row 2: choose a label ("),
    ({"label": "interlayer_gap", "condition": None, "low": 3.0, "high": 3.3}, "choose a condition (at most, "),
    ({"label": "interlayer_gap", "condition": "between", "low": 3.0, "high": None}, "enter the high end"),
    ({"label": "interlayer_gap", "condition": "at most", "low": 3.0, "high": 3.3}, "clear the low end"),
])
def test_a_row_filled_in_part_is_refused_not_dropped(app_dirs: Path, tiny_predictor_artifact: Path, open_app,
                                                      row: dict, says: str) -> None:
    """A target row the page cannot read in full never vanishes from the request: one line names the row and
    what it lacks (the first row is complete, an empty third row is skipped)."""
    at = _with_predictor(app_dirs, tiny_predictor_artifact, open_app)
    rows = [{"label": "formation_energy_per_atom", "condition": "at most", "low": None, "high": -0.8}, row,
            {"label": None, "condition": None, "low": None, "high": None}]
    at.session_state["design_targets"] = {"edited_rows": {}, "added_rows": [], "deleted_rows": [0, 1, 2]}
    at.run(timeout=60)
    at.session_state["design_targets"] = {"edited_rows": {}, "deleted_rows": [0, 1, 2], "added_rows": rows}
    at.button(key="design_run").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and says in errors[0] and "\n" not in errors[0], errors
    assert errors[0].startswith("target row 2") and JOB not in at.session_state  # nothing started


def test_a_design_runs_in_the_background_and_shows_every_criterion(app_dirs: Path, tiny_predictor_artifact: Path,
                                                                    open_app) -> None:
    at = _with_predictor(app_dirs, tiny_predictor_artifact, open_app)
    at.number_input(key="design_count").set_value(2)
    at.number_input(key="design_steps").set_value(3)
    at.checkbox(key="design_relax").uncheck()
    at.button(key="design_run").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[JOB].wait(120), "the run did not end"
    at.run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[-1].value
    assert len(table) == 2
    for column in ("formation_energy_per_atom<=-0.8 (designed)", "interlayer_gap=3:3.3 (relaxed)",
                   "all met, designed", "all met, relaxed", "template"):
        assert column in table.columns
    captions = " ".join(c.value for c in at.caption)
    assert "What the dataset already holds:" in captions and "bilayers meet every target" in captions


def test_the_design_table_reads_each_criterion_before_and_after_relaxation() -> None:
    rows = [{"id": 7, "formula": "Ga4S4", "design_met": True, "design_oracle_met": False, "valid": True,
             "invalid_reason": None, "relaxed_valid": True, "relaxed_invalid_reason": None,
             "oracle_energy_drop_per_atom": 0.0123, "relaxed_novel": False, "relaxed_known_id": "jb-00001",
             "template_id": "jb-00002"}]
    criteria = [{"candidate_id": 7, "target": "interlayer_gap=3:3.3", "designed": 3.1, "met": True, "oracle": 3.45,
                 "oracle_met": False},
                {"candidate_id": 7, "target": "band_gap=1:2", "designed": 1.5, "met": True, "oracle": None,
                 "oracle_met": None}]
    table = design_table(rows, criteria, ["band_gap=1:2", "interlayer_gap=3:3.3"])
    assert list(table.columns[2:4]) == ["band_gap=1:2 (designed)", "band_gap=1:2 (relaxed)"]  # as asked
    (line,) = table.to_dict("records")
    assert line["interlayer_gap=3:3.3 (designed)"] == "3.1 met"
    assert line["interlayer_gap=3:3.3 (relaxed)"] == "3.45 missed"
    assert line["band_gap=1:2 (relaxed)"] == "-"  # the oracle cannot tell
    assert line["all met, relaxed"] == "no" and line["known as, relaxed"] == "jb-00001"
