"""Stage ``formulas`` of ``vdwgen evaluate``: formula requests checked by the oracle.

Three formulas of the training part and one absent from the data: the oracle's energies of the
generated crystals against the best stacking of that formula in the data, and how many
distinct stackings the requests produced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from serving.engine import Engine
from serving.request import GenerationRequest
from training.evaluation import oracle_stats
from training.evaluation.cache import from_poscars, oracle_checks, request_samples
from training.evaluation.generation import motif_share
from training.evaluation.selection import ABSENT_FORMULA, TRAINING_FORMULAS, relaxable

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context


def run(ctx: Context, engine: Engine) -> dict:
    """One row per formula (``ctx.budget.per_formula`` crystals each), keyed by the requested formula."""
    from core import chemistry

    out: dict = {}
    table = ctx.dataset.table
    train = ctx.dataset.part("train")
    vocab = engine.vocabulary
    for k, formula in enumerate((*TRAINING_FORMULAS, ABSENT_FORMULA)):
        request = GenerationRequest("formula", ctx.budget.per_formula, formula=formula, seed=ctx.seed + 1000 + k,
                                    steps_per_level=ctx.steps_per_level)
        checked = engine.check(request)
        cell = chemistry.cell_formula(checked.counts, vocab)
        structures, _ = request_samples(engine, request, ctx.cache / f"formula_{formula}.json", f"formula {formula}")
        index = relaxable(structures)
        checks = oracle_checks([structures[i] for i in index], ctx.cache / f"oracle_formula_{formula}.json",
                               f"oracle {formula}", ctx.references)
        energies = np.array([c["formation_energy"] for c in checks])
        in_data = table[table["formula"] == cell]
        row: dict = {"cell": cell, "generated": len(structures), "relaxed": len(index),
                     "motif_share": motif_share(structures),
                     "in_training_part": int((train["formula"] == cell).sum()), "in_data": int(len(in_data))}
        if len(energies):
            relaxed = from_poscars([c["relaxed_poscar"] for c in checks])
            row.update({"motif_share_relaxed": motif_share(relaxed),
                        "oracle_median": float(np.median(energies)), "oracle_best": float(energies.min()),
                        "distinct_stackings": oracle_stats.distinct_structures(relaxed),
                        "converged": float(np.mean([c["converged"] for c in checks]))})
        if len(in_data):
            best = float(in_data[ctx.dataset.property].min())
            row.update({"data_best": best, "data_median": float(in_data[ctx.dataset.property].median())})
            if len(energies):
                row.update({"best_minus_data_best": float(energies.min() - best),
                            "within_0.01_of_data_best": float(np.mean(energies <= best + 0.01))})
        out[formula] = row
    return out
