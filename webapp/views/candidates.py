"""Candidates page: filter every stored candidate with SQL, view one in 3D, download POSCARs,
check one with the physics oracle (CHGNet + D3, :mod:`webapp.oracle_check`).

Queries go through :func:`store.query.run_query` (one read-only SELECT, row cap, timeout).
Selecting and downloading work only on results that hold candidate ids (see
:func:`store.query.candidate_id_column`): an ``id`` read straight from ``candidates``, or a column named
``candidate_id``; the ``id`` of ``runs`` is a run id, never taken for a candidate.
The 3D viewer is py3Dmol's HTML pointed at the vendored ``webapp/static/3Dmol-min.js``
(served at ``/app/static/`` by ``server.enableStaticServing``; the CDN is unreachable offline),
with explicit Jmol element colours and a legend, and each layer drawn whole.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path

import numpy as np
import pandas as pd
import py3Dmol
import pymatgen.core
import streamlit as st
from monty.serialization import loadfn
from pymatgen.core import Structure

from store.database import StoreError
from store.files import STRUCTURE_TEXTS, zip_bytes
from store.query import CANDIDATE_ID_RULE, EXAMPLES, QueryRefused, candidate_id_column, run_query
from webapp.downloads import candidate_downloads
from webapp.oracle_check import oracle_panel
from webapp.resources import candidate_store

VIEWER_JS = "/app/static/3Dmol-min.js"
DEFAULT_EXAMPLE = "Latest candidates"
ID_RULE = f"Select and download work on results with candidate ids: {CANDIDATE_ID_RULE}."


@functools.cache
def jmol_colours() -> dict[str, str]:
    """Element -> hex colour of the Jmol scheme (pymatgen's table; 3Dmol's ``Jmol`` scheme has the same)."""
    table = loadfn(Path(pymatgen.core.__file__).parent / "ElementColorSchemes.yaml")["Jmol"]
    return {el: "#{:02X}{:02X}{:02X}".format(*rgb) for el, rgb in table.items()}


def whole_layers(structure: Structure) -> Structure:
    """``structure`` translated along c so that the widest empty slab straddles the cell boundary.

    Fractional heights are taken modulo 1; the largest gap between neighbouring heights (the
    vacuum, counted across the boundary too) is centred on z = 0/1, so every layer lies inside
    the cell in one piece. Only a rigid translation: the crystal itself is unchanged.
    """
    if len(structure) == 0:
        return structure.copy()
    heights = np.sort(np.mod(structure.frac_coords[:, 2], 1.0))
    gaps = np.diff(np.append(heights, heights[0] + 1.0))  # the gap above each atom, the last one wraps
    widest = int(np.argmax(gaps))
    middle = heights[widest] + gaps[widest] / 2
    shifted = structure.copy()
    shifted.translate_sites(list(range(len(shifted))), [0.0, 0.0, -middle], frac_coords=True, to_unit_cell=True)
    return shifted


def element_legend(elements: list[str]) -> str:
    """An HTML legend: a coloured dot and the symbol of each element, in the viewer's colours."""
    colours = jmol_colours()
    items = "".join(
        f'<span style="margin-right:14px;white-space:nowrap"><span style="display:inline-block;width:12px;'
        f'height:12px;border-radius:50%;border:1px solid #555;vertical-align:middle;'
        f'background:{colours.get(el, "#FF1493")}"></span> {html.escape(el)}</span>'
        for el in elements)
    return (f'<div class="element-legend" style="font-family:sans-serif;font-size:14px;margin-top:6px">'
            f'{items}</div>')


def viewer_html(structure: Structure, repeat: int = 3, width: int = 640, height: int = 420) -> str:
    """An HTML 3D view of ``structure`` repeated ``repeat`` x ``repeat`` in-plane, with its cell and an
    element legend. Layers are drawn whole (:func:`whole_layers`); colours are Jmol's, set per element."""
    shown = whole_layers(structure) * (repeat, repeat, 1)
    view = py3Dmol.view(width=width, height=height, js=VIEWER_JS)
    view.addModel(shown.to(fmt="cif"), "cif")
    colours = jmol_colours()
    elements = sorted({site.specie.symbol for site in structure}, key=lambda el: pymatgen.core.Element(el).Z)
    for el in elements:
        colour = colours.get(el, "#FF1493")
        view.setStyle({"elem": el}, {"sphere": {"scale": 0.3, "color": colour},
                                     "stick": {"radius": 0.12, "color": colour}})
    view.addUnitCell()
    view.zoomTo()
    view.rotate(-75, "x")  # look along the layers: c points up the screen, the stacking shows
    return view._make_html() + element_legend(elements)


def _use_example() -> None:
    name = st.session_state.get("candidates_example")
    if name in EXAMPLES:
        st.session_state["candidates_sql"] = EXAMPLES[name]


st.title("Candidates")
try:
    store = candidate_store()
except StoreError as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()

counts = run_query(store, "SELECT (SELECT count(*) FROM runs) AS runs, count(*) AS candidates, "
                          "count(*) FILTER (WHERE valid) AS valid, count(*) FILTER (WHERE novel) AS novel "
                          "FROM candidates").frame.iloc[0]
cols = st.columns(4)
for col, name in zip(cols, ("runs", "candidates", "valid", "novel"), strict=True):
    col.metric(name.capitalize(), int(counts[name]))

