"""Candidates page: filter every stored candidate with SQL, view one in 3D, download POSCARs,
check one with the physics oracle (CHGNet + D3, :mod:`webapp.oracle_check`).

Queries go through :func:`store.query.run_query` (one read-only SELECT, row cap, timeout).
The 3D viewer is py3Dmol's HTML pointed at the vendored ``webapp/static/3Dmol-min.js``
(served at ``/app/static/`` by ``server.enableStaticServing``; the CDN is unreachable offline).
"""

from __future__ import annotations

import pandas as pd
import py3Dmol
import streamlit as st
from pymatgen.core import Structure

from store.database import StoreError
from store.query import EXAMPLES, QueryRefused, run_query
from store.files import poscar_name, zip_bytes
from webapp.oracle_check import oracle_panel
from webapp.resources import candidate_store

VIEWER_JS = "/app/static/3Dmol-min.js"
DEFAULT_EXAMPLE = "Latest candidates"


def viewer_html(structure: Structure, repeat: int = 3, width: int = 640, height: int = 420) -> str:
    """An HTML 3D view of ``structure`` repeated ``repeat`` x ``repeat`` in-plane, with its cell."""
    shown = structure * (repeat, repeat, 1)
    view = py3Dmol.view(width=width, height=height, js=VIEWER_JS)
    view.addModel(shown.to(fmt="cif"), "cif")
    view.setStyle({"sphere": {"scale": 0.3, "colorscheme": "Jmol"}, "stick": {"radius": 0.12}})
    view.addUnitCell()
    view.zoomTo()
    view.rotate(-75, "x")  # look along the layers: c points up the screen, the stacking shows
    return view._make_html()


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
for col, name in zip(cols, ("runs", "candidates", "valid", "novel")):
    col.metric(name.capitalize(), int(counts[name]))

st.session_state.setdefault("candidates_sql", EXAMPLES[DEFAULT_EXAMPLE])
st.selectbox("Example queries", list(EXAMPLES), index=None, placeholder="Pick an example to start from",
             key="candidates_example", on_change=_use_example)
sql = st.text_area("SQL: one SELECT over the tables `candidates` and `runs`", key="candidates_sql", height=150,
                   help="Read-only; no file access; at most 10,000 rows; stopped after 10 s. Columns of candidates: "
                        "formula, reduced_formula, elements (list), num_atoms, a, b, c, alpha, beta, gamma, volume, "
                        "density, predicted_formation_energy, min_distance, structure_valid, composition_valid, "
                        "valid, n_layers, vacuum, interlayer_gap, interlayer_distance, interlayer_too_short, "
                        "novel, duplicate_of, run_id, created, poscar, cif; after an oracle check: "
                        "oracle_formation_energy, oracle_energy_drop_per_atom, oracle_interlayer_gap, oracle_rmsd, "
                        "oracle_steps, oracle_converged, oracle_relaxed_poscar, oracle_checked_at, oracle_version.")
if st.button("Run query", type="primary", key="candidates_run") or "candidates_result" not in st.session_state:
    try:
        st.session_state["candidates_result"] = run_query(store, sql)
        st.session_state.pop("candidates_error", None)
    except QueryRefused as exc:
        st.session_state["candidates_error"] = str(exc)
        st.session_state.pop("candidates_result", None)

if "candidates_error" in st.session_state:
    st.error(st.session_state["candidates_error"], icon=":material/error:")
result = st.session_state.get("candidates_result")
if result is not None:
    frame: pd.DataFrame = result.frame
    shown = frame.drop(columns=[c for c in ("poscar", "cif", "oracle_relaxed_poscar") if c in frame.columns])
    st.caption(f"{len(frame)} rows in {result.seconds:.2f} s" + (" (row cap reached)" if result.truncated else ""))
    st.dataframe(shown, hide_index=True, width="stretch", key="candidates_table")
    if "id" in frame.columns and not frame.empty and pd.api.types.is_integer_dtype(frame["id"]):
        ids = [int(i) for i in frame["id"].tolist()]
        files = store.files(ids)
        st.download_button(f"Download all {len(files)} as ZIP (POSCARs + summary.csv)", zip_bytes(store, files),
                           "candidates.zip", mime="application/zip", key="candidates_zip")
        pick = st.selectbox("Candidate", ids, key="candidates_pick",
                            format_func=lambda i: f"#{i} {dict((f[0], f[1]) for f in files).get(i, '')}")
        (cid, formula, poscar, cif), = store.files([int(pick)])
        structure = Structure.from_str(poscar, fmt="poscar")
        left, right = st.columns([3, 2])
        with left:
            st.iframe(viewer_html(structure), height=440)
        with right:
            row_slot = st.empty()  # filled after the oracle panel, so a check just made shows in the row too
            a, b = st.columns(2)
            a.download_button("POSCAR", poscar, poscar_name(cid, formula), key="candidates_poscar")
            b.download_button("CIF", cif, poscar_name(cid, formula).replace(".vasp", ".cif"), key="candidates_cif")
        oracle_panel(store, cid, structure)
        row = run_query(store, "SELECT * EXCLUDE (poscar, cif, oracle_relaxed_poscar) FROM candidates "
                               f"WHERE id = {cid}").frame
        row_slot.dataframe(row.T.rename(columns={0: f"#{cid}"}).astype(str), width="stretch", key="candidates_row")
        with st.expander(f"POSCAR of #{cid}"):
            st.code(poscar, language=None)
    elif not frame.empty:
        st.caption("Include the `id` column to view and download candidates.")
