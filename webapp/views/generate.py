"""Generate page: crystals for a property target (the formation energy for the Janus model), a formula, or
unconditionally.

The page serves the exported artifacts under ``artifacts/`` (one folder per model, each
with a ``manifest.json``) through :class:`serving.engine.Engine` -- the same call as
``vdwgen generate``. A conditional model (``both``) answers formation-energy and formula
requests; the unconditional CDVAE baseline answers unconditional ones. Every run is scored
and stored in the candidate store (:func:`services.generation.generate_and_store`) in a
background thread (:mod:`webapp.background`), so it is stored even when the user leaves the page;
by default the oracle then relaxes every crystal in a worker process (:func:`webapp.resources.relax_workers`),
storing each as it finishes. The session keeps the job and the page shows its progress, then the stored rows
(:mod:`webapp.run_results`, :class:`services.run_report.RunFigures`), never scoring a crystal itself, next to
what the model's dataset already holds for the request (:mod:`services.dataset_answer`). Requests are checked by
:func:`serving.request.check_request` only: a value out of range is refused with its reason.
Engines and the store load once per process (``st.cache_resource``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.manifest import ArtifactError, Manifest
from core.paths import artifacts_dir
from services.dataset_answer import dataset_answer, dataset_rows
from services.generation import StoredRun, training_table
from services.run_report import RunFigures
from serving.artifacts import all_by_mode, describe, find_models
from serving.engine import DECODE_BATCH, Engine
from serving.request import MAX_SCREENING_RATIO, MAX_STEPS_PER_LEVEL, GenerationRequest, RequestError
from store.database import Store, StoreError
from webapp.background import GenerationJob, JobProgress
from webapp.downloads import run_downloads
from webapp.resources import candidate_store, relax_workers
from webapp.run_results import results_table

MODES = {"formation_energy": "Property target", "formula": "Formula", "unconditional": "Unconditional"}
# The request mode "formation_energy" is a target of the model's own property (its historic name is kept in
# manifests and stored runs); the radio names it by that property when every model serving it shares one.
# Module-level strings would be drawn on the page (Streamlit's magic), hence comments.
JOB = "generate_job"  # session-state key of the session's generation job (one at a time)
POLL_SECONDS = 1.0  # how often the progress of a running job is redrawn


@st.cache_resource(show_spinner="Loading the model (checking every file's sha256)...")
def load_engine(folder: str) -> Engine:
    return Engine.load(Path(folder))


def property_words(name: str) -> str:
    """How the page names a property column: "formation energy" for the dataset's label, else the column."""
    return "formation energy" if name == "formation_energy_per_atom" else name


def mode_labels(served: dict[str, list[Manifest]]) -> dict[str, str]:
    """The radio's label per served mode: the property's name when every model that takes a target shares one."""
    labels = dict(MODES)
    names = {m.property.name for m in served.get("formation_energy", [])}
    if len(names) == 1:
        labels["formation_energy"] = property_words(names.pop()).capitalize()
    return labels


def target_label(name: str, unit: str) -> str:
    """The target input's label: "Target formation energy (eV/atom)" for the dataset's label, else the column."""
    return f"Target {property_words(name)}" + (f" ({unit})" if unit else "")


def request_form(mode: str, manifest: Manifest) -> GenerationRequest:
    sampling, prop = manifest.sampling, manifest.property
    left, right = st.columns(2)
    target = formula = None
    if mode == "formation_energy":
        low, high = manifest.property_range
        pct = {k: prop.percentile(k) for k in ("10", "50", "90")}
        target = left.number_input(
            target_label(prop.name, prop.unit), value=round(float(pct.get("50", (low + high) / 2)), 3),
            step=0.01, format="%.3f", key="generate_target",
            help=f"Training labels span {low:+.3f} .. {high:+.3f} {prop.unit} (10th / 50th / 90th percentile: "
                 f"{pct.get('10', low):+.3f} / {pct.get('50', 0):+.3f} / {pct.get('90', high):+.3f}). "
                 "Targets outside are allowed but extrapolate.")
        left.caption(f"Training range {low:+.3f} .. {high:+.3f} {prop.unit}")
    elif mode == "formula":
        formula = left.text_input("Formula", value="GaInSSe", key="generate_formula",
                                  help=f"Elements: {', '.join(manifest.vocabulary)}. Scaled to the model's "
                                       f"cell ({', '.join(map(str, manifest.cell_sizes))} atoms).")
        left.caption(f"Elements: {', '.join(manifest.vocabulary)}")
    # No min/max on the number inputs: the browser would refuse an out-of-range value and keep the previous one
    # without a word; serving.request.check_request refuses it with its reason when Generate is clicked.
    count = right.number_input("Number of crystals", value=min(10, sampling.max_count), step=1, key="generate_count",
                               help=f"1 to {sampling.max_count} crystals per request.")
    seed = right.number_input("Seed", value=0, step=1, key="generate_seed",
                              help="A whole number >= 0. The same seed and settings give the same crystals on the "
                                   "same machine and number of CPU threads (the Langevin steps amplify rounding "
                                   "differences between thread counts).")
    with st.expander("Advanced settings"):
        steps = st.number_input("Langevin steps per noise level", value=sampling.steps_per_level, step=1,
                                key="generate_steps",
                                help=f"1 to {MAX_STEPS_PER_LEVEL}. {sampling.noise_levels} noise levels; decoding "
                                     "time grows linearly with the steps.")
        ratio = st.number_input("Screening ratio (latents drawn per crystal kept)", value=sampling.screening_ratio,
                                step=1, key="generate_ratio", disabled=mode != "formation_energy",
                                help=f"1 to {MAX_SCREENING_RATIO}. Property-target requests: draw ratio x count "
                                     f"latents and keep those whose predicted {property_words(prop.name)} is "
                                     "closest to the target.")
    return GenerationRequest(mode, int(count), target=target, formula=formula, seed=int(seed),  # type: ignore[arg-type]
                             steps_per_level=int(steps),
                             screening_ratio=int(ratio) if mode == "formation_energy" else None)


