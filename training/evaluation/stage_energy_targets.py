"""Stage ``energy_targets`` of ``vdwgen evaluate`` (paper Fig. 3b, checked by the oracle).

For the 10th / 50th / 90th percentile of the training labels, crystals generated for that
target are relaxed (positions and in-plane cell) with CHGNet + D3 and their formation energy recomputed with
the dataset's convention; the baseline's unconditional samples (when there is a baseline) are checked
for comparison.
Draws ``energy_targets.png`` and ``predicted_vs_oracle.png``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from serving.engine import Engine
from serving.request import GenerationRequest
from training.evaluation import oracle_stats, plots
from training.evaluation.cache import from_poscars, oracle_checks, read_json, request_samples
from training.evaluation.generation import motif_share
from training.evaluation.selection import relaxable

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context

QUANTILES = (10, 50, 90)
"""Percentiles of the training labels used as targets."""


def run(ctx: Context, engine: Engine, train_labels: np.ndarray) -> dict:
    """Oracle accuracy per target (``ctx.budget.per_target`` crystals each) and of unconditional samples."""
    n = ctx.budget.per_target
    out: dict = {}
    conditioned: dict[str, tuple[float, list[float]]] = {}
    predicted_all, oracle_all = [], []
    for q in QUANTILES:
        target = float(np.quantile(train_labels, q / 100))
        request = GenerationRequest("formation_energy", n, target, seed=ctx.seed + q,
                                    steps_per_level=ctx.steps_per_level)
        structures, predicted = request_samples(engine, request, ctx.cache / f"target_p{q}.json", f"target p{q}")
        index = relaxable(structures)
        checks = oracle_checks([structures[i] for i in index], ctx.cache / f"oracle_target_p{q}.json",
                               f"oracle p{q}", ctx.references)
        energies = [c["formation_energy"] for c in checks]
        row = oracle_stats.target_accuracy(energies, target)
        row["generated"] = len(structures)
        row["relaxed"] = len(index)
        row["predicted"] = oracle_stats.target_accuracy(predicted, target)
        row["converged"] = float(np.mean([c["converged"] for c in checks]))
        row["motif_share"] = motif_share(structures)
        row["motif_share_relaxed"] = motif_share(from_poscars([c["relaxed_poscar"] for c in checks]))
        out[f"p{q}"] = row
        conditioned[f"p{q}"] = (target, energies)
        predicted_all += [float(predicted[i]) for i in index]
        oracle_all += energies
    energies: list[float] = []
    if "baseline" in ctx.labels:
        base = from_poscars(read_json(ctx.cache / "samples_baseline.json")["poscars"])
        index = relaxable(base)[:n]
        checks = oracle_checks([base[i] for i in index], ctx.cache / "oracle_unconditional.json",
                               "oracle unconditional", ctx.references)
        energies = [c["formation_energy"] for c in checks]
        out["unconditional"] = {
            "count": len(energies), "median": float(np.median(energies)),
            **{f"within_0.05_of_p{q}": oracle_stats.target_accuracy(energies, out[f"p{q}"]["target"])["within_0.05"]
               for q in QUANTILES}}
    error = np.abs(np.array(predicted_all) - np.array(oracle_all))
    out["prediction_vs_oracle_mae"] = float(np.mean(error))
    out["prediction_vs_oracle_median_abs_error"] = float(np.median(error))
    out["oracle_above_zero"] = int(np.sum(np.array(oracle_all) > 0.0))  # unstable against the elements
    out["oracle_count"] = len(oracle_all)
    plots.target_histograms(conditioned, energies, ctx.out / "energy_targets.png")
    plots.predicted_vs_oracle(predicted_all, oracle_all, ctx.out / "predicted_vs_oracle.png")
    return out
