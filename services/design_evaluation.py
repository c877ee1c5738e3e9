"""`vdwgen evaluate-design`: multi-property tasks, each method side by side, judged by the oracle after relaxing.

Tasks on the bilayers (:data:`TASKS`): two that thousands of dataset bilayers meet, two that a few dozen or
fewer do (the second of these, few-strong, is also the task of the ablation). On each task, with the same count
of candidates:

- ``cdvae``: ConditionCDVAE+ conditioned on the formation energy (the middle of its target, or just inside a
  bound), the other criteria filtered afterwards;
- ``smoacs-dataset`` / ``smoacs-generated``: SMOACS from training bilayers / from crystals our generator made;
- ``random``: random decorations of the training bilayers at the same number of predictor calls;
- the exhaustive answer: how many dataset bilayers (any split, and in the training part) meet every target by
  their own labels, which no method can beat inside the enumerated family; and ``dataset``: up to the same count
  of those bilayers (seeded draw), relaxed and judged by the oracle like every candidate. 83 % of the dataset's
  labels come from rigid layers (only the lowest stacking of each flip class was relaxed, at fixed cell), so the
  oracle's full relaxation moves them too: this row is the share a perfect method could reach after relaxation;
- the ablation (on :data:`ABLATION_TASK`): SMOACS without masks, without templates (in-plane coordinates drawn
  at random), without mutation.

Every candidate is stored (one run per task and method in a DuckDB file), relaxed by the oracle with each
criterion judged again on the relaxed crystal (:func:`services.design.relax_design`). A run already finished
in the file is not run again, so an interrupted evaluation resumes where it stopped; ``results.json`` and
``report.md`` are rewritten from the file after every run. The ledger (``runs.json``) keeps each finished run's
figures too: a run whose database is lost (a new checkout, a moved report folder) is reported from them, marked as
carried, and not run again (delete its entry from ``runs.json`` to run it again); a run not finished is run again.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Structure

from design.targets import Target
from scoring.novelty import table_structure
from scoring.stacking import stacking_key
from services.design import (
    DesignError,
    DesignRequest,
    check_design,
    criterion,
    dataset_templates,
    design_and_store,
    generated_templates,
    predictor_table,
    relax_design,
)
from serving.predictor import LoadedPredictor
from store.database import Store

TASKS: dict[str, tuple[str, ...]] = {
    "many-gap": ("formation_energy_per_atom<=-0.7", "interlayer_gap=3.2:3.5"),
    "many-binding": ("binding_energy_per_area=-22:-18", "a_common=3.7:3.9"),
    "few-strong": ("formation_energy_per_atom<=-0.95", "binding_energy_per_area<=-30", "interlayer_gap<=3.1"),
    "few-wide": ("a_common>=4.1", "formation_energy_per_atom<=-0.6", "interlayer_gap<=3.3"),
}
"""The evaluation's tasks."""
ISSUE_EXAMPLE = ("formation_energy_per_atom<=-0.8", "binding_energy_per_area=-22:-18", "interlayer_gap=3.0:3.3")
"""The issue's own request (147 dataset bilayers meet it): what `bench/design_speed.py` times, not one of
:data:`TASKS`."""
KNOWN_TASKS: dict[str, tuple[str, ...]] = {**TASKS, "issue-example": ISSUE_EXAMPLE}
"""Every task a job can name."""
ABLATION_TASK = "few-strong"
METHODS = ("smoacs-dataset", "random", "cdvae", "smoacs-generated", "dataset")
ABLATIONS = ("no-masks", "no-templates", "no-mutation")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Job:
    task: str
    method: str

    @property
    def name(self) -> str:
        return f"{self.task}/{self.method}"


def jobs() -> list[Job]:
    """Every run of the evaluation: task by task (each task's comparison complete before the next), then the
    ablation."""
    out = [Job(task, method) for task in TASKS for method in METHODS]
    return out + [Job(ABLATION_TASK, a) for a in ABLATIONS]


