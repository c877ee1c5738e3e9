"""`vdwgen generate`: request -> checked once -> generated and scored (and stored with ``--db``) -> files + table.

The table shows the records that :mod:`services.generation` scored (and stored): validity,
layers, novelty against the model's training part, known dataset crystals and duplicates; nothing is
scored twice. With ``--relax`` the oracle relaxes every crystal it can take after the run is stored (in
``--db``, else the default store, since the relaxations are work worth keeping); the table then adds the
oracle's formation energy and the relaxed crystal's validity, read back from the store, and ``--out`` gets
each relaxed POSCAR too. A line says what the model's dataset already holds for the request.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serving.request import GenerationRequest


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


BULK_TABLE_ROWS = 100
"""Rows of the table printed for a ``--cluster`` run (every crystal still goes to the files and the store)."""


def run_generate(request: GenerationRequest, artifacts: Path | None = None, out: Path | None = None,
                 db: Path | None = None, device: str | None = None, cluster: str | None = None,
                 chunk_size: int | None = None, relax: bool = False, relax_workers: int = 0) -> int:
    """Answer ``request`` with the model in ``artifacts`` (default: the first that serves its mode), write
    POSCAR/CIF files to ``out``, store the run in ``db``; print the scored records.

    With ``cluster`` (``local:N`` or a Dask scheduler address) the request is cut into chunks of
    ``chunk_size`` crystals (default: the engine's decode batch) generated and scored on the cluster's
    workers (:func:`services.generation.generate_bulk`); it may then ask for up to
    :data:`services.generation.BULK_MAX_COUNT` crystals.
    """
    from services.generation import generate_and_score, generate_and_store
    from serving.artifacts import find_artifact
    from serving.engine import Engine

    executor = None
    if cluster is not None:
        from core.executor import open_executor, parse_cluster
        from services.generation import init_bulk_worker

        executor = open_executor(cluster=parse_cluster(cluster), initializer=init_bulk_worker, initargs=(1,))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    folder = artifacts or find_artifact(request.mode)
    engine = Engine.load(folder, device=device)
    streamed = executor is None and request.count > engine.manifest.sampling.max_count
    if chunk_size is not None and executor is None and not streamed:
        from core.errors import VdwgenError

        raise VdwgenError(f"--chunk-size applies to --cluster runs and to streamed runs (more than "
                          f"{engine.manifest.sampling.max_count} crystals) only")
    if streamed and relax:
        from core.errors import VdwgenError

        raise VdwgenError(f"--relax applies to runs of at most {engine.manifest.sampling.max_count} crystals; relax a "
                          "streamed run's candidates afterwards with vdwgen verify --run RUN")
    if streamed:
        from services.generation import BULK_MAX_COUNT
        from serving.request import check_request

        checked = check_request(request, engine.manifest, BULK_MAX_COUNT)
        return _streamed(engine, checked, out, db, chunk_size, None)
    if executor is None:
        checked = engine.check(request)  # bad requests fail before any work
    else:
        from services.generation import BULK_MAX_COUNT
        from serving.request import check_request

        checked = check_request(request, engine.manifest, BULK_MAX_COUNT)
    store = None
    if db is not None or relax:
        from store.database import open_store

        store = open_store(db)
    if executor is not None:
        print(f"generating on {executor.where}", file=sys.stderr)
        executor.start()  # an unreachable scheduler is reported before any work
    from vdwgen.progress import stage_bar

    bar, progress = stage_bar("decoding", request.count, "crystal")
    try:
        if executor is not None:
            from services.generation import generate_bulk
            from serving.engine import DECODE_BATCH

            with executor:
                done = generate_bulk(engine, checked, executor, store, progress, chunk_size or DECODE_BATCH,
                                     device, relax)
            if relax and store is not None:
                from dataclasses import replace

                from services.generation import relax_run

                status, message = relax_run(engine, store, done.run_id, done.candidate_ids, progress, relax_workers)
                done = replace(done, relax_status=status, relax_message=message)
        elif store is not None:
            done = generate_and_store(engine, checked, store, progress, relax, relax_workers)
        else:
            done = generate_and_score(engine, checked, progress)
    finally:
        bar.close()
    result, records = done.result, done.records
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    stored = store.run_rows(done.run_id) if store is not None else []  # in the run's order, as ``records``
    rows = stored if relax else []
    if out is not None and store is not None:
        from store.files import write_folder

        write_folder(store, done.candidate_ids, out)  # the store's names: what export-poscar and the app write
    elif out is not None:
        _write_unstored(out, records)
    print(f"model {result.model}: {len(records)} crystals in {result.seconds:.1f} s "
          f"({result.steps_per_level} Langevin steps per level, screening {result.screening_ratio}:1)")
    predicted = f"{engine.manifest.property.label} pred"
    oracle_head = f" {'E_f oracle':>10} {'relaxed':>8}" if rows else ""
    print(f"{'#':>4}  {'formula':<16} {predicted:>18} {'d_min (Å)':>9} {'layers':>6} {'novel':>5} {'known as':>9} "
          f"{'dup. of':>7}{oracle_head}  validity")
    shown = records if executor is None or len(records) <= BULK_TABLE_ROWS else records[:BULK_TABLE_ROWS]
    for k, r in enumerate(shown):
        energy = "-" if r.predicted_formation_energy is None else f"{r.predicted_formation_energy:.3f}"
        dmin = "-" if r.min_distance is None else f"{r.min_distance:.2f}"
        duplicate = "-" if r.duplicate_of is None else (f"#{-r.duplicate_of - 1}" if r.duplicate_of < 0
                                                         else str(r.duplicate_of))
        layers = str(r.n_layers) if r.slab else "bulk"
        oracle = ""
        if rows:
            row = rows[k]
            ef = row["oracle_formation_energy"]
            oracle = (f" {'-' if ef is None else f'{ef:.3f}':>10} "
                      f"{'-' if row['relaxed_valid'] is None else ('valid' if row['relaxed_valid'] else 'invalid'):>8}")
        known = (rows[k]["relaxed_known_id"] if rows else None) or r.known_id or "-"
        print(f"{r.index_in_run:>4}  {r.formula:<16} {energy:>18} {dmin:>9} {layers:>6} {_yes_no(r.novel):>5} "
              f"{known:>9} {duplicate:>7}{oracle}  {r.verdict}")
    if len(shown) < len(records):
        print(f"... and {len(records) - len(shown)} more crystals, not shown")
    valid = sum(1 for r in records if r.valid)
    bulk = sum(1 for r in records if not r.slab)
    if bulk:
        print(f"2D checks (layers, vacuum, interlayer gap) skipped for {bulk} bulk crystal{'s' if bulk != 1 else ''}: "
              "no vacuum along c")
    if store is not None:
        ids = done.candidate_ids
        span = f"candidates {ids[0]}..{ids[-1]}" if ids else "no candidates"
        print(f"stored as run {done.run_id} ({done.status}), {span}, in {store.path}")
    if store is not None:
        from services.run_report import RunFigures

        figures = RunFigures(stored, request.target if request.mode == "formation_energy" else None)
        print(figures.validity_line())
        if rows:
            print(f"relaxation ({done.relax_status}): {done.relax_message}")
            print(figures.oracle_line() or "oracle: no crystal relaxed")
    from services.dataset_answer import dataset_answer
    from services.generation import training_table

    answer = dataset_answer(engine.manifest, request, training_table(engine.manifest)[0])
    if answer is not None:
        print(answer.line())
    print(f"valid: {valid}/{len(records)}" + (f"; files in {out}" if out is not None else ""))
    return 0


def _write_unstored(out: Path, records: list) -> None:
    """The POSCAR and CIF of each record of a run that was not stored (no candidate id yet): named as
    :func:`store.files.poscar_name` names a stored candidate, by the index in the run instead of the id."""
    from store.files import poscar_name

    for record in records:
        (out / poscar_name(record.index_in_run, record.formula)).write_text(record.poscar)
        (out / poscar_name(record.index_in_run, record.formula, ".cif")).write_text(record.cif)


def _streamed(engine, checked, out: Path | None, db: Path | None, chunk_size: int | None,  # noqa: ANN001
              resume: int | None) -> int:
    """A streamed run (:func:`services.generation.generate_streamed`): files written and candidates stored chunk by
    chunk; the table shows the first :data:`BULK_TABLE_ROWS` crystals."""
    from services.generation import generate_streamed
    from serving.engine import DECODE_BATCH
    from store.database import open_store
    from store.files import write_folder
    from vdwgen.progress import stage_bar

    store = open_store(db)
    request = checked.request
    if db is None:
        print(f"storing the run in the default store {store.path} (more crystals than one request holds are "
              "stored chunk by chunk)", file=sys.stderr)
    bar, progress = stage_bar("generating + scoring", request.count, "crystal")
    try:
        done = generate_streamed(engine, checked, store, progress, chunk_size or DECODE_BATCH, resume,
                                 BULK_TABLE_ROWS, None if out is None else lambda ids: write_folder(store, ids, out))
    finally:
        bar.close()
    for warning in done.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"model {engine.name}: {done.stored} of {request.count} crystals stored in {done.seconds:.1f} s "
          f"({checked.steps_per_level} Langevin steps per level)")
    for r in done.first_records:
        print(f"{r.index_in_run:>6}  {r.formula:<16} {_yes_no(r.novel):>5}  {r.verdict}")
    if done.stored > len(done.first_records):
        print(f"... and {done.stored - len(done.first_records)} more crystals in the store (query them with SQL)")
    ending = f": {done.message}" if done.message else ""
    print(f"stored as run {done.run_id} ({done.status}) in {store.path}{ending}")
    print(f"valid: {done.valid}/{done.stored}" + (f"; files in {out}" if out is not None else ""))
    return 130 if done.status == "interrupted" else 0


def resume_generate(run_id: int, artifacts: Path | None = None, out: Path | None = None, db: Path | None = None,
                    device: str | None = None) -> int:
    """Go on with the streamed run ``run_id`` of the store ``db`` (default store): its request and chunk size come
    from the store; the model must be the one that made it (same manifest)."""
    from core.errors import VdwgenError
    from core.manifest import MANIFEST, sha256
    from services.generation import BULK_MAX_COUNT
    from serving.artifacts import find_artifact
    from serving.engine import Engine
    from serving.request import GenerationRequest, check_request
    from store.database import open_existing_store

    store = open_existing_store(db)
    run = store.resumable_run(run_id)  # refused before the model loads
    request = GenerationRequest(run["mode"], int(run["count_requested"]), target=run["target_formation_energy"],
                                formula=run["formula_request"], seed=int(run["seed"]),
                                steps_per_level=run["steps_per_level"], screening_ratio=run["screening_ratio"])
    engine = Engine.load(artifacts or find_artifact(request.mode), device=device)
    if sha256(engine.manifest.path(MANIFEST)) != run["manifest_sha256"]:
        raise VdwgenError(f"run {run_id} was made by model {run['model_name']} with another manifest than "
                          f"{engine.manifest.folder}; give that model's folder with --artifacts")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    checked = check_request(request, engine.manifest, BULK_MAX_COUNT)
    return _streamed(engine, checked, out, db, run["chunk_size"], run_id)
