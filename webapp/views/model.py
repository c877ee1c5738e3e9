"""Model page: what each shipped model is, from its manifest (data, config, parity, metrics), and how it
measured.

Two tools measure a model, and every figure on the page names the one it comes from:

- the **model card** (``vdwgen model-card``): run on the trained PyTorch weights before
  export, copied into the manifest's ``metrics`` at export;
- the **evaluation report** (``vdwgen evaluate``): ``reports/<name>/metrics.json`` and ``report.md``, run later;
  it generates through the exported artifact (what the app serves) and checks crystals with the oracle.

Both measure reconstruction; the page shows both side by side and says why they differ.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.compositions import RULE_WORDS
from core.manifest import ArtifactError, Manifest, read_manifest
from core.paths import artifacts_dir, reports_dir
from serving.artifacts import find_models

CARD = "model card at export"
REPORT = "evaluation report"
# the paper's matcher (training/evaluation/reconstruction.py), used by both tools
MATCHER = "StructureMatcher(stol 0.5, angle_tol 10, ltol 0.3)"
PAPER_MATCH, PAPER_RMSE, PAPER_VALID = "paper 25.35 %", "paper 0.1842", "paper 100 %"
PARITY_PARTS = {
    # part -> (what is compared, unit, tolerance key)
    "condition.onnx": ("onnxruntime vs eager PyTorch: largest |difference| / max(1, |eager|) over the outputs",
                       "scaled", "onnx_scaled"),
    "generator.onnx": ("onnxruntime vs eager PyTorch: largest |difference| / max(1, |eager|) over the outputs",
                       "scaled", "onnx_scaled"),
    "fusion_heads.onnx": ("onnxruntime vs eager PyTorch: largest |difference| / max(1, |eager|) over the outputs",
                          "scaled", "onnx_scaled"),
    "decoder.pt": ("reloaded TorchScript vs eager decoding: largest atom displacement (minimum image)",
                   "Å", "decoder_angstrom"),
}


def _unconditional(folder: Path) -> bool:
    """Baselines (condition "none") go after the conditional models a user samples from."""
    try:
        return read_manifest(folder, verify=False).condition == "none"
    except ArtifactError:
        return True


def _report_metrics(folder: Path) -> dict[str, Any]:
    """``metrics.json`` of the evaluation report in ``folder`` ({} when missing or unreadable)."""
    try:
        data = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def parameter_split(parameters: dict[str, int]) -> tuple[int, int, int]:
    """(stage 1, generator, total) from the manifest's per-part counts; the ``total`` entry is not a part."""
    parts = {k: v for k, v in parameters.items() if k != "total"}
    generator = parts.get("generator", 0)
    stage1 = sum(v for k, v in parts.items() if k != "generator")
    return stage1, generator, stage1 + generator


def _n(value: Any) -> str:
    """A count with thousands separators ("?" when not recorded)."""
    return f"{value:,}" if isinstance(value, int) else "?"


def _rate(row: dict[str, Any]) -> str:
    n = row.get("count", 0)
    return f"{100 * row['match_rate']:.2f} % ({round(row['match_rate'] * n)} of {n} matched)"


def _validity(v: dict[str, Any]) -> str:
    return (f"{100 * v.get('both', 0):.1f} % (structure {100 * v.get('structural', 0):.1f} %, "
            f"SMACT {100 * v.get('compositional', 0):.1f} %)")


def _stderr(rate: float, n: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 0.0) / n) if n else float("nan")