def dataset_answer(predictor: LoadedPredictor, targets: tuple[Target, ...]) -> dict[str, int]:
    """How many dataset bilayers meet every target by their own labels (every split; the training part)."""
    frame = pd.read_parquet(predictor_table(predictor))
    meets = meeting(frame, targets)
    split = str(predictor.manifest.training.get("split", "random"))
    return {"all": int(meets.sum()), "training": int((meets & (frame[f"split_{split}"] == "train")).sum()),
            "rows": len(frame)}


def meeting(frame: pd.DataFrame, targets: tuple[Target, ...]) -> np.ndarray:
    """(rows,) whether each row of a dataset table meets every target by its own labels."""
    meets = np.ones(len(frame), dtype=bool)
    for t in targets:
        values = frame[t.label].to_numpy(dtype=float)
        meets &= (values >= t.low) & (values <= t.high)
    return meets


def _dataset_run(predictor: LoadedPredictor, targets: tuple[Target, ...], store: Store, count: int, seed: int,
                 progress: Progress | None) -> tuple[int, float]:
    """Up to ``count`` dataset bilayers meeting every target by their labels, stored as a run to be relaxed."""
    from core.manifest import sha256
    from core.predictor_manifest import PREDICTOR_MANIFEST
    from services.design import design_records
    from services.verification import training_set
    from store.database import RunInfo

    table = predictor_table(predictor)
    frame = pd.read_parquet(table)
    rows = frame[meeting(frame, targets)]
    rows = rows.sample(min(count, len(rows)), random_state=seed) if len(rows) else rows
    structures = [table_structure(r.lattice, r.species, r.frac_coords) for r in rows.itertuples()]
    labels = predictor.labels
    values = judged_values(predictor, structures)
    info = RunInfo("design", len(structures), seed, predictor.manifest.name,
                   sha256(predictor.manifest.folder / PREDICTOR_MANIFEST),
                   design_targets=" AND ".join(t.text() for t in targets), templates="dataset answer")
    run_id = store.start_run(info)
    t0 = time.perf_counter()
    split = str(predictor.manifest.training.get("split", "random"))
    records = design_records(predictor, structures, values, training_set(str(table), split, "train"),
                             store.same_formula, None if progress is None else (lambda d, n: progress("scoring", d, n)))
    ids = store.finish_run(run_id, records, "completed", time.perf_counter() - t0)
    criteria = [criterion(cid, t, predictor.manifest.labels[t.label].unit, float(getattr(row, t.label)),
                          float(values[b, labels.index(t.label)]))
                for b, (cid, row) in enumerate(zip(ids, rows.itertuples())) for t in targets]
    store.record_design(criteria, {cid: str(row.id) for cid, row in zip(ids, rows.itertuples())})
    return run_id, time.perf_counter() - t0


def judged_values(predictor: LoadedPredictor, structures: list[Structure]) -> np.ndarray:
    """(B, L) the predictor's labels of finished crystals (one-hot types), in its label order."""
    index = {el: i for i, el in enumerate(predictor.vocabulary)}
    out = []
    with torch.no_grad():
        for start in range(0, len(structures), 64):
            part = structures[start:start + 64]
            frac = torch.tensor(np.concatenate([s.frac_coords for s in part]), dtype=torch.float32)
            types = torch.tensor([index[site.specie.symbol] for s in part for site in s])
            lattice = torch.tensor(np.stack([s.lattice.matrix for s in part]), dtype=torch.float32)
            sizes = torch.tensor([len(s) for s in part])
            one_hot = torch.nn.functional.one_hot(types, len(predictor.vocabulary)).float()
            out.append(predictor(frac, one_hot, lattice, sizes).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(predictor.labels)))


