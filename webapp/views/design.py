"""Design page: crystals that meet several targets at once (SMOACS), checked by the oracle after relaxing.

Targets are rows (label, bound or range); the request goes through :func:`services.design.check_design` only, so
a bad target is refused in one line that names the valid labels and ranges. The run (templates, optimisation,
scoring, storing, the oracle's relaxation and its verdict on every criterion) is
:func:`services.design.design_and_store` in a background thread (:class:`webapp.background.DesignJob`); the
results come from the stored rows (:func:`webapp.run_results.design_table`), next to the dataset's own answer
(how many bilayers already meet every target by their labels).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import VdwgenError
from core.paths import artifacts_dir
from core.predictor_manifest import find_predictors
from design.targets import Target
from scoring.oracle_labels import ORACLE_LABELS
from services.design import TEMPLATE_SOURCES, DesignRequest, StoredDesign, check_design
from services.design_evaluation import dataset_answer
from serving.artifacts import all_by_mode, find_models
from serving.engine import Engine
from serving.predictor import LoadedPredictor, load_predictor_artifact
from store.database import Store, StoreError
from webapp.background import DesignJob
from webapp.downloads import run_downloads
from webapp.resources import candidate_store, relax_workers
from webapp.run_results import design_table

JOB = "design_job"  # session-state key of the session's design job
POLL_SECONDS = 1.0
KINDS = {"at most": "<=", "at least": ">=", "between": "="}
DEFAULT_TARGETS = pd.DataFrame([
    {"label": "formation_energy_per_atom", "condition": "at most", "low": None, "high": -0.8},
    {"label": "binding_energy_per_area", "condition": "between", "low": -22.0, "high": -18.0},
    {"label": "interlayer_gap", "condition": "between", "low": 3.0, "high": 3.3},
])
TEMPLATE_WORDS = {"dataset": "Training bilayers", "generated": "Crystals our generator makes",
                  "both": "Half of each"}


@st.cache_resource(show_spinner="Loading the predictor (checking its sha256)...")
def load_predictor(folder: str) -> LoadedPredictor:
    return load_predictor_artifact(Path(folder))


@st.cache_resource(show_spinner="Loading the generator (checking every file's sha256)...")
def load_engine(folder: str) -> Engine:
    return Engine.load(Path(folder))


# The ends each condition reads; a row that fills another end would have it ignored, so it is refused. (A comment,
# not a docstring: Streamlit's magic writes a bare string of a page's module onto the page.)
NEEDS = {"at most": ("high",), "at least": ("low",), "between": ("low", "high")}


def _blank(value: object) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or bool(pd.isna(value))


def target_texts(rows: pd.DataFrame, labels: list[str]) -> list[str]:
    """The targets as `vdwgen design --target` takes them, one per row; empty rows are skipped. A row filled in
    part (no label or condition, a needed end missing, an end the condition does not read) is refused in one
    line naming the row and what it needs, so no target is dropped unnoticed."""
    texts = []
    for k, (_, row) in enumerate(rows.iterrows(), start=1):
        cells = {name: row.get(name) for name in ("label", "condition", "low", "high")}
        if all(_blank(v) for v in cells.values()):
            continue
        label, kind = cells["label"], cells["condition"]
        if _blank(label):
            raise VdwgenError(f"target row {k}: choose a label ({', '.join(labels)}) or clear the row")
        if kind not in KINDS:
            raise VdwgenError(f"target row {k} ({label}): choose a condition ({', '.join(KINDS)})")
        missing = [end for end in NEEDS[kind] if _blank(cells[end])]
        if missing:
            raise VdwgenError(f"target row {k} ({label} {kind}): enter the {' and '.join(missing)} end")
        unread = [end for end in ("low", "high") if end not in NEEDS[kind] and not _blank(cells[end])]
        if unread:
            raise VdwgenError(f"target row {k} ({label} {kind}): '{kind}' reads only the {NEEDS[kind][0]} end; clear "
                              f"the {unread[0]} end or choose 'between'")
        texts.append(f"{label}{KINDS[kind]}" + ":".join(str(cells[end]) for end in NEEDS[kind]))
    return texts


def label_table(predictor: LoadedPredictor) -> pd.DataFrame:
    return pd.DataFrame([{"label": s.name, "unit": s.unit, "training min": round(s.min, 4),
                          "training max": round(s.max, 4), "test MAE": round(s.test_mae, 4)}
                         for s in predictor.manifest.labels.values()])


@st.fragment(run_every=POLL_SECONDS)
def show_progress(job: DesignJob) -> None:
    if not job.running:
        st.rerun()
    p = job.progress()
    words = {"templates": "Preparing templates", "optimising": "Optimising (predictor gradients)",
             "scoring": "Scoring (validity, novelty, duplicates)", "relaxing": "Relaxing with the oracle",
             "oracle labels": "Relaxing each layer alone for the interlayer energies"}
    fraction = p.done / p.total if p.total else 0.0
    st.progress(min(max(fraction, 0.0), 1.0), text=f"{words.get(p.stage, p.stage)}: {p.done}/{p.total} · "
                                                   f"{p.elapsed:.0f} s")
    st.caption("The run goes on, and is stored, if you leave this page.")


def show_result(done: StoredDesign, predictor: LoadedPredictor, targets: tuple[Target, ...], store: Store) -> None:
    run = done.run_id
    rows = store.run_rows(run)
    criteria = store.design_rows(run)
    n = len(rows)
    met = sum(bool(r["design_met"]) for r in rows)
    after = [r.get("design_oracle_met") for r in rows]
    st.subheader(f"{n} designed crystal{'s' if n != 1 else ''} (run {run})")
    line = f"Every target met as designed (predictor): {met}/{n} · optimisation {done.designed.seconds:.0f} s"
    if any(v is not None for v in after):
        kept = sum(bool(v) for v in after)
        novel = sum(bool(v) and bool(r.get("relaxed_novel")) for v, r in zip(after, rows))
        new = sum(bool(v) and r.get("relaxed_known") is False for v, r in zip(after, rows))
        line += (f" · after the oracle's relaxation: {kept}/{n}, of them {novel} novel (no training crystal "
                 f"matches) and {new} new (no dataset crystal matches)")
    st.caption(line)
    unchecked = [t.label for t in targets if t.label not in ORACLE_LABELS]
    if unchecked:
        st.info(f"The oracle (CHGNet + D3) cannot check {', '.join(unchecked)}: judged by the predictor only, so no "
                "crystal counts as meeting every target after relaxation.", icon=":material/info:")
    if done.relax_status not in (None, "completed"):
        st.warning(f"The relaxation ended {done.relax_status}: {done.relax_message}", icon=":material/warning:")
    st.dataframe(design_table(rows, criteria, [t.text() for t in targets]), hide_index=True, width="stretch",
                 key=f"design_table_{run}")
    answer = dataset_answer(predictor, targets)
    st.caption(f"What the dataset already holds: {answer['all']:,} of {answer['rows']:,} bilayers meet every target "
               f"by their own labels ({answer['training']:,} in the training part). Inside this enumerated family no "
               "method beats that list; a designed crystal adds something only when it matches none of them.")
    if not rows:
        return
    run_downloads(store, rows, "design", run, lambda r: r["formula"], "designed", "designed.zip")


st.title("Design crystals for several targets")
st.write("Ask for bilayers that meet several properties at once, each a bound or a range. SMOACS optimises "
         "the crystals themselves (coordinates, in-plane lattice, the element on each site under oxidation-number "
         "masks that keep every crystal neutral and each layer chalcogen-metal-metal-chalcogen) through a "
         "differentiable predictor; the oracle (CHGNet + D3) then relaxes each crystal and judges every target again.")

root = artifacts_dir()
folders = find_predictors(root)
if not folders:
    st.info(f"No predictor under `{root}`. Train one with `vdwgen train-predictor` and export it with "
            f"`vdwgen export-predictor WEIGHTS --out {root}/NAME`.", icon=":material/info:")
    st.stop()
names = {f.name: f for f in folders}
picked = st.selectbox("Predictor", list(names), key="design_predictor")
try:
    predictor = load_predictor(str(names[picked]))
except VdwgenError as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()
with st.expander("What the predictor knows (labels, training span, test error)"):
    st.dataframe(label_table(predictor), hide_index=True, width="stretch")

rows = st.data_editor(DEFAULT_TARGETS, num_rows="dynamic", hide_index=True, key="design_targets", width="stretch",
                      column_config={
                          "label": st.column_config.SelectboxColumn("label", options=list(predictor.labels)),
                          "condition": st.column_config.SelectboxColumn("condition", options=list(KINDS)),
                          "low": st.column_config.NumberColumn("low", help="lower end (at least / between)"),
                          "high": st.column_config.NumberColumn("high", help="upper end (at most / between)")})
left, right = st.columns(2)
templates = left.radio("Start from", TEMPLATE_SOURCES, format_func=TEMPLATE_WORDS.__getitem__, key="design_templates")
count = right.number_input("Candidates", value=32, step=1, key="design_count",
                           help="Optimised together (the paper uses 256); on a 2-core machine about 1 s per step "
                                "for 64 candidates, so 32 candidates x 200 steps take about 2 minutes.")
with st.expander("Advanced settings"):
    steps = st.number_input("Optimisation steps", value=200, step=10, key="design_steps")
    seed = st.number_input("Seed", value=0, min_value=0, step=1, key="design_seed")
    minimise = st.selectbox("Also push down", [None, *predictor.labels], key="design_minimise")
relax = st.checkbox("Relax every crystal with the oracle and judge every target again", value=True,
                    key="design_relax")

job: DesignJob | None = st.session_state.get(JOB)
if st.button("Design", type="primary", key="design_run"):
    if job is not None and job.running:
        st.warning("A design run is already in progress in this session; wait for it to finish.",
                   icon=":material/hourglass_top:")
    else:
        try:
            texts = tuple(target_texts(rows, list(predictor.labels)))
            request = DesignRequest(texts, int(count), int(steps), templates, int(seed), minimise)
            checked = check_design(request, predictor)
            engine = None
            if templates != "dataset":
                served, _ = all_by_mode(find_models(root))
                if "formation_energy" not in served:
                    raise VdwgenError("no generator model serves formation-energy requests; start from training "
                                      "bilayers")
                engine = load_engine(str(served["formation_energy"][0].folder))
            store = candidate_store()
        except (VdwgenError, StoreError) as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            job = DesignJob(predictor, checked, store, engine, relax, relax_workers() if relax else 0)
            job.begin()
            st.session_state[JOB] = job
if job is not None:
    if job.running:
        show_progress(job)
    elif job.stored is None:
        st.error(f"The run failed: {type(job.error).__name__}: {job.error}", icon=":material/error:")
    else:
        show_result(job.stored, job.predictor, job.checked.targets, candidate_store())
        st.success(f"Stored as run {job.stored.run_id}; filter every stored candidate (and its criteria, table "
                   "design_criteria) on the Candidates page.", icon=":material/database:")
