"""Streamed runs (services.generation.generate_streamed, `vdwgen generate --n` above one request's cap,
`vdwgen generate --resume`): stored chunk by chunk, the crystals of a bulk run with the same chunks, and a run
cut short (Ctrl-C, or a process that died) resumed into exactly the run an uninterrupted one stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.executor import InProcess
from services.generation import BULK_MAX_COUNT, generate_bulk, generate_streamed
from serving.engine import Engine
from serving.request import GenerationRequest, check_request
from store.database import RunInfo, StoreError, close_store, open_store
from vdwgen.cli import main

REQUEST = GenerationRequest("formula", 7, formula="GaInSSe", seed=5, steps_per_level=1)
CHUNK = 3


@pytest.fixture(scope="module")
def engine(tiny_artifacts: dict[str, Path]) -> Engine:
    return Engine.load(tiny_artifacts["model"], device="cpu")


def _checked(engine: Engine, request: GenerationRequest = REQUEST):  # noqa: ANN202
    return check_request(request, engine.manifest, BULK_MAX_COUNT)


def _candidates(db: Path, run_id: int) -> list[tuple]:
    store = open_store(db)
    try:
        return store.cursor().execute("SELECT index_in_run, poscar, valid, novel, duplicate_of IS NOT NULL "
                                      "FROM candidates WHERE run_id = ? ORDER BY index_in_run", [run_id]).fetchall()
    finally:
        close_store(db)


def test_a_streamed_run_stores_each_chunk_and_the_crystals_of_a_bulk_run(engine: Engine, tmp_path: Path) -> None:
    store = open_store(tmp_path / "stream.duckdb")
    seen: list[int] = []
    counts: list[int] = []

    handed: list[int] = []

    def after_chunk(ids: list[int]) -> None:
        seen.append(len(ids))
        handed.extend(ids)
        counts.append(store.run(run_id)["count_stored"])  # already stored when the chunk is handed over

    run_id = store.cursor().execute("SELECT coalesce(max(id), 0) + 1 FROM runs").fetchone()[0]
    done = generate_streamed(engine, _checked(engine), store, chunk_size=CHUNK, on_chunk=after_chunk)
    assert (done.status, done.stored, done.run_id) == ("completed", 7, run_id)
    assert seen == [3, 3, 1] and counts == [3, 6, 7]
    row = store.run(run_id)
    assert (row["status"], row["count_stored"], row["chunk_size"]) == ("completed", 7, CHUNK)
    assert done.valid == store.count_valid(run_id) and len(done.first_records) == 7
    stored_ids = [r[0] for r in store.cursor().execute(
        "SELECT id FROM candidates WHERE run_id = ? ORDER BY index_in_run", [run_id]).fetchall()]
    assert handed == stored_ids  # each chunk's ids, in the run's order
    close_store(tmp_path / "stream.duckdb")
    bulk_store = open_store(tmp_path / "bulk.duckdb")
    bulk = generate_bulk(engine, _checked(engine), InProcess(), bulk_store, chunk_size=CHUNK, device="cpu")
    close_store(tmp_path / "bulk.duckdb")
    streamed = _candidates(tmp_path / "stream.duckdb", run_id)
    assert streamed == _candidates(tmp_path / "bulk.duckdb", bulk.run_id)  # duplicate verdicts too
    assert [r[0] for r in streamed] == list(range(7))


def test_an_interrupted_run_resumes_into_the_uninterrupted_run(engine: Engine, tmp_path: Path) -> None:
    whole = open_store(tmp_path / "whole.duckdb")
    reference = generate_streamed(engine, _checked(engine), whole, chunk_size=CHUNK)
    close_store(tmp_path / "whole.duckdb")

    store = open_store(tmp_path / "cut.duckdb")
    calls = []

    def stop_after_first(ids: list[int]) -> None:
        calls.append(len(ids))
        if len(calls) == 1:
            raise KeyboardInterrupt

    cut = generate_streamed(engine, _checked(engine), store, chunk_size=CHUNK, on_chunk=stop_after_first)
    assert (cut.status, cut.stored) == ("interrupted", 3)
    assert f"--resume {cut.run_id}" in cut.message and store.run(cut.run_id)["count_stored"] == 3
    resumed = generate_streamed(engine, _checked(engine), store, chunk_size=CHUNK, resume=cut.run_id)
    assert (resumed.status, resumed.stored, resumed.run_id) == ("completed", 7, cut.run_id)
    with pytest.raises(StoreError, match="is completed"):
        store.resume_run(cut.run_id)
    close_store(tmp_path / "cut.duckdb")
    assert _candidates(tmp_path / "cut.duckdb", cut.run_id) == _candidates(tmp_path / "whole.duckdb",
                                                                           reference.run_id)


def test_a_run_whose_process_died_says_what_it_kept_and_the_cli_resumes_it(
        engine: Engine, tiny_artifacts: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "died.duckdb"
    store = open_store(db)

    def die(ids: list[int]) -> None:
        raise SystemExit("killed")  # not Ctrl-C: the run stays 'running' only if nothing records its end

    with pytest.raises(SystemExit):
        generate_streamed(engine, _checked(engine), store, chunk_size=CHUNK, on_chunk=die)
    run_id = store.cursor().execute("SELECT max(id) FROM runs").fetchone()[0]
    assert store.run(run_id)["status"] == "failed" and "3 of 7 crystals stored" in store.run(run_id)["message"]
    # a process killed outright leaves the run 'running'; the next open of the file says what it holds
    store.cursor().execute("UPDATE runs SET status = 'running', message = NULL WHERE id = ?", [run_id])
    close_store(db)
    store = open_store(db)
    row = store.run(run_id)
    assert row["status"] == "interrupted" and row["count_stored"] == 3
    assert row["message"].endswith(f"3 crystals of it are stored (vdwgen generate --resume {run_id} goes on)")
    close_store(db)
    out = tmp_path / "files"
    assert main(["generate", "--resume", str(run_id), "--db", str(db), "--artifacts", str(tiny_artifacts["model"]),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"stored as run {run_id} (completed)" in text and "7 of 7 crystals stored" in text
    later = [r[0] for r in open_store(db).cursor().execute(
        "SELECT id FROM candidates WHERE run_id = ? AND index_in_run >= 3 ORDER BY id", [run_id]).fetchall()]
    names = sorted(f.name for f in out.glob("*.vasp"))  # the chunks made by this command, by candidate id
    assert [int(n.split("_")[0]) for n in names] == later and len(later) == 4
    assert [r[0] for r in _candidates(db, run_id)] == list(range(7))


def test_what_cannot_be_resumed_gets_one_line(engine: Engine, tiny_artifacts: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "plain.duckdb"
    store = open_store(db)
    plain = store.start_run(RunInfo("formula", 2, 0, engine.name, "sha", formula_request="GaInSSe"))
    store.finish_run(plain, [], "interrupted")
    with pytest.raises(StoreError, match="was not streamed"):
        store.resume_run(plain)
    close_store(db)
    model = str(tiny_artifacts["model"])
    for argv, message in [
        (["--resume", "99", "--db", str(db), "--artifacts", model], "no run 99 in"),
        (["--resume", str(plain), "--db", str(db), "--artifacts", model], "was not streamed"),
        (["--resume", "1", "--formula", "GaInSSe"], "--resume reads the request from the stored run"),
        ([], "say what to generate"),
        (["--formula", "GaInSSe", "--n", "1001", "--relax", "--artifacts", model, "--db", str(db)],
         "--relax applies to runs of at most 1000 crystals"),
    ]:
        assert main(["generate", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
