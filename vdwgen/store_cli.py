"""`vdwgen query` and `vdwgen export-poscar`: the candidate store from the command line.

The work is in :mod:`store.query` and :mod:`store.files`; this module prints.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.errors import VdwgenError
from store.database import open_existing_store
from store.files import selected_ids, write_poscars
from store.query import run_query


def run_query_command(sql: str, db: Path | None, max_rows: int) -> int:
    """Print the rows of one read-only SELECT over the store (at most ``max_rows``)."""
    store = open_existing_store(db)
    result = run_query(store, sql, row_cap=max_rows)
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        print(result.frame.to_string(index=False) if not result.frame.empty else "(no rows)")
    more = f"; more rows exist (cap {max_rows})" if result.truncated else ""
    print(f"{len(result.frame)} rows in {result.seconds:.2f} s{more}")
    return 0


def run_export_poscar(query: str, out: Path, db: Path | None) -> int:
    """Write the POSCARs of the candidates ``query`` selects into a folder or a ZIP."""
    store = open_existing_store(db)
    ids = selected_ids(store, query)
    if not ids:
        raise VdwgenError("the query selected no candidates; nothing written")
    try:
        n = write_poscars(store, ids, out)
    except OSError as exc:
        raise VdwgenError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    print(f"wrote {n} POSCAR files to {out}")
    return 0
