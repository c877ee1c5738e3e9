"""The candidate store: one DuckDB file of runs and candidates.

Design around DuckDB's rules (environment.md):

- **One configuration per file per process.** A second connection to the same file with
  other settings is refused, so this module keeps exactly one connection per file per
  process (``_OPEN``), opened with the locked-down configuration that the user-SQL path
  needs -- external file access off, extension autoload/autoinstall off, configuration
  locked -- and every caller (writes from runs, user queries, downloads) works through a
  cursor of that connection. Our own writes never need files or extensions, so nothing is
  lost by locking the one connection down.
- **Threads** each take ``connection.cursor()``; writes are serialised by a per-file lock,
  so concurrent runs in one process never conflict on ids.
- **One writer process.** Another process holding the file gets a clear
  :class:`StoreError` naming it, not DuckDB's lock error.
- **Runs are atomic.** :meth:`Store.start_run` commits a ``running`` row; :meth:`Store.finish_run`
  writes all of a run's candidates and the final status in one transaction. A process
  killed mid-run leaves its row ``running``; the next open marks such rows ``interrupted``
  (only one process can hold the file, so they cannot belong to a live run).
- **Oracle checks** (:meth:`Store.record_oracle`) update one candidate's ``oracle_*``
  columns in one transaction; a later check of the same candidate replaces the earlier one.
"""

from __future__ import annotations

import atexit
import datetime as dt
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from core.errors import VdwgenError
from core.paths import data_dir
from store.schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from scoring.oracle_check import OracleCheck
    from scoring.record import CandidateRecord

DB_FILE = "candidates.duckdb"
LOCKED_DOWN = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "lock_configuration": True,
}
"""The one configuration of every store connection (see the module docstring)."""

RUN_STATUSES = ("running", "completed", "interrupted", "failed")
RESCORED_AT = 4
"""The migration after which stored candidates are re-scored for validity (:meth:`Store._rescore_validity`)."""


class StoreError(VdwgenError):
    """The store cannot be opened or written; the message says why and what to do."""


def default_db_path() -> Path:
    """``VDWGEN_DB`` when set, else ``<data dir>/candidates.duckdb``."""
    value = os.environ.get("VDWGEN_DB", "").strip()
    return Path(value).expanduser() if value else data_dir() / DB_FILE


_OPEN: dict[Path, Store] = {}
_OPEN_LOCK = threading.Lock()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _finite(value: float | None) -> float | None:
    """``value`` as a float, or None when it is missing, NaN or infinite (stored as NULL)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path), config=dict(LOCKED_DOWN))
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            pid = re.search(r"PID (\d+)", text)
            holder = f" (PID {pid.group(1)})" if pid else ""
            raise StoreError(f"the candidate database {path} is in use by another process{holder}; close that "
                             "app or command, or choose another file with --db or VDWGEN_DB") from None
        raise StoreError(f"cannot open the candidate database {path}: {text}") from None
    except (duckdb.Error, OSError) as exc:
        raise StoreError(f"cannot open the candidate database {path}: {exc}") from None


def open_store(path: Path | None = None) -> Store:
    """The process's store for ``path`` (default :func:`default_db_path`), migrated to the current schema."""
    path = Path(path or default_db_path()).expanduser().resolve()
    with _OPEN_LOCK:
        store = _OPEN.get(path)
        if store is None:
            store = Store(path, _connect(path))
            store._migrate()
            store._close_stale_runs()
            _OPEN[path] = store
        return store


def open_existing_store(path: Path | None = None) -> Store:
    """:func:`open_store` for commands that read or finish what is stored (query, export-poscar, verify, generate
    --resume): a ``path`` that holds no file is refused in one line, where :func:`open_store` would make an empty
    store there and the command would answer from it (a mistyped --db read as "no rows")."""
    if path is not None and not Path(path).expanduser().exists():
        raise StoreError(f"no candidate store at {path}; give the --db file a run was stored in (vdwgen generate "
                         "or vdwgen design with --db FILE makes one)")
    return open_store(path)


