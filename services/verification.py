"""Relax-and-store: relax stored candidates with the physics oracle and keep each verdict.

One implementation for the relax stage of a generation run (:func:`relax_stored`, called by
:func:`services.generation.generate_and_store` with ``relax``), ``vdwgen verify`` (candidates, or the unrelaxed
rest of a run) and the app's "Check with the oracle" button. Each batch of candidates is relaxed
(:func:`scoring.oracle_check.check_with_oracle`: positions and the in-plane cell), the relaxed crystal is scored
like a generated one (validity, novelty against the training part, known against the whole dataset:
:func:`scoring.batch.judged_record`), and the batch is written to the store as soon as it is done, so an
interrupt loses at most the batches in flight: :class:`VerificationInterrupted` carries what was already stored.

The relaxations and the scoring of the relaxed crystals run in this process (``workers=0``) or in worker
processes (``workers >= 1``, a ``spawn`` pool whose processes load the oracle and the dataset reference once,
use one thread each and leave Ctrl-C to the driver), so the app's server process only writes rows while CHGNet
and the structure matcher work. A worker process that dies ends the stage with :class:`RelaxWorkerDied`, naming
what was stored before; a pool that broke so is refused at once (:func:`usable`), never half used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pymatgen.core import Structure

from core.paths import dataset_dir
from oracle.convention import load_references
from oracle.shared import OracleError, get_oracle
from scoring.batch import judged_record
from scoring.novelty import TrainingSet
from scoring.oracle_check import (
    CELLS,
    FMAX,
    MAX_STEPS,
    OracleCheck,
    check_with_oracle,
    input_problem,
    refused_summary,
)
from scoring.record import CandidateRecord
from store.database import Store, StoreError

BATCH = 8
"""Candidates relaxed together (one FIRE batch) and stored together, in this process."""
WORKER_BATCH = 2
"""Candidates one worker process relaxes together: small, so that progress moves per crystal or two."""
SHOWN_IDS = 10
"""At most this many ids are named in one message."""


@dataclass(frozen=True)
class Verified:
    """One candidate checked by the oracle and stored."""

    candidate_id: int
    formula: str
    predicted: float | None
    check: OracleCheck


class VerificationInterrupted(KeyboardInterrupt):
    """Ctrl-C during a check; ``verified`` holds the candidates already checked and stored."""

    def __init__(self, verified: list[Verified], total: int) -> None:
        super().__init__(f"{len(verified)} of {total} checked and stored before the interrupt")
        self.verified = verified
        self.total = total


class RelaxWorkerDied(OracleError):
    """A relaxation worker process ended abruptly (killed, out of memory, or its set-up failed); ``verified``
    holds what was stored."""

    def __init__(self, verified: list[Verified], total: int) -> None:
        super().__init__(f"a relaxation worker process died; {len(verified)} of {total} crystals were relaxed and "
                         "stored before, the rest were not relaxed")
        self.verified = verified
        self.total = total


@lru_cache(maxsize=2)
def training_set(table: str, split: str, part: str = "train") -> TrainingSet:
    """Every row of a dataset table, the ``part`` rows of the ``split`` split counting as training (novelty),
    loaded once per process."""
    return TrainingSet.load(Path(table), split=split, part=None, training_part=part)


@dataclass(frozen=True)
class Reference:
    """What relaxed crystals are judged against: every row of ``table`` (known), the ``part`` of its ``split``
    split (novel). Sent to worker processes as these three strings; each loads the table once."""

    table: str
    split: str
    part: str

    def load(self) -> TrainingSet:
        return training_set(self.table, self.split, self.part)


DEFAULT: Literal["default"] = "default"
"""``reference=DEFAULT``: :func:`default_reference`."""


def default_reference() -> Reference | None:
    """The dataset in :func:`core.paths.dataset_dir` as the reference of a check that names none (``vdwgen
    verify``, the Candidates page): every row for known, the random split's training part for novel (the shipped
    model's); None when the table is not there."""
    table = dataset_dir() / "bilayers.parquet"
    return Reference(str(table), "random", "train") if table.is_file() else None


@dataclass(frozen=True)
class RelaxJob:
    """One batch of crystals to relax and judge (in this process or a worker): the crystals, where each sits in
    its run, the model's predictions, and the protocol."""

    structures: list[Structure]
    indices: list[int]
    predicted: list[float | None]
    references: dict[str, float]
    fmax: float
    max_steps: int
    cell: str
    reference: Reference | None
    family: bool | None


@dataclass(frozen=True)
class RelaxedBatch:
    """What a :class:`RelaxJob` gives back: one check and one record of the relaxed crystal per crystal."""

    checks: list[OracleCheck]
    records: list[CandidateRecord]
    label: str