def start_job(engine: Engine, request: GenerationRequest, relax: bool) -> GenerationJob | None:
    """Check the request and start it in the background; a refused request or store says why and runs nothing."""
    try:
        checked = engine.check(request)
        store = candidate_store()
    except (RequestError, StoreError) as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    job = GenerationJob.start(engine, checked, store, relax, relax_workers() if relax else 0)
    st.session_state[JOB] = job
    return job


def progress_text(job: GenerationJob, progress: JobProgress) -> tuple[float, str]:
    """The bar's fraction and text for the job's stage."""
    elapsed = f"{progress.elapsed:.0f} s"
    if progress.stage == "reference":
        return 0.0, (f"Loading the novelty reference (the model's training table; once per app process) · "
                     f"{elapsed}")
    fraction = progress.done / progress.total if progress.total else 0.0
    if progress.stage == "decoding":
        return fraction, (f"Sampling latents and decoding: {progress.done}/{progress.total} crystals decoded · "
                          f"{elapsed}")
    if progress.stage == "relaxing":
        return fraction, (f"Relaxing with the oracle (CHGNet + D3; positions and in-plane cell): "
                          f"{progress.done}/{progress.total} crystals relaxed and stored · {elapsed}")
    if progress.done < progress.total:
        return fraction, (f"Scoring (validity, layers, novelty, duplicates): {progress.done}/{progress.total} · "
                          f"{elapsed}")
    return 1.0, f"Storing the run · {elapsed}"