@atexit.register
def _close_all() -> None:
    """Close every open store at exit (DuckDB checkpoints the file; no leaked handles)."""
    with _OPEN_LOCK:
        stores = list(_OPEN.values())
        _OPEN.clear()
    for store in stores:
        try:
            store.connection.close()
        except duckdb.Error:
            pass


def close_store(path: Path | None = None) -> None:
    """Close the process's connection to ``path`` (tests; the next open reconnects)."""
    path = Path(path or default_db_path()).expanduser().resolve()
    with _OPEN_LOCK:
        store = _OPEN.pop(path, None)
    if store is not None:
        store.connection.close()


@dataclass(frozen=True)
class CandidateFiles:
    """A candidate's files as stored: the crystal as generated and, once the oracle relaxed it, as relaxed."""

    id: int
    formula: str
    poscar: str
    cif: str
    relaxed_poscar: str | None
    relaxed_cif: str | None


@dataclass(frozen=True)
class DesignCriterion:
    """One target of one designed candidate, as designed (before the oracle)."""

    candidate_id: int
    label: str
    target: str
    low: float | None
    high: float | None
    unit: str
    designed: float
    predicted: float
    met: bool


@dataclass(frozen=True)
class RunInfo:
    """What a run was asked for (stored in ``runs``)."""

    mode: str
    count_requested: int
    seed: int
    model_name: str
    manifest_sha256: str
    target_formation_energy: float | None = None
    formula_request: str | None = None
    steps_per_level: int | None = None
    screening_ratio: int | None = None
    relax: bool = False
    design_targets: str | None = None
    templates: str | None = None
    chunk_size: int | None = None
    """Crystals per stored chunk of a streamed run (None: the run is stored at once)."""


CANDIDATE_COLUMNS: tuple[str, ...] = (
    "formula", "reduced_formula", "elements", "num_atoms", "a", "b", "c", "alpha", "beta", "gamma", "volume",
    "density", "predicted_formation_energy", "min_distance", "structure_valid", "composition_valid", "valid",
    "n_layers", "periodic_along_c", "vacuum", "interlayer_gap", "interlayer_distance", "interlayer_too_short",
    "novel", "duplicate_of", "poscar", "cif", "slab", "contacts_valid", "motif_valid", "gap_valid",
    "invalid_reason", "known", "known_id",
)
"""Columns a candidate record fills (besides id, run_id, index_in_run, created)."""


