"""`vdwgen evaluate`: the paper's Tables 1-3 and Figs. 3-4 for a served model, checked by the oracle.

    vdwgen evaluate artifacts/cdvae-plus-janus --split test --out reports/cdvae-plus-janus [--quick|--full]

Stages, in order (each shows progress; each finished stage is kept in ``metrics.json`` and
long ones also keep finished chunks under ``<out>/_cache``, so an interrupted run resumes
where it stopped when given the same command):

1. ``reconstruction`` (Table 1): encode + decode test crystals of the random split and of the
   pair-grouped split, for the model and the same-budget CDVAE baseline. The served model
   was trained on the random split's training part, so the pair split's test crystals that
   sit in that training part are left out (said in the report);
2. ``samples``: N generated crystals from the served artifacts (the product's own path):
   the model with formation-energy targets drawn from the training labels (100:1 screening
   each, as the app), the baseline from its prior;
3. ``generation`` (Table 2): validity, COV-R / COV-P against the test crystals, EMD of density
   and of number of elements on up to 1,000 valid crystals;
4. ``energy_targets`` (Fig. 3b): for the 10th / 50th / 90th percentile of the training labels,
   crystals generated for that target are relaxed at fixed cell with CHGNet + D3 and their
   formation energy recomputed with the dataset's convention; unconditional samples for
   comparison;
5. ``formulas``: formula requests (three training formulas, one absent from the data): oracle
   energies against the best stacking of that formula in the data, distinct stackings found;
6. ``relaxation`` (Table 3): generated crystals that match nothing in the training part,
   relaxed (fmax 0.05 eV/A, 500 steps), for the model and the baseline;
7. ``latent`` (Fig. 4): t-SNE of test latents without (z = mu) and with fusion (z_c);
8. the report: ``report.md`` next to ``metrics.json`` and the PNGs.

Nothing here is tuned on the test part: the model and its sampling settings are fixed
before evaluation.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
import dataclasses
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure
from tqdm import tqdm

from core.manifest import Manifest, read_manifest
from serving.request import GenerationRequest
from serving.engine import DECODE_BATCH, Engine
from training.evaluation import coverage as cov
from training.evaluation import oracle_stats, plots
from training.evaluation.generation import validity_rates
from training.evaluation.report import write_report
from core.errors import VdwgenError
from scoring.novelty import TrainingSet, table_structure
from scoring.validity import compositionally_valid, structurally_valid

PROPERTY = "formation_energy_per_atom"
TRAINING_FORMULAS = ("GaInSSe", "AlGaIn2S2SeTe", "In2SeTe")
ABSENT_FORMULA = "Ga2InS3Se2"
"""Every 4:4 metal:chalcogen cell of the vocabulary is in the training part (225 of 225), so a
formula absent from the data is necessarily off the III-VI stoichiometry; this one is
SMACT-neutral (Te/S/Se in mixed states) and asks whether the model builds a sensible
bilayer for a composition it never saw."""


class EvaluationError(VdwgenError):
    """The evaluation cannot run; the message says what is missing."""


@dataclass(frozen=True)
class Budget:
    """How many crystals each stage uses (``--quick``, default, ``--full``)."""

    recon: int  # test crystals per split and model (0 = all)
    samples: int  # Table-2 N per model
    reference: int  # COV reference crystals (0 = the whole test part)
    per_target: int  # oracle checks per formation-energy target (and unconditional)
    per_formula: int
    relax: int  # Table-3 relaxations per model
    emd: int  # valid crystals for the EMDs
    tsne: int  # test crystals in the latent maps


PRESETS = {
    "quick": Budget(recon=4, samples=16, reference=24, per_target=3, per_formula=2, relax=3, emd=16, tsne=60),
    "default": Budget(recon=100, samples=1000, reference=1000, per_target=100, per_formula=25, relax=200,
                      emd=1000, tsne=1000),
    "full": Budget(recon=0, samples=9600, reference=0, per_target=100, per_formula=100, relax=400, emd=1000,
                   tsne=3000),
}


@dataclass
class Context:
    """What every stage needs."""

    artifacts: Path
    baseline_artifacts: Path
    checkpoint: Path
    baseline_checkpoint: Path
    data: Path
    split_part: str
    out: Path
    budget: Budget
    seed: int
    steps_per_level: int | None
    workers: int

    @property
    def cache(self) -> Path:
        return self.out / "_cache"


# -- small utilities -----------------------------------------------------------------------------------
def _bar(desc: str, total: int) -> tqdm:
    return tqdm(total=total, desc=desc, unit="crystal", dynamic_ncols=True, mininterval=2.0)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: Path, data: dict | list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_plain))
    tmp.replace(path)


def _plain(value: object) -> object:
    """JSON for numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def _structures(poscars: list[str]) -> list[Structure]:
    return [Structure.from_str(p, fmt="poscar") for p in poscars]