st.session_state.setdefault("candidates_sql", EXAMPLES[DEFAULT_EXAMPLE])
st.selectbox("Example queries", list(EXAMPLES), index=None, placeholder="Pick an example to start from",
             key="candidates_example", on_change=_use_example)
sql = st.text_area("SQL: one SELECT over the tables `candidates` and `runs`", key="candidates_sql", height=150,
                   help="Read-only; no file access; at most 10,000 rows; stopped after 10 s. Columns of candidates: "
                        "formula, reduced_formula, elements (list), num_atoms, a, b, c, alpha, beta, gamma, volume, "
                        "density, predicted_formation_energy, min_distance, structure_valid, composition_valid, "
                        "valid (every check below that applies), invalid_reason, the checks structure_valid and "
                        "composition_valid (the paper's), contacts_valid, motif_valid and gap_valid (bilayers), "
                        "slab (2D crystal in vacuum), and for slabs only: n_layers, vacuum, interlayer_gap, "
                        "interlayer_distance, interlayer_too_short; novel (vs the training part), known and known_id "
                        "(a dataset bilayer it matches), duplicate_of, run_id, created, poscar, cif; once the oracle "
                        "relaxed it: oracle_formation_energy, oracle_initial_formation_energy, "
                        "oracle_energy_drop_per_atom, oracle_interlayer_gap, oracle_rmsd, oracle_steps, "
                        "oracle_converged, oracle_max_force, oracle_cell, oracle_flags, oracle_relaxed_poscar, "
                        "relaxed_cif, relaxed_a, relaxed_b, relaxed_gamma, relaxed_valid, relaxed_invalid_reason, "
                        "relaxed_n_layers, relaxed_novel, relaxed_known, relaxed_known_id, oracle_checked_at, "
                        "oracle_version.")
st.caption(ID_RULE)
if st.button("Run query", type="primary", key="candidates_run") or "candidates_result" not in st.session_state:
    try:
        st.session_state["candidates_result"] = run_query(store, sql)
        # decided when the query runs: the text area may be edited later without running it
        st.session_state["candidates_id_column"] = candidate_id_column(
            sql, st.session_state["candidates_result"].frame)
        st.session_state.pop("candidates_error", None)
    except QueryRefused as exc:
        st.session_state["candidates_error"] = str(exc)
        st.session_state.pop("candidates_result", None)

if "candidates_error" in st.session_state:
    st.error(st.session_state["candidates_error"], icon=":material/error:")
result = st.session_state.get("candidates_result")
if result is not None:
    frame: pd.DataFrame = result.frame
    shown = frame.drop(columns=[c for c in STRUCTURE_TEXTS if c in frame.columns])
    st.caption(f"{len(frame)} rows in {result.seconds:.2f} s" + (" (row cap reached)" if result.truncated else ""))
    st.dataframe(shown, hide_index=True, width="stretch", key="candidates_table")
    id_column = st.session_state.get("candidates_id_column")
    asked = list(dict.fromkeys(int(i) for i in frame[id_column].tolist())) if id_column and not frame.empty else []
    files = store.files(asked)
    if files:
        ids = [f.id for f in files]
        formulas = {f.id: f.formula for f in files}
        if len(files) < len(asked):
            st.info(f"{len(asked) - len(files)} of the {len(asked)} ids in `{id_column}` are not stored candidates; "
                    "they are left out below.", icon=":material/info:")
        st.download_button(f"Download all {len(files)} as ZIP (relaxed and generated POSCARs, CIFs, summary.csv)",
                           zip_bytes(store, files),
                           "candidates.zip", mime="application/zip", key="candidates_zip")
        pick = st.selectbox(f"Candidate (from the column `{id_column}`)", ids, key="candidates_pick",
                            format_func=lambda i: f"#{i} {formulas.get(i, '')}")
        (chosen,) = store.files([int(pick)])
        cid, poscar = chosen.id, chosen.poscar
        structure = Structure.from_str(chosen.relaxed_poscar or poscar, fmt="poscar")
        left, right = st.columns([3, 2])
        with left:
            st.iframe(viewer_html(structure), height=480)
        with right:
            row_slot = st.empty()  # filled after the oracle panel, so a check just made shows in the row too
            candidate_downloads(chosen, "candidates")
        oracle_panel(store, cid, Structure.from_str(poscar, fmt="poscar"))
        row = run_query(store, f"SELECT * EXCLUDE ({', '.join(STRUCTURE_TEXTS)}) FROM candidates "
                               f"WHERE id = {cid}").frame
        row_slot.dataframe(row.T.rename(columns={0: f"#{cid}"}).astype(str), width="stretch", key="candidates_row")
        with st.expander(f"POSCAR of #{cid}"):
            st.code(poscar, language=None)
    elif id_column and not frame.empty:
        st.info(f"None of the ids in `{id_column}` is a stored candidate: nothing to view or download.",
                icon=":material/info:")
    elif not frame.empty:
        st.info("This result has no candidate ids, so there is nothing to view or download (an `id` from `runs` "
                "is a run id). Read `id` straight from `candidates`, e.g. `SELECT id, formula FROM candidates`, or "
                "name a column `candidate_id`.", icon=":material/info:")