def _request(job: Job, count: int, steps: int, seed: int) -> DesignRequest:
    targets = KNOWN_TASKS[job.task]
    if job.method in ("smoacs-dataset", "cdvae"):
        return DesignRequest(targets, count, steps, "dataset", seed)
    if job.method == "smoacs-generated":
        return DesignRequest(targets, count, steps, "generated", seed)
    if job.method == "random":
        return DesignRequest(targets, count, steps, "dataset", seed, method="random")
    return DesignRequest(targets, count, steps, "dataset", seed, masks=job.method != "no-masks",
                         mutation=job.method != "no-mutation", random_start=job.method == "no-templates")


def _cdvae_run(engine, predictor: LoadedPredictor, targets: tuple[Target, ...], store: Store, count: int,
               seed: int, progress: Progress | None) -> tuple[int, list[int], float]:
    """Generate for the formation-energy target, store, then judge every criterion with the predictor."""
    from services.generation import generate_and_store
    from serving.request import GenerationRequest

    prop = engine.manifest.property
    target = next((t for t in targets if t.label == prop.name), None)
    value = prop.percentile("50") if target is None else (
        (target.low + target.high) / 2 if target.kind == "range"
        else max(target.high - 0.05, prop.min) if target.kind == "at_most" else min(target.low + 0.05, prop.max))
    checked = engine.check(GenerationRequest("formation_energy", count, target=float(value), seed=seed))
    t0 = time.perf_counter()
    done = generate_and_store(engine, checked, store, progress)
    if done.status != "completed":  # Ctrl-C during decoding: the job is not done
        raise KeyboardInterrupt(f"run {done.run_id} stopped during decoding")
    values = judged_values(predictor, [Structure.from_str(r.poscar, fmt="poscar") for r in done.records])
    rows = [criterion(cid, t, predictor.manifest.labels[t.label].unit, row[predictor.labels.index(t.label)],
                      row[predictor.labels.index(t.label)])
            for cid, row in zip(done.candidate_ids, values) for t in targets]
    store.record_design(rows, {})
    return done.run_id, done.candidate_ids, time.perf_counter() - t0


def make_job(job: Job, predictor: LoadedPredictor, store: Store, count: int, steps: int, seed: int,
             engine=None, progress: Progress | None = None) -> dict:
    """One task with one method designed (or generated) and stored, not relaxed yet; returns its ledger entry."""
    request = _request(job, count, steps, seed)
    checked = check_design(request, predictor)
    t0 = time.perf_counter()
    if job.method == "cdvae":
        run_id, _ids, seconds = _cdvae_run(engine, predictor, checked.targets, store, count, seed, progress)
    elif job.method == "dataset":
        run_id, seconds = _dataset_run(predictor, checked.targets, store, count, seed, progress)
    else:
        if request.templates == "generated":
            made = generated_templates(engine, checked.targets, count, seed,
                                       None if progress is None else (lambda d, n: progress("templates", d, n)))
            templates = [made[i % len(made)] for i in range(count)]
        else:
            templates = dataset_templates(predictor, count, seed)
        done = design_and_store(predictor, checked, store, templates, progress, relax=False)
        run_id, seconds = done.run_id, done.designed.seconds
    return {"task": job.task, "method": job.method, "run_id": run_id, "run_created": _created(store, run_id),
            "count": count, "steps": steps,
            "seed": seed, "search_seconds": round(seconds, 1), "make_seconds": round(time.perf_counter() - t0, 1),
            "relax_seconds": 0.0, "relax_status": "pending", "relax_message": None}


def relax_job(entry: dict, predictor: LoadedPredictor, store: Store, progress: Progress | None = None) -> dict:
    """The entry's run relaxed (what is not relaxed yet: a cut run resumes) and every criterion judged."""
    from services.verification import Reference

    table = predictor_table(predictor)
    reference = Reference(str(table), str(predictor.manifest.training.get("split", "random")), "train")
    t0 = time.perf_counter()
    ids = store.unrelaxed(entry["run_id"])
    status, message = relax_design(store, entry["run_id"], ids, predictor, reference, progress)
    return {**entry, "relax_seconds": round(entry.get("relax_seconds", 0.0) + time.perf_counter() - t0, 1),
            "relax_status": status, "relax_message": message}


