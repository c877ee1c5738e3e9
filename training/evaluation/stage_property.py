"""Stage ``property`` of ``vdwgen evaluate``: how well the property head predicts the held-out labels.

Every crystal of the evaluated part is encoded (z = the encoder's mean) and its property predicted by
the head that the 100:1 screening uses (it reads z, not the condition). The error is reported next to
the labels' spread and the error of always predicting the training mean, so a reader sees what the
head adds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context


def run(ctx: Context) -> dict:
    """MAE, RMSE and the labels' standard deviation per evaluated model, on every crystal of the part."""
    from training.data.crystal import CrystalDataset
    from training.sample import Sampler
    from training.train.weights import load_trained

    prop = ctx.dataset.property
    rows = ctx.dataset.part(ctx.split_part)
    rows = rows[np.isfinite(rows[prop].to_numpy(dtype=float))].reset_index(drop=True)
    crystals = list(CrystalDataset.from_table(rows, name=f"{ctx.split_part}", property_columns=[prop]))
    labels = rows[prop].to_numpy(dtype=float)
    out: dict = {"property": prop, "unit": ctx.dataset.unit, "count": len(crystals),
                 "label_std": float(labels.std()),
                 "mean_predictor_mae": float(np.mean(np.abs(labels - ctx.dataset.labels("train").mean())))}
    for label, ckpt in ctx.weights().items():
        try:
            predicted = Sampler(load_trained(ckpt)).predict_property(crystals)
        except ValueError as exc:  # a head that reads the condition, not z
            out[label] = {"skipped": str(exc)}
            continue
        error = np.asarray(predicted, dtype=float) - labels
        out[label] = {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2)))}
    return out
