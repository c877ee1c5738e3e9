"""Design runs end to end: templates, SMOACS, scoring, the store's criteria rows, and the oracle's verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import VdwgenError
from design.masks import FAMILY_STATES, neutral
from services.design import DesignRequest, check_design, dataset_templates, design_and_store
from serving.predictor import load_predictor_artifact
from store.database import close_store, open_store

TARGETS = ("formation_energy_per_atom<=-0.7", "interlayer_gap=3.1:3.5")


@pytest.fixture
def store(tmp_path: Path):
    path = tmp_path / "design.duckdb"
    yield open_store(path)
    close_store(path)


def test_bad_requests_are_refused_in_one_line(tiny_predictor_artifact: Path) -> None:
    predictor = load_predictor_artifact(tiny_predictor_artifact)
    for request, words in [
        (DesignRequest(TARGETS, count=0), "--n must be between 1 and 1024"),
        (DesignRequest(TARGETS, steps=0), "--steps must be between 1 and 2000"),
        (DesignRequest(TARGETS, templates="mine"), "--templates must be one of dataset, generated, both"),
        (DesignRequest(TARGETS, minimise="band_gap"), "--minimise 'band_gap' is not a label"),
        (DesignRequest(("band_gap<=1",)), "unknown label 'band_gap'"),
    ]:
        with pytest.raises(Exception) as caught:
            check_design(request, predictor)
        assert words in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, VdwgenError)  # the CLI prints it in one line


def test_a_design_run_stores_every_candidate_and_criterion(tiny_predictor_artifact: Path, store) -> None:
    predictor = load_predictor_artifact(tiny_predictor_artifact)
    checked = check_design(DesignRequest(TARGETS, count=5, steps=4, seed=3), predictor)
    templates = dataset_templates(predictor, 5, seed=3)
    assert len({t.id for t in templates}) == 5
    done = design_and_store(predictor, checked, store, templates, relax=False)
    run = store.run(done.run_id)
    assert run["mode"] == "design" and run["status"] == "completed" and run["count_stored"] == 5
    assert run["design_targets"] == "formation_energy_per_atom<=-0.7 AND interlayer_gap=3.1:3.5"
    criteria = store.design_rows(done.run_id)
    assert len(criteria) == 5 * 2
    rows = {r["id"]: r for r in store.run_rows(done.run_id)}
    for cid in done.candidate_ids:
        mine = [c for c in criteria if c["candidate_id"] == cid]
        assert rows[cid]["design_met"] == all(c["met"] for c in mine)
        assert rows[cid]["template_id"].startswith("jb-") and rows[cid]["design_oracle_met"] is None
        gap = next(c for c in mine if c["label"] == "interlayer_gap")
        assert gap["low"] == 3.1 and gap["high"] == 3.5 and gap["unit"] == "Å"
        assert gap["met"] == (3.1 <= gap["designed"] <= 3.5)
    for structure in (s for s in done.designed.structures):  # neutral by construction, chalcogens outside
        symbols = [site.specie.symbol for site in structure]
        assert neutral(symbols, [FAMILY_STATES[el][0] for el in symbols], FAMILY_STATES)


@pytest.mark.slow
def test_the_oracle_judges_every_criterion_after_relaxing(tiny_predictor_artifact: Path, store) -> None:
    predictor = load_predictor_artifact(tiny_predictor_artifact)
    checked = check_design(DesignRequest(TARGETS, count=2, steps=3, seed=1), predictor)
    done = design_and_store(predictor, checked, store, dataset_templates(predictor, 2, seed=1), relax=True)
    assert done.relax_status == "completed"
    for row in store.run_rows(done.run_id):
        assert row["oracle_converged"] is not None and row["relaxed_valid"] is not None
        mine = [c for c in store.design_rows(done.run_id) if c["candidate_id"] == row["id"]]
        gap = next(c for c in mine if c["label"] == "interlayer_gap")
        assert gap["oracle"] == pytest.approx(row["oracle_interlayer_gap"], abs=1e-9)
        energy = next(c for c in mine if c["label"] == "formation_energy_per_atom")
        assert energy["oracle"] == pytest.approx(row["oracle_formation_energy"], abs=1e-9)
        assert row["design_oracle_met"] == all(c["oracle_met"] for c in mine)
