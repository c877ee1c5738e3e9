"""Relax-and-store: relax stored candidates with the physics oracle and keep each verdict.

One implementation for the relax stage of a generation run (:func:`services.generation.generate_and_store`
with ``relax``), ``vdwgen verify`` and the app's "Check with the oracle" button. Each batch of candidates is
relaxed (:func:`scoring.oracle_check.check_with_oracle`: positions and the in-plane cell), the relaxed crystal
is scored like a generated one (validity, novelty against the training part, known against the whole
dataset: :func:`scoring.batch.judged_record`), and the batch is written to the store as soon as it is done,
so an interrupt loses at most the batches in flight: :class:`VerificationInterrupted` carries what was
already stored.

The relaxations run in this process (``workers=0``) or in worker processes (``workers >= 1``, a ``spawn``
pool whose processes load the oracle once and use one thread each), so the app's server process stays
responsive while CHGNet works. A worker process that dies ends the stage with :class:`RelaxWorkerDied`,
naming what was stored before.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from pymatgen.core import Structure

from core.paths import dataset_dir
from oracle.convention import load_references
from oracle.shared import OracleError, get_oracle
from scoring.batch import judged_record
from scoring.novelty import TrainingSet
from scoring.oracle_check import CELLS, FMAX, MAX_STEPS, OracleCheck, check_with_oracle, input_problem
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
    """A relaxation worker process ended abruptly (killed, out of memory); ``verified`` holds what was stored."""

    def __init__(self, verified: list[Verified], total: int) -> None:
        super().__init__(f"a relaxation worker process died; {len(verified)} of {total} crystals were relaxed and "
                         "stored before, the rest were not relaxed")
        self.verified = verified
        self.total = total


@dataclass(frozen=True)
class RelaxJob:
    """One batch sent to a worker process: the crystals and the protocol."""

    structures: list[Structure]
    references: dict[str, float]
    fmax: float
    max_steps: int
    cell: str


def init_relax_worker() -> None:
    """Set up a relaxation worker once: one torch thread, no dependency warnings, the oracle loaded."""
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    get_oracle()


def relax_job(job: RelaxJob) -> tuple[list[OracleCheck], str]:
    """Worker side: relax one batch; returns the checks and the oracle's label."""
    oracle = get_oracle()
    return (check_with_oracle(job.structures, job.references, oracle, fmax=job.fmax, max_steps=job.max_steps,
                              cell=job.cell), oracle.label)


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
    reference: TrainingSet | None = None,
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
        reference: the dataset table the relaxed crystals are judged against (novel: the training part; known:
            any part); None takes :func:`default_reference` (empty verdicts when it is not there either).
        family: whether the bilayer checks apply (:func:`scoring.record.validity_checks`).
        workers: 0 relaxes in this process; a number starts that many worker processes for this call; a pool
            from :func:`relax_pool` is used as it is (and left running).

    Raises:
        OracleError: a bad setting, or a candidate the oracle cannot check (all are checked before
            any relaxation, so nothing is half done).
        StoreError: an id that is not in the store.
        VerificationInterrupted: Ctrl-C; the candidates checked so far are stored.
        RelaxWorkerDied: a worker process died; the candidates checked before are stored.
    """
    if not fmax > 0:
        raise OracleError(f"--fmax must be a positive force in eV/Å (got {fmax})")
    if max_steps < 1:
        raise OracleError(f"--max-steps must be at least 1 (got {max_steps})")
    if cell not in CELLS:
        raise OracleError(f"--cell must be one of {', '.join(CELLS)} (got {cell!r})")
    ids = list(dict.fromkeys(int(i) for i in ids))
    rows = _rows(store, ids)
    reference = reference if reference is not None else default_reference()
    references = references if references is not None else load_references(dataset_dir())
    structures = [Structure.from_str(row["poscar"], fmt="poscar") for row in rows]
    for cid, structure in zip(ids, structures):  # every refusal before any relaxation
        problem = input_problem(structure, references)
        if problem is not None:
            raise OracleError(f"candidate {cid}: {problem}")
    verified: list[Verified] = []

    def keep(start: int, checks: Sequence[OracleCheck], label: str) -> None:
        for row, check in zip(rows[start:start + len(checks)], checks):
            relaxed = judged_record(int(row["index_in_run"]), check.relaxed, row["predicted_formation_energy"],
                                    reference, family)
            store.record_oracle(int(row["id"]), check, label, relaxed)
            verified.append(Verified(int(row["id"]), str(row["formula"]), row["predicted_formation_energy"], check))

    with warnings.catch_warnings():
        # chgnet 0.4.2 converts grad-tracking tensors in every forward; harmless, not the user's business
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
        try:
            if isinstance(workers, int) and workers == 0:
                oracle = get_oracle()
                for start in range(0, len(ids), batch):
                    done = len(verified)

                    def step(finished: int, _total: int, done: int = done) -> None:
                        if progress is not None:
                            progress(done + finished, len(ids))

                    checks = check_with_oracle(structures[start:start + batch], references, oracle, fmax=fmax,
                                               max_steps=max_steps, progress=step, cell=cell)
                    keep(start, checks, oracle.label)
            else:
                _relax_on_workers(structures, dict(references), fmax, max_steps, cell, workers, keep,
                                  lambda: None if progress is None else progress(len(verified), len(ids)))
        except KeyboardInterrupt:
            raise VerificationInterrupted(verified, len(ids)) from None
        except BrokenProcessPool:
            raise RelaxWorkerDied(verified, len(ids)) from None
    return verified


def _relax_on_workers(structures: list[Structure], references: dict[str, float], fmax: float, max_steps: int,
                      cell: str, workers: int | ProcessPoolExecutor,
                      keep: Callable[[int, Sequence[OracleCheck], str], None], tick: Callable[[], None]) -> None:
    """Send batches of :data:`WORKER_BATCH` crystals to worker processes and ``keep`` each as it finishes."""
    own = not isinstance(workers, ProcessPoolExecutor)
    pool = relax_pool(int(workers)) if own else workers
    try:
        pending: dict[Future, int] = {
            pool.submit(relax_job, RelaxJob(structures[k:k + WORKER_BATCH], references, fmax, max_steps, cell)): k
            for k in range(0, len(structures), WORKER_BATCH)}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                start = pending.pop(future)
                checks, label = future.result()
                keep(start, checks, label)
                tick()
    except BaseException:
        if own:
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            for future in pending:
                future.cancel()
        raise
    else:
        if own:
            pool.shutdown()


def default_reference() -> TrainingSet | None:
    """The dataset in :func:`core.paths.dataset_dir` as the reference of a check that names none (``vdwgen
    verify``, the Candidates page): every row for known, the random split's training part for novel (the shipped
    model's); None when the table is not there. Loaded once per process."""
    from services.generation import training_set

    table = dataset_dir() / "bilayers.parquet"
    return training_set(str(table), "random", "train") if table.is_file() else None


def oracle_label() -> str:
    """The oracle's name and version as stored with each verdict (loads the oracle on first use)."""
    return get_oracle().label
