"""The relax stage of a generation run: the oracle relaxes what the model generated, and nothing is lost.

A strained, displaced dataset bilayer stored as a candidate comes back to its label through the stage (positions
and in-plane cell, the pipeline's fmax); a run whose relaxation worker dies keeps every crystal, the relaxed ones
with their verdicts, and says how the relaxation ended. Runs CHGNet (``slow``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Structure

from scoring.novelty import table_structure
from scoring.record import candidate_record
from services.generation import generate_and_store
from services.verification import relax_pool, verify_candidates
from serving.engine import Engine, GenerationInterrupted
from serving.request import GenerationRequest
from store.database import RunInfo, close_store, open_store

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "artifacts" / "cdvae-plus-janus"
ROW = "jb-12004"  # relaxed and converged, a minimum of the oracle in every direction (tests/oracle)

DATASET_TABLE = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi" / "bilayers.parquet"


@pytest.fixture
def store(tmp_path: Path):
    path = tmp_path / "relax.duckdb"
    yield open_store(path)
    close_store(path)


@pytest.mark.slow
def test_a_displaced_dataset_bilayer_relaxes_back_to_its_label_through_the_stage(store, strained_displaced  # noqa: ANN001
                                                                                 ) -> None:
    row = pd.read_parquet(DATASET_TABLE).set_index("id").loc[ROW]
    label = table_structure(row["lattice"], row["species"], row["frac_coords"])
    start = strained_displaced(label, seed=0)
    run = store.start_run(RunInfo("formula", 1, 0, "test", "0" * 64, formula_request="Al3InS2SeTe", relax=True))
    (cid,) = store.finish_run(run, [candidate_record(0, start, None)])
    (verified,) = verify_candidates(store, [cid])
    stored = store.candidate(cid)
    assert stored["oracle_cell"] == "in_plane" and stored["oracle_converged"]
    assert stored["oracle_initial_formation_energy"] - row["formation_energy_per_atom"] > 0.01  # started uphill
    assert abs(stored["oracle_formation_energy"] - row["formation_energy_per_atom"]) < 0.001  # back, 1 meV/atom
    assert abs(stored["relaxed_a"] - row["a_common"]) < 0.03 and stored["oracle_flags"] is None
    assert stored["relaxed_valid"] and stored["relaxed_known"]
    assert stored["relaxed_known_id"] == ROW  # its own stacking, not one the paper's tolerances cannot tell from it
    relaxed = Structure.from_str(stored["oracle_relaxed_poscar"], fmt="poscar")
    assert relaxed.composition == label.composition and verified.check.steps == stored["oracle_steps"]


@pytest.mark.slow
def test_a_killed_relax_worker_leaves_the_run_marked_and_the_finished_crystals_stored(store) -> None:  # noqa: ANN001
    engine = Engine.load(MODEL)
    checked = engine.check(GenerationRequest("formation_energy", 4, target=-0.75, seed=0, steps_per_level=1))
    pool = relax_pool(1)
    killed: list[int] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "relaxing" and done >= 2 and not killed:  # the first batch is stored; the next one is running
            for pid in list(pool._processes):  # noqa: SLF001 - the test plays the out-of-memory killer
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    try:
        stored = generate_and_store(engine, checked, store, progress, relax=True, relax_workers=pool)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert killed and stored.status == "completed" and stored.relax_status == "failed"
    assert "worker process died" in stored.relax_message and "2 of 4 crystals were relaxed" in stored.relax_message
    run = store.run(stored.run_id)
    assert (run["status"], run["count_stored"], run["relax_status"]) == ("completed", 4, "failed")
    assert run["relax_message"] == stored.relax_message
    rows = store.run_rows(stored.run_id)
    relaxed = [r for r in rows if r["oracle_checked_at"] is not None]
    assert len(rows) == 4 and len(relaxed) == 2  # every crystal kept, the finished relaxations with their verdicts
    assert all(r["oracle_relaxed_poscar"] and r["relaxed_valid"] is not None for r in relaxed)

    # `vdwgen verify --run` relaxes the rest and closes the run's relaxation
    from vdwgen.cli import main

    assert main(["verify", "--run", str(stored.run_id), "--db", str(store.path)]) == 0
    assert store.unrelaxed(stored.run_id) == [] and store.run(stored.run_id)["relax_status"] == "completed"


def test_ctrl_c_during_decoding_stores_the_crystals_and_skips_the_relaxation(store, monkeypatch) -> None:  # noqa: ANN001
    """A stop during decoding means stop: the finished crystals are stored, nothing is relaxed, the run says how
    to relax them later (no CHGNet runs here)."""
    engine = Engine.load(MODEL)
    checked = engine.check(GenerationRequest("formula", 2, formula="GaInSSe", seed=0, steps_per_level=1))
    original = Engine.generate

    def stopped(self, checked, progress=None):  # noqa: ANN001, ANN202
        result = original(self, checked, progress)
        result.crystals = result.crystals[:1]
        raise GenerationInterrupted(result)

    monkeypatch.setattr(Engine, "generate", stopped)
    stored = generate_and_store(engine, checked, store, relax=True)
    assert stored.status == "interrupted" and stored.relax_status == "interrupted"
    assert f"vdwgen verify --run {stored.run_id}" in stored.relax_message
    run = store.run(stored.run_id)
    assert (run["count_stored"], run["relax_status"]) == (1, "interrupted")
    assert store.unrelaxed(stored.run_id) == stored.candidate_ids


def test_a_pool_that_lost_a_worker_fails_the_next_stage_in_one_line(store) -> None:  # noqa: ANN001
    """A shared pool (the app's) whose worker died refuses the next run's relaxation with a reason, not a crash,
    and says it is unusable so the app replaces it (tests/webapp/test_resources.py)."""
    from concurrent.futures import ProcessPoolExecutor

    from services.verification import relax_stored, usable

    pool = ProcessPoolExecutor(1)
    pool.submit(os.getpid).result()
    for pid in list(pool._processes):  # noqa: SLF001 - the test plays the out-of-memory killer
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the pool notices its dead worker on the next job
        pool.submit(os.getpid).result(timeout=30)
    assert not usable(pool)
    row = pd.read_parquet(DATASET_TABLE).set_index("id").loc[ROW]
    run = store.start_run(RunInfo("formula", 1, 0, "test", "0" * 64, formula_request="Al3InS2SeTe", relax=True))
    ids = store.finish_run(run, [candidate_record(0, table_structure(row["lattice"], row["species"],
                                                                      row["frac_coords"]), None)])
    from oracle.convention import load_references

    status, message = relax_stored(store, run, ids, load_references(DATASET_TABLE.parent), workers=pool)
    assert status == "failed" and message.startswith("a relaxation worker process died; 0 of 1")
    assert store.run(run)["relax_status"] == "failed" and store.unrelaxed(run) == ids
