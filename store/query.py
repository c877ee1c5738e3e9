"""User SQL over the candidate store: one read-only SELECT, capped and timed.

Layers of defence, each enough for a class of hostile input:

1. the store's one connection is locked down (:data:`store.database.LOCKED_DOWN`): no file
   access (``read_text``, ``read_csv``, ``COPY``, ``ATTACH``), no extension loading, and no
   ``SET``/``PRAGMA`` that changes the configuration;
2. the text must parse (``duckdb.extract_statements``) to exactly one ``SELECT`` statement;
3. it runs inside ``BEGIN TRANSACTION READ ONLY`` on its own cursor, so even a SELECT
   that would write (``nextval``) cannot change the database;
4. at most ``row_cap`` rows come back (``truncated`` says when more existed);
5. a timer interrupts the query after ``timeout_s`` seconds; the connection stays usable.

Errors come back as :class:`QueryRefused` with DuckDB's message, stripped of file paths.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import duckdb
import pandas as pd

from core.errors import VdwgenError
from store.database import Store

ROW_CAP = 10_000
TIMEOUT_S = 10.0
EXAMPLES: dict[str, str] = {
    "Valid, novel Te bilayers below -0.8 eV/atom": (
        "SELECT id, formula, predicted_formation_energy, interlayer_gap, novel\n"
        "FROM candidates\n"
        "WHERE valid AND novel AND list_contains(elements, 'Te')\n"
        "  AND predicted_formation_energy < -0.8\n"
        "ORDER BY predicted_formation_energy\nLIMIT 50"),
    "Latest candidates": (
        "SELECT id, run_id, formula, predicted_formation_energy, valid, n_layers, interlayer_gap\n"
        "FROM candidates ORDER BY id DESC LIMIT 100"),
    "Runs": "SELECT id, created, status, mode, target_formation_energy, formula_request, count_stored, seconds\n"
            "FROM runs ORDER BY id DESC",
    "Bilayers with a sensible gap and vacuum": (
        "SELECT id, formula, n_layers, interlayer_gap, vacuum, predicted_formation_energy\n"
        "FROM candidates\n"
        "WHERE n_layers = 2 AND NOT interlayer_too_short AND interlayer_gap BETWEEN 2.5 AND 4.5\n"
        "  AND vacuum > 10\nORDER BY predicted_formation_energy"),
    "Checked by the oracle (CHGNet + D3)": (
        "SELECT id, formula, predicted_formation_energy, oracle_formation_energy,\n"
        "       oracle_formation_energy - predicted_formation_energy AS difference,\n"
        "       oracle_interlayer_gap, oracle_rmsd, oracle_steps, oracle_converged\n"
        "FROM candidates\nWHERE oracle_checked_at IS NOT NULL\nORDER BY oracle_formation_energy"),
}


class QueryRefused(VdwgenError):
    """A user query that is not allowed, failed, or ran out of time (the message says which)."""


@dataclass(frozen=True)
class QueryResult:
    """Rows of a user query (at most the row cap) and whether more existed."""

    frame: pd.DataFrame
    truncated: bool
    seconds: float


_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+[\w.@+-]*")


def _plain(message: str) -> str:
    """DuckDB's message without internal paths (and without its LINE/caret decoration)."""
    message = _PATH.sub("<path>", message.strip())
    return message.split("\n\nLINE")[0].split("\nLINE")[0].strip()


def check_select(sql: str) -> str:
    """The single SELECT statement in ``sql`` (raises :class:`QueryRefused` otherwise)."""
    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused("write one SELECT statement, e.g. SELECT * FROM candidates LIMIT 10")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"the query does not parse: {_plain(str(exc))}") from None
    if len(statements) != 1:
        raise QueryRefused(f"exactly one statement is allowed; this text has {len(statements)}")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        kind = str(statement.type).split(".")[-1]
        raise QueryRefused(f"only SELECT queries are allowed (this is {kind}); the store is read-only here")
    return statement.query


def run_query(store: Store, sql: str, row_cap: int = ROW_CAP, timeout_s: float = TIMEOUT_S) -> QueryResult:
    """Run one user SELECT read-only, at most ``row_cap`` rows, interrupted after ``timeout_s``."""
    query = check_select(sql)
    cursor = store.cursor()
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        cursor.interrupt()

    timer = threading.Timer(timeout_s, stop)
    t0 = time.perf_counter()
    try:
        cursor.execute("BEGIN TRANSACTION READ ONLY")
        timer.start()
        try:
            cursor.execute(query)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(row_cap + 1)
        finally:
            timer.cancel()
    except duckdb.Error as exc:
        if timed_out.is_set():
            raise QueryRefused(f"the query ran longer than {timeout_s:g} s and was stopped") from None
        if isinstance(exc, duckdb.PermissionException):
            raise QueryRefused("the query tries to reach files or settings outside the store, which is not "
                               "allowed") from None
        raise QueryRefused(_plain(str(exc))) from None
    finally:
        try:
            cursor.execute("ROLLBACK")
        except duckdb.Error:
            pass
        cursor.close()
    frame = pd.DataFrame(rows[:row_cap], columns=columns)
    return QueryResult(frame, len(rows) > row_cap, time.perf_counter() - t0)


__all__ = ["EXAMPLES", "QueryRefused", "QueryResult", "ROW_CAP", "TIMEOUT_S", "check_select", "run_query"]