def measured_rows(card: dict[str, Any], report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(figure, value, crystals, source, reference) of every figure, the evaluation report's first."""
    rows = []
    test_total = card.get("test_crystals", {}).get("total")
    recon = report.get("reconstruction", {}).get("model", {})
    for split in ("random", "pair"):
        got = recon.get(split)
        if got:
            crystals = f"{got['count']:,} of {_n(got.get('available'))} test ({split} split)"
            rows.append((f"Reconstruction match rate, {split} split", _rate(got), crystals, REPORT, PAPER_MATCH))
            rmse = "-" if got.get("rmse") is None else f"{got['rmse']:.4f}"
            rows.append((f"Reconstruction RMSE, {split} split", rmse, crystals, REPORT, PAPER_RMSE))
    generation = report.get("generation", {})
    for key, label in (("model", "Validity, conditioned"), ("baseline", "Validity, unconditional baseline")):
        v = generation.get(key, {}).get("validity")
        if v:
            rows.append((label, _validity(v), f"{_n(v.get('count'))} generated", REPORT, PAPER_VALID))
    got = card.get("reconstruction", {}).get("model")
    if got:
        crystals = f"{got['count']:,} of {test_total:,} test (random split)" if test_total else f"{got['count']:,}"
        rows.append(("Reconstruction match rate, random split", _rate(got), crystals, CARD, PAPER_MATCH))
        rows.append(("Reconstruction RMSE, random split", f"{got['rmse']:.4f}", crystals, CARD, PAPER_RMSE))
    validity = card.get("validity", {})
    for key, label in (("conditioned", "Validity, conditioned"), ("unconditional", "Validity, unconditional baseline")):
        v = validity.get(key)
        if v:
            rows.append((label, _validity(v), f"{_n(v.get('count'))} generated", CARD, PAPER_VALID))
    mae = card.get("property_head", {}).get("model")
    if mae:
        rows.append(("Property head MAE", f"{mae['mae']:.4f} eV/atom", f"{mae['count']:,} test", CARD,
                     f"label std {mae['label_std']:.3f}"))
    for name, row in card.get("energy_targets", {}).items():
        got = row.get("ratio_100", {})
        if got:
            rows.append((f"Target {name} ({row['target']:+.3f}), E_f re-predicted by the model",
                         f"median {got.get('median', float('nan')):+.3f} eV/atom", "100:1 screening", CARD,
                         "not oracle-checked"))
    for formula, row in card.get("formula_hits", {}).items():
        rows.append((f"Free-decoding hit rate {formula}", f"{100 * row['conditioned']:.0f} %", "", CARD,
                     f"baseline {100 * row['unconditional_baseline']:.1f} %"))
    return rows


def sources_text(manifest: Manifest, card: dict[str, Any], report: dict[str, Any]) -> str:
    """Where each source's figures come from: command, settings, sample sizes, date."""
    lines = []
    if report:
        s = report.get("settings", {})
        budget = s.get("budget", {})
        lines.append(
            f"- **{REPORT}**: `vdwgen evaluate artifacts/{manifest.name} --out reports/{manifest.name}` "
            f"(`reports/{manifest.name}/metrics.json`): preset `{s.get('preset', '?')}`, seed {s.get('seed', '?')}, "
            f"{s.get('steps_per_level', '?')} Langevin steps per level, `{s.get('split', '?')}` part of "
            f"`{s.get('data', {}).get('id', '?')}`; reconstruction of {budget.get('recon', '?')} test crystals per "
            f"split (trained weights), {budget.get('samples', '?')} crystals generated through the exported "
            "artifact (what the app serves), crystals checked by the oracle (CHGNet + D3).")
    if card:
        s = card.get("settings", {})
        lines.append(
            f"- **{CARD}**: `vdwgen model-card` on the trained PyTorch weights before export "
            "(the manifest's `metrics`), "
            f"seed {s.get('seed', '?')}, {s.get('steps_per_level', '?')} Langevin steps per level, "
            f"`{s.get('split', '?')}`; copied into the manifest at export ({manifest.created[:10] or '?'}).")
    return "\n".join(lines)


def reconstruction_note(card: dict[str, Any], report: dict[str, Any]) -> str | None:
    """Why the two reconstruction figures differ (None unless both sources have one on the random split)."""
    a = card.get("reconstruction", {}).get("model")
    b = report.get("reconstruction", {}).get("model", {}).get("random")
    if not a or not b:
        return None
    same, differ = [f"the paper's {MATCHER}", "test crystals of the random split spread evenly over it"], []
    for label, x, y in (("seed", card.get("settings", {}).get("seed"), report.get("settings", {}).get("seed")),
                        ("Langevin steps per level", card.get("settings", {}).get("steps_per_level"),
                         report.get("reconstruction", {}).get("steps_per_level"))):
        if x == y:
            same.append(f"{label} {x}")
        else:
            differ.append(f"{label} {x} ({CARD}) against {y} ({REPORT})")
    na, nb = a["count"], b["count"]
    if na != nb:
        differ.insert(0, f"sample size: {na:,} crystals ({CARD}) against {nb:,} ({REPORT})")
    ra, rb = a["match_rate"], b["match_rate"]
    sa, sb = _stderr(ra, na), _stderr(rb, nb)
    noise = 2 * math.sqrt(sa ** 2 + sb ** 2)
    verdict = ("within sampling error (less than two combined standard errors)" if abs(ra - rb) <= noise
               else "more than sampling error alone explains (two combined standard errors or more)")
    text = (f"**Why two reconstruction figures?** Both use {', '.join(same)}. "
            f"They differ in {'; '.join(differ) or 'nothing recorded'}. "
            f"The match rates {100 * ra:.2f} % ({round(ra * na)} matched) and {100 * rb:.2f} % "
            f"({round(rb * nb)} matched) differ by {100 * abs(ra - rb):.2f} points, {verdict} "
            f"(one binomial standard error: ±{100 * sa:.2f} points at {na:,} crystals, ±{100 * sb:.2f} at {nb:,}). "
            f"RMSE averages only the matched crystals, so it scatters more.")
    if na != nb:
        text += f" The larger sample ({CARD if na > nb else REPORT}) is the more precise match rate."
    return text


def parity_table(parity: dict[str, Any]) -> pd.DataFrame:
    """One row per exported part: what is compared, the largest difference at export, tolerance, pass."""
    tolerance = parity.get("tolerance", {})
    rows = []
    for part, value in parity.items():
        if part == "tolerance":
            continue
        compared, unit, key = PARITY_PARTS.get(part, ("(not described)", "", ""))
        limit = tolerance.get(key)
        passed = "-" if limit is None or not isinstance(value, int | float) else ("yes" if value <= limit else "NO")
        rows.append({"part": part, "compared": compared, "max difference": f"{value:.2e}"
                     if isinstance(value, int | float) else str(value), "unit": unit,
                     "tolerance": "-" if limit is None else f"{limit:.0e}", "pass": passed})
    return pd.DataFrame(rows, columns=["part", "compared", "max difference", "unit", "tolerance", "pass"])


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
stage1, generator, total = parameter_split(manifest.parameters)
a.metric("Parameters", f"{total:,}",
         help=", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in manifest.parameters.items() if k != "total"))
a.caption(f"stage 1 {stage1:,} + generator {generator:,}" if generator else f"stage 1 {stage1:,} (no generator)")
if manifest.parameters.get("total", total) != total:
    a.caption(f"(the manifest's `total` says {manifest.parameters['total']:,})")
b.metric("Elements", len(manifest.vocabulary))
c.metric("Cell sizes", ", ".join(map(str, manifest.cell_sizes)))
low, high = manifest.property_range
d.metric("Training E_f range (eV/atom)", f"{low:+.2f} .. {high:+.2f}")

st.subheader("Training data")
st.write(f"`{data_info.id}` — {data_info.rows:,} crystals (`{data_info.table or '?'}`, sha256 "
         f"`{data_info.sha256[:12]}…`). Elements: {', '.join(manifest.vocabulary)}. Property `{prop.name}` "
         f"percentiles 10/50/90: " + " / ".join(f"{v:+.3f}" for v in prop.percentiles.values()) + f" {prop.unit}.")

report_folder = reports_dir() / manifest.name
card_metrics, report_metrics = manifest.metrics, _report_metrics(report_folder)
rows = measured_rows(card_metrics, report_metrics)
if rows:
    st.subheader("Measured figures (test split)")
    st.markdown(sources_text(manifest, card_metrics, report_metrics))
    table = pd.DataFrame(rows, columns=["figure", "value", "crystals", "source", "reference"])
    st.dataframe(table[["figure", "source", "value", "crystals", "reference"]], hide_index=True, width="stretch",
                 height="content", key="model_metrics")
    st.caption("paper: the J2DH-8 rows of Tables 1-2 of Sci. Rep. 15, 23023 (2025), on different data (DFT "
               "labels there, CHGNet + D3 here).")
    note = reconstruction_note(card_metrics, report_metrics)
    if note:
        st.markdown(note)
if card_metrics:
    with st.expander(f"All metrics of the {CARD} (JSON)"):
        st.json(card_metrics)

st.subheader("Sampling defaults")
st.write(f"{sampling.noise_levels} noise levels (σ {sampling.sigma_max:.3g} → {sampling.sigma_min:.3g}), "
         f"{sampling.steps_per_level} Langevin steps per level, step size {sampling.step_lr}, "
         f"noise × {sampling.noise_scale:g} (1 = the reference sampler), sites typed by `{sampling.site_types}`, "
         f"free compositions by `{sampling.compositions}` ({RULE_WORDS.get(sampling.compositions, 'unknown rule')}), "
         f"screening {sampling.screening_ratio}:1, at most {sampling.max_count} crystals per request.")
st.subheader("Export parity")
if manifest.parity:
    st.caption("Measured once at export on random inputs: each exported part against the eager PyTorch model "
               "it came from; the export fails when a part exceeds its tolerance.")
    st.dataframe(parity_table(manifest.parity), hide_index=True, width="stretch", key="model_parity")
else:
    st.caption("The manifest records no parity measurements.")
with st.expander("Training configuration"):
    st.code(json.dumps(manifest.training_config, indent=2), language="json")
with st.expander("Package versions"):
    st.write(manifest.packages)

st.subheader("Evaluation report")
report = report_folder / "report.md"
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
