"""A generation run end to end: request -> engine -> scores -> one stored run.

The app and ``vdwgen generate --db`` both call :func:`generate_and_store`:

1. a ``running`` row is committed in ``runs`` (so a killed process leaves a trace);
2. the engine samples and decodes (progress callback per chunk);
3. each crystal is scored (every validity check, 2D checks, novelty against the training part of the
   dataset the model was trained on, known against all of that dataset, duplicates among stored candidates
   and earlier crystals of the same run);
4. all candidates and the final status go in one transaction;
5. with ``relax``, the oracle relaxes the stored crystals (:func:`relax_run`, in worker processes when asked)
   and each batch's verdicts and relaxed crystals are stored as they finish; ``runs.relax_status`` says how
   far it got, so a run whose relaxation was cut short keeps every crystal, relaxed or not.

Ctrl-C during decoding stores the crystals finished so far with status ``interrupted``;
an error marks the run ``failed`` with its message.

A request of more crystals than one request may hold goes through :func:`generate_streamed`: chunks generated,
scored and stored one after another, so memory stays flat and a run cut short resumes after its stored chunks.
A large request on worker processes (``vdwgen generate --cluster``) goes through :func:`generate_bulk`: it is cut
into chunks that workers of a :class:`core.executor.Executor` generate and score (each worker loads the
engine once), and the driver resolves duplicates over the whole run and stores it as one run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from core.executor import Executor
from core.manifest import MANIFEST, Manifest, sha256
from core.paths import dataset_dir, repo_root
from scoring.batch import DuplicateFinder, StoredSameFormula, judged_record, score_crystals
from scoring.layers import in_family
from scoring.novelty import TrainingSet, matcher
from scoring.record import CandidateRecord
from services.verification import training_set
from serving.engine import DECODE_BATCH, Engine, GeneratedCrystal, GenerationInterrupted, GenerationResult
from serving.request import CheckedRequest, GenerationRequest
from store.database import RunInfo, Store

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total); stages: ``decoding``, ``scoring``."""


@dataclass(frozen=True)
class StoredRun:
    """A finished run: its id, the stored candidates' ids and records (same order), the engine's result, and
    how its relaxation ended (None: not relaxed)."""

    run_id: int
    candidate_ids: list[int]
    records: list[CandidateRecord]
    result: GenerationResult
    status: str
    relax_status: str | None = None
    relax_message: str | None = None


def training_table(manifest: Manifest) -> tuple[Path | None, str | None]:
    """The dataset table the model was trained on, found through the manifest, or None and why not.

    The table is the manifest's ``training.data.table``: a file inside the artifact folder (a model
    trained on its own dataset carries it), or a path relative to the checkout (the committed Janus
    table), else ``bilayers.parquet`` in :func:`core.paths.dataset_dir`; its sha256 must equal the manifest's.
    """
    data = manifest.training_data
    candidates = [manifest.folder / data.table, repo_root() / data.table] if data.table else []
    candidates.append(dataset_dir() / "bilayers.parquet")
    table = next((path for path in candidates if path.is_file()), None)
    if table is None:
        return None, f"the training table of {manifest.name} ({data.table or 'bilayers.parquet'}) is not here"
    if data.sha256 and _file_sha256(table) != data.sha256:
        return None, f"{table.name} differs from the table {manifest.name} was trained on (sha256 mismatch)"
    return table, None


