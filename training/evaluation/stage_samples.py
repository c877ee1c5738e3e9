"""Stage ``samples`` of ``vdwgen evaluate``: the generated crystals the later stages read.

N crystals from the served artifacts (the product's own path). The model: for a model that takes a
property target, targets drawn from the training labels (100:1 screening each, as the app); an
unconditional model samples its prior (a formula-only model is not sampled here: the driver skips
this stage and says so). The baseline, when there is one, samples its prior. Kept under
``<out>/_cache/samples_{model,baseline}.json`` chunk by chunk.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from serving.engine import Engine
from training.evaluation.cache import conditioned_samples, unconditional_samples, write_json

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context


def run(ctx: Context, engine: Engine, baseline: Engine | None, train_labels: np.ndarray) -> dict:
    """Generate ``ctx.budget.samples`` crystals per model; returns counts, settings and timings."""
    n = ctx.budget.samples
    rng = np.random.default_rng(ctx.seed)
    modes = engine.manifest.modes
    t0 = time.perf_counter()
    if "formation_energy" in modes:
        targets = rng.choice(train_labels, size=n)
        _, predicted = conditioned_samples(engine, targets, ctx.seed, ctx.steps_per_level,
                                           ctx.cache / "samples_model.json")
        write_json(ctx.cache / "samples_model_targets.json", {"targets": targets.tolist(),
                                                              "predicted": predicted.tolist()})
        prop = engine.manifest.property
        how = f"{prop.name} targets drawn from the training labels, one screened crystal (100:1) each"
    else:
        unconditional_samples(engine, n, ctx.seed, ctx.steps_per_level, ctx.cache / "samples_model.json")
        how = "its prior (unconditional)"
    t1 = time.perf_counter()
    out: dict = {"count": n, "seconds_model": round(t1 - t0, 1),
                 "steps_per_level": ctx.steps_per_level or engine.manifest.sampling.steps_per_level, "targets": how}
    if baseline is not None:
        unconditional_samples(baseline, n, ctx.seed, ctx.steps_per_level, ctx.cache / "samples_baseline.json")
        out["seconds_baseline"] = round(time.perf_counter() - t1, 1)
    return out
