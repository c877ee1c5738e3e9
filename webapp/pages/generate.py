"""Generate page: bilayers for a formation-energy target, a formula, or unconditionally.

The page serves the exported artifacts under ``artifacts/`` (one folder per model, each
with a ``manifest.json``) through :class:`serving.engine.Engine` -- the same call as
``vdwgen generate``. A conditional model (``both``) answers formation-energy and formula
requests; the unconditional CDVAE baseline answers unconditional ones. Every run is scored
and stored in the candidate store (:func:`services.generation.generate_and_store`). Engines and the
store load once per process (``st.cache_resource``); the latest result stays in the session.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.manifest import ArtifactError, Manifest, read_manifest
from serving.artifacts import find_models, models_by_mode
from serving.request import GenerationRequest, RequestError
from serving.engine import Engine, GenerationResult
from store.database import StoreError
from scoring.layers import analyse_layers
from core.paths import artifacts_dir
from services.generation import generate_and_store
from scoring.validity import compositionally_valid, min_distance, structurally_valid
from webapp.resources import candidate_store

MODES = {"formation_energy": "Formation energy", "formula": "Formula", "unconditional": "Unconditional"}


@st.cache_resource(show_spinner="Loading the model (checking every file's sha256)...")
def load_engine(folder: str) -> Engine:
    return Engine.load(Path(folder))


def verdict(structural: bool, compositional: bool, dmin: float) -> str:
    """A short validity badge (text: renders with any font)."""
    if structural and compositional:
        return "valid"
    reasons = [] if structural else [f"atoms {dmin:.2f} Å apart"]
    reasons += [] if compositional else ["not charge-neutral (SMACT)"]
    return "invalid: " + ", ".join(reasons)


def results_table(result: GenerationResult) -> pd.DataFrame:
    rows = []
    for c in result.crystals:
        s = c.structure
        structural, compositional = structurally_valid(s), compositionally_valid(s.composition)
        dmin = min_distance(s)
        layers = analyse_layers(s)
        rows.append({"#": c.index, "formula": c.formula, "validity": verdict(structural, compositional, dmin),
                     "predicted E_f (eV/atom)": round(c.predicted_formation_energy, 4),
                     "layers": layers.n_layers, "interlayer gap (Å)": round(layers.interlayer_gap, 3),
                     "min distance (Å)": round(dmin, 3), "a (Å)": round(s.lattice.a, 3), "c (Å)": round(s.lattice.c, 3),
                     "atoms": len(s)})
    return pd.DataFrame(rows)


def poscar_zip(result: GenerationResult) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for c in result.crystals:
            archive.writestr(f"{c.index:04d}_{c.formula}.vasp", c.structure.to(fmt="poscar"))
    return buffer.getvalue()


def request_form(mode: str, manifest: Manifest) -> GenerationRequest:
    sampling, prop = manifest.sampling, manifest.property
    left, right = st.columns(2)
    target = formula = None
    if mode == "formation_energy":
        low, high = manifest.property_range
        pct = {k: prop.percentile(k) for k in ("10", "50", "90")}
        target = left.number_input(
            "Target formation energy (eV/atom)", value=round(float(pct.get("50", (low + high) / 2)), 3),
            step=0.01, format="%.3f", key="generate_target",
            help=f"Training labels span {low:+.3f} .. {high:+.3f} eV/atom (10th / 50th / 90th percentile: "
                 f"{pct.get('10', low):+.3f} / {pct.get('50', 0):+.3f} / {pct.get('90', high):+.3f}). "
                 "Targets outside are allowed but extrapolate.")
        left.caption(f"Training range {low:+.3f} .. {high:+.3f} eV/atom")
    elif mode == "formula":
        formula = left.text_input("Formula", value="GaInSSe", key="generate_formula",
                                  help=f"Elements: {', '.join(manifest.vocabulary)}. Scaled to the model's "
                                       f"cell ({', '.join(map(str, manifest.cell_sizes))} atoms).")
        left.caption(f"Elements: {', '.join(manifest.vocabulary)}")
    cap = sampling.max_count
    count = right.number_input("Number of crystals", 1, cap, 10, key="generate_count")
    seed = right.number_input("Seed", 0, 2**31 - 1, 0, key="generate_seed",
                              help="The same seed and settings give the same crystals on the same machine and "
                                   "number of CPU threads (the Langevin steps amplify rounding differences "
                                   "between thread counts).")
    with st.expander("Advanced settings"):
        steps = st.number_input("Langevin steps per noise level", 1, 100, sampling.steps_per_level,
                                key="generate_steps",
                                help=f"{sampling.noise_levels} noise levels; decoding time grows "
                                     "linearly with the steps.")
        ratio = st.number_input("Screening ratio (latents drawn per crystal kept)", 1, 1000,
                                sampling.screening_ratio, key="generate_ratio",
                                disabled=mode != "formation_energy",
                                help="Formation-energy requests: draw ratio x count latents and keep those "
                                     "whose predicted formation energy is closest to the target.")
    return GenerationRequest(mode, int(count), target=target, formula=formula, seed=int(seed),  # type: ignore[arg-type]
                             steps_per_level=int(steps), screening_ratio=int(ratio))


def show_result(result: GenerationResult) -> None:
    table = results_table(result)
    valid = int((table["validity"] == "valid").sum())
    st.subheader(f"{len(table)} crystals from {result.model}")
    st.caption(f"{valid}/{len(table)} valid (all distances ≥ 0.5 Å and SMACT charge-neutral) · "
               f"{result.seconds:.1f} s · {result.steps_per_level} Langevin steps per level"
               + (f" · screening {result.screening_ratio}:1" if result.request.mode == "formation_energy" else ""))
    st.dataframe(table, hide_index=True, width="stretch", key="generate_table")
    pick = st.selectbox("Crystal to download", table["#"].tolist(),
                        format_func=lambda i: f"#{i} {result.crystals[i].formula}", key="generate_pick")
    chosen = result.crystals[int(pick)]
    a, b, c = st.columns(3)
    a.download_button("POSCAR", chosen.structure.to(fmt="poscar"), f"{chosen.index:04d}_{chosen.formula}.vasp",
                      key="generate_poscar")
    b.download_button("CIF", chosen.structure.to(fmt="cif"), f"{chosen.index:04d}_{chosen.formula}.cif",
                      key="generate_cif")
    c.download_button("All POSCARs (ZIP)", poscar_zip(result), "candidates.zip", mime="application/zip",
                      key="generate_zip")
    with st.expander(f"POSCAR of #{chosen.index}"):
        st.code(chosen.structure.to(fmt="poscar"), language=None)


st.title("Generate bilayers")
st.write("Ask for van der Waals bilayers with a target formation energy or a formula; the model proposes "
         "candidate crystals to check and download as POSCARs for DFT.")

root = artifacts_dir()
served, problems = models_by_mode(find_models(root))
for problem in problems:
    st.error(problem, icon=":material/error:")
if not served:
    st.info(f"No model artifacts found under `{root}`. Export one with `vdwgen export MODEL.pt --out "
            f"{root}/NAME`.", icon=":material/info:")
    st.stop()

modes = [m for m in MODES if m in served]
mode = st.radio("Request", modes, format_func=MODES.__getitem__, horizontal=True, key="generate_mode")
try:
    engine = load_engine(str(served[mode]))
except ArtifactError as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()
st.caption(f"Model `{engine.name}` ({engine.manifest.condition}-conditioned) on {engine.device}")
request = request_form(mode, engine.manifest)

if st.button("Generate", type="primary", key="generate_run"):
    try:
        checked = engine.check(request)
    except RequestError as exc:
        st.error(str(exc), icon=":material/error:")
    else:
        for warning in checked.warnings:
            st.warning(warning, icon=":material/warning:")
        try:
            store = candidate_store()
        except StoreError as exc:
            st.error(str(exc), icon=":material/error:")
            st.stop()
        bar = st.progress(0.0, text="Sampling latents...")
        stage_names = {"decoding": "Decoding crystals", "scoring": "Scoring (validity, layers, novelty, duplicates)"}
        stored = generate_and_store(engine, checked, store, lambda stage, done, total: bar.progress(
            done / total, text=f"{stage_names[stage]}: {done}/{total}"))
        bar.empty()
        st.session_state["generate_result"] = stored.result
        st.session_state["generate_run_id"] = stored.run_id

if "generate_result" in st.session_state:
    show_result(st.session_state["generate_result"])
    run_id = st.session_state.get("generate_run_id")
    if run_id is not None:
        st.success(f"Stored as run {run_id}; filter all stored candidates on the Candidates page.",
                   icon=":material/database:")