def novelty_reference(manifest: Manifest) -> tuple[TrainingSet | None, str | None]:
    """The model's dataset as the reference of novelty (its training part) and of known vs new (every row),
    found by :func:`training_table`. Returns the reference, or None and the reason novelty cannot be judged."""
    table, why_not = training_table(manifest)
    if table is None:
        return None, f"novelty not judged: {why_not}"
    data = manifest.training_data
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
                          _stage(progress, "scoring"), in_family(engine.manifest.vocabulary))


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
                       progress: Progress | None = None, relax: bool = False,
                       relax_workers: int | ProcessPoolExecutor = 0) -> StoredRun:
    """Run the checked request on ``engine`` and store it (see the module docstring); with ``relax`` the oracle
    then relaxes the stored crystals (:func:`relax_run`, ``relax_workers`` as there)."""
    request = checked.request
    info = RunInfo(request.mode, request.count, request.seed, engine.name,
                   sha256(engine.manifest.path(MANIFEST)), request.target,
                   request.formula, checked.steps_per_level,
                   checked.screening_ratio if request.mode == "formation_energy" else None, relax)
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
    if not relax:
        return StoredRun(run_id, ids, records, result, status)
    if status == "interrupted":  # Ctrl-C meant stop: relax the stored crystals later with `vdwgen verify --run`
        skipped = f"not relaxed: the run was stopped during decoding (vdwgen verify --run {run_id} relaxes them)"
        store.set_relax_status(run_id, "interrupted", skipped)
        return StoredRun(run_id, ids, records, result, status, "interrupted", skipped)
    relax_status, relax_message = relax_run(engine, store, run_id, ids, progress, relax_workers)
    return StoredRun(run_id, ids, records, result, status, relax_status, relax_message)


def relax_run(engine: Engine, store: Store, run_id: int, ids: list[int], progress: Progress | None = None,
              workers: int | ProcessPoolExecutor = 0) -> tuple[str, str | None]:
    """The relax stage of a stored run (:func:`services.verification.relax_stored`) with what the model knows: the
    elemental references beside its training table (else in :func:`core.paths.dataset_dir`), that table as the
    reference of the relaxed crystals' novelty and known verdicts (not judged when it is not the model's), and
    whether the bilayer checks apply to its vocabulary. Returns (relax status, message)."""
    from oracle.convention import load_references
    from oracle.shared import OracleError
    from services.verification import Reference, relax_stored

    table, _why_not = training_table(engine.manifest)  # the model's own dataset has the references of its labels
    folder = table.parent if table is not None and (table.parent / "references.json").is_file() else dataset_dir()
    try:
        references = load_references(folder)
    except OracleError as exc:
        store.set_relax_status(run_id, "failed", f"not relaxed: {exc}")
        return "failed", f"not relaxed: {exc}"
    data = engine.manifest.training_data
    reference = None if table is None else Reference(str(table), data.split, data.part)
    return relax_stored(store, run_id, ids, references, reference, in_family(engine.manifest.vocabulary),
                        _stage(progress, "relaxing"), workers)


