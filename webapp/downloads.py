"""The download buttons of one candidate, the same on the Generate and Candidates pages.

Files and names come from :func:`store.files.candidate_files`: the relaxed crystal under the plain name once the
oracle relaxed it (what DFT should start from), the crystal as generated on request.
"""

from __future__ import annotations

import streamlit as st

from store.database import CandidateFiles
from store.files import poscar_name


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


__all__ = ["candidate_downloads"]