class Store:
    """A DuckDB candidate store (use :func:`open_store`)."""

    def __init__(self, path: Path, connection: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self.connection = connection
        self.write_lock = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB connections are not shared across threads)."""
        return self.connection.cursor()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor in one transaction, under the write lock: committed when the block ends, rolled back when
        anything leaves it early (Ctrl-C included), so a write is stored whole or not at all."""
        with self.write_lock:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    # -- schema ----------------------------------------------------------------------------
    def _migrate(self) -> None:
        cur = self.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied TIMESTAMP NOT NULL)")
        current = cur.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise StoreError(f"the candidate database {self.path} has schema version {current}, newer than this "
                             f"vdwgen understands ({SCHEMA_VERSION}); upgrade vdwgen or use another --db")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.transaction() as step:
                step.execute(MIGRATIONS[version - 1])
                if version == RESCORED_AT:
                    self._rescore_validity(step)
                step.execute("INSERT INTO schema_version VALUES (?, ?)", [version, _utcnow()])

    @property
    def schema_version(self) -> int:
        return int(self.cursor().execute("SELECT max(version) FROM schema_version").fetchone()[0])

    def _close_stale_runs(self) -> None:
        cur = self.cursor()
        cur.execute(
            "UPDATE runs SET status = 'interrupted', finished = ?, count_stored = (SELECT count(*) FROM candidates c "
            "WHERE c.run_id = runs.id), message = coalesce(message, CASE WHEN chunk_size IS NULL THEN "
            "'the process ended during the run; nothing of it was stored' ELSE 'the process ended during the run; '"
            " || (SELECT count(*) FROM candidates c WHERE c.run_id = runs.id) || ' crystals of it are stored "
            "(vdwgen generate --resume ' || id || ' goes on)' END) WHERE status = 'running'", [_utcnow()])
        cur.execute(
            "UPDATE runs SET relax_status = 'interrupted', relax_message = 'the process ended during the "
            "relaxation; the crystals relaxed before are stored (vdwgen verify --run ' || id || ' relaxes the "
            "rest)' WHERE relax_status = 'running'")

    def _rescore_validity(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Score every candidate stored before migration 4 with today's validity checks (its ``valid`` was the
        paper's two checks only), so that ``valid`` means the same for every row a query filters, and write its
        POSCAR and CIF grouped by element as new rows are. A row whose POSCAR cannot be read is marked invalid
        with the reason instead of stopping the migration."""
        from pymatgen.core import Structure

        from scoring.record import grouped_by_element, validity_checks

        rows = cur.execute("SELECT id, poscar, cif FROM candidates WHERE contacts_valid IS NULL").fetchall()
        updates = []
        for cid, poscar, cif in rows:
            try:
                structure = grouped_by_element(Structure.from_str(poscar, fmt="poscar"))
                checks = validity_checks(structure)
            except Exception as exc:  # noqa: BLE001 - one bad row must not make the file unopenable
                updates.append([False, None, None, False, f"unreadable POSCAR: {exc}"[:300], poscar, cif, cid])
                continue
            updates.append([checks.contacts, checks.motif, checks.gap, checks.valid, checks.reason,
                            structure.to(fmt="poscar"), structure.to(fmt="cif"), cid])
        if updates:
            cur.executemany("UPDATE candidates SET contacts_valid = ?, motif_valid = ?, gap_valid = ?, valid = ?, "
                            "invalid_reason = ?, poscar = ?, cif = ? WHERE id = ?", updates)

    def set_relax_status(self, run_id: int, status: str, message: str | None = None) -> None:
        """Record how far a run's relaxation got (``running`` when it starts, then its end)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
        with self.write_lock:
            self.cursor().execute("UPDATE runs SET relax_status = ?, relax_message = ? WHERE id = ?",
                                  [status, message, int(run_id)])

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, info: RunInfo) -> int:
        """Record a new run as ``running`` (committed at once); returns its id."""
        with self.write_lock:
            cur = self.cursor()
            run_id = int(cur.execute("SELECT coalesce(max(id), 0) + 1 FROM runs").fetchone()[0])
            cur.execute(
                "INSERT INTO runs (id, created, status, mode, target_formation_energy, formula_request, "
                "count_requested, seed, steps_per_level, screening_ratio, model_name, manifest_sha256, relax, "
                "design_targets, templates, chunk_size) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, _utcnow(), info.mode, info.target_formation_energy, info.formula_request,
                 info.count_requested, info.seed, info.steps_per_level, info.screening_ratio, info.model_name,
                 info.manifest_sha256, info.relax, info.design_targets, info.templates, info.chunk_size])
            return run_id

    def finish_run(self, run_id: int, records: Sequence[CandidateRecord], status: str = "completed",
                   seconds: float | None = None, message: str | None = None) -> list[int]:
        """Store a run's (last) candidates and its final status in one transaction; returns the new ids.

        A negative ``duplicate_of`` of ``-(k + 1)`` refers to the crystal with ``index_in_run``
        k of this same run (its id is only known here). ``count_stored`` counts every candidate of the run,
        those of earlier :meth:`append_candidates` included.
        """
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES[1:])}, got {status!r}")
        with self.transaction() as cur:
            ids = self._insert(cur, run_id, records)
            cur.execute("UPDATE runs SET status = ?, finished = ?, count_stored = (SELECT count(*) FROM candidates "
                        "WHERE run_id = ?), seconds = ?, message = ? WHERE id = ?",
                        [status, _utcnow(), run_id, seconds, message, run_id])
        return ids

    def append_candidates(self, run_id: int, records: Sequence[CandidateRecord]) -> list[int]:
        """Store one chunk of a running (streamed) run in one transaction; returns the new ids. The run stays
        ``running`` and ``count_stored`` counts its candidates so far (``duplicate_of`` as in :meth:`finish_run`)."""
        with self.transaction() as cur:
            ids = self._insert(cur, run_id, records)
            cur.execute("UPDATE runs SET count_stored = (SELECT count(*) FROM candidates WHERE run_id = ?) "
                        "WHERE id = ?", [run_id, run_id])
        return ids

    def _insert(self, cur: duckdb.DuckDBPyConnection, run_id: int, records: Sequence[CandidateRecord]) -> list[int]:
        """Insert candidates of a running run inside the caller's transaction (negative ``duplicate_of``
        resolved among these records, then among the run's stored candidates)."""
        state = cur.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
        if state is None or state[0] != "running":
            raise StoreError(f"run {run_id} is not running (status: {state[0] if state else 'unknown'})")
        columns = ("id", "run_id", "index_in_run", "created", *CANDIDATE_COLUMNS)
        placeholders = ", ".join("?" for _ in columns)
        first = int(cur.execute("SELECT coalesce(max(id), 0) + 1 FROM candidates").fetchone()[0])
        now = _utcnow()
        ids = list(range(first, first + len(records)))
        by_index = {int(rec.index_in_run): cid for cid, rec in zip(ids, records)}
        rows = []
        for cid, rec in zip(ids, records):
            row = rec.row()
            values = {c: row[c] for c in CANDIDATE_COLUMNS}
            if values["duplicate_of"] is not None and values["duplicate_of"] < 0:
                index = -int(values["duplicate_of"]) - 1
                earlier = by_index.get(index)
                if earlier is None:
                    found = cur.execute("SELECT id FROM candidates WHERE run_id = ? AND index_in_run = ?",
                                        [run_id, index]).fetchone()
                    earlier = None if found is None else int(found[0])
                values["duplicate_of"] = earlier
            rows.append([cid, run_id, int(rec.index_in_run), now, *values.values()])
        if rows:
            cur.executemany(f"INSERT INTO candidates ({', '.join(columns)}) VALUES ({placeholders})", rows)
        return ids

    def resumable_run(self, run_id: int) -> dict:
        """The row of a streamed run that was interrupted or failed (what :meth:`resume_run` goes on with).

        Raises:
            StoreError: no such run, a run that completed or is running, or one not streamed (it was stored at
                once, so there is nothing to go on from).
        """
        run = self.run(int(run_id))
        if run is None:
            raise StoreError(f"no run {run_id} in {self.path}")
        if run["chunk_size"] is None:
            raise StoreError(f"run {run_id} was not streamed (only runs of more crystals than one request may hold "
                             "are stored chunk by chunk); generate it again instead")
        if run["status"] not in ("interrupted", "failed"):
            raise StoreError(f"run {run_id} is {run['status']}: only an interrupted or failed run can be resumed")
        return run

    def resume_run(self, run_id: int) -> int:
        """Mark an interrupted or failed streamed run ``running`` again (:meth:`resumable_run`); returns how many
        candidates it holds."""
        with self.write_lock:
            self.resumable_run(run_id)
            cur = self.cursor()
            cur.execute("UPDATE runs SET status = 'running', finished = NULL, message = NULL WHERE id = ?",
                        [int(run_id)])
            return int(cur.execute("SELECT count(*) FROM candidates WHERE run_id = ?", [int(run_id)]).fetchone()[0])

    # -- design runs -------------------------------------------------------------------------
    def record_design(self, rows: Sequence[DesignCriterion], templates: Mapping[int, str]) -> None:
        """Store every criterion of designed candidates (one transaction), each candidate's ``design_met``
        (all its criteria met) and the template it started from."""
        by_candidate: dict[int, bool] = {}
        for r in rows:
            by_candidate[r.candidate_id] = by_candidate.get(r.candidate_id, True) and r.met
        with self.transaction() as cur:
            cur.executemany(
                "INSERT INTO design_criteria (candidate_id, label, target, low, high, unit, designed, predicted, "
                "met) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[r.candidate_id, r.label, r.target, _finite(r.low), _finite(r.high), r.unit, _finite(r.designed),
                  _finite(r.predicted), r.met] for r in rows])
            cur.executemany("UPDATE candidates SET design_met = ?, template_id = ? WHERE id = ?",
                            [[met, templates.get(cid), cid] for cid, met in by_candidate.items()])

    def record_design_oracle(self, candidate_id: int, values: Mapping[str, float | None]) -> None:
        """The oracle's value of each criterion of one relaxed candidate (None: the oracle cannot tell, e.g. a
        band gap), whether it meets its target, and ``design_oracle_met`` (NULL when some value is unknown)."""
        with self.transaction() as cur:
            rows = cur.execute("SELECT label, low, high FROM design_criteria WHERE candidate_id = ?",
                               [int(candidate_id)]).fetchall()
            verdicts = []
            for label, low, high in rows:
                value = _finite(values.get(label))
                met = None if value is None else ((low is None or value >= low) and (high is None or value <= high))
                verdicts.append(met)
                cur.execute("UPDATE design_criteria SET oracle = ?, oracle_met = ? WHERE candidate_id = ? AND "
                            "label = ?", [value, met, int(candidate_id), label])
            # three-valued AND: one target missed decides; otherwise an unknown one leaves it unknown
            every = False if False in verdicts else (None if None in verdicts or not verdicts else True)
            cur.execute("UPDATE candidates SET design_oracle_met = ? WHERE id = ?", [every, int(candidate_id)])

    def design_rows(self, run_id: int) -> list[dict]:
        """Every criterion row of a design run's candidates, by candidate id then label."""
        cur = self.cursor()
        result = cur.execute("SELECT d.* FROM design_criteria d JOIN candidates c ON c.id = d.candidate_id "
                             "WHERE c.run_id = ? ORDER BY d.candidate_id, d.label", [int(run_id)])
        names = [col[0] for col in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]

    # -- oracle checks -----------------------------------------------------------------------
    def record_oracle(self, candidate_id: int, check: OracleCheck, oracle_version: str,
                      relaxed: CandidateRecord | None = None) -> None:
        """Store the oracle's relaxation of one candidate (its ``oracle_*`` columns) and, when given, the record of
        the relaxed crystal (its ``relaxed_*`` columns: validity, novelty, known) in one transaction.

        Replaces an earlier check of the same candidate. Non-finite numbers are stored as NULL.

        Raises:
            StoreError: no candidate has this id.
        """
        values = [_finite(check.formation_energy), _finite(check.energy_drop_per_atom),
                  _finite(check.interlayer_gap), _finite(check.rmsd), int(check.steps), bool(check.converged),
                  check.relaxed.to(fmt="poscar"), _utcnow(), str(oracle_version),
                  _finite(check.initial_formation_energy), _finite(check.max_force), check.cell,
                  "; ".join(check.flags) or None, check.relaxed.to(fmt="cif")]
        a, b, _c = check.relaxed.lattice.abc
        scored = [None] * 6 if relaxed is None else [
            relaxed.valid, relaxed.invalid_reason, relaxed.n_layers, relaxed.novel, relaxed.known, relaxed.known_id]
        scored.append(check.relaxed.lattice.gamma)
        with self.transaction() as cur:
            if cur.execute("SELECT 1 FROM candidates WHERE id = ?", [int(candidate_id)]).fetchone() is None:
                raise StoreError(f"no candidate with id {int(candidate_id)}")
            cur.execute(
                "UPDATE candidates SET oracle_formation_energy = ?, oracle_energy_drop_per_atom = ?, "
                "oracle_interlayer_gap = ?, oracle_rmsd = ?, oracle_steps = ?, oracle_converged = ?, "
                "oracle_relaxed_poscar = ?, oracle_checked_at = ?, oracle_version = ?, "
                "oracle_initial_formation_energy = ?, oracle_max_force = ?, oracle_cell = ?, oracle_flags = ?, "
                "relaxed_cif = ?, relaxed_a = ?, relaxed_b = ?, relaxed_valid = ?, relaxed_invalid_reason = ?, "
                "relaxed_n_layers = ?, relaxed_novel = ?, relaxed_known = ?, relaxed_known_id = ?, "
                "relaxed_gamma = ? WHERE id = ?",
                [*values, a, b, *scored, int(candidate_id)])

    # -- reads -----------------------------------------------------------------------------
    def candidate(self, candidate_id: int) -> dict:
        """Every column of one candidate, by name.

        Raises:
            StoreError: no candidate has this id.
        """
        cur = self.cursor()
        row = cur.execute("SELECT * FROM candidates WHERE id = ?", [int(candidate_id)]).fetchone()
        if row is None:
            raise StoreError(f"no candidate with id {int(candidate_id)}")
        return dict(zip([d[0] for d in cur.description], row))

    def unrelaxed(self, run_id: int) -> list[int]:
        """Ids of the run's candidates the oracle has not relaxed yet, in the run's order."""
        return [int(r[0]) for r in self.cursor().execute(
            "SELECT id FROM candidates WHERE run_id = ? AND oracle_checked_at IS NULL ORDER BY index_in_run",
            [int(run_id)]).fetchall()]

    def run_rows(self, run_id: int) -> list[dict]:
        """Every column of a run's candidates, by name, in the run's order."""
        cur = self.cursor()
        rows = cur.execute("SELECT * FROM candidates WHERE run_id = ? ORDER BY index_in_run", [int(run_id)]).fetchall()
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in rows]

    def same_formula(self, reduced_formula: str) -> list[tuple[int, str]]:
        """(id, POSCAR) of stored originals with this reduced formula (candidates that duplicate no earlier one,
        :mod:`scoring.batch`), oldest first."""
        return self.cursor().execute("SELECT id, poscar FROM candidates WHERE reduced_formula = ? "
                                     "AND duplicate_of IS NULL ORDER BY id", [reduced_formula]).fetchall()

    def files(self, ids: list[int]) -> list[CandidateFiles]:
        """The files of the given candidates (generated, and relaxed when the oracle relaxed them), in the order
        asked; unknown ids are left out."""
        ids = list(dict.fromkeys(int(i) for i in ids))  # a query that names a candidate twice gets it once
        if not ids:
            return []
        rows = self.cursor().execute(
            "SELECT id, formula, poscar, cif, oracle_relaxed_poscar, relaxed_cif FROM candidates "
            "WHERE id IN (SELECT unnest(?))", [list(ids)]).fetchall()
        by_id = {r[0]: CandidateFiles(*r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def run(self, run_id: int) -> dict | None:
        cur = self.cursor()
        row = cur.execute("SELECT * FROM runs WHERE id = ?", [run_id]).fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row))

    def count_valid(self, run_id: int) -> int:
        """Valid candidates of a run (every check that applies)."""
        return int(self.cursor().execute("SELECT count(*) FROM candidates WHERE run_id = ? AND valid",
                                         [int(run_id)]).fetchone()[0])

    def count(self, table: str = "candidates") -> int:
        if table not in ("candidates", "runs"):
            raise ValueError(f"no table {table!r}")
        return int(self.cursor().execute(f"SELECT count(*) FROM {table}").fetchone()[0])


__all__ = ["CANDIDATE_COLUMNS", "CandidateFiles", "RunInfo", "Store", "StoreError", "close_store", "default_db_path",
           "open_existing_store", "open_store"]