@functools.lru_cache(maxsize=4)
def dataset_stackings(table: Path) -> frozenset[str]:
    """The stacking keys of every row of a dataset table (:mod:`scoring.stacking`; 14 s for our 19,926 rows)."""
    frame = pd.read_parquet(table, columns=["lattice", "species", "frac_coords"])
    keys = (stacking_key(table_structure(r.lattice, r.species, r.frac_coords)) for r in frame.itertuples())
    return frozenset(k for k in keys if k is not None)


def relaxed_stackings(frame: pd.DataFrame) -> list[str | None]:
    """The stacking key of each relaxed crystal of a run (None: not relaxed, or off the sublattice sites)."""
    return [stacking_key(Structure.from_str(p, fmt="poscar")) if isinstance(p, str) else None
            for p in frame["oracle_relaxed_poscar"]]


def run_figures(store: Store, run_id: int, targets: tuple[Target, ...], known: frozenset[str] = frozenset()
                ) -> dict:
    """Success per criterion and for all at once, before and after relaxation, validity, uniqueness, novelty.

    Uniqueness counts stackings (:mod:`scoring.stacking`; a relaxed crystal without a key counts alone), since the
    paper's tolerances cannot tell stackings apart; ``known`` holds the dataset's stacking keys."""
    rows = store.run_rows(run_id)
    criteria = pd.DataFrame(store.design_rows(run_id))
    n = len(rows)
    frame = pd.DataFrame(rows)
    out: dict = {"n": n}
    if n == 0:
        return out
    per = {}
    for t in targets:
        mine = criteria[criteria["label"] == t.label]
        per[t.text()] = {"designed": float(_true(mine["met"]).mean()),
                         "relaxed": float(_true(mine["oracle_met"]).mean())}
    met_after = _true(frame["design_oracle_met"])
    new = ~_true(frame["relaxed_known"], missing=True)  # not relaxed: not counted as new
    stackings = pd.Series(relaxed_stackings(frame), index=frame.index, dtype=object)
    unique_after = stackings[met_after].dropna().nunique() + int((met_after & stackings.isna()).sum())
    in_dataset = stackings.map(lambda k: k is not None and k in known)
    drops = frame["oracle_energy_drop_per_atom"].dropna()
    out.update({
        "criteria": per,
        "all_designed": float(_true(frame["design_met"]).mean()),
        "all_relaxed": float(met_after.mean()),
        "valid_designed": float(_true(frame["valid"]).mean()),
        "valid_relaxed": float(_true(frame["relaxed_valid"]).mean()),
        "unique_all_relaxed": int(unique_after),
        "stackings_relaxed": int(stackings.dropna().nunique()),
        "dataset_stacking_relaxed": float(in_dataset.mean()),
        "new_stacking_and_all_relaxed": int((met_after & stackings.notna() & ~in_dataset
                                             & _true(frame["relaxed_valid"])).sum()),
        "novel_relaxed": float(_true(frame["relaxed_novel"]).mean()),
        "new_relaxed": float(new.mean()),
        "new_and_all_relaxed": int((met_after & new).sum()),
        "converged": float(_true(frame["oracle_converged"]).mean()),
        "median_energy_drop": float(drops.median()) if len(drops) else float("nan"),
    })
    return out


def _true(values: pd.Series, missing: bool = False) -> pd.Series:
    """A boolean column with its NULLs (not judged) read as ``missing``."""
    return values.astype("boolean").fillna(missing).astype(bool)


