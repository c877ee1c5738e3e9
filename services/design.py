"""Design-score-relax-store: SMOACS candidates for several targets at once, checked by the oracle.

One implementation for `vdwgen design`, the app's Design page and `vdwgen evaluate-design`:

1. the targets are parsed against the predictor's labels (:mod:`design.targets`, one-line refusals);
2. templates: bilayers of the predictor's training part (``dataset``), crystals our ConditionCDVAE+ model
   generated and the checks found valid (``generated``: "generate, then polish"), or half of each (``both``);
3. each template gets its oxidation-number patterns (:mod:`design.masks`; every output neutral);
4. :func:`design.smoacs.optimise` runs the gradient loop, then each candidate is decoded (one-hot types,
   heaviest pattern) and predicted again;
5. the candidates are scored like generated crystals (validity with every check, novelty, known vs new,
   duplicates) and stored as one run (``mode = 'design'``) with one ``design_criteria`` row per target;
6. with ``relax`` the oracle relaxes them (positions and in-plane cell, as `vdwgen verify` does), relaxes each
   layer alone for the interlayer energies (:mod:`scoring.oracle_labels`) and stores, per criterion, the
   oracle's value and whether the target still holds. A candidate succeeds only when every target holds after
   relaxation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure

from core.errors import VdwgenError
from core.paths import dataset_dir, repo_root
from core.predictor_manifest import PREDICTOR_MANIFEST
from design.batch import build_batch
from design.masks import SitePatterns, oxidation_states, site_patterns, unmasked
from design.random_search import random_search
from design.smoacs import DesignOutcome, DesignSettings, optimise
from design.targets import Target, parse_targets
from design.templates import Template, template_from_structure
from scoring.batch import score_crystals
from scoring.layers import in_family
from scoring.record import CandidateRecord
from serving.predictor import LoadedPredictor
from store.database import DesignCriterion, RunInfo, Store

TEMPLATE_SOURCES = ("dataset", "generated", "both")
METHODS = ("smoacs", "random")
MAX_COUNT = 1024
MAX_GENERATED_TEMPLATES = 64
"""Generated templates made per request: decoding costs 2-3 s per crystal on 2 CPU cores, so 256 candidates start
from 64 generated crystals, each with its own random start (SMOACS's dataset templates are drawn, not made)."""
MAX_STEPS = 2000
Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total)."""


class DesignError(VdwgenError):
    """A design request that cannot run; the message names the limit or the valid options."""


@dataclass(frozen=True)
class DesignRequest:
    """What the user asks for.

    Attributes:
        targets: e.g. ``("formation_energy_per_atom<=-0.8", "interlayer_gap=3.0:3.3")``.
        count: candidates optimised together (the paper's batch: 256).
        steps: optimisation steps (200).
        templates: ``dataset``, ``generated`` or ``both``.
        seed: templates, initial distributions and mutations all derive from it.
        minimise: a label to push down besides the targets (e.g. ``formation_energy_per_atom``).
        masks, mutation: the paper's ablations switch these off; ``random_start``: templates' species and layers
            kept but their in-plane coordinates drawn at random (the ablation "without templates").
        method: ``smoacs`` (gradients) or ``random`` (random decorations at the same predictor calls, the baseline).
    """

    targets: tuple[str, ...]
    count: int = 256
    steps: int = 200
    templates: str = "dataset"
    seed: int = 0
    minimise: str | None = None
    masks: bool = True
    mutation: bool = True
    random_start: bool = False
    method: str = "smoacs"


@dataclass(frozen=True)
class CheckedDesign:
    request: DesignRequest
    targets: tuple[Target, ...]
    settings: DesignSettings


def check_design(request: DesignRequest, predictor: LoadedPredictor) -> CheckedDesign:
    """The request with its targets parsed and its settings checked (a one-line :class:`VdwgenError` if not)."""
    if not 1 <= request.count <= MAX_COUNT:
        raise DesignError(f"--n must be between 1 and {MAX_COUNT} candidates (got {request.count})")
    if not 1 <= request.steps <= MAX_STEPS:
        raise DesignError(f"--steps must be between 1 and {MAX_STEPS} (got {request.steps})")
    if request.method not in METHODS:
        raise DesignError(f"method must be one of {', '.join(METHODS)} (got {request.method!r})")
    if request.templates not in TEMPLATE_SOURCES:
        raise DesignError(f"--templates must be one of {', '.join(TEMPLATE_SOURCES)} (got {request.templates!r})")
    if request.minimise is not None and request.minimise not in predictor.labels:
        raise DesignError(f"--minimise {request.minimise!r} is not a label; valid: {', '.join(predictor.labels)}")
    targets = parse_targets(request.targets, predictor.label_infos())
    mutation = tuple(s for s in (100, 150) if s < request.steps) if request.steps == 200 else tuple(
        int(request.steps * f) for f in (0.5, 0.75) if 0 < int(request.steps * f) < request.steps)
    # without templates there is no template geometry, hence no bonds for the geometry prior to keep
    settings = DesignSettings(steps=request.steps, mutation_steps=mutation if request.mutation else (),
                              minimise=request.minimise, bond_weight=0.0 if request.random_start else 1.0)
    return CheckedDesign(request, targets, settings)


def predictor_table(predictor: LoadedPredictor) -> Path:
    """The dataset table the predictor learned from (its manifest names it relative to the checkout)."""
    table = predictor.manifest.training.get("table", "")
    for path in (repo_root() / table, predictor.manifest.folder / table, dataset_dir() / "bilayers.parquet"):
        if table and path.is_file():
            return path
    raise DesignError(f"the training table of predictor {predictor.manifest.name} ({table}) is not here")


def dataset_templates(predictor: LoadedPredictor, count: int, seed: int) -> list[Template]:
    """``count`` bilayers of the predictor's training part, drawn without replacement while they last."""
    frame = pd.read_parquet(predictor_table(predictor))
    split = predictor.manifest.training.get("split", "random")
    frame = frame[frame[f"split_{split}"] == "train"].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(frame))[:count] if count <= len(frame) else rng.integers(0, len(frame), count)
    out = []
    for i in picks.tolist():
        row = frame.iloc[i]
        s = Structure(np.asarray(row["lattice"], dtype=float).reshape(3, 3), list(row["species"]),
                      np.asarray(row["frac_coords"], dtype=float).reshape(-1, 3))
        out.append(template_from_structure(s, str(row["id"])))
    return out


