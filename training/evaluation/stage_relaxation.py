"""Stage ``relaxation`` of ``vdwgen evaluate`` (paper Table 3 analogue).

Generated crystals that match nothing in the training part (:mod:`training.evaluation.novelty_scan`)
are relaxed with CHGNet + D3 (fmax 0.05 eV/A, 500 steps), for the model and the baseline (when there is one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from training.evaluation import oracle_stats
from training.evaluation.cache import CheckView, from_poscars, oracle_checks, read_json
from training.evaluation.novelty_scan import novel_indices

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context


def run(ctx: Context) -> dict:
    """Relaxation behaviour of up to ``ctx.budget.relax`` novel crystals per model, and the novel share."""
    out: dict = {}
    data = ctx.dataset
    for label in ctx.labels:
        poscars = read_json(ctx.cache / f"samples_{label}.json")["poscars"]
        index = novel_indices(poscars, ctx.budget.relax, ctx.cache / f"novelty_{label}.json",
                              f"novelty {label}", data.path, data.split, ctx.workers)
        flags = read_json(ctx.cache / f"novelty_{label}.json")["flags"]
        chosen = from_poscars([poscars[i] for i in index])
        checks = oracle_checks(chosen, ctx.cache / f"oracle_relax_{label}.json", f"relaxation {label}", ctx.references)
        row = oracle_stats.relaxation_summary([CheckView(c) for c in checks]) if checks else {"count": 0}
        valid = [f for f in flags if f is not None]
        row["examined"] = len(flags)
        row["novel_share_of_valid"] = sum(valid) / len(valid) if valid else None
        out[label] = row
    return out
