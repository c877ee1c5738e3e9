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

import json
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
    "New and sound after relaxation, by the oracle's energy": (
        "SELECT id, formula, oracle_formation_energy, predicted_formation_energy, relaxed_a,\n"
        "       oracle_interlayer_gap, oracle_energy_drop_per_atom\n"
        "FROM candidates\n"
        "WHERE relaxed_valid AND relaxed_novel AND NOT relaxed_known AND oracle_converged\n"
        "  AND oracle_flags IS NULL\n"
        "ORDER BY oracle_formation_energy\nLIMIT 50"),
    "Why candidates are invalid": (
        "SELECT invalid_reason, count(*) AS n\n"
        "FROM candidates WHERE NOT valid\nGROUP BY invalid_reason ORDER BY n DESC LIMIT 50"),
    "Candidates that are dataset bilayers": (
        "SELECT id, formula, known_id, relaxed_known_id, predicted_formation_energy, oracle_formation_energy\n"
        "FROM candidates WHERE known OR relaxed_known ORDER BY id DESC LIMIT 100"),
    "Valid, novel Te bilayers below -0.8 eV/atom": (
        "SELECT id, formula, predicted_formation_energy, interlayer_gap, novel\n"
        "FROM candidates\n"
        "WHERE valid AND novel AND list_contains(elements, 'Te')\n"
        "  AND predicted_formation_energy < -0.8\n"
        "ORDER BY predicted_formation_energy\nLIMIT 50"),
    "Latest candidates": (
        "SELECT id, run_id, formula, predicted_formation_energy, oracle_formation_energy, valid, relaxed_valid,\n"
        "       known_id, relaxed_known_id, invalid_reason, oracle_flags\n"
        "FROM candidates ORDER BY id DESC LIMIT 100"),
    "Runs": "SELECT id, created, status, mode, target_formation_energy, formula_request, count_stored, seconds\n"
            "FROM runs ORDER BY id DESC",
    "Bilayers with a sensible gap and vacuum": (
        "SELECT id, formula, n_layers, interlayer_gap, vacuum, predicted_formation_energy\n"
        "FROM candidates\n"
        "WHERE n_layers = 2 AND NOT interlayer_too_short AND interlayer_gap BETWEEN 2.5 AND 4.5\n"
        "  AND vacuum > 10\nORDER BY predicted_formation_energy"),
    "Checked by the oracle (CHGNet + D3)": (
        "SELECT id, formula, predicted_formation_energy, oracle_initial_formation_energy, oracle_formation_energy,\n"
        "       oracle_formation_energy - predicted_formation_energy AS difference,\n"
        "       oracle_interlayer_gap, oracle_rmsd, oracle_steps, oracle_converged, oracle_flags\n"
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


CANDIDATE_ID = "candidate_id"
CANDIDATE_ID_RULE = ("an `id` column read straight from `candidates` (`SELECT id, ... FROM candidates ...`, or "
                     "`c.id` in a join), or a column named `candidate_id` (e.g. `c.id AS candidate_id`)")
"""Which result column holds candidate ids, in words (the app's caption, the CLI's refusal)."""


def _from_relations(node: dict, relations: dict[str, str | None]) -> None:
    """Name (alias, else table name) -> base table of each relation in a FROM tree; None for anything
    else (subqueries, table functions)."""
    kind = node.get("type")
    if kind == "JOIN":
        _from_relations(node["left"], relations)
        _from_relations(node["right"], relations)
    elif kind == "BASE_TABLE":
        table = str(node.get("table_name", "")).lower()
        relations[str(node.get("alias") or table).lower()] = table
    elif kind != "EMPTY":
        relations[str(node.get("alias") or f"<{kind}>").lower()] = None


def candidates_id_output(sql: str) -> str | None:
    """The output name of the column that is ``candidates.id`` read straight from the table, or None.

    From DuckDB's own parse tree (``json_serialize_sql``): the query must be one SELECT (no UNION)
    whose FROM holds the table ``candidates`` (not a CTE of that name), and a select item must be
    the column ``id`` of it: ``id`` when candidates is the only relation, ``alias.id`` in a join,
    or ``*`` / ``alias.*`` that keeps ``id`` as it is.
    """
    connection = duckdb.connect()  # parses only; nothing is read
    try:
        tree = json.loads(connection.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    except (duckdb.Error, TypeError, ValueError):
        return None
    finally:
        connection.close()
    statements = tree.get("statements") if isinstance(tree, dict) and not tree.get("error") else None
    if not statements or len(statements) != 1:
        return None
    node = statements[0].get("node", {})
    if node.get("type") != "SELECT_NODE":
        return None
    ctes = {str(entry.get("key", "")).lower() for entry in node.get("cte_map", {}).get("map", [])}
    relations: dict[str, str | None] = {}
    _from_relations(node.get("from_table") or {}, relations)
    names = {name for name, table in relations.items() if table == "candidates" and "candidates" not in ctes}
    alone = len(relations) == 1 and bool(names)
    for item in node.get("select_list", []):
        if item.get("class") == "COLUMN_REF":
            parts = [str(p).lower() for p in item.get("column_names", [])]
            if parts and parts[-1] == "id" and ((len(parts) == 1 and alone) or (len(parts) > 1 and parts[-2] in names)):
                return str(item.get("alias") or "id")
        elif item.get("class") == "STAR" and not item.get("columns") and item.get("expr") is None:
            relation = str(item.get("relation_name") or "").lower()
            touched = json.dumps([item.get(k) for k in ("exclude_list", "replace_list", "rename_list",
                                                        "qualified_exclude_list")]).lower()
            if ((relation in names) or (not relation and alone)) and '"id"' not in touched:
                return "id"
    return None


def candidate_id_column(sql: str, frame: pd.DataFrame) -> str | None:
    """The column of ``frame`` (the result of ``sql``) that holds candidate ids, or None.

    ``candidate_id`` when the result has it (the user named it so); else the output column that the
    query reads straight from ``candidates.id`` (:func:`candidates_id_output`). The column must be
    unique in the result, integer and without nulls.
    """
    columns = list(frame.columns)
    name = CANDIDATE_ID if CANDIDATE_ID in columns else candidates_id_output(sql)
    if name is None or columns.count(name) != 1:
        return None
    values = frame[name]
    if not pd.api.types.is_integer_dtype(values) or values.isna().any():
        return None
    return name
