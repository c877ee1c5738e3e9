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

This module is the driver (:func:`evaluate`, the budgets and the :class:`Context` every stage
gets); each stage is a module ``training.evaluation.stage_<name>`` with a ``run`` function, and
what is kept on disk for resuming is :mod:`training.evaluation.cache`.

Nothing here is tuned on the test part: the model and its sampling settings are fixed
before evaluation.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from core.errors import VdwgenError
from core.manifest import Manifest, read_manifest
from serving.engine import Engine
from training.evaluation import (
    stage_energy_targets,
    stage_formulas,
    stage_generation,
    stage_latent,
    stage_reconstruction,
    stage_relaxation,
    stage_samples,
)
from training.evaluation.cache import StageRecord
from training.evaluation.report import write_report
from training.evaluation.selection import PROPERTY

STAGES = ("reconstruction", "samples", "generation", "energy_targets", "formulas", "relaxation", "latent")
"""The stages in the order they run (later ones read what ``samples`` stored)."""


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


def _table(ctx: Context) -> pd.DataFrame:
    path = ctx.data / "bilayers.parquet"
    if not path.is_file():
        raise EvaluationError(f"no dataset table at {path}; pass --data DIR holding bilayers.parquet")
    return pd.read_parquet(path)


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
    unknown = set(stages or ()) - set(STAGES)
    if unknown:
        raise EvaluationError(f"unknown stage(s) {sorted(unknown)}; stages: {', '.join(STAGES)}")
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
    record = StageRecord(ctx.out / "metrics.json")
    metrics = record.results
    settings = {"preset": preset, "budget": asdict(ctx.budget), "seed": seed, "split": split,
                "steps_per_level": steps_per_level or manifest.sampling.steps_per_level,
                "model": manifest.name, "baseline": base_manifest.name,
                "data": dataclasses.asdict(manifest.training_data)}
    if metrics.get("settings", {}).get("budget") not in (None, settings["budget"]):
        raise EvaluationError(f"{record.path} was written with another preset; use another --out or delete it")
    metrics["settings"] = settings
    table = _table(ctx)
    train_labels = table.loc[table["split_random"] == "train", PROPERTY].to_numpy()
    engine, baseline = Engine.load(artifacts), Engine.load(baseline_artifacts)

    runs: dict[str, Callable[[], dict]] = {
        "reconstruction": lambda: stage_reconstruction.run(ctx, table),
        "samples": lambda: stage_samples.run(ctx, engine, baseline, train_labels),
        "generation": lambda: stage_generation.run(ctx, table),
        "energy_targets": lambda: stage_energy_targets.run(ctx, engine, train_labels),
        "formulas": lambda: stage_formulas.run(ctx, engine, table),
        "relaxation": lambda: stage_relaxation.run(ctx),
        "latent": lambda: stage_latent.run(ctx, table),
    }
    for name in STAGES:
        if stages and name not in stages:
            continue
        if name in record:
            log(f"{name}: kept from {record.path}")
            continue
        log(f"{name}: running")
        record.run(name, runs[name])
        log(f"{name}: done in {metrics['seconds'][name]:.0f} s")
    write_report(metrics, ctx.out / "report.md")
    return metrics
