"""`vdwgen query` and `vdwgen export-poscar`: the candidate store from the command line.

Serving side: imports ``store`` and never ``training``.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import pandas as pd

from store.database import Store, open_store
from store.query import QueryRefused, run_query
from vdwgen.errors import VdwgenError


def poscar_name(cid: int, formula: str) -> str:
    return f"{cid:06d}_{formula}.vasp"


def selected_ids(store: Store, sql: str) -> list[int]:
    """Ids from a user query whose first column (or ``id`` column) holds candidate ids."""
    frame = run_query(store, sql).frame
    if frame.empty:
        return []
    column = "id" if "id" in frame.columns else frame.columns[0]
    try:
        return [int(v) for v in frame[column].tolist()]
    except (TypeError, ValueError):
        raise QueryRefused(f"the query must return candidate ids (column {column!r} holds other values)") from None


def write_poscars(store: Store, ids: list[int], out: Path) -> int:
    """POSCARs of ``ids`` into a folder, or a ZIP (``.zip``) with a ``summary.csv``; returns the count."""
    files = store.files(ids)
    if out.suffix.lower() == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(zip_bytes(store, files))
    else:
        out.mkdir(parents=True, exist_ok=True)
        for cid, formula, poscar, _cif in files:
            (out / poscar_name(cid, formula)).write_text(poscar)
    return len(files)


def zip_bytes(store: Store, files: list[tuple[int, str, str, str]]) -> bytes:
    """A ZIP of POSCARs named by id and formula plus ``summary.csv`` of their rows."""
    ids = [f[0] for f in files]
    summary = run_query(store, "SELECT * EXCLUDE (poscar, cif, oracle_relaxed_poscar) FROM candidates ORDER BY id",
                        row_cap=1_000_000).frame
    summary = summary[summary["id"].isin(ids)].set_index("id").loc[ids].reset_index() if ids else summary.iloc[:0]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for cid, formula, poscar, _cif in files:
            archive.writestr(poscar_name(cid, formula), poscar)
        archive.writestr("summary.csv", summary.to_csv(index=False))
    return buffer.getvalue()


def run_query_command(args: argparse.Namespace) -> int:
    store = open_store(args.db)
    result = run_query(store, args.sql, row_cap=args.max_rows)
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        print(result.frame.to_string(index=False) if not result.frame.empty else "(no rows)")
    more = f"; more rows exist (cap {args.max_rows})" if result.truncated else ""
    print(f"{len(result.frame)} rows in {result.seconds:.2f} s{more}")
    return 0


def run_export_poscar(args: argparse.Namespace) -> int:
    store = open_store(args.db)
    ids = selected_ids(store, args.query)
    if not ids:
        raise VdwgenError("the query selected no candidates; nothing written")
    n = write_poscars(store, ids, args.out)
    print(f"wrote {n} POSCAR files to {args.out}")
    return 0
