"""`vdwgen evaluate`: the paper's Tables 1-3 and Figs. 3-4 for a served model, checked by the oracle.

    vdwgen evaluate artifacts/cdvae-plus-janus --split test --out reports/cdvae-plus-janus [--quick|--full]
    vdwgen evaluate artifacts/perov5 --data perov_5.csv --checkpoint var/runs/perov5/model.pt --out reports/perov5

Any model is measured on its own dataset's held-out part (:mod:`training.evaluation.dataset`): the
Janus table, the table a ``vdwgen train --data`` model carries, or ``--data`` split as training split
it. The stages that need the oracle run only where its elements and convention apply, and the
report says why they were skipped otherwise; the baseline's rows appear when a baseline trained on
the same data is given (for the Janus model: ``cdvae-baseline-janus`` beside it).

Stages, in order (each shows progress; each finished stage is kept in ``metrics.json`` and
long ones also keep finished chunks under ``<out>/_cache``, so an interrupted run resumes
where it stopped when given the same command):

1. ``reconstruction`` (Table 1): encode + decode test crystals of the random split and of the
   pair-grouped split, for the model and the same-budget CDVAE baseline. The served model
   was trained on the random split's training part, so the pair split's test crystals that
   sit in that training part are left out (said in the report). Another dataset: its test part;
2. ``property``: the property head's error on every test crystal (encoder mean -> head);
3. ``samples``: N generated crystals from the served artifacts (the product's own path):
   the model with formation-energy targets drawn from the training labels (100:1 screening
   each, as the app), the baseline from its prior;
4. ``generation`` (Table 2): validity, COV-R / COV-P against the test crystals, EMD of density
   and of number of elements on up to 1,000 valid crystals;
5. ``energy_targets`` (Fig. 3b): for the 10th / 50th / 90th percentile of the training labels,
   crystals generated for that target are relaxed (positions, in-plane cell) with CHGNet + D3 and their
   formation energy recomputed with the dataset's convention; unconditional samples for
   comparison;
6. ``formulas``: formula requests (three training formulas, one absent from the data): oracle
   energies against the best stacking of that formula in the data, distinct stackings found;
7. ``relaxation`` (Table 3): generated crystals that match nothing in the training part,
   relaxed (fmax 0.05 eV/A, 500 steps), for the model and the baseline;
8. ``latent`` (Fig. 4): t-SNE of test latents without (z = mu) and with fusion (z_c);
9. the report: ``report.md`` next to ``metrics.json`` and the PNGs.

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

from core.errors import VdwgenError
from core.manifest import Manifest, read_manifest, served_fingerprint
from serving.engine import Engine
from training.evaluation import (
    stage_energy_targets,
    stage_formulas,
    stage_generation,
    stage_latent,
    stage_new_and_right,
    stage_property,
    stage_reconstruction,
    stage_relaxation,
    stage_samples,
)
from training.evaluation.cache import StageRecord
from training.evaluation.dataset import EvaluationData, EvaluationDataError, evaluation_data, oracle_reason
from training.evaluation.report import write_report

STAGES = ("reconstruction", "property", "samples", "generation", "energy_targets", "formulas", "relaxation",
          "new_and_right", "latent")
"""The stages in the order they run (later ones read what ``samples`` stored)."""

ORACLE_STAGES = ("energy_targets", "formulas", "relaxation", "new_and_right")
"""Stages that relax crystals with the oracle and recompute the formation energy in the dataset's convention."""

