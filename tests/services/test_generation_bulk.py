"""Bulk generation in chunks (services.generation.generate_bulk, `vdwgen generate --cluster`).

The tiny exported model generates a few GaInSSe crystals in chunks of 2: on a local 2-worker Dask cluster
through the command line, and in this process; the stores must hold the same crystals.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import scoring.batch as batch
from core.executor import ClusterError, Executor, InProcess
from scoring.batch import DuplicateFinder, score_crystals
from scoring.novelty import matcher
from services.generation import (
    BULK_MAX_COUNT,
    bulk_chunks,
    chunk_seed,
    generate_bulk,
    generate_chunk,
    init_bulk_worker,
    resolve_duplicates,
)
from serving.engine import Engine, GeneratedCrystal
from serving.request import GenerationRequest, check_request
from store.database import CANDIDATE_COLUMNS, close_store, open_store
from vdwgen.cli import main

REQUEST = GenerationRequest("formula", 5, formula="GaInSSe", seed=3, steps_per_level=1)
CHUNK = 2


@pytest.fixture(scope="module")
def model(tiny_artifacts: dict[str, Path]) -> Path:
    return tiny_artifacts["model"]


def _stored(db: Path) -> tuple[pd.DataFrame, list[dict]]:
    store = open_store(db)
    try:
        cur = store.cursor()
        frame = cur.execute(f"SELECT id, run_id, index_in_run, {', '.join(CANDIDATE_COLUMNS)} FROM candidates "
                            "ORDER BY id").df()
        runs = [store.run(int(r)) for (r,) in cur.execute("SELECT id FROM runs ORDER BY id").fetchall()]
    finally:
        close_store(db)
    return frame, runs


def _in_process(model: Path, db: Path, executor: Executor, request: GenerationRequest = REQUEST) -> Any:
    """``generate_bulk`` in this process, with one torch thread as each cluster worker has."""
    import torch

    engine = Engine.load(model, device="cpu")
    checked = check_request(request, engine.manifest, BULK_MAX_COUNT)
    threads = torch.get_num_threads()
    init_bulk_worker(1)
    store = open_store(db)
    try:
        return generate_bulk(engine, checked, executor, store, chunk_size=CHUNK, device="cpu")
    finally:
        close_store(db)
        torch.set_num_threads(threads)


def test_chunks_and_their_seeds() -> None:
    assert chunk_seed(7, 0) == 7  # one chunk = a plain request
    seeds = [chunk_seed(7, k) for k in range(50)]
    assert len(set(seeds)) == 50 and all(0 <= s < 2**31 for s in seeds)
    assert seeds == [chunk_seed(7, k) for k in range(50)]  # derived, not drawn


def test_bulk_chunks_cover_the_request(model: Path) -> None:
    engine = Engine.load(model, device="cpu")
    checked = check_request(REQUEST, engine.manifest, BULK_MAX_COUNT)
    jobs = bulk_chunks(checked, model, "sha", None, CHUNK)
    assert [(j.first_index, j.request.count, j.request.seed) for j in jobs] == [
        (0, 2, 3), (2, 2, chunk_seed(3, 1)), (4, 1, chunk_seed(3, 2))]
    assert all(Path(j.folder).is_absolute() and j.request.steps_per_level == 1 for j in jobs)


def test_cluster_run_stores_the_crystals_of_the_single_process_run(model: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    local = _in_process(model, tmp_path / "local.duckdb", InProcess())
    assert local.status == "completed" and len(local.candidate_ids) == REQUEST.count
    argv = ["generate", "--formula", "GaInSSe", "--n", str(REQUEST.count), "--seed", "3", "--steps-per-level", "1",
            "--artifacts", str(model), "--device", "cpu", "--db", str(tmp_path / "cluster.duckdb"),
            "--cluster", "local:2", "--chunk-size", str(CHUNK)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "local Dask cluster of 2 worker processes" in captured.err
    assert "stored as run 1 (completed), candidates 1..5" in captured.out
    got, got_runs = _stored(tmp_path / "cluster.duckdb")
    expected, expected_runs = _stored(tmp_path / "local.duckdb")
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=0, atol=1e-9)
    assert len(got_runs) == 1 and got_runs[0]["count_stored"] == REQUEST.count


@pytest.mark.parametrize("kept", [500, 1])
def test_a_cluster_run_finds_the_duplicates_a_streamed_run_of_the_same_chunks_finds(
        kept: int, repeated_stackings: list[list[GeneratedCrystal]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A streamed run keeps the newest MAX_DUPLICATE_CHECKS earlier crystals of a formula at each chunk; the driver of
    a cluster run, which resolves duplicates once it holds every chunk, must cut them where the same chunks start."""
    monkeypatch.setattr(batch, "MAX_DUPLICATE_CHECKS", kept)
    finder = DuplicateFinder(None, matcher())
    streamed = [r for chunk in repeated_stackings for r in score_crystals(chunk, None, duplicates=finder)]
    crystals = [c for chunk in repeated_stackings for c in chunk]
    blank = [replace(r, duplicate_of=None) for r in streamed]
    resolved = [r.duplicate_of for r in resolve_duplicates(crystals, blank, None, chunk_size=2)]
    assert resolved == [r.duplicate_of for r in streamed]
    one_chunk = [r.duplicate_of for r in resolve_duplicates(crystals, blank, None, chunk_size=len(crystals))]
    if kept == 500:
        assert resolved == one_chunk == [None, None, -1, None, -2]  # the copies of crystals 0 and 1
    else:  # crystal 0 was pushed out by crystal 1 before its copy came; all held as one chunk, it was not
        assert resolved[2] is None and one_chunk[2] == -1