def evaluate_design(predictor: LoadedPredictor, store: Store, out: Path, count: int = 256, steps: int = 200,
                    seed: int = 0, engine=None, only: list[str] | None = None,
                    progress: Progress | None = None) -> Path:
    """Run every job not yet in ``out/runs.json`` (resumable), then write ``results.json`` and ``report.md``.

    A job is redone when its settings differ from the ledger's, and a job that used the generator (``cdvae``,
    ``smoacs-generated``) also when ``engine`` serves other crystals than the one it used (other model files or
    sampling settings: :func:`core.manifest.served_fingerprint`).
    """
    from core.manifest import served_fingerprint

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ledger_path = out / "runs.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() else {}
    ledger = {name: e for name, e in ledger.items() if "skipped" in e or _finished(e) or _stored(store, e)}
    general = {"count": count, "steps": steps, "seed": seed}
    generator = {} if engine is None else {"generator": served_fingerprint(engine.manifest)}
    for job in selected(only):
        entry = ledger.get(job.name)
        # a job that used the generator is redone once another generator is shipped
        settings = {**general, **generator} if job.method in NEEDS_GENERATOR else general
        same = entry is not None and all(entry.get(k) == v for k, v in settings.items())
        if same and (entry.get("relax_status") == "completed" or "skipped" in entry):
            continue
        if job.method in NEEDS_GENERATOR and engine is None:
            continue
        if not same or "run_id" not in entry:
            try:
                entry = make_job(job, predictor, store, count, steps, seed, engine, progress)
            except DesignError as exc:  # e.g. a generator that makes no valid template: said in the report
                entry = {"task": job.task, "method": job.method, "skipped": str(exc)}
            entry.update(settings)
            ledger[job.name] = entry
            ledger_path.write_text(json.dumps(ledger, indent=2))  # made and stored: a cut relaxation resumes
        if "skipped" not in entry:
            ledger[job.name] = relax_job(entry, predictor, store, progress)
            ledger_path.write_text(json.dumps(ledger, indent=2))
        write_report(predictor, store, ledger, out)
        ledger_path.write_text(json.dumps(ledger, indent=2))  # with the finished run's figures
    report = write_report(predictor, store, ledger, out)
    ledger_path.write_text(json.dumps(ledger, indent=2))
    return report


def _created(store: Store, run_id: int) -> str:
    """When run ``run_id`` of ``store`` was started: with the id, what names the run across databases."""
    run = store.run(int(run_id))
    return "" if run is None else str(run["created"])


def _stored(store: Store, entry: dict) -> bool:
    """Whether the run a ledger entry names is in ``store`` with its candidates and their criteria: the same id and
    the same start time (a run of another database, e.g. one lost with its folder, may have this id too)."""
    run = store.run(int(entry["run_id"]))
    return (run is not None and str(run["created"]) == entry.get("run_created") and run["count_stored"] > 0
            and bool(store.design_rows(int(entry["run_id"]))))


def _finished(entry: dict) -> bool:
    """Whether a ledger entry is of a finished run with its figures kept (reported from them when its database is
    not the one at hand)."""
    return entry.get("relax_status") == "completed" and "figures" in entry


NEEDS_GENERATOR = ("cdvae", "smoacs-generated")
"""Methods that need the ConditionCDVAE+ generator."""


def selected(only: list[str] | None) -> list[Job]:
    """The jobs ``only`` names: the tasks named (all when none is) times the methods named (all when none is)."""
    tasks = {name for name in only or [] if name in TASKS}
    methods = {name for name in only or [] if name in (*METHODS, *ABLATIONS)}
    return [job for job in jobs() if (not tasks or job.task in tasks) and (not methods or job.method in methods)]


MAIN_HEAD = ("| method | n | all met, designed | all met, relaxed | distinct stackings, all met | valid relaxed "
             "| a dataset stacking | new valid stacking | novel (paper) | new (paper) | converged "
             "| median drop (eV/atom) | search s | relax s |")
"""The columns of a task's side-by-side table (one row a method, :func:`_main_row`)."""


def _name(entry: dict, carried: bool = False) -> str:
    """A method's row name, marked when its relaxation is not complete (a ledger left by a killed process) or when
    its figures are carried from another database (†)."""
    status = entry.get("relax_status", "pending")
    return (entry["method"] + ("" if status == "completed" else f" (relaxation {status}: partial figures)")
            + (" †" if carried else ""))


