"""Files a user takes away from the store: POSCAR names, POSCAR folders and ZIPs with a summary.

The command line (``vdwgen export-poscar``) and the app's download buttons both use these, so a
crystal has the same file name wherever it is downloaded.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from store.database import Store
from store.query import CANDIDATE_ID_RULE, QueryRefused, candidate_id_column, run_query


def poscar_name(cid: int, formula: str, suffix: str = ".vasp") -> str:
    """``000042_Ga2In2S2Se2.vasp``: the candidate id (zero-padded) and its cell formula; ``suffix`` names the
    candidate's other files the same way (``.cif``, ``_relaxed.vasp``)."""
    return f"{cid:06d}_{formula}{suffix}"


def selected_ids(store: Store, sql: str) -> list[int]:
    """The candidate ids a user query selects (:func:`store.query.candidate_id_column`): never the ids of
    ``runs`` or any other column taken for candidates."""
    frame = run_query(store, sql).frame
    if frame.empty:
        return []
    column = candidate_id_column(sql, frame)
    if column is None:
        raise QueryRefused(f"the query returns no candidate ids; select {CANDIDATE_ID_RULE}")
    return [int(v) for v in frame[column].tolist()]


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