def _poscar(structure: Structure) -> str:
    return structure.to(fmt="poscar")


def _evenly(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (all when n is 0 or too large)."""
    if n <= 0 or n >= n_total:
        return np.arange(n_total)
    return np.linspace(0, n_total - 1, n).round().astype(int)


def _table(ctx: Context) -> pd.DataFrame:
    path = ctx.data / "bilayers.parquet"
    if not path.is_file():
        raise EvaluationError(f"no dataset table at {path}; pass --data DIR holding bilayers.parquet")
    return pd.read_parquet(path)


# -- generation through the served artifacts, chunked and cached ----------------------------------------
def _cached_decode(engine: Engine, z: np.ndarray, cond: np.ndarray | None, template: GenerationRequest,
                   path: Path, desc: str) -> list[Structure]:
    """Decode latents in chunks; finished chunks are kept in ``path`` (JSON list of POSCARs)."""
    done: list[str] = _read_json(path).get("poscars", []) if path.is_file() else []
    total = z.shape[0]
    bar = _bar(desc, total)
    bar.update(len(done))
    try:
        for start in range(len(done), total, DECODE_BATCH):  # finished chunks are whole chunks
            chunk = start // DECODE_BATCH
            request = GenerationRequest(template.mode, min(DECODE_BATCH, total - start), template.target,
                                        template.formula, template.seed * 10_000 + chunk, template.steps_per_level,
                                        template.screening_ratio)
            checked = engine.check(request)
            part = engine.decode(z[start:start + DECODE_BATCH],
                                 None if cond is None else cond[start:start + DECODE_BATCH], checked)
            done += [_poscar(s) for s in part]
            _write_json(path, {"poscars": done})
            bar.update(len(part))
    finally:
        bar.close()
    return _structures(done[:total])


def conditioned_samples(engine: Engine, targets: np.ndarray, seed: int, steps: int | None, path: Path
                        ) -> tuple[list[Structure], np.ndarray]:
    """One screened crystal per formation-energy target (the app's 100:1 screening each), decoded together."""
    ratio = engine.manifest.sampling.screening_ratio
    z, cond, predicted = engine.screened_latents(targets, ratio, seed)
    template = GenerationRequest("formation_energy", 1, float(targets[0]), seed=seed, steps_per_level=steps)
    structures = _cached_decode(engine, z, cond, template, path, "conditioned samples")
    return structures, predicted


def unconditional_samples(engine: Engine, n: int, seed: int, steps: int | None, path: Path) -> list[Structure]:
    """``n`` crystals from the baseline's prior."""
    request = GenerationRequest("unconditional", n, seed=seed, steps_per_level=steps)
    z, cond, _ = engine.latents(engine.check(request))
    return _cached_decode(engine, z, cond, request, path, "unconditional samples")


def request_samples(engine: Engine, request: GenerationRequest, path: Path, desc: str
                    ) -> tuple[list[Structure], np.ndarray]:
    """A plain app request (formula or one target), cached."""
    checked = engine.check(request)
    z, cond, predicted = engine.latents(checked)
    return _cached_decode(engine, z, cond, request, path, desc), predicted


# -- oracle checks, chunked and cached ------------------------------------------------------------------
ORACLE_CHUNK = 50


def oracle_checks(structures: list[Structure], path: Path, desc: str, dataset: Path) -> list[dict]:
    """Oracle check of every structure (see :func:`scoring.oracle_check.check_with_oracle`), cached per chunk.

    Returns one dict per structure: the :class:`OracleCheck` figures plus the relaxed POSCAR.
    """
    from scoring.oracle_check import check_with_oracle
    from oracle.convention import load_references
    from oracle.shared import get_oracle

    done: list[dict] = _read_json(path).get("checks", []) if path.is_file() else []
    bar = _bar(desc, len(structures))
    bar.update(len(done))
    try:
        if len(done) < len(structures):
            oracle, references = get_oracle(), load_references(dataset)
        for start in range(len(done), len(structures), ORACLE_CHUNK):
            part = structures[start:start + ORACLE_CHUNK]
            base = bar.n
            checks = check_with_oracle(part, references, oracle,
                                       progress=lambda finished, _total: bar.update(base + finished - bar.n))
            for c in checks:
                row = {f.name: getattr(c, f.name) for f in fields(c) if f.name != "relaxed"}
                row["relaxed_poscar"] = _poscar(c.relaxed)
                done.append(row)
            _write_json(path, {"checks": done})
            bar.update(len(done) - bar.n)
    finally:
        bar.close()
    return done[:len(structures)]


class _Check:
    """Attribute view of a cached oracle-check dict (what :mod:`oracle_stats` reads)."""

    def __init__(self, row: dict) -> None:
        self.__dict__.update(row)


def _relaxable(structures: list[Structure]) -> list[int]:
    """Indices of structurally valid crystals (the oracle is not asked about overlapping atoms)."""
    return [i for i, s in enumerate(structures) if structurally_valid(s)]


# -- stages ---------------------------------------------------------------------------------------------
def stage_reconstruction(ctx: Context, table: pd.DataFrame) -> dict:
    from training.data.crystal import CrystalDataset
    from training.evaluation.reconstruction import reconstruction_metrics
    from training.model.langevin import LangevinSettings
    from training.sample import Sampler
    from training.train.weights import load_trained

    steps = ctx.steps_per_level or 5
    part = ctx.split_part
    train_ids = set(table.loc[table["split_random"] == "train", "id"])
    sets = {
        "random": table[table["split_random"] == part],
        "pair": table[(table["split_pair"] == part) & ~table["id"].isin(train_ids)],
    }
    out: dict = {"steps_per_level": steps, "pair_split_note":
                 f"pair-split {part} crystals that are in the random split's training part "
                 f"({int(((table['split_pair'] == part) & table['id'].isin(train_ids)).sum())}) are left out"}
    for label, ckpt in (("model", ctx.checkpoint), ("baseline", ctx.baseline_checkpoint)):
        trained = load_trained(ckpt)
        sampler = Sampler(trained, LangevinSettings(steps_per_level=steps))
        for split, rows in sets.items():
            rows = rows.iloc[_evenly(len(rows), ctx.budget.recon)]
            crystals = list(CrystalDataset.from_table(rows.reset_index(drop=True), name=f"{split}:{part}",
                                                      property_columns=[PROPERTY]))
            bar = _bar(f"reconstruction {label} {split}", len(crystals))
            mu, cond = sampler.encode(crystals)
            decoded = sampler.decode(mu, cond, ctx.seed, progress=lambda d: bar.update(d - bar.n))
            bar.close()
            result = reconstruction_metrics(decoded, crystals)
            out.setdefault(label, {})[split] = {"match_rate": result.match_rate,
                                                "rmse": None if np.isnan(result.rmse) else result.rmse,
                                                "count": result.count, "available": int(len(sets[split]))}
    return out


def stage_samples(ctx: Context, engine: Engine, baseline: Engine, train_labels: np.ndarray) -> dict:
    n = ctx.budget.samples
    rng = np.random.default_rng(ctx.seed)
    targets = rng.choice(train_labels, size=n)
    t0 = time.perf_counter()
    _, predicted = conditioned_samples(engine, targets, ctx.seed, ctx.steps_per_level, ctx.cache / "samples_model.json")
    t1 = time.perf_counter()
    unconditional_samples(baseline, n, ctx.seed, ctx.steps_per_level, ctx.cache / "samples_baseline.json")
    t2 = time.perf_counter()
    _write_json(ctx.cache / "samples_model_targets.json", {"targets": targets.tolist(),
                                                           "predicted": predicted.tolist()})
    return {"count": n, "seconds_model": round(t1 - t0, 1), "seconds_baseline": round(t2 - t1, 1),
            "steps_per_level": ctx.steps_per_level or engine.manifest.sampling.steps_per_level,
            "targets": "formation energies drawn from the training labels, one screened crystal (100:1) each"}


def _fingerprints(structures: list[Structure], path: Path, desc: str, workers: int) -> np.ndarray:
    if path.is_file():
        stored = np.load(path)["fp"]
        if len(stored) == len(structures):
            return stored
    bar = _bar(desc, len(structures))
    fp = cov.structure_fingerprints(structures, workers, progress=bar.update)
    bar.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, fp=fp)
    return fp


def stage_generation(ctx: Context, table: pd.DataFrame) -> dict:
    part = ctx.split_part
    test = table[table["split_random"] == part]
    test = test.iloc[_evenly(len(test), ctx.budget.reference)]
    ref_structures = [table_structure(r.lattice, r.species, r.frac_coords) for r in test.itertuples()]
    train = table[table["split_random"] == "train"]
    scaler = cov.CompositionScaler.fit(cov.composition_fingerprints(list(train["reduced_formula"])))
    ref_struc = _fingerprints(ref_structures, ctx.cache / f"fp_reference_{len(test)}.npz",
                              "fingerprints: reference", ctx.workers)
    keep = ~np.isnan(ref_struc).any(axis=1)
    ref_struc = ref_struc[keep]
    ref_comp = scaler.transform(cov.composition_fingerprints([s.composition for s in ref_structures]))[keep]
    ref_density = [cov.density(s) for s in ref_structures]
    ref_nel = [cov.n_elements(s) for s in ref_structures]
    out: dict = {"reference": {"split": f"random:{part}", "count": int(keep.sum())}}
    histograms = {"test": {"density": ref_density, "n_elements": ref_nel}}
    from training.data.crystal import Crystal

    for label in ("model", "baseline"):
        structures = _structures(_read_json(ctx.cache / f"samples_{label}.json")["poscars"])
        crystals = [Crystal.from_structure(s, f"{label}-{i}") for i, s in enumerate(structures)]
        validity = validity_rates(crystals).as_dict()
        valid = np.array([structurally_valid(s) and compositionally_valid(s.composition) for s in structures])
        gen_struc = _fingerprints(structures, ctx.cache / f"fp_{label}_{len(structures)}.npz",
                                  f"fingerprints: {label}", ctx.workers)
        gen_comp = scaler.transform(cov.composition_fingerprints([s.composition for s in structures]))
        coverage = cov.coverage(gen_struc, gen_comp, valid, ref_struc, ref_comp).as_dict()
        chosen = [s for s, v in zip(structures, valid) if v][:ctx.budget.emd]
        density = [cov.density(s) for s in chosen]
        nel = [cov.n_elements(s) for s in chosen]
        out[label] = {"validity": validity, "coverage": coverage,
                      "emd_density": cov.emd(density, ref_density) if chosen else None,
                      "emd_n_elements": cov.emd(nel, ref_nel) if chosen else None,
                      "emd_count": len(chosen), "fingerprint_failures": int(np.isnan(gen_struc).any(axis=1).sum())}
        histograms[label] = {"density": density, "n_elements": nel}
    plots.property_histograms(histograms, ctx.out / "property_distributions.png")
    return out


def stage_energy_targets(ctx: Context, engine: Engine, train_labels: np.ndarray) -> dict:
    n = ctx.budget.per_target
    out: dict = {}
    conditioned: dict[str, tuple[float, list[float]]] = {}
    predicted_all, oracle_all = [], []
    for q in (10, 50, 90):
        target = float(np.quantile(train_labels, q / 100))
        request = GenerationRequest("formation_energy", n, target, seed=ctx.seed + q, steps_per_level=ctx.steps_per_level)
        structures, predicted = request_samples(engine, request, ctx.cache / f"target_p{q}.json", f"target p{q}")
        index = _relaxable(structures)
        checks = oracle_checks([structures[i] for i in index], ctx.cache / f"oracle_target_p{q}.json",
                               f"oracle p{q}", ctx.data)
        energies = [c["formation_energy"] for c in checks]
        row = oracle_stats.target_accuracy(energies, target)
        row["generated"] = len(structures)
        row["relaxed"] = len(index)
        row["predicted"] = oracle_stats.target_accuracy(predicted, target)
        row["converged"] = float(np.mean([c["converged"] for c in checks]))
        out[f"p{q}"] = row
        conditioned[f"p{q}"] = (target, energies)
        predicted_all += [float(predicted[i]) for i in index]
        oracle_all += energies
    base = _structures(_read_json(ctx.cache / "samples_baseline.json")["poscars"])
    index = _relaxable(base)[:n]
    checks = oracle_checks([base[i] for i in index], ctx.cache / "oracle_unconditional.json", "oracle unconditional", ctx.data)
    energies = [c["formation_energy"] for c in checks]
    out["unconditional"] = {"count": len(energies), "median": float(np.median(energies)),
                            **{f"within_0.05_of_p{q}": oracle_stats.target_accuracy(energies, out[f"p{q}"]["target"])
                               ["within_0.05"] for q in (10, 50, 90)}}
    error = np.abs(np.array(predicted_all) - np.array(oracle_all))
    out["prediction_vs_oracle_mae"] = float(np.mean(error))
    out["prediction_vs_oracle_median_abs_error"] = float(np.median(error))
    out["oracle_above_zero"] = int(np.sum(np.array(oracle_all) > 0.0))  # unstable against the elements
    out["oracle_count"] = len(oracle_all)
    plots.target_histograms(conditioned, energies, ctx.out / "energy_targets.png")
    plots.predicted_vs_oracle(predicted_all, oracle_all, ctx.out / "predicted_vs_oracle.png")
    return out


def stage_formulas(ctx: Context, engine: Engine, table: pd.DataFrame) -> dict:
    from core import chemistry

    out: dict = {}
    train = table[table["split_random"] == "train"]
    vocab = engine.vocabulary
    for k, formula in enumerate(TRAINING_FORMULAS + (ABSENT_FORMULA,)):
        request = GenerationRequest("formula", ctx.budget.per_formula, formula=formula, seed=ctx.seed + 1000 + k,
                                    steps_per_level=ctx.steps_per_level)
        checked = engine.check(request)
        cell = chemistry.cell_formula(checked.counts, vocab)
        structures, _ = request_samples(engine, request, ctx.cache / f"formula_{formula}.json", f"formula {formula}")
        index = _relaxable(structures)
        checks = oracle_checks([structures[i] for i in index], ctx.cache / f"oracle_formula_{formula}.json",
                               f"oracle {formula}", ctx.data)
        energies = np.array([c["formation_energy"] for c in checks])
        in_data = table[table["formula"] == cell]
        row: dict = {"cell": cell, "generated": len(structures), "relaxed": len(index),
                     "in_training_part": int((train["formula"] == cell).sum()), "in_data": int(len(in_data))}
        if len(energies):
            relaxed = _structures([c["relaxed_poscar"] for c in checks])
            row.update({"oracle_median": float(np.median(energies)), "oracle_best": float(energies.min()),
                        "distinct_stackings": oracle_stats.distinct_structures(relaxed),
                        "converged": float(np.mean([c["converged"] for c in checks]))})
        if len(in_data):
            best = float(in_data[PROPERTY].min())
            row.update({"data_best": best, "data_median": float(in_data[PROPERTY].median())})
            if len(energies):
                row.update({"best_minus_data_best": float(energies.min() - best),
                            "within_0.01_of_data_best": float(np.mean(energies <= best + 0.01))})
        out[formula] = row
    return out


_NOVELTY_REFERENCE: TrainingSet | None = None


def _start_novelty_worker(table: str) -> None:
    """Process initialiser: the random split's training part, loaded once per worker."""
    global _NOVELTY_REFERENCE
    warnings.filterwarnings("ignore")
    _NOVELTY_REFERENCE = TrainingSet.load(Path(table), split="random", part="train")


def _novelty_flag(poscar: str) -> bool | None:
    """True: valid and novel; False: valid and matches a training crystal; None: invalid."""
    s = Structure.from_str(poscar, fmt="poscar")
    if not (structurally_valid(s) and compositionally_valid(s.composition)):
        return None
    assert _NOVELTY_REFERENCE is not None, "worker not started"
    return _NOVELTY_REFERENCE.is_novel(s)


def novel_indices(poscars: list[str], want: int, path: Path, desc: str, table: Path, workers: int) -> list[int]:
    """Indices of the first ``want`` valid crystals that match nothing in the training part.

    StructureMatcher against every stacking of the same formula costs 2-15 s per crystal
    (formulas have up to ~260 stackings in the training part), so crystals are examined in
    ``workers`` processes, in order, and the verdicts kept in ``path`` after every chunk: a
    rerun resumes and the chosen crystals do not depend on the number of workers.
    """
    flags: list[bool | None] = list(_read_json(path).get("flags", []))
    bar = _bar(desc, want)
    bar.update(min(want, sum(f is True for f in flags)))
    chunk = 4 * max(1, workers)
    pool = (ProcessPoolExecutor(workers, initializer=_start_novelty_worker, initargs=(str(table),))
            if workers > 1 else None)
    if pool is None:
        _start_novelty_worker(str(table))
    try:
        while sum(f is True for f in flags) < want and len(flags) < len(poscars):
            batch = poscars[len(flags):len(flags) + chunk]
            found = list(pool.map(_novelty_flag, batch)) if pool is not None else [_novelty_flag(p) for p in batch]
            before = sum(f is True for f in flags)
            flags.extend(found)
            _write_json(path, {"flags": flags})
            bar.update(min(want, before + sum(f is True for f in found)) - min(want, before))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return [i for i, f in enumerate(flags) if f is True][:want]


def stage_relaxation(ctx: Context, table: pd.DataFrame) -> dict:
    out: dict = {}
    for label in ("model", "baseline"):
        poscars = _read_json(ctx.cache / f"samples_{label}.json")["poscars"]
        index = novel_indices(poscars, ctx.budget.relax, ctx.cache / f"novelty_{label}.json",
                              f"novelty {label}", ctx.data / "bilayers.parquet", ctx.workers)
        flags = _read_json(ctx.cache / f"novelty_{label}.json")["flags"]
        chosen = _structures([poscars[i] for i in index])
        checks = oracle_checks(chosen, ctx.cache / f"oracle_relax_{label}.json", f"relaxation {label}", ctx.data)
        row = oracle_stats.relaxation_summary([_Check(c) for c in checks]) if checks else {"count": 0}
        valid = [f for f in flags if f is not None]
        row["examined"] = len(flags)
        row["novel_share_of_valid"] = sum(valid) / len(valid) if valid else None
        out[label] = row
    return out


def stage_latent(ctx: Context, table: pd.DataFrame) -> dict:
    import torch
    from sklearn.manifold import TSNE

    from training.data.crystal import CrystalDataset
    from training.sample import Sampler
    from training.train.weights import load_trained

    rows = table[table["split_random"] == ctx.split_part]
    rows = rows.iloc[_evenly(len(rows), ctx.budget.tsne)].reset_index(drop=True)
    crystals = list(CrystalDataset.from_table(rows, name="latent", property_columns=[PROPERTY]))
    sampler = Sampler(load_trained(ctx.checkpoint))
    mu, cond = sampler.encode(crystals)
    with torch.no_grad():
        z_c = sampler.heads(mu, cond, torch.zeros(len(mu), dtype=torch.long))[0]
    perplexity = float(min(30, max(5, (len(rows) - 1) // 3)))
    maps = {}
    for title, x in (("z (no fusion)", mu.numpy()), ("z_c (LMF fusion)", z_c.numpy())):
        maps[title] = TSNE(2, perplexity=perplexity, init="pca", random_state=ctx.seed).fit_transform(x)
    plots.latent_maps(maps, rows[PROPERTY].to_numpy(), list(rows["reduced_formula"]), ctx.out / "latent_tsne.png")
    return {"count": len(rows), "perplexity": perplexity}


# -- driver ---------------------------------------------------------------------------------------------
def _model_paths(artifacts: Path, root: Path) -> tuple[Manifest, Path]:
    manifest = read_manifest(artifacts, verify=True)
    checkpoint = root / "models" / manifest.name / str(manifest.weights or "model.pt")
    return manifest, checkpoint


def evaluate(artifacts: Path, out: Path, data: Path, split: str = "test", preset: str = "default",
             baseline_artifacts: Path | None = None, checkpoint: Path | None = None,
             baseline_checkpoint: Path | None = None, seed: int = 0, steps_per_level: int | None = None,
             workers: int = 2, stages: tuple[str, ...] | None = None, root: Path | None = None,
             log: Callable[[str], None] = print) -> dict:
    """Run the evaluation (see the module docstring); returns the metrics written to ``out/metrics.json``."""
    from core.paths import repo_root

    warnings.filterwarnings("ignore")
    if preset not in PRESETS:
        raise EvaluationError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if split not in ("val", "test"):
        raise EvaluationError(f"--split must be 'val' or 'test' (got {split!r})")
    root = root or repo_root()
    artifacts = Path(artifacts)
    baseline_artifacts = Path(baseline_artifacts or artifacts.parent / "cdvae-baseline-janus")
    manifest, default_ckpt = _model_paths(artifacts, root)
    base_manifest, default_base_ckpt = _model_paths(baseline_artifacts, root)
    if base_manifest.condition != "none":
        raise EvaluationError(f"{baseline_artifacts} is not an unconditional baseline (condition "
                              f"{base_manifest.condition!r})")
    ctx = Context(artifacts, baseline_artifacts, Path(checkpoint or default_ckpt),
                  Path(baseline_checkpoint or default_base_ckpt), Path(data), split, Path(out), PRESETS[preset],
                  seed, steps_per_level, workers)
    for path in (ctx.checkpoint, ctx.baseline_checkpoint):
        if not path.is_file():
            raise EvaluationError(f"no weights at {path} (needed for reconstruction and latents); "
                                  "pass --checkpoint / --baseline-checkpoint")
    metrics_path = ctx.out / "metrics.json"
    metrics = _read_json(metrics_path)
    settings = {"preset": preset, "budget": asdict(ctx.budget), "seed": seed, "split": split,
                "steps_per_level": steps_per_level or manifest.sampling.steps_per_level,
                "model": manifest.name, "baseline": base_manifest.name,
                "data": dataclasses.asdict(manifest.training_data)}
    if metrics.get("settings", {}).get("budget") not in (None, settings["budget"]):
        raise EvaluationError(f"{metrics_path} was written with another preset; use another --out or delete it")
    metrics["settings"] = settings
    table = _table(ctx)
    train_labels = table.loc[table["split_random"] == "train", PROPERTY].to_numpy()
    engine, baseline = Engine.load(artifacts), Engine.load(baseline_artifacts)

    order: list[tuple[str, Callable[[], dict]]] = [
        ("reconstruction", lambda: stage_reconstruction(ctx, table)),
        ("samples", lambda: stage_samples(ctx, engine, baseline, train_labels)),
        ("generation", lambda: stage_generation(ctx, table)),
        ("energy_targets", lambda: stage_energy_targets(ctx, engine, train_labels)),
        ("formulas", lambda: stage_formulas(ctx, engine, table)),
        ("relaxation", lambda: stage_relaxation(ctx, table)),
        ("latent", lambda: stage_latent(ctx, table)),
    ]
    unknown = set(stages or ()) - {name for name, _ in order}
    if unknown:
        raise EvaluationError(f"unknown stage(s) {sorted(unknown)}; stages: {', '.join(n for n, _ in order)}")
    for name, run in order:
        if stages and name not in stages:
            continue
        if name in metrics:
            log(f"{name}: kept from {metrics_path}")
            continue
        log(f"{name}: running")
        t0 = time.perf_counter()
        metrics[name] = run()
        metrics.setdefault("seconds", {})[name] = round(time.perf_counter() - t0, 1)
        _write_json(metrics_path, metrics)
        log(f"{name}: done in {metrics['seconds'][name]:.0f} s")
    write_report(metrics, ctx.out / "report.md")
    return metrics