DEFAULT_BASELINE = "cdvae-baseline-janus"


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
    """What every stage needs.

    ``baseline_artifacts`` and ``baseline_checkpoint`` are None when no baseline trained on the same data
    is evaluated beside the model; ``references`` is the folder of the oracle's elemental references.
    """

    artifacts: Path
    baseline_artifacts: Path | None
    checkpoint: Path
    baseline_checkpoint: Path | None
    dataset: EvaluationData
    references: Path
    split_part: str
    out: Path
    budget: Budget
    seed: int
    steps_per_level: int | None
    workers: int

    @property
    def cache(self) -> Path:
        return self.out / "_cache"

    @property
    def labels(self) -> tuple[str, ...]:
        """The evaluated models: ``model``, and ``baseline`` when there is one."""
        return ("model",) if self.baseline_artifacts is None else ("model", "baseline")

    def artifact_folders(self) -> dict[str, Path]:
        """Served artifacts per evaluated model."""
        out = {"model": self.artifacts}
        if self.baseline_artifacts is not None:
            out["baseline"] = self.baseline_artifacts
        return out

    def weights(self) -> dict[str, Path]:
        """Weights per evaluated model (for the stages that need the encoder)."""
        out = {"model": self.checkpoint}
        if self.baseline_checkpoint is not None:
            out["baseline"] = self.baseline_checkpoint
        return out


def _checkpoint(manifest: Manifest, given: Path | None, root: Path) -> Path:
    """The model's weights: ``given``, else ``models/NAME/<weights>`` beside the artifact folder or in the checkout."""
    if given is not None:
        return Path(given)
    name = str(manifest.weights or "model.pt")
    beside = manifest.folder.parent.parent / "models" / manifest.name / name
    return beside if beside.is_file() else root / "models" / manifest.name / name


def _baseline(artifacts: Path, manifest: Manifest, given: Path | None) -> tuple[Path | None, Manifest | None]:
    """The baseline artifact: ``given`` (it must be unconditional), else ``cdvae-baseline-janus`` beside the
    model when it was trained on the same data, else none."""
    if given is None:
        folder = artifacts.parent / DEFAULT_BASELINE
        if folder == artifacts or not (folder / "manifest.json").is_file():
            return None, None
        base = read_manifest(folder, verify=True)
        return (folder, base) if base.training_data.id == manifest.training_data.id else (None, None)
    base = read_manifest(Path(given), verify=True)
    if base.condition != "none":
        raise EvaluationError(f"{given} is not an unconditional baseline (condition {base.condition!r})")
    if base.training_data.id != manifest.training_data.id:
        raise EvaluationError(f"the baseline {given} was trained on {base.training_data.id}, the model on "
                              f"{manifest.training_data.id}; give a baseline trained on the same data")
    return Path(given), base