# -- bulk generation over worker processes (`vdwgen generate --cluster`) -------------------------
BULK_MAX_COUNT = 100_000
"""Most crystals one bulk request may ask for (a plain request is capped by the manifest's ``max_count``)."""


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of chunk ``chunk`` of a bulk request with ``seed``.

    Chunk 0 keeps the request's seed, so a bulk request of one chunk gives the crystals of a plain
    request; every later chunk gets a 31-bit seed drawn from ``SeedSequence((seed, chunk))``, so chunks
    never share noise and the crystals do not depend on how many workers ran them.
    """
    if chunk == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0] >> 1)


@dataclass(frozen=True)
class BulkChunk:
    """One chunk of a bulk request, as sent to a worker.

    Attributes:
        folder: the artifact folder (an absolute path the workers can read).
        manifest_sha256: the manifest the driver checked; a worker whose folder holds another model refuses.
        device: ``cpu``/``cuda`` for the worker's engine (None: cuda when the worker sees a GPU).
        request: this chunk's request (its count and :func:`chunk_seed`).
        first_index: ``index_in_run`` of the chunk's first crystal.
    """

    folder: str
    manifest_sha256: str
    device: str | None
    request: GenerationRequest
    first_index: int


@dataclass(frozen=True)
class ChunkResult:
    """What a worker returns for one chunk: its crystals (indexed in the run) and their records, scored for
    validity, the 2D checks and novelty; duplicates are left to the driver, which sees the whole run."""

    crystals: list[GeneratedCrystal]
    records: list[CandidateRecord]
    warnings: list[str]


def bulk_chunks(checked: CheckedRequest, folder: Path, manifest_sha256: str, device: str | None,
                chunk_size: int) -> list[BulkChunk]:
    """The chunks of a bulk request: ``chunk_size`` crystals each (the last one fewer), seeds by :func:`chunk_seed`."""
    from dataclasses import replace

    request = checked.request
    folder_name = str(Path(folder).resolve())
    return [BulkChunk(folder_name, manifest_sha256, device,
                      replace(request, count=min(chunk_size, request.count - start), seed=chunk_seed(request.seed, k),
                          steps_per_level=checked.steps_per_level, screening_ratio=request.screening_ratio),
                      start)
            for k, start in enumerate(range(0, request.count, chunk_size))]


def init_bulk_worker(threads: int) -> None:
    """Set up a bulk-generation worker process once: ``threads`` torch threads (the crystals of a seed depend
    on the thread count), dependency warnings off."""
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)


@lru_cache(maxsize=2)
def _worker_engine(folder: str, device: str | None) -> Engine:
    """The engine of ``folder``, loaded once per worker process."""
    return Engine.load(Path(folder), device=device)


def generate_chunk(job: BulkChunk) -> ChunkResult:
    """Worker side of a bulk request: generate one chunk and score it (novelty included), storing nothing."""
    from dataclasses import replace

    from core.manifest import ArtifactError

    engine = _worker_engine(job.folder, job.device)
    if sha256(engine.manifest.path(MANIFEST)) != job.manifest_sha256:
        _worker_engine.cache_clear()  # the folder changed since it was loaded here: load it again once
        engine = _worker_engine(job.folder, job.device)
        if sha256(engine.manifest.path(MANIFEST)) != job.manifest_sha256:
            raise ArtifactError(f"the artifact folder {job.folder} holds another model on this worker than the one "
                                "the request was checked against; give the workers the same artifacts")
    checked = engine.check(job.request)
    result = engine.generate(checked)
    reference, why_not = novelty_reference(engine.manifest)
    crystals = [replace(c, index=c.index + job.first_index) for c in result.crystals]
    family = in_family(engine.manifest.vocabulary)
    records = [judged_record(c.index, c.structure, c.predicted_formation_energy, reference, family) for c in crystals]
    return ChunkResult(crystals, records, [*result.warnings, *([why_not] if why_not else [])])


def resolve_duplicates(crystals: list[GeneratedCrystal], records: list[CandidateRecord],
                       stored: StoredSameFormula | None, chunk_size: int,
                       progress: Callable[[int, int], None] | None = None) -> list[CandidateRecord]:
    """``records`` with ``duplicate_of`` set as a streamed run of chunks of ``chunk_size`` sets it: one
    :class:`scoring.batch.DuplicateFinder`, trimmed where each chunk starts (:func:`generate_streamed`).

    ``crystals`` and ``records`` are in run order; the driver of a bulk request calls this once it holds every
    chunk, so the verdicts do not depend on the order the chunks finished in.
    """
    from dataclasses import replace

    from scoring.batch import DuplicateFinder
    from scoring.novelty import ReducedCrystal, matcher

    m = matcher()
    duplicates = DuplicateFinder(stored, m)
    out = []
    chunk = -1
    for done, (crystal, record) in enumerate(zip(crystals, records), 1):
        if crystal.index // chunk_size != chunk:  # a new chunk: what a streamed run's score_crystals trims
            chunk = crystal.index // chunk_size
            duplicates.trim()
        duplicate = duplicates.first_match(crystal.index, ReducedCrystal(crystal.structure, m), record.reduced_formula)
        out.append(replace(record, duplicate_of=duplicate))
        if progress is not None:
            progress(done, len(crystals))
    return out


def generate_bulk(engine: Engine, checked: CheckedRequest, executor: Executor, store: Store | None = None,
                  progress: Progress | None = None, chunk_size: int = DECODE_BATCH,
                  device: str | None = None, relax: bool = False) -> StoredRun | ScoredRun:
    """A large request cut into chunks that run (generated and scored) on ``executor``'s workers.

    The driver keeps every finished chunk, then resolves duplicates over the whole run (and against the
    store) and stores one run with all candidates in one transaction (:meth:`Store.finish_run`), as
    :func:`generate_and_store` does. A worker that dies loses only its chunk: the cluster reruns it, and
    a chunk that cannot finish (or fails) leaves the others stored in a ``failed`` run whose message names
    what is missing (the error is raised after storing). Ctrl-C stores the finished chunks as ``interrupted``.

    The crystals depend on the request, ``chunk_size`` and the workers' device and torch threads (one per
    worker process, see :func:`init_bulk_worker`), not on the number of workers: chunk ``k`` has its own
    seed (:func:`chunk_seed`).

    ``checked`` is checked against ``engine``'s manifest, with a count of up to :data:`BULK_MAX_COUNT`;
    ``engine`` itself only names the model: the workers load their own from its folder.
    """
    request = checked.request
    size = max(1, min(chunk_size, engine.manifest.sampling.max_count))
    manifest_sha = sha256(engine.manifest.path(MANIFEST))
    jobs = bulk_chunks(checked, engine.manifest.folder, manifest_sha, device, size)
    run_id = None
    if store is not None:
        run_id = store.start_run(RunInfo(request.mode, request.count, request.seed, engine.name, manifest_sha,
                                         request.target, request.formula, checked.steps_per_level,
                                         checked.screening_ratio if request.mode == "formation_energy" else None,
                                         relax))
    t0 = time.perf_counter()
    finished: dict[int, ChunkResult] = {}
    status, message, error = "completed", None, None
    try:
        try:
            for k, chunk in executor.map_unordered(generate_chunk, jobs):
                finished[k] = chunk
                if progress is not None:
                    progress("generating + scoring", sum(len(c.crystals) for c in finished.values()), request.count)
        except KeyboardInterrupt:
            executor.terminate()
            status = "interrupted"
        except Exception as exc:  # a lost or failed chunk: the chunks that finished are still stored
            status, error = "failed", exc
        if status != "completed":
            missing = [k for k in range(len(jobs)) if k not in finished]
            done = sum(len(c.crystals) for c in finished.values())
            message = (f"{'stopped by the user' if error is None else str(error)}; {done} of {request.count} "
                       f"crystals stored, chunk(s) {', '.join(map(str, missing))} of {len(jobs)} missing")[:500]
        chunks = [finished[k] for k in sorted(finished)]
        crystals = [c for chunk in chunks for c in chunk.crystals]
        records = resolve_duplicates(crystals, [r for chunk in chunks for r in chunk.records],
                                     None if store is None else store.same_formula, size,
                                     _stage(progress, "duplicates"))
    except BaseException as exc:
        if store is not None and run_id is not None:
            store.finish_run(run_id, [], "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                             time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:500])
        raise
    notes = list(dict.fromkeys([*checked.warnings, *(w for chunk in chunks for w in chunk.warnings)]))
    result = GenerationResult(request, engine.name, checked.steps_per_level, checked.screening_ratio, crystals,
                              notes, time.perf_counter() - t0)
    if store is None or run_id is None:
        if error is not None:
            raise error
        return ScoredRun(records, result)
    ids = store.finish_run(run_id, records, status, result.seconds, message)
    if error is not None:
        raise error
    return StoredRun(run_id, ids, records, result, status)


# -- streamed runs: many crystals stored chunk by chunk, resumable (`vdwgen generate --n 10000`) ----------
@dataclass(frozen=True)
class StreamedRun:
    """How a streamed run ended: its id and status, how many candidates it holds and how many of them are valid,
    the records of its first ``keep`` crystals (memory stays flat in the count), the warnings and the message."""

    run_id: int
    status: str
    stored: int
    valid: int
    first_records: list[CandidateRecord]
    warnings: list[str]
    seconds: float
    message: str | None


def generate_streamed(engine: Engine, checked: CheckedRequest, store: Store, progress: Progress | None = None,
                      chunk_size: int = DECODE_BATCH, resume: int | None = None, keep: int = 100,
                      on_chunk: Callable[[list[int]], None] | None = None) -> StreamedRun:
    """A request of up to :data:`BULK_MAX_COUNT` crystals, generated, scored and stored one chunk at a time.

    Chunk ``k`` is :func:`bulk_chunks`' (seed :func:`chunk_seed`), so the crystals are those of a ``--cluster``
    run with the same chunk size, and a run of one chunk is a plain request. Each chunk is scored (duplicates
    against the stored candidates, earlier chunks of the run included) and appended to the run in one
    transaction (:meth:`Store.append_candidates`) before the next starts: only one chunk is held in memory.
    Ctrl-C (or a killed process) loses at most the chunk being made; ``resume`` (a run id) marks that run
    running again and goes on after its stored chunks, so the finished run holds what an uninterrupted one
    would. ``on_chunk`` gets the candidate ids of each chunk once it is stored (e.g. to write its files).
    """
    request = checked.request
    manifest_sha = sha256(engine.manifest.path(MANIFEST))
    before = 0.0
    if resume is None:
        run_id = store.start_run(RunInfo(request.mode, request.count, request.seed, engine.name, manifest_sha,
                                         request.target, request.formula, checked.steps_per_level,
                                         checked.screening_ratio if request.mode == "formation_energy" else None,
                                         False, chunk_size=chunk_size))
        done = 0
    else:
        run_id, done = resume, store.resume_run(resume)
        before = float((store.run(resume) or {}).get("seconds") or 0.0)
    reference, why_not = novelty_reference(engine.manifest)
    family = in_family(engine.manifest.vocabulary)
    notes = list(dict.fromkeys([*checked.warnings, *([why_not] if why_not else [])]))
    duplicates = DuplicateFinder(store.same_formula, matcher())  # one for the run: stored crystals read once
    first: list[CandidateRecord] = []
    t0 = time.perf_counter()
    status, message = "completed", None
    try:
        for job in bulk_chunks(checked, engine.manifest.folder, manifest_sha, None, chunk_size):
            if job.first_index < done:  # stored before (chunks are stored whole, so this one is complete)
                continue
            chunk = engine.check(job.request)
            notes += [w for w in chunk.warnings if w not in notes]
            result = engine.generate(chunk)
            crystals = [replace(c, index=c.index + job.first_index) for c in result.crystals]
            records = score_crystals(crystals, reference, None, None, family, duplicates)
            ids = store.append_candidates(run_id, records)
            done += len(records)
            first += records[:max(0, keep - len(first))]
            if on_chunk is not None:
                on_chunk(ids)
            if progress is not None:
                progress("generating + scoring", done, request.count)
    except KeyboardInterrupt:  # GenerationInterrupted included: the chunk being made is dropped, not stored
        status = "interrupted"
        message = (f"stopped by the user; {done} of {request.count} crystals stored "
                   f"(vdwgen generate --resume {run_id} goes on)")
    except BaseException as exc:
        store.finish_run(run_id, [], "failed", before + time.perf_counter() - t0,
                         f"{type(exc).__name__}: {exc}; {done} of {request.count} crystals stored"[:500])
        raise
    seconds = before + time.perf_counter() - t0
    store.finish_run(run_id, [], status, seconds, message)
    return StreamedRun(run_id, status, done, store.count_valid(run_id), first, notes, seconds, message)
