"""Files a user takes away from the store: POSCAR names, POSCAR folders and ZIPs with a summary.

The command line (``vdwgen export-poscar``) and the app's download buttons (Generate and Candidates pages)
all use these, so a crystal has the same files and names wherever it is downloaded:

- ``000042_Ga2In2S2Se2.vasp``: the relaxed crystal when the oracle relaxed it (what DFT should start from),
  else the crystal as generated; ``000042_Ga2In2S2Se2_generated.vasp`` is the generated one beside it;
- the same with ``.cif``;
- in a ZIP, ``summary.csv``: every stored column but the structure texts, units in the column names.

Every POSCAR is grouped by element (one symbol line, one count line), as :mod:`scoring.record` writes them.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from store.database import CandidateFiles, Store
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


UNITS = {
    "a": "Å", "b": "Å", "c": "Å", "alpha": "deg", "beta": "deg", "gamma": "deg", "volume": "Å^3",
    "density": "g/cm^3", "predicted_formation_energy": "eV/atom", "min_distance": "Å", "vacuum": "Å",
    "interlayer_gap": "Å", "interlayer_distance": "Å", "oracle_formation_energy": "eV/atom",
    "oracle_initial_formation_energy": "eV/atom", "oracle_energy_drop_per_atom": "eV/atom",
    "oracle_interlayer_gap": "Å", "oracle_rmsd": "Å", "oracle_max_force": "eV/Å", "oracle_checked_at": "UTC",
    "relaxed_a": "Å", "relaxed_b": "Å", "relaxed_gamma": "deg", "created": "UTC",
}
"""The unit of every stored number that has one, for the summary's column names (``a (Å)``)."""
STRUCTURE_TEXTS = ("poscar", "cif", "oracle_relaxed_poscar", "relaxed_cif")
"""Stored columns that hold files, not values: left out of the summary."""


def candidate_files(files: CandidateFiles) -> dict[str, str]:
    """File name -> text of one candidate (see the module docstring): the relaxed crystal under the plain name
    when there is one, with the generated crystal beside it."""
    if files.relaxed_poscar is None:
        return {poscar_name(files.id, files.formula): files.poscar,
                poscar_name(files.id, files.formula, ".cif"): files.cif}
    out = {poscar_name(files.id, files.formula): files.relaxed_poscar,
           poscar_name(files.id, files.formula, "_generated.vasp"): files.poscar,
           poscar_name(files.id, files.formula, "_generated.cif"): files.cif}
    if files.relaxed_cif is not None:
        out[poscar_name(files.id, files.formula, ".cif")] = files.relaxed_cif
    return out


def summary_csv(store: Store, ids: list[int]) -> str:
    """``summary.csv`` of the candidates ``ids`` (in that order): every stored column but the structure texts,
    each number's unit in its column name."""
    frame = store.cursor().execute(f"SELECT * EXCLUDE ({', '.join(STRUCTURE_TEXTS)}) FROM candidates "
                                   "WHERE id IN (SELECT unnest(?))", [list(ids)]).df()
    stored = set(frame["id"])
    frame = frame.set_index("id").loc[[i for i in dict.fromkeys(ids) if i in stored]].reset_index()
    return frame.rename(columns={c: f"{c} ({u})" for c, u in UNITS.items()}).to_csv(index=False)


def write_poscars(store: Store, ids: list[int], out: Path) -> int:
    """The files of ``ids`` into a folder, or a ZIP (``.zip``) with a ``summary.csv``; returns the count."""
    if out.suffix.lower() != ".zip":
        return write_folder(store, ids, out)
    files = store.files(ids)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(zip_bytes(store, files))
    return len(files)


def write_folder(store: Store, ids: list[int], out: Path) -> int:
    """The files of ``ids`` (:func:`candidate_files`) into the folder ``out``, whatever its name ends with (a run's
    ``--out`` is a folder); returns the count."""
    files = store.files(ids)
    out.mkdir(parents=True, exist_ok=True)
    for one in files:
        for name, text in candidate_files(one).items():
            (out / name).write_text(text)
    return len(files)


def zip_bytes(store: Store, files: list[CandidateFiles]) -> bytes:
    """A ZIP of every candidate's files (:func:`candidate_files`) plus ``summary.csv`` (:func:`summary_csv`)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for one in files:
            for name, text in candidate_files(one).items():
                archive.writestr(name, text)
        archive.writestr("summary.csv", summary_csv(store, [f.id for f in files]))
    return buffer.getvalue()
