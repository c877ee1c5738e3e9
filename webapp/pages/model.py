"""Model page: what each shipped model is, from its manifest (data, config, parity, metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from core.manifest import ArtifactError, read_manifest
from core.paths import artifacts_dir, reports_dir
from serving.artifacts import find_models


def _unconditional(folder: Path) -> bool:
    """Baselines (condition "none") go after the conditional models a user samples from."""
    try:
        return read_manifest(folder, verify=False).condition == "none"
    except ArtifactError:
        return True


st.title("Models")
root = artifacts_dir()
folders = sorted(find_models(root), key=lambda f: (_unconditional(f), f.name))
if not folders:
    st.info(f"No model artifacts found under `{root}`.", icon=":material/info:")
    st.stop()

folder = st.selectbox("Model", folders, format_func=lambda f: f.name, key="model_pick")
try:
    manifest = read_manifest(folder, verify=False)
except ArtifactError as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()
prop, sampling, data_info = manifest.property, manifest.sampling, manifest.training_data
serves = {"both": "formation-energy and formula requests", "none": "unconditional requests (CDVAE baseline)",
          "formation_energy": "formation-energy requests", "formula": "formula requests"}
st.markdown(f"**{manifest.name}** — serves {serves.get(manifest.condition, manifest.condition)}; "
            f"exported {manifest.created or '?'}.")

a, b, c, d = st.columns(4)
params = manifest.parameters
a.metric("Parameters", f"{params.get('total', sum(v for k, v in params.items() if k != 'total')):,}",
         help=", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in params.items() if k != "total"))
b.metric("Elements", len(manifest.vocabulary))
c.metric("Cell sizes", ", ".join(map(str, manifest.cell_sizes)))
low, high = manifest.property_range
d.metric("Training E_f range (eV/atom)", f"{low:+.2f} .. {high:+.2f}")

st.subheader("Training data")
st.write(f"`{data_info.id}` — {data_info.rows:,} crystals (`{data_info.table or '?'}`, sha256 "
         f"`{data_info.sha256[:12]}…`). Elements: {', '.join(manifest.vocabulary)}. Property `{prop.name}` "
         f"percentiles 10/50/90: " + " / ".join(f"{v:+.3f}" for v in prop.percentiles.values()) + f" {prop.unit}.")

metrics = manifest.metrics
if metrics:
    st.subheader("Measured figures (test split)")
    rows = []
    recon = metrics.get("reconstruction", {}).get("model")
    if recon:
        rows.append(("Reconstruction match rate", f"{100 * recon['match_rate']:.2f} %", "paper J2DH-8: 25.35 %"))
        rows.append(("Reconstruction RMSE", f"{recon['rmse']:.4f}", "paper J2DH-8: 0.1842"))
    validity = metrics.get("validity", {})
    for key, label in (("conditioned", "Validity, conditioned"), ("unconditional", "Validity, unconditional baseline")):
        if key in validity:
            v = validity[key]
            rows.append((label, f"{100 * v.get('both', 0):.1f} % (structure {100 * v.get('structural', 0):.1f} %, "
                                f"SMACT {100 * v.get('compositional', 0):.1f} %)", "paper: 100 %"))
    mae = metrics.get("property_head", {}).get("model")
    if mae:
        rows.append(("Property head MAE", f"{mae['mae']:.4f} eV/atom", f"label std {mae['label_std']:.3f}"))
    for name, row in metrics.get("energy_targets", {}).items():
        got = row.get("ratio_100", {})
        if got:
            rows.append((f"Target {name} ({row['target']:+.3f})", f"median {got.get('median', float('nan')):+.3f} eV/atom",
                         "re-predicted by encoder + head, 100:1 screening"))
    for formula, row in metrics.get("formula_hits", {}).items():
        rows.append((f"Free-decoding hit rate {formula}", f"{100 * row['conditioned']:.0f} %",
                     f"baseline {100 * row['unconditional_baseline']:.1f} %"))
    if rows:
        st.dataframe(pd.DataFrame(rows, columns=["figure", "value", "reference"]), hide_index=True,
                     width="stretch", key="model_metrics")
    with st.expander("All metrics (JSON)"):
        st.json(metrics)

st.subheader("Sampling defaults")
st.write(f"{sampling.noise_levels} noise levels (σ {sampling.sigma_max:.3g} → {sampling.sigma_min:.3g}), "
         f"{sampling.steps_per_level} Langevin steps per level, step size {sampling.step_lr}, "
         f"screening {sampling.screening_ratio}:1, at most {sampling.max_count} crystals per request.")
st.subheader("Export parity")
st.write(dict(manifest.parity))
with st.expander("Training configuration"):
    st.code(json.dumps(manifest.training_config, indent=2), language="json")
with st.expander("Package versions"):
    st.write(manifest.packages)

st.subheader("Evaluation report")
report = reports_dir() / manifest.name / "report.md"
if not report.is_file():
    st.info(f"No evaluation report for this model yet. Run `vdwgen evaluate artifacts/{manifest.name} "
            f"--out reports/{manifest.name}` to measure it (Tables 1-3, oracle checks, latent maps).")
else:
    text = report.read_text()
    body, _, _ = text.partition("## Figures")
    # the title line repeats the page's header; the figures are shown as images below
    st.markdown(body.split("\n", 1)[1] if body.startswith("# ") else body)
    for name, caption in (
        ("energy_targets.png", "Oracle formation energies for three targets vs unconditional samples"),
        ("predicted_vs_oracle.png", "Predicted vs oracle formation energy"),
        ("property_distributions.png", "Density and number of elements: generated vs test"),
        ("latent_tsne.png", "t-SNE of latents without and with fusion"),
    ):
        image = report.parent / name
        if image.is_file():
            st.image(str(image), caption=caption)
