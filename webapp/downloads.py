"""The download buttons of one candidate, the same on the Generate and Candidates pages.

Files and names come from :func:`store.files.candidate_files`: the relaxed crystal under the plain name once the
oracle relaxed it (what DFT should start from), the crystal as generated on request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from store.database import CandidateFiles, Store
from store.files import poscar_name, zip_bytes


def candidate_downloads(files: CandidateFiles, key: str) -> None:
    """POSCAR and CIF buttons for one candidate; ``key`` makes the widget keys unique on the page."""
    cid, formula = files.id, files.formula
    if files.relaxed_poscar is None:
        a, b = st.columns(2)
        a.download_button("POSCAR", files.poscar, poscar_name(cid, formula), key=f"{key}_poscar",
                          help="As generated: the oracle has not relaxed this crystal.")
        b.download_button("CIF", files.cif, poscar_name(cid, formula, ".cif"), key=f"{key}_cif")
        return
    a, b, c = st.columns(3)
    a.download_button("POSCAR (relaxed)", files.relaxed_poscar, poscar_name(cid, formula), key=f"{key}_poscar",
                      type="primary", help="Relaxed by the oracle (CHGNet + D3): the structure to start DFT from.")
    if files.relaxed_cif is not None:
        b.download_button("CIF (relaxed)", files.relaxed_cif, poscar_name(cid, formula, ".cif"), key=f"{key}_cif")
    c.download_button("POSCAR as generated", files.poscar, poscar_name(cid, formula, "_generated.vasp"),
                      key=f"{key}_generated")


def run_downloads(store: Store, rows: Sequence[dict], page: str, run: int, name: Callable[[dict], str], made: str,
                  zip_name: str) -> tuple[int, CandidateFiles]:
    """A picker over a stored run's ``rows`` (named by ``name``), the picked crystal's buttons
    (:func:`candidate_downloads`) and a ZIP of every crystal's files; returns the picked row and its files.
    ``made`` says how the crystals came about (generated, designed) in the ZIP's label; widget keys carry the
    ``page`` and the ``run`` (a widget keyed alike across runs would keep the earlier run's options)."""
    ids = [int(r["id"]) for r in rows]
    k = st.selectbox("Crystal to download", range(len(rows)), key=f"{page}_pick_{run}",
                     format_func=lambda i: f"{name(rows[i])} (candidate {ids[i]})")
    (chosen,) = store.files([ids[k]])
    candidate_downloads(chosen, f"{page}_{run}")
    st.download_button(f"All files (ZIP: relaxed and {made} POSCARs, CIFs, summary.csv)",
                       zip_bytes(store, store.files(ids)), zip_name, mime="application/zip", key=f"{page}_zip_{run}")
    return k, chosen


__all__ = ["candidate_downloads", "run_downloads"]