def generated_templates(engine, targets: Sequence[Target], count: int, seed: int,
                        progress: Callable[[int, int], None] | None = None) -> list[Template]:
    """Crystals our ConditionCDVAE+ model makes for the formation-energy target (its middle, or just inside a
    bound; the median of its training data when there is none), kept when every validity check passes; at most
    :data:`MAX_GENERATED_TEMPLATES` (the candidates cycle through them)."""
    from scoring.record import validity_checks
    from serving.request import GenerationRequest

    prop = engine.manifest.property
    target = next((t for t in targets if t.label == prop.name), None)
    if target is None:
        value = prop.percentile("50")
    elif target.kind == "range":
        value = (target.low + target.high) / 2
    elif target.kind == "at_most":
        value = max(target.high - 0.05, prop.min)
    else:
        value = min(target.low + 0.05, prop.max)
    family = in_family(engine.manifest.vocabulary)
    count = min(count, MAX_GENERATED_TEMPLATES)
    kept: list[Template] = []
    for attempt in range(3):  # the model's valid share is well above a third; three rounds fill any request
        want = count - len(kept)
        result = engine.generate(GenerationRequest("formation_energy", min(2 * want, 1000), target=float(value),
                                                   seed=seed + attempt), progress)
        for c in result.crystals:
            if len(kept) < count and validity_checks(c.structure, family).valid:
                kept.append(template_from_structure(c.structure, f"generated:{attempt}:{c.index}"))
        if len(kept) >= count:
            break
    if not kept:
        raise DesignError(f"model {engine.name} made no valid crystal to start from; use --templates dataset")
    return kept


def request_templates(predictor: LoadedPredictor, checked: CheckedDesign, engine=None,
                      progress: Progress | None = None) -> list[Template]:
    """The templates a request asks for: training bilayers, crystals ``engine`` generates (valid ones), or half
    of each (``both``: the dataset's half first)."""
    request = checked.request
    if request.templates in ("generated", "both") and engine is None:
        raise DesignError(f"--templates {request.templates} needs a generator model; none was given")
    templates: list[Template] = []
    if request.templates in ("dataset", "both"):
        share = request.count if request.templates == "dataset" else request.count - request.count // 2
        templates += dataset_templates(predictor, share, request.seed)
    share = request.count if request.templates == "generated" else request.count // 2
    if request.templates in ("generated", "both") and share > 0:
        made = generated_templates(engine, checked.targets, share, request.seed,
                                   None if progress is None else (lambda d, n: progress("templates", d, n)))
        templates += [made[i % len(made)] for i in range(share)]  # its share of candidates, cycling the crystals
    return templates


def patterns_for(templates: Sequence[Template], vocabulary: Sequence[str], masks: bool
                 ) -> tuple[list[Template], list[SitePatterns]]:
    """The templates that have at least one neutral pattern, with their patterns (every site free: no masks)."""
    states = oxidation_states(vocabulary)
    kept, patterns = [], []
    for t in templates:
        p = site_patterns(t.species, vocabulary, states) if masks else unmasked(t.species, vocabulary)
        if p is not None:
            kept.append(t)
            patterns.append(p)
    return kept, patterns