def evaluate(artifacts: Path, out: Path, data: Path | None = None, split: str = "test", preset: str = "default",
             baseline_artifacts: Path | None = None, checkpoint: Path | None = None,
             baseline_checkpoint: Path | None = None, seed: int = 0, steps_per_level: int | None = None,
             workers: int = 2, stages: tuple[str, ...] | None = None, root: Path | None = None,
             log: Callable[[str], None] = print) -> dict:
    """Run the evaluation (see the module docstring); returns the metrics written to ``out/metrics.json``.

    Args:
        artifacts: the evaluated model's artifact folder.
        out: the report folder (kept and resumed).
        data: the dataset (None: the one the model was trained on, see :mod:`training.evaluation.dataset`).
        split: the evaluated part, ``test`` or ``val``.
        preset: ``quick``, ``default`` or ``full`` (:data:`PRESETS`).
        baseline_artifacts: an unconditional baseline trained on the same data (default: the Janus
            baseline beside the model, when it is one).
        checkpoint, baseline_checkpoint: weights for the encoder stages (default ``models/NAME/model.pt``).
    """
    from core.paths import dataset_dir, repo_root

    warnings.filterwarnings("ignore")
    if preset not in PRESETS:
        raise EvaluationError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if split not in ("val", "test"):
        raise EvaluationError(f"--split must be 'val' or 'test' (got {split!r})")
    unknown = set(stages or ()) - set(STAGES)
    if unknown:
        raise EvaluationError(f"unknown stage(s) {sorted(unknown)}; stages: {', '.join(STAGES)}")
    root = root or repo_root()
    artifacts, out = Path(artifacts), Path(out)
    manifest = read_manifest(artifacts, verify=True)
    base_folder, base_manifest = _baseline(artifacts, manifest, baseline_artifacts)
    try:
        dataset = evaluation_data(manifest, data, split, out / "_cache" / "data")
    except EvaluationDataError as exc:
        raise EvaluationError(str(exc)) from None
    references = dataset.path.parent if dataset.janus else dataset_dir()
    base_ckpt = None if base_manifest is None else _checkpoint(base_manifest, baseline_checkpoint, root)
    ctx = Context(artifacts, base_folder, _checkpoint(manifest, checkpoint, root), base_ckpt, dataset, references,
                  split, out, PRESETS[preset], seed, steps_per_level, workers)
    for path in ctx.weights().values():
        if not path.is_file():
            raise EvaluationError(f"no weights at {path} (needed for reconstruction, the property head and latents); "
                                  "pass --checkpoint / --baseline-checkpoint")
    record = StageRecord(ctx.out / "metrics.json")
    metrics = record.results
    settings = {"preset": preset, "budget": asdict(ctx.budget), "seed": seed, "split": split,
                "steps_per_level": steps_per_level or manifest.sampling.steps_per_level,
                "model": manifest.name, "baseline": None if base_manifest is None else base_manifest.name,
                "data": dataclasses.asdict(manifest.training_data), "dataset": dataset.name,
                "evaluated_on": str(dataset.path), "property": dataset.property, "unit": dataset.unit,
                "outside_vocabulary": dataset.outside_vocabulary(split)}
    settings["artifacts"] = {"model": served_fingerprint(manifest),
                             "baseline": None if base_manifest is None else served_fingerprint(base_manifest)}
    if metrics.get("settings", {}).get("budget") not in (None, settings["budget"]):
        raise EvaluationError(f"{record.path} was written with another preset; use another --out or delete it")
    if any(name in record for name in STAGES) and metrics.get("settings", {}).get("artifacts") != settings["artifacts"]:
        raise EvaluationError(f"{record.path} measured other artifacts (other model files or sampling settings); use "
                              "another --out or delete it and its _cache folder")
    metrics["settings"] = settings
    engine = Engine.load(artifacts)
    baseline = None if base_folder is None else Engine.load(base_folder)
    train_labels = dataset.labels("train")

    oracle_why = oracle_reason(dataset, references)
    skipped = {name: f"skipped: {oracle_why}" for name in ORACLE_STAGES} if oracle_why else {}
    if not dataset.janus:
        for name in ("formulas", "new_and_right"):
            skipped.setdefault(name, "skipped: its formula requests and stacking references are those of the Janus "
                                     "dataset")
    if manifest.modes == ("formula",):
        for name in ("samples", "generation", "relaxation"):
            skipped[name] = "skipped: a formula-only model is measured by its formula requests"
    if "energy_targets" not in skipped and "formation_energy" not in manifest.modes:
        skipped["energy_targets"] = f"skipped: {manifest.name} does not take a property target"
    runs: dict[str, Callable[[], dict]] = {
        "reconstruction": lambda: stage_reconstruction.run(ctx),
        "property": lambda: stage_property.run(ctx),
        "samples": lambda: stage_samples.run(ctx, engine, baseline, train_labels),
        "generation": lambda: stage_generation.run(ctx),
        "energy_targets": lambda: stage_energy_targets.run(ctx, engine, train_labels),
        "formulas": lambda: stage_formulas.run(ctx, engine),
        "relaxation": lambda: stage_relaxation.run(ctx),
        "new_and_right": lambda: stage_new_and_right.run(ctx),
        "latent": lambda: stage_latent.run(ctx),
    }
    for name in STAGES:
        if stages and name not in stages:
            continue
        if name in record:
            log(f"{name}: kept from {record.path}")
            continue
        if name in skipped:
            log(f"{name}: {skipped[name]}")
            record.run(name, lambda reason=skipped[name]: {"skipped": reason})
            continue
        log(f"{name}: running")
        record.run(name, runs[name])
        log(f"{name}: done in {metrics['seconds'][name]:.0f} s")
    write_report(metrics, ctx.out / "report.md")
    return metrics