class _LosesChunk(Executor):
    """Runs chunks in this process but loses chunk ``lost``, the way a cluster reports a chunk whose workers died."""

    def __init__(self, lost: int) -> None:
        self.lost = lost

    def map_unordered(self, fn: Any, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for k, item in enumerate(items):
            if k != self.lost:
                yield k, fn(item)
        raise ClusterError(f"a chunk was lost on a test cluster: every worker that ran it died (chunk {self.lost})")


def test_a_lost_chunk_loses_only_its_crystals(model: Path, tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="every worker that ran it died"):
        _in_process(model, tmp_path / "lost.duckdb", _LosesChunk(lost=1))
    complete = _in_process(model, tmp_path / "complete.duckdb", InProcess())
    got, runs = _stored(tmp_path / "lost.duckdb")
    assert runs[0]["status"] == "failed" and "chunk(s) 1 of 3 missing" in runs[0]["message"]
    assert list(got["index_in_run"]) == [0, 1, 4]  # chunk 1 held crystals 2 and 3
    expected, _ = _stored(tmp_path / "complete.duckdb")
    keep = expected[expected["index_in_run"].isin([0, 1, 4])].reset_index(drop=True)
    assert list(got["poscar"]) == list(keep["poscar"])
    assert complete.status == "completed"


def test_generate_chunk_refuses_another_model(model: Path) -> None:
    engine = Engine.load(model, device="cpu")
    job = bulk_chunks(check_request(REQUEST, engine.manifest, BULK_MAX_COUNT), model, "0" * 64, "cpu", CHUNK)[0]
    with pytest.raises(Exception, match="holds another model"):
        generate_chunk(job)


@pytest.mark.parametrize(("extra", "message"), [
    (["--chunk-size", "4"], "--chunk-size applies to --cluster runs and to streamed runs"),
    (["--cluster", "local:2", "--chunk-size", "0"], "--chunk-size must be at least 1"),
    (["--cluster", "scheduler:8786"], "is not a scheduler address or local:N"),
])
def test_bad_cluster_options_exit_2_with_one_line(model: Path, extra: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--formula", "GaInSSe", "--artifacts", str(model), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