def randomised(templates: Sequence[Template], seed: int) -> list[Template]:
    """The templates with their in-plane fractional coordinates drawn uniformly (ablation: no templates)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in templates:
        frac = t.frac_coords.copy()
        frac[:, :2] = rng.random((t.num_atoms, 2))
        out.append(replace(t, frac_coords=frac, id=f"random:{t.id}"))
    return out


@dataclass(frozen=True)
class Designed:
    """The optimisation's result as crystals."""

    outcome: DesignOutcome
    structures: list[Structure]
    template_ids: list[str]
    seconds: float


def run_design(predictor: LoadedPredictor, checked: CheckedDesign, templates: Sequence[Template],
               progress: Callable[[int, int], None] | None = None) -> Designed:
    """Optimise ``checked.request.count`` candidates from ``templates`` (cycled in order) and build crystals."""
    request = checked.request
    if request.random_start:
        templates = randomised(templates, request.seed)
    kept, patterns = patterns_for(templates, predictor.vocabulary, request.masks)
    if not kept:
        raise DesignError("no template has a charge-neutral pattern of oxidation numbers in this vocabulary")
    choice = [i % len(kept) for i in range(request.count)]
    batch = build_batch(kept, patterns, choice, len(predictor.vocabulary))
    t0 = time.perf_counter()
    search = optimise if request.method == "smoacs" else random_search
    outcome = search(predictor, predictor.labels, predictor.std, checked.targets, batch, predictor.vocabulary,
                     checked.settings, request.seed,
                     None if progress is None else (lambda step: progress(step, checked.settings.steps)))
    seconds = time.perf_counter() - t0
    structures = []
    for b in range(request.count):
        atoms = batch.atoms_of(b)
        species = [predictor.vocabulary[int(k)] for k in outcome.types[atoms]]
        frac = np.mod(outcome.frac[atoms].numpy().astype(float), 1.0)
        structures.append(Structure(outcome.lattice[b].numpy().astype(float), species, frac))
    ids = [kept[int(i)].id for i in outcome.template_index]
    return Designed(outcome, structures, ids, seconds)


@dataclass(frozen=True)
class CrystalToScore:
    """A crystal to score with the predictor's formation energy (what :func:`scoring.batch.score_crystals` needs)."""

    index: int
    structure: Structure
    predicted_formation_energy: float | None


def design_records(predictor: LoadedPredictor, structures: Sequence[Structure], predicted: np.ndarray,
                   reference=None, stored=None,
                   progress: Callable[[int, int], None] | None = None) -> list[CandidateRecord]:
    """Validity, novelty, known vs new and duplicates of each crystal (as generated crystals are scored), with the
    formation energy of its row of ``predicted`` (one column per predictor label)."""
    labels = predictor.labels
    j = labels.index("formation_energy_per_atom") if "formation_energy_per_atom" in labels else None
    crystals = [CrystalToScore(i, s, None if j is None else float(predicted[i, j])) for i, s in enumerate(structures)]
    return score_crystals(crystals, reference, stored, progress, in_family(predictor.vocabulary))


def criterion(candidate_id: int, target: Target, unit: str, designed: float, predicted: float) -> DesignCriterion:
    """One target of one candidate as stored (an open end of the target stored as NULL)."""
    return DesignCriterion(int(candidate_id), target.label, target.text(), None if np.isinf(target.low) else target.low,
                           None if np.isinf(target.high) else target.high, unit, float(designed), float(predicted),
                           bool(target.low <= designed <= target.high))


def criteria_rows(predictor: LoadedPredictor, checked: CheckedDesign, designed: Designed,
                  ids: Sequence[int]) -> list[DesignCriterion]:
    labels = predictor.labels
    return [criterion(cid, t, predictor.manifest.labels[t.label].unit,
                      float(designed.outcome.values[b, labels.index(t.label)]),
                      float(designed.outcome.predicted[b, labels.index(t.label)]))
            for b, cid in enumerate(ids) for t in checked.targets]


@dataclass(frozen=True)
class StoredDesign:
    run_id: int
    candidate_ids: list[int]
    records: list[CandidateRecord]
    designed: Designed
    relax_status: str | None = None
    relax_message: str | None = None


