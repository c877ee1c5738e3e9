"""A generation run end to end: request -> engine -> scores -> one stored run.

The app and ``vdwgen generate --db`` both call :func:`generate_and_store`:

1. a ``running`` row is committed in ``runs`` (so a killed process leaves a trace);
2. the engine samples and decodes (progress callback per chunk);
3. each crystal is scored (validity, 2D checks, novelty against the training part of the
   dataset the model was trained on, duplicates among stored candidates and earlier
   crystals of the same run);
4. all candidates and the final status go in one transaction.

Ctrl-C during decoding stores the crystals finished so far with status ``interrupted``;
an error marks the run ``failed`` with its message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.manifest import MANIFEST, Manifest, sha256
from core.paths import dataset_dir, repo_root
from scoring.batch import score_crystals
from scoring.novelty import TrainingSet
from scoring.record import CandidateRecord
from serving.engine import Engine, GenerationInterrupted, GenerationResult
from serving.request import CheckedRequest
from store.database import RunInfo, Store

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total); stages: ``decoding``, ``scoring``."""


@dataclass(frozen=True)
class StoredRun:
    """A finished run: its id, the stored candidates' ids and records (same order), the engine's result."""

    run_id: int
    candidate_ids: list[int]
    records: list[CandidateRecord]
    result: GenerationResult
    status: str


@lru_cache(maxsize=2)
def training_set(table: str, split: str, part: str = "train") -> TrainingSet:
    """``part`` of the ``split`` split of a dataset table, loaded once per process."""
    return TrainingSet.load(Path(table), split=split, part=part)


def novelty_reference(manifest: Manifest) -> tuple[TrainingSet | None, str | None]:
    """The model's training part as the novelty reference, found through the manifest's training data.

    The table is the manifest's ``training.data.table``: a file inside the artifact folder (a model
    trained on its own dataset carries it), or a path relative to the checkout (the committed Janus
    table), else ``bilayers.parquet`` in :func:`core.paths.dataset_dir`; its sha256 must equal the manifest's.
    Returns the reference, or None and the reason novelty cannot be judged.
    """
    data = manifest.training_data
    candidates = [manifest.folder / data.table, repo_root() / data.table] if data.table else []
    candidates.append(dataset_dir() / "bilayers.parquet")
    table = next((path for path in candidates if path.is_file()), None)
    if table is None:
        return None, (f"novelty not judged: the training table of {manifest.name} ({data.table or 'bilayers.parquet'}) "
                      "is not here")
    if data.sha256 and _file_sha256(table) != data.sha256:
        return None, (f"novelty not judged: {table.name} differs from the table {manifest.name} was trained on "
                      "(sha256 mismatch)")
    return training_set(str(table), data.split, data.part), None


def _file_sha256(path: Path) -> str:
    """The file's sha256, hashed once per version of the file (its size and modification time)."""
    stat = path.stat()
    return _sha256_of(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4)
def _sha256_of(path: str, _size: int, _mtime_ns: int) -> str:
    return sha256(Path(path))


def _stage(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    """``progress`` as a (done, total) callback of one stage."""
    return None if progress is None else (lambda done, total: progress(stage, done, total))


def score_result(engine: Engine, result: GenerationResult, store: Store | None = None,
                 progress: Progress | None = None) -> list[CandidateRecord]:
    """Score every crystal of ``result`` (novelty against the model's training part; duplicates among
    ``store``'s candidates when given, else within the result); a reason novelty could not be
    judged goes into ``result.warnings``."""
    reference, why_not = novelty_reference(engine.manifest)
    if why_not is not None and why_not not in result.warnings:
        result.warnings.append(why_not)
    return score_crystals(result.crystals, reference, None if store is None else store.same_formula,
                          _stage(progress, "scoring"))


@dataclass(frozen=True)
class ScoredRun:
    """Crystals generated and scored but not stored (``vdwgen generate`` without ``--db``)."""

    records: list[CandidateRecord]
    result: GenerationResult


def generate_and_score(engine: Engine, checked: CheckedRequest, progress: Progress | None = None) -> ScoredRun:
    """Generate ``checked`` on ``engine`` and score each crystal, storing nothing."""
    result = engine.generate(checked, _stage(progress, "decoding"))
    return ScoredRun(score_result(engine, result, None, progress), result)


def generate_and_store(engine: Engine, checked: CheckedRequest, store: Store,
                       progress: Progress | None = None) -> StoredRun:
    """Run the checked request on ``engine`` and store it (see the module docstring)."""
    request = checked.request
    info = RunInfo(request.mode, request.count, request.seed, engine.name,
                   sha256(engine.manifest.path(MANIFEST)), request.target,
                   request.formula, checked.steps_per_level,
                   checked.screening_ratio if request.mode == "formation_energy" else None)
    run_id = store.start_run(info)
    t0 = time.perf_counter()
    status, message = "completed", None
    try:
        try:
            result = engine.generate(checked, _stage(progress, "decoding"))
        except GenerationInterrupted as stop:
            result, status = stop.result, "interrupted"
            message = f"stopped by the user after {len(result.crystals)} of {request.count} crystals"
        records = score_result(engine, result, store, progress)
    except BaseException as exc:
        store.finish_run(run_id, [], "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                         time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:500])
        raise
    ids = store.finish_run(run_id, records, status, time.perf_counter() - t0, message)
    return StoredRun(run_id, ids, records, result, status)