def decoding_plan(job: GenerationJob) -> str:
    """What the decoder runs, in words: why the bar can stand still for a while."""
    checked, levels = job.checked, job.engine.manifest.sampling.noise_levels
    n = checked.request.count
    batches = -(-n // DECODE_BATCH)
    return (f"{n} crystal{'s' if n != 1 else ''}, seed {checked.request.seed}: the decoder runs {levels} noise levels "
            f"x {checked.steps_per_level} Langevin steps = {levels * checked.steps_per_level} steps on each batch of "
            f"up to {DECODE_BATCH} crystals ({batches} batch{'es' if batches != 1 else ''}); the count moves when a "
            "batch is done. The run goes on, and is stored, if you leave this page.")


@st.fragment(run_every=POLL_SECONDS)
def show_progress(job: GenerationJob) -> None:
    """The running job's progress, redrawn every :data:`POLL_SECONDS`; the whole page reruns once it ended."""
    if not job.running:
        st.rerun()
    fraction, text = progress_text(job, job.progress())
    st.progress(min(max(fraction, 0.0), 1.0), text=text)
    st.caption(decoding_plan(job))


def show_result(stored: StoredRun, engine: Engine, store: Store) -> None:
    """The stored run: its rows as a table with the figures, the dataset's own answer, the picked crystal's files
    and all files as a ZIP."""
    result, run = stored.result, stored.run_id
    rows = store.run_rows(run)
    for warning in result.warnings:
        st.warning(warning, icon=":material/warning:")
    n = len(rows)
    request = result.request
    figures = RunFigures(rows, request.target if request.mode == "formation_energy" else None)
    duplicates = sum(r["duplicate_of"] is not None for r in rows)
    judged = [r["novel"] for r in rows if r["novel"] is not None]
    st.subheader(f"{n} crystal{'s' if n != 1 else ''} from {result.model}")
    st.caption(figures.validity_line() + " · "
               + (f"{sum(judged)}/{len(judged)} novel (no match in the model's training set) · " if judged else "")
               + f"{duplicates} duplicate{'s' if duplicates != 1 else ''} of stored or earlier crystals · "
               f"{result.seconds:.1f} s · {result.steps_per_level} Langevin steps per level"
               + (f" · screening {result.screening_ratio}:1" if request.mode == "formation_energy" else ""))
    oracle = figures.oracle_line()
    if oracle is not None:
        st.caption(oracle.replace("oracle:", "Oracle (CHGNet + D3, relaxed positions and in-plane cell):", 1))
    if stored.relax_status not in (None, "completed"):
        st.warning(f"The relaxation ended {stored.relax_status}: {stored.relax_message}", icon=":material/warning:")
    elif stored.relax_message:
        st.caption(f"Relaxation: {stored.relax_message}.")
    bulk = sum(not r["slab"] for r in rows)
    if bulk:
        st.caption(f"2D checks (layers, vacuum, interlayer gap) skipped for {bulk} bulk crystal"
                   f"{'s' if bulk != 1 else ''}: no vacuum along c, so they would mean nothing.")
    if stored.status != "completed":
        st.warning(f"Run {run} ended {stored.status}.", icon=":material/warning:")
    # Keys carry the run id: a widget keyed alike across runs would keep the earlier run's options in the browser.
    st.dataframe(results_table(rows, engine.manifest.property.label), hide_index=True, width="stretch",
                 key=f"generate_table_{run}")
    table = training_table(engine.manifest)[0]
    known = sorted({r[c] for r in rows for c in ("known_id", "relaxed_known_id") if r.get(c)})
    if known:
        with st.expander(f"{len(known)} dataset bilayers match these crystals (as generated or once relaxed)"):
            st.caption("Matched with the paper's StructureMatcher tolerances (stol 0.5, ltol 0.3, 10°) against every "
                       "split of the model's dataset, training rows first; the first match is named, which at these "
                       "tolerances can be a neighbouring stacking. Labels come from the same oracle.")
            st.dataframe(dataset_rows(engine.manifest, table, known), hide_index=True, width="stretch",
                         key=f"generate_known_{run}")
    answer = dataset_answer(engine.manifest, request, table)
    if answer is not None:
        with st.expander(answer.line().replace("dataset baseline:", "What the dataset already holds:", 1)):
            st.caption("The model's own dataset (every split), labelled by the same oracle: the honest baseline "
                       "for what the model adds.")
            st.dataframe(answer.best, hide_index=True, width="stretch", key=f"generate_dataset_{run}")
    if not rows:
        return
    k, chosen = run_downloads(store, rows, "generate", run, lambda r: f"#{r['index_in_run']} {r['formula']}",
                              "generated", "candidates.zip")
    shown = chosen.relaxed_poscar or chosen.poscar
    with st.expander(f"POSCAR of #{rows[k]['index_in_run']} (candidate {chosen.id}"
                     f"{', relaxed' if chosen.relaxed_poscar else ''})"):
        st.code(shown, language=None)


def show_job(job: GenerationJob) -> None:
    """The session's job: its progress while it runs, then the stored run or why it failed."""
    if job.running:
        for warning in job.checked.warnings:
            st.warning(warning, icon=":material/warning:")
        show_progress(job)
        return
    stored = job.stored
    if stored is None:
        error = job.error
        st.error(f"The run failed: {type(error).__name__}: {error}", icon=":material/error:")
        return
    show_result(stored, job.engine, candidate_store())
    st.success(f"Stored as run {stored.run_id}; filter all stored candidates on the Candidates page.",
               icon=":material/database:")


st.title("Generate crystals")
st.write("Ask a model for crystals with a target property (for the shipped Janus model: van der Waals bilayers "
         "with a target formation energy) or a formula; it proposes candidates to check and download as POSCARs "
         "for DFT.")

root = artifacts_dir()
served, problems = all_by_mode(find_models(root))
for problem in problems:
    st.error(problem, icon=":material/error:")
if not served:
    st.info(f"No model artifacts found under `{root}`. Export one with `vdwgen export MODEL.pt --out "
            f"{root}/NAME`.", icon=":material/info:")
    st.stop()

modes = [m for m in MODES if m in served]
labels = mode_labels(served)
mode = st.radio("Request", modes, format_func=labels.__getitem__, horizontal=True, key="generate_mode")
# Every model that serves the mode; the first by name is the default (the shipped one, when it is there).
by_name = {m.name: m for m in served[mode]}
picked = st.selectbox("Model", list(by_name), key=f"generate_model_{mode}",
                      help="Every exported model under the artifacts folder that serves this request.")
st.caption(describe(by_name[picked]))
try:
    engine = load_engine(str(by_name[picked].folder))
except ArtifactError as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()
st.caption(f"Model `{engine.name}` ({engine.manifest.condition}-conditioned) on {engine.device}")
request = request_form(mode, engine.manifest)
relax = st.checkbox("Relax every crystal with the oracle (CHGNet + D3)", value=True, key="generate_relax",
                    help="The physics that labelled the dataset relaxes the atoms and the in-plane cell (the vacuum "
                         "stays) until every force is below 0.05 eV/Å (at most 500 steps), in a worker process: 1-2 s "
                         "per 8-atom crystal on a 2-core machine (bench/results/relax_pipeline.json). Both "
                         "structures are stored; downloads give the relaxed one.")

job: GenerationJob | None = st.session_state.get(JOB)
if st.button("Generate", type="primary", key="generate_run"):
    if job is not None and job.running:
        st.warning("A run is already in progress in this session (its progress is below); wait for it to finish "
                   "before starting another.", icon=":material/hourglass_top:")
    else:
        job = start_job(engine, request, relax) or job
if job is not None:
    show_job(job)
