"""The candidates page's oracle panel: check one stored crystal with CHGNet + D3, show the verdict.

A click relaxes the crystal with the physics that labelled the dataset
(:func:`scoring.oracle_check.check_with_oracle`: all positions and the in-plane cell, fmax 0.05 eV/Å, at most
500 FIRE steps) and stores the result in the candidate's ``oracle_*`` and ``relaxed_*`` columns, so it shows
again on every later visit and in SQL; a crystal relaxed when it was generated shows its verdict at once.
The formation energy needs the dataset's elemental
references (``references.json`` under :func:`core.paths.dataset_dir`); without them the
panel says so instead of offering the button.
"""

from __future__ import annotations

import time

import streamlit as st
from pymatgen.core import Structure

from core.errors import VdwgenError
from core.paths import dataset_dir
from oracle.convention import load_references
from scoring.oracle_check import FMAX, MAX_STEPS, input_problem
from services.verification import verify_candidates
from store.database import Store

BUTTON_LABEL = "Check with the oracle (CHGNet + D3)"


def _run_check(store: Store, cid: int) -> None:
    """Relax with the oracle under a status box with progress, and store the verdict."""
    with st.status("Checking with the oracle...", expanded=True) as status:
        try:
            start = time.perf_counter()
            st.write("Loading CHGNet (the first check only, a few seconds)...")
            st.write(f"Relaxing the atoms and the in-plane cell until every force is below {FMAX} eV/Å "
                     f"(at most {MAX_STEPS} FIRE steps)...")
            bar = st.progress(0.0, text="relaxing")
            verified, = verify_candidates(store, [cid],
                                          progress=lambda done, total: bar.progress(done / total, text="relaxing"))
        except VdwgenError as exc:
            status.update(label="The oracle check failed", state="error", expanded=True)
            st.error(str(exc), icon=":material/error:")
            return
        status.update(label=f"Checked in {time.perf_counter() - start:.1f} s ({verified.check.steps} FIRE steps); "
                            "stored", state="complete", expanded=False)


def _show_stored(row: dict) -> None:
    """The stored verdict next to the model's prediction (all from the candidate's row)."""
    oracle, predicted = row["oracle_formation_energy"], row["predicted_formation_energy"]
    diff = None if oracle is None or predicted is None else oracle - predicted
    gap, rmsd, drop = row["oracle_interlayer_gap"], row["oracle_rmsd"], row["oracle_energy_drop_per_atom"]
    cols = st.columns(4)
    cols[0].metric("Oracle E_f (eV/atom)", "-" if oracle is None else f"{oracle:.3f}",
                   help="Formation energy of the relaxed crystal, the dataset's convention "
                        "(E - Σ μ_el) / N against CHGNet + D3 elemental references")
    cols[1].metric("Predicted E_f (eV/atom)", "-" if predicted is None else f"{predicted:.3f}")
    cols[2].metric("Oracle − predicted", "-" if diff is None else f"{diff:+.3f}")
    cols[3].metric("Interlayer gap (Å)", "-" if gap is None else f"{gap:.2f}",
                   help="Of the relaxed crystal; '-' when it does not have two layers")
    cols = st.columns(4)
    cols[0].metric("RMSD (Å)", "-" if rmsd is None else f"{rmsd:.3f}",
                   help="Root-mean-square displacement of the atoms during the relaxation (minimum image)")
    cols[1].metric("Energy drop (meV/atom)", "-" if drop is None else f"{1000 * drop:.1f}",
                   help="As generated minus relaxed")
    cols[2].metric("Steps", str(row["oracle_steps"]))
    cols[3].metric("Converged", "yes" if row["oracle_converged"] else "no")
    if row.get("oracle_flags"):
        st.warning(f"This result looks wrong: {row['oracle_flags']}.", icon=":material/flag:")
    if row.get("relaxed_valid") is not None:
        known = row.get("relaxed_known_id")
        st.caption(("Relaxed crystal: valid" if row["relaxed_valid"] else
                    f"Relaxed crystal: invalid ({row['relaxed_invalid_reason']})")
                   + (f"; it is dataset bilayer {known} (the same stacking, or the first the paper's tolerances "
                      "fit)" if known else "; it matches no dataset bilayer")
                   + ("; novel against the training part" if row.get("relaxed_novel") else ""))
    cell = "positions and in-plane cell" if row.get("oracle_cell") == "in_plane" else "positions, fixed cell"
    st.caption(f"{row['oracle_version']} ({cell}), checked {row['oracle_checked_at']:%Y-%m-%d %H:%M} UTC. "
               "Download the relaxed crystal with the POSCAR (relaxed) button above.")


def oracle_panel(store: Store, cid: int, structure: Structure) -> None:
    """The oracle section of the selected candidate: the stored verdict, and the button to (re)check."""
    st.subheader("Oracle check")
    try:
        references: dict[str, float] | None = load_references(dataset_dir())
    except VdwgenError as exc:
        references = None
        st.info(f"The oracle check is not available: {exc}", icon=":material/info:")
    if references is not None:
        problem = input_problem(structure, references)
        if problem is not None:
            st.caption(f"This candidate cannot be checked: {problem}.")
        elif st.button(BUTTON_LABEL, key="candidates_oracle_check",
                       help=f"Relax the atoms and the in-plane cell with CHGNet 0.3.0 + D3 (fmax {FMAX} eV/Å, at "
                            f"most {MAX_STEPS} steps), the physics that labelled the dataset; takes seconds"):
            _run_check(store, cid)
    row = store.candidate(cid)
    if row["oracle_checked_at"] is not None:
        _show_stored(row)
    elif references is not None:
        st.caption("Not checked by the oracle yet.")


__all__ = ["BUTTON_LABEL", "oracle_panel"]