def relax_and_judge(job: RelaxJob, progress: Callable[[int, int], None] | None = None) -> RelaxedBatch:
    """Relax a batch with the process's oracle and score each relaxed crystal (both sides of the pool)."""
    oracle = get_oracle()
    checks = check_with_oracle(job.structures, job.references, oracle, fmax=job.fmax, max_steps=job.max_steps,
                               progress=progress, cell=job.cell)
    reference = None if job.reference is None else job.reference.load()
    records = [judged_record(index, check.relaxed, predicted, reference, job.family)
               for index, predicted, check in zip(job.indices, job.predicted, checks)]
    return RelaxedBatch(checks, records, oracle.label)


def init_relax_worker() -> None:
    """Set up a relaxation worker once: Ctrl-C left to the driver, one torch thread, no dependency warnings, the
    oracle loaded."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops the pool; a worker must not die mid-batch
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    get_oracle()


def relax_pool(workers: int) -> ProcessPoolExecutor:
    """A ``spawn`` pool of ``workers`` relaxation processes (:func:`init_relax_worker`, one thread each), started
    and loading the oracle at once; keep one for many runs to load the oracle once."""
    import multiprocessing as mp

    from core.executor import single_threaded_children

    with single_threaded_children():  # the processes start now (not on the first job), with these settings
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=init_relax_worker)
        for _ in range(workers):
            pool.submit(_ready)
    return pool


def _ready() -> None:
    """A no-op job that makes the pool start its worker processes at once."""


def usable(pool: ProcessPoolExecutor) -> bool:
    """False once a worker of ``pool`` died: such a pool refuses every job (start a new one)."""
    return not getattr(pool, "_broken", False)  # ProcessPoolExecutor's own flag, set when a worker dies


def named_ids(ids: list[int]) -> str:
    """``1, 2, 3`` (at most :data:`SHOWN_IDS`, then "and N more"); "none" for no ids."""
    if not ids:
        return "none"
    more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return ", ".join(str(i) for i in ids[:SHOWN_IDS]) + more


def _rows(store: Store, ids: list[int]) -> list[dict]:
    """The candidates' rows, in order; every unknown id is named (up to a few) in one error."""
    rows, missing = [], []
    for cid in ids:
        try:
            rows.append(store.candidate(cid))
        except StoreError:
            missing.append(cid)
    if missing:
        noun = "no candidate with id" if len(missing) == 1 else "no candidates with ids"
        raise StoreError(f"{noun} {named_ids(missing)} in {store.path}")
    return rows


