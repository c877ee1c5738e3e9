"""Stage ``reconstruction`` of ``vdwgen evaluate`` (paper Table 1).

Test crystals of the random split and of the pair-grouped split are encoded and decoded by
the model and by the same-budget CDVAE baseline (their weights, not the served graphs). The
served model was trained on the random split's training part, so the pair split's test
crystals that sit in that training part are left out, and the result says how many.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.evaluation.selection import PROPERTY, evenly

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context


def run(ctx: Context, table: pd.DataFrame) -> dict:
    """Match rate and RMSE per model and split (``ctx.budget.recon`` crystals each, spread evenly)."""
    from training.data.crystal import CrystalDataset
    from training.evaluation.reconstruction import reconstruct
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
        sampler = Sampler(load_trained(ckpt), LangevinSettings(steps_per_level=steps))
        for split, rows in sets.items():
            rows = rows.iloc[evenly(len(rows), ctx.budget.recon)]
            crystals = list(CrystalDataset.from_table(rows.reset_index(drop=True), name=f"{split}:{part}",
                                                      property_columns=[PROPERTY]))
            result = reconstruct(sampler, crystals, ctx.seed, f"reconstruction {label} {split}")
            out.setdefault(label, {})[split] = {"match_rate": result.match_rate,
                                                "rmse": None if np.isnan(result.rmse) else result.rmse,
                                                "count": result.count, "available": int(len(sets[split]))}
    return out
