"""Stage ``samples`` of ``vdwgen evaluate``: the generated crystals the later stages read.

N crystals from the served artifacts (the product's own path): the model with formation-energy
targets drawn from the training labels (100:1 screening each, as the app), the baseline from its
prior. Kept under ``<out>/_cache/samples_{model,baseline}.json`` chunk by chunk.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from serving.engine import Engine
from training.evaluation.cache import conditioned_samples, unconditional_samples, write_json

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context


def run(ctx: Context, engine: Engine, baseline: Engine, train_labels: np.ndarray) -> dict:
    """Generate ``ctx.budget.samples`` crystals per model; returns counts, settings and timings."""
    n = ctx.budget.samples
    rng = np.random.default_rng(ctx.seed)
    targets = rng.choice(train_labels, size=n)
    t0 = time.perf_counter()
    _, predicted = conditioned_samples(engine, targets, ctx.seed, ctx.steps_per_level,
                                       ctx.cache / "samples_model.json")
    t1 = time.perf_counter()
    unconditional_samples(baseline, n, ctx.seed, ctx.steps_per_level, ctx.cache / "samples_baseline.json")
    t2 = time.perf_counter()
    write_json(ctx.cache / "samples_model_targets.json", {"targets": targets.tolist(),
                                                          "predicted": predicted.tolist()})
    return {"count": n, "seconds_model": round(t1 - t0, 1), "seconds_baseline": round(t2 - t1, 1),
            "steps_per_level": ctx.steps_per_level or engine.manifest.sampling.steps_per_level,
            "targets": "formation energies drawn from the training labels, one screened crystal (100:1) each"}
