"""Stage ``reconstruction`` of ``vdwgen evaluate`` (paper Table 1).

Test crystals are encoded and decoded by the model and, when one is evaluated beside it, by the
same-budget CDVAE baseline (their weights, not the served graphs). For the Janus table: the test
crystals of the random split and of the pair-grouped split; the served model was trained on the
random split's training part, so the pair split's test crystals that sit in that training part are
left out, and the result says how many. Another dataset: its evaluated part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.evaluation.selection import evenly

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context


def _sets(ctx: Context) -> tuple[dict[str, pd.DataFrame], str]:
    """The crystal sets to reconstruct, by name, and a note on what was left out."""
    data, part = ctx.dataset, ctx.split_part
    if not data.janus:
        outside = data.outside_vocabulary(part)
        return {data.split: data.part(part)}, (f"{outside} {part} crystals with elements the model does not know "
                                               "are left out" if outside else f"Every {part} crystal is eligible")
    table = data.table
    train_ids = set(table.loc[table["split_random"] == "train", "id"])
    pair = (table["split_pair"] == part) & table["id"].isin(train_ids)
    sets = {"random": data.part(part), "pair": table[(table["split_pair"] == part) & ~table["id"].isin(train_ids)]}
    return sets, (f"Pair-split {part} crystals that are in the random split's training part ({int(pair.sum())}) "
                  "are left out")


def run(ctx: Context) -> dict:
    """Match rate and RMSE per model and set (``ctx.budget.recon`` crystals each, spread evenly)."""
    from core.compositions import served_compositions
    from core.manifest import read_manifest
    from training.data.crystal import CrystalDataset
    from training.evaluation.reconstruction import reconstruct
    from training.model.langevin import LangevinSettings
    from training.sample import Sampler
    from training.train.weights import load_trained

    sets, note = _sets(ctx)
    out: dict = {"pair_split_note": note}
    folders = ctx.artifact_folders()
    for label, ckpt in ctx.weights().items():
        manifest = read_manifest(folders[label], verify=False)
        sampling = manifest.sampling  # the served decoder's settings and compositions
        steps = ctx.steps_per_level or sampling.steps_per_level
        out.setdefault("steps_per_level", steps)
        out.setdefault("site_types", {})[label] = sampling.site_types
        out.setdefault("noise_scale", {})[label] = sampling.noise_scale
        out.setdefault("compositions", {})[label] = sampling.compositions
        sampler = Sampler(load_trained(ckpt), LangevinSettings(steps_per_level=steps, site_types=sampling.site_types,
                                                                    noise_scale=sampling.noise_scale),
                          known=served_compositions(manifest))
        for split, rows in sets.items():
            rows = rows.iloc[evenly(len(rows), ctx.budget.recon)]
            crystals = list(CrystalDataset.from_table(rows.reset_index(drop=True), name=f"{split}:{ctx.split_part}",
                                                      property_columns=[ctx.dataset.property]))
            result = reconstruct(sampler, crystals, ctx.seed, f"reconstruction {label} {split}")
            out.setdefault(label, {})[split] = {"match_rate": result.match_rate,
                                                "rmse": None if np.isnan(result.rmse) else result.rmse,
                                                "count": result.count, "available": int(len(sets[split])),
                                                "motif_share": None if np.isnan(result.motif_share)
                                                else result.motif_share}
    return out
