"""Files a user takes away from the store: POSCAR names, POSCAR folders and ZIPs with a summary.

The command line (``vdwgen export-poscar``) and the app's download buttons both use these, so a
crystal has the same file name wherever it is downloaded.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from store.database import Store
from store.query import QueryRefused, run_query


def poscar_name(cid: int, formula: str) -> str:
    """``000042_Ga2In2S2Se2.vasp``: the candidate id (zero-padded) and its cell formula."""
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