def verify_candidates(
    store: Store,
    ids: list[int],
    fmax: float = FMAX,
    max_steps: int = MAX_STEPS,
    references: Mapping[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch: int = BATCH,
    cell: str = "in_plane",
    reference: Reference | None | Literal["default"] = DEFAULT,
    family: bool | None = None,
    workers: int | ProcessPoolExecutor = 0,
) -> list[Verified]:
    """Relax the candidates ``ids`` with the oracle and store every verdict with the relaxed crystal's scores.

    Args:
        store: the candidate store holding the ids.
        ids: candidate ids (duplicates are checked once, in first-seen order).
        fmax: force threshold in eV/Å (> 0).
        max_steps: FIRE steps at most (>= 1).
        references: elemental references (default: the dataset's ``references.json``).
        progress: called with (crystals finished, total): after every FIRE step in this process, after every
            finished batch with workers.
        batch: crystals relaxed and stored together in this process (workers take :data:`WORKER_BATCH`).
        cell: ``in_plane`` (positions and the in-plane cell) or ``fixed`` (positions only).
        reference: the dataset the relaxed crystals are judged against (novel: its training part; known: any
            part); :data:`DEFAULT` takes :func:`default_reference`; None judges neither.
        family: whether the bilayer checks apply (:func:`scoring.record.validity_checks`).
        workers: 0 relaxes in this process; a number starts that many worker processes for this call; a pool
            from :func:`relax_pool` is used as it is (and left running).

    Raises:
        OracleError: a bad setting, or a candidate the oracle cannot check (all are checked before
            any relaxation, so nothing is half done).
        StoreError: an id that is not in the store.
        VerificationInterrupted: Ctrl-C; the candidates checked so far are stored.
        RelaxWorkerDied: a worker process died (or the pool had broken before); the candidates checked before
            are stored.
    """
    if not fmax > 0:
        raise OracleError(f"--fmax must be a positive force in eV/Å (got {fmax})")
    if max_steps < 1:
        raise OracleError(f"--max-steps must be at least 1 (got {max_steps})")
    if cell not in CELLS:
        raise OracleError(f"--cell must be one of {', '.join(CELLS)} (got {cell!r})")
    ids = list(dict.fromkeys(int(i) for i in ids))
    rows = _rows(store, ids)
    spec = default_reference() if reference == DEFAULT else reference
    references = dict(references) if references is not None else load_references(dataset_dir())
    structures = [Structure.from_str(row["poscar"], fmt="poscar") for row in rows]
    for cid, structure in zip(ids, structures):  # every refusal before any relaxation
        problem = input_problem(structure, references)
        if problem is not None:
            raise OracleError(f"candidate {cid}: {problem}")
    verified: list[Verified] = []

    def job(start: int, size: int) -> RelaxJob:
        part = rows[start:start + size]
        return RelaxJob(structures[start:start + size], [int(r["index_in_run"]) for r in part],
                        [r["predicted_formation_energy"] for r in part], references, fmax, max_steps, cell, spec,
                        family)

    def keep(start: int, done: RelaxedBatch) -> None:
        for row, check, record in zip(rows[start:start + len(done.checks)], done.checks, done.records):
            store.record_oracle(int(row["id"]), check, done.label, record)
            verified.append(Verified(int(row["id"]), str(row["formula"]), row["predicted_formation_energy"], check))

    with warnings.catch_warnings():
        # chgnet 0.4.2 converts grad-tracking tensors in every forward; harmless, not the user's business
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
        try:
            if isinstance(workers, int) and workers == 0:
                for start in range(0, len(ids), batch):
                    done = len(verified)

                    def step(finished: int, _total: int, done: int = done) -> None:
                        if progress is not None:
                            progress(done + finished, len(ids))

                    keep(start, relax_and_judge(job(start, batch), step))
            elif ids:
                _relax_on_workers([job(k, WORKER_BATCH) for k in range(0, len(ids), WORKER_BATCH)], workers, keep,
                                  lambda: None if progress is None else progress(len(verified), len(ids)))
        except KeyboardInterrupt:
            raise VerificationInterrupted(verified, len(ids)) from None
        except BrokenProcessPool:
            raise RelaxWorkerDied(verified, len(ids)) from None
    return verified


def _relax_on_workers(jobs: list[RelaxJob], workers: int | ProcessPoolExecutor,
                      keep: Callable[[int, RelaxedBatch], None], tick: Callable[[], None]) -> None:
    """Send the jobs (:data:`WORKER_BATCH` crystals each) to worker processes and ``keep`` each as it finishes."""
    own = not isinstance(workers, ProcessPoolExecutor)
    pool = relax_pool(int(workers)) if own else workers
    if not usable(pool):
        raise BrokenProcessPool("the relaxation pool lost a worker before this run")
    pending: dict[Future, int] = {}
    try:
        for k, one in enumerate(jobs):
            pending[pool.submit(relax_and_judge, one)] = k * WORKER_BATCH
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                start = pending.pop(future)
                keep(start, future.result())
                tick()
    except BaseException:
        for future in pending:
            future.cancel()
        if own:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    if own:
        pool.shutdown()


def relax_stored(store: Store, run_id: int, ids: list[int], references: Mapping[str, float],
                 reference: Reference | None | Literal["default"] = DEFAULT, family: bool | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 workers: int | ProcessPoolExecutor = 0) -> tuple[str, str | None]:
    """The relax stage of run ``run_id``: relax its candidates ``ids`` (:func:`verify_candidates`, each batch
    stored as it finishes) and record in ``runs`` how it ended.

    Crystals the oracle cannot take (atoms closer than the paper's 0.5 Å, an element without a reference) stay
    unrelaxed and are counted in the message. A worker process that dies ends the stage ``failed``; Ctrl-C
    ends it ``interrupted`` and is raised again. Returns (relax status, message).
    """
    structures = {int(r["id"]): Structure.from_str(r["poscar"], fmt="poscar") for r in map(store.candidate, ids)}
    takes = [cid for cid, s in structures.items() if input_problem(s, references) is None]
    note = refused_summary(list(structures.values()), references)
    store.set_relax_status(run_id, "running", note)
    try:
        done = verify_candidates(store, takes, references=references, progress=progress, reference=reference,
                                 family=family, workers=workers) if takes else []
    except VerificationInterrupted as stop:
        message = f"stopped by the user after {len(stop.verified)} of {len(takes)} relaxations"
        store.set_relax_status(run_id, "interrupted", "; ".join(filter(None, [message, note])))
        raise
    except Exception as exc:  # noqa: BLE001 - whatever stopped it, the run says so and keeps its crystals
        message = "; ".join(filter(None, [str(exc)[:400] if isinstance(exc, OracleError)
                                          else f"{type(exc).__name__}: {exc}"[:400], note]))
        store.set_relax_status(run_id, "failed", message)
        return "failed", message
    message = "; ".join(filter(None, [f"{len(done)} relaxed", note]))
    store.set_relax_status(run_id, "completed", message)
    return "completed", message


def oracle_label() -> str:
    """The oracle's name and version as stored with each verdict (loads the oracle on first use)."""
    return get_oracle().label