def _main_row(entry: dict, f: dict, carried: bool = False) -> str:
    return (f"| {_name(entry, carried)} | {f['n']} | {f['all_designed']:.0%} | {f['all_relaxed']:.0%} "
            f"| {f['unique_all_relaxed']} | {f['valid_relaxed']:.0%} | {f['dataset_stacking_relaxed']:.0%} "
            f"| {f['new_stacking_and_all_relaxed']} | {f['novel_relaxed']:.0%} | {f['new_relaxed']:.0%} "
            f"| {f['converged']:.0%} | {f['median_energy_drop']:.3f} "
            f"| {entry['search_seconds']:.0f} | {entry['relax_seconds']:.0f} |")


def _table(head: str, rows: list[str]) -> list[str]:
    return [head, "|" + "---|" * (head.count("|") - 1), *rows, ""]


def _order(method: str) -> int:
    """Methods in the order of :data:`METHODS`, then the ablations."""
    names = (*METHODS, *ABLATIONS)
    return names.index(method) if method in names else len(names)


def write_report(predictor: LoadedPredictor, store: Store, ledger: dict, out: Path) -> Path:
    """``results.json`` (every figure) and ``report.md``: every target at once after relaxation for each task and
    method, then per task the side-by-side table and success per criterion, then the ablation. Each finished run
    of ``store`` keeps its figures in its ``ledger`` entry; a run of another database is reported from those."""
    from design.targets import parse_targets

    infos = predictor.label_infos()
    results = {"predictor": predictor.manifest.name, "tasks": {}}
    intro = ["# Multi-property design: SMOACS against the generator, random search and the dataset itself", "",
             f"Predictor `{predictor.manifest.name}`; every candidate relaxed by the oracle (CHGNet + D3: positions "
             "and in-plane cell), then each criterion judged again on the relaxed crystal (layers relaxed alone for "
             "the interlayer energies). 'designed' uses the predictor; 'relaxed' uses the oracle. A bilayer's gap is "
             "set by the dataset's rigid scan before it relaxes.", "",
             "Which crystal a relaxed candidate is goes by its stacking (`scoring/stacking.py`: element and "
             "sublattice of each atom up the normal; it separates the dataset's 19,926 rows into its 19,845 "
             "stackings, symmetry duplicates joined). 'distinct stackings' counts them among the candidates that "
             "meet every target after relaxation; a relaxed crystal without a stacking (a layer that stopped more "
             "than 0.3 Å off the high-symmetry sites, or a cell no longer triangular) counts alone, so this is an "
             "upper bound; 'a dataset stacking' is the share that relaxed onto a stacking the "
             "dataset holds; 'new valid stacking' counts the candidates on a stacking the dataset lacks that pass "
             "every validity check once relaxed and meet every target; 'novel (paper)' and 'new (paper)' are the "
             "shares of relaxed crystals that the paper's StructureMatcher tolerances match to no training bilayer "
             "and to no dataset bilayer (they cannot tell stackings apart, so these are the stricter senses).", "",
             "'search s' and 'relax s' are wall-clock seconds of one process: whatever else ran on the machine, and "
             "any pause of the process, counts in them, so they are upper bounds and only roughly comparable between "
             "rows (`bench/design_speed.py` measures each method's CPU seconds).", ""]
    known = dataset_stackings(predictor_table(predictor))
    headline: dict[str, dict[str, str]] = {}
    body: list[str] = []
    ablation: list[str] = []
    carried_runs = 0
    for task, texts in TASKS.items():
        targets = parse_targets(texts, infos)
        answer = dataset_answer(predictor, targets)
        results["tasks"][task] = {"targets": list(texts), "dataset": answer, "methods": {}}
        rows, criteria, skipped = [], [], []
        for entry in sorted((e for e in ledger.values() if e["task"] == task), key=lambda e: _order(e["method"])):
            if "skipped" in entry:
                results["tasks"][task]["methods"][entry["method"]] = entry
                skipped.append(f"- {entry['method']} not run: {entry['skipped']}")
                continue
            carried = not _stored(store, entry)
            f = entry["figures"] if carried else run_figures(store, entry["run_id"], targets, known)
            if not carried and entry.get("relax_status") == "completed":
                entry["figures"] = f
            kept = {k: v for k, v in entry.items() if k != "figures"}
            results["tasks"][task]["methods"][entry["method"]] = {**kept, **f, "carried": carried}
            if not f.get("n"):
                continue
            carried_runs += carried
            row = _main_row(entry, f, carried)
            if entry["method"] in ABLATIONS or (task == ABLATION_TASK and entry["method"] == "smoacs-dataset"):
                ablation.append(row)
            if entry["method"] in ABLATIONS:
                continue
            rows.append(row)
            partial = "" if entry.get("relax_status") == "completed" else "*"
            headline.setdefault(task, {})[entry["method"]] = (f"{f['all_relaxed']:.0%}{partial} "
                                                              f"({f['all_designed']:.0%})")
            criteria.append(f"| {_name(entry, carried)} | " + " | ".join(
                f"{f['criteria'][t.text()]['designed']:.0%} / {f['criteria'][t.text()]['relaxed']:.0%}"
                for t in targets) + " |")
        body += [f"## {task}: {' AND '.join(texts)}", "",
                 f"Dataset bilayers meeting every target by their labels: {answer['all']:,} of {answer['rows']:,} "
                 f"({answer['training']:,} in the training part).", "", *_table(MAIN_HEAD, rows),
                 "Each target alone, designed / relaxed:", "",
                 *_table("| method | " + " | ".join(t.text() for t in targets) + " |", criteria),
                 *([*skipped, ""] if skipped else [])]
    head = "| task | dataset bilayers meeting all | " + " | ".join(METHODS) + " |"
    summary = [f"| {task} | {results['tasks'][task]['dataset']['all']:,} | "
               + " | ".join(headline.get(task, {}).get(m, "-") for m in METHODS) + " |" for task in TASKS]
    marked = any("*" in cell for cells in headline.values() for cell in cells.values())
    lines = [*intro, "## Every target met after relaxation (as designed)", "", *_table(head, summary),
             *(["\\* relaxation not complete: partial figures.", ""] if marked else []),
             *([f"† {carried_runs} runs reported from the figures their ledger entries kept: their database (and so "
                "their candidates) is not the one this report was written with: lost with a checkout, or another "
                "process's when tasks ran in parallel, each with its own database and ledger. Their "
                "settings and seeds are in `runs.json`; deleting an entry runs it again.", ""] if carried_runs else []),
             *body]
    if any(e.get("method") in ABLATIONS for e in ledger.values()):
        full = any(e["task"] == ABLATION_TASK and e["method"] == "smoacs-dataset" and "skipped" not in e
                   for e in ledger.values())
        lines += [f"## Ablation ({ABLATION_TASK}, SMOACS from dataset templates)", "",
                  "Without masks: every element of the vocabulary allowed on every site (no oxidation-number "
                  "patterns); without templates: each template's layers and species kept, its in-plane coordinates "
                  "drawn at random and the geometry prior off; without mutation: no copies at steps 100 and 150. "
                  + ("The first row is the full method on the same task." if full else
                     "The full method on the same task has not run yet."), "", *_table(MAIN_HEAD, ablation)]
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"


__all__ = ["ABLATIONS", "ABLATION_TASK", "ISSUE_EXAMPLE", "KNOWN_TASKS", "METHODS", "NEEDS_GENERATOR", "TASKS",
           "dataset_answer", "evaluate_design",
           "dataset_stackings", "jobs", "judged_values", "make_job", "relax_job", "relaxed_stackings", "run_figures",
           "selected", "write_report"]