def design_and_store(predictor: LoadedPredictor, checked: CheckedDesign, store: Store,
                     templates: Sequence[Template], progress: Progress | None = None, relax: bool = True,
                     workers: int | ProcessPoolExecutor = 0) -> StoredDesign:
    """Design, score and store one run (then relax it with ``relax``); see the module docstring."""
    from core.manifest import sha256
    from services.verification import Reference, training_set

    request = checked.request
    info = RunInfo("design", request.count, request.seed, predictor.manifest.name,
                   sha256(predictor.manifest.folder / PREDICTOR_MANIFEST), relax=relax,
                   design_targets=" AND ".join(t.text() for t in checked.targets), templates=request.templates)
    table = predictor_table(predictor)  # a missing table is refused before any run is recorded
    split = str(predictor.manifest.training.get("split", "random"))
    run_id = store.start_run(info)
    t0 = time.perf_counter()
    try:
        designed = run_design(predictor, checked, templates,
                              None if progress is None else (lambda d, n: progress("optimising", d, n)))
        reference = training_set(str(table), split, "train")
        records = design_records(predictor, designed.structures, designed.outcome.predicted, reference,
                                 store.same_formula,
                                 None if progress is None else (lambda d, n: progress("scoring", d, n)))
    except BaseException as exc:
        store.finish_run(run_id, [], "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                         time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:500])
        raise
    ids = store.finish_run(run_id, records, "completed", time.perf_counter() - t0)
    store.record_design(criteria_rows(predictor, checked, designed, ids), dict(zip(ids, designed.template_ids)))
    if not relax:
        return StoredDesign(run_id, ids, records, designed)
    status, message = relax_design(store, run_id, ids, predictor, Reference(str(table), split, "train"), progress,
                                   workers)
    return StoredDesign(run_id, ids, records, designed, status, message)


def design_references(table: Path) -> dict[str, float]:
    """The elemental references of the oracle's formation energy: beside the training table, else the dataset's."""
    from oracle.convention import load_references

    return load_references(table.parent if (table.parent / "references.json").is_file() else dataset_dir())


def relax_design(store: Store, run_id: int, ids: Sequence[int], predictor: LoadedPredictor, reference,
                 progress: Progress | None = None, workers: int | ProcessPoolExecutor = 0) -> tuple[str, str | None]:
    """Relax the run's candidates with the oracle (:func:`services.verification.relax_stored`), then judge every
    criterion on the relaxed crystals (:func:`judge_relaxed`). An oracle that cannot start ends the stage
    ``failed`` with its reason (the run and its crystals are kept); Ctrl-C is raised again, and ``vdwgen verify
    --run`` finishes both steps later."""
    from oracle.shared import OracleError
    from services.verification import relax_stored

    try:
        references = design_references(predictor_table(predictor))
    except OracleError as exc:
        store.set_relax_status(run_id, "failed", f"not relaxed: {exc}")
        return "failed", f"not relaxed: {exc}"
    status, message = relax_stored(store, run_id, list(ids), references, reference, in_family(predictor.vocabulary),
                                   None if progress is None else (lambda d, n: progress("relaxing", d, n)), workers)
    try:
        judge_relaxed(store, run_id, references, progress)
    except OracleError as exc:
        message = "; ".join(filter(None, [message, f"criteria not judged: {exc}"]))
        store.set_relax_status(run_id, "failed", message)
        return "failed", message
    return status, message


def judge_relaxed(store: Store, run_id: int, references: Mapping[str, float], progress: Progress | None = None) -> int:
    """The oracle's value of every criterion of the run's relaxed candidates not judged yet (each layer relaxed
    alone for the interlayer energies, :mod:`scoring.oracle_labels`); returns how many were judged. A crystal whose
    relaxation gave no finite energy keeps its verdicts unknown."""
    from oracle.shared import get_oracle
    from scoring.oracle_labels import layer_energies, oracle_label_values

    rows = [r for r in store.run_rows(run_id) if r.get("oracle_relaxed_poscar") and r.get("design_oracle_met") is None]
    rows = [r for r in rows if r.get("oracle_formation_energy") is not None]
    if not rows:
        return 0
    relaxed = [Structure.from_str(r["oracle_relaxed_poscar"], fmt="poscar") for r in rows]
    oracle = get_oracle()
    done = 0
    for start in range(0, len(rows), 16):
        part = slice(start, start + 16)
        energies = layer_energies(oracle, relaxed[part])
        for row, s, layers in zip(rows[part], relaxed[part], energies):
            values = oracle_label_values(s, float(row["oracle_formation_energy"]), references, layers)
            store.record_design_oracle(int(row["id"]), values)
        done += len(energies)
        if progress is not None:
            progress("oracle labels", done, len(rows))
    return done


__all__ = ["TEMPLATE_SOURCES", "CheckedDesign", "DesignError", "DesignRequest", "Designed", "StoredDesign",
           "check_design", "dataset_templates", "design_and_store", "design_records", "generated_templates",
           "relax_design", "request_templates", "run_design"]
