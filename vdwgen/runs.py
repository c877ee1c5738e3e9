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

from pymatgen.core import Structure

from export.manifest import sha256
from export.request import GenerationRequest
from export.runtime import Engine, GenerationInterrupted, GenerationResult
from store.database import RunInfo, Store
from store.records import candidate_record
from vdwgen.novelty import Candidate, TrainingSet, first_duplicate, matcher
from vdwgen.paths import dataset_dir

MAX_DUPLICATE_CHECKS = 500
"""Stored candidates of the same formula a new one is compared with (the newest ones)."""

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total); stages: ``decoding``, ``scoring``."""


@dataclass(frozen=True)
class StoredRun:
    run_id: int
    candidate_ids: list[int]
    result: GenerationResult
    status: str


@lru_cache(maxsize=2)
def training_set(table: str, split: str) -> TrainingSet | None:
    """The training part of the dataset table (None when the table is missing)."""
    path = Path(table)
    return TrainingSet.load(path, split=split) if path.is_file() else None


def _training_set_for(engine: Engine) -> TrainingSet | None:
    data = engine.manifest.data.get("training", {}).get("data", {})
    split = str(data.get("id", "janus_iii_vi:random:train")).split(":")[1]
    return training_set(str(dataset_dir() / "bilayers.parquet"), split)


def score(result: GenerationResult, store: Store, reference: TrainingSet | None,
          progress: Progress | None = None) -> list[dict]:
    """One ``candidates`` record per crystal of ``result``."""
    m = matcher()
    earlier: dict[str, list[tuple[int, Candidate]]] = {}  # reduced once, compared with every later crystal
    records = []
    total = len(result.candidates)
    for done, c in enumerate(result.candidates, 1):
        s = c.structure
        me = Candidate(s, m)
        formula = s.composition.reduced_formula
        if formula not in earlier:
            stored = store.same_formula(formula)[-MAX_DUPLICATE_CHECKS:]
            earlier[formula] = [(cid, Candidate(Structure.from_str(poscar, fmt="poscar"), m)) for cid, poscar in stored]
        duplicate = first_duplicate(me, earlier[formula], m)
        novel = None if reference is None else reference.is_novel(me)
        records.append(candidate_record(c.index, s, c.predicted_formation_energy, novel, duplicate))
        earlier[formula].append((-(c.index + 1), me))  # same run: -(index + 1), resolved by the store
        if progress is not None:
            progress("scoring", done, total)
    return records


def generate_and_store(engine: Engine, request: GenerationRequest, store: Store,
                       progress: Progress | None = None) -> StoredRun:
    """Run ``request`` on ``engine`` and store it (see the module docstring)."""
    checked = engine.check(request)  # bad requests fail before a run is recorded
    info = RunInfo(request.mode, request.count, request.seed, engine.name,
                   sha256(engine.manifest.path("manifest.json")), request.target,
                   request.formula, checked.steps_per_level,
                   checked.screening_ratio if request.mode == "formation_energy" else None)
    run_id = store.start_run(info)
    t0 = time.perf_counter()
    status, message = "completed", None
    try:
        try:
            result = engine.generate(request, None if progress is None else
                                     (lambda done, total: progress("decoding", done, total)))
        except GenerationInterrupted as stop:
            result, status = stop.result, "interrupted"
            message = f"stopped by the user after {len(result.candidates)} of {request.count} crystals"
        records = score(result, store, _training_set_for(engine), progress)
    except BaseException as exc:
        store.finish_run(run_id, [], "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                         time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:500])
        raise
    ids = store.finish_run(run_id, records, status, time.perf_counter() - t0, message)
    return StoredRun(run_id, ids, result, status)


__all__ = ["StoredRun", "generate_and_store", "score", "training_set"]
