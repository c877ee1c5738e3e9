"""Figures of a model trained with `vdwgen train --data` on its own held-out test part -> JSON.

    python bench/any_data.py var/runs/perov5 --out bench/results/perov5.json [--recon 200] [--samples 200]

Measured on the run's ``data.parquet`` (the split the run was trained with; the test part was never seen):
training time (from the run's logs), the property head's MAE on the test part, reconstruction match rate and
RMSE (the CDVAE protocol: StructureMatcher 0.5 / 10 / 0.3, valid reconstructions only) on up to ``--recon``
test crystals spread evenly, and the validity of ``--samples`` crystals generated for property targets drawn
from the training labels (100:1 screening each, as the app does). Test crystals with an element the training
part lacks cannot be encoded and are counted apart. This is the stop-gap measurement until `vdwgen evaluate
--data` serves any dataset; it reads the weights, not an exported artifact.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from training.data.crystal import CrystalDataset
from training.data.sources import SPLIT, TABLE_NAME
from training.evaluation.generation import validity_rates
from training.evaluation.reconstruction import reconstruct
from training.evaluation.selection import evenly
from training.model.langevin import LangevinSettings
from training.sample import Sampler
from training.train.runfiles import logged_time
from training.train.weights import load_trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder of `vdwgen train --data`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recon", type=int, default=200, help="test crystals to reconstruct")
    parser.add_argument("--samples", type=int, default=200, help="crystals generated for the validity figure")
    parser.add_argument("--steps-per-level", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    trained = load_trained(args.run / "model.pt")
    prop = trained.config.data.property
    frame = pd.read_parquet(args.run / TABLE_NAME)
    parts = {part: CrystalDataset.from_table(frame[frame[f"split_{SPLIT}"] == part], name=part,
                                             property_columns=[prop]) for part in ("train", "val", "test")}
    vocab = set(trained.vocab.symbols)
    test = [c for c in parts["test"] if set(c.species) <= vocab]
    sampler = Sampler(trained, LangevinSettings(steps_per_level=args.steps_per_level))
    epochs1, seconds1 = logged_time(args.run / "metrics.csv")
    epochs2, seconds2 = logged_time(args.run / "gan_metrics.csv")
    out: dict = {
        "run": str(args.run), "data": trained.config.data.path, "property": prop, "unit": trained.config.data.unit,
        "parts": {k: len(v) for k, v in parts.items()}, "test_outside_vocabulary": len(parts["test"]) - len(test),
        "parameters": trained.parameter_counts(), "config": trained.config.name,
        "training": {"stage1_epochs": epochs1, "stage1_seconds": round(seconds1, 1), "stage2_epochs": epochs2,
                     "stage2_seconds": round(seconds2, 1)},
        "settings": {"steps_per_level": args.steps_per_level, "seed": args.seed},
        "torch_threads": torch.get_num_threads(),
    }
    t0 = time.perf_counter()
    labels = np.array([c.properties[prop] for c in test])
    predicted = sampler.predict_property(test)
    out["property_head"] = {"mae": float(np.mean(np.abs(predicted - labels))), "label_std": float(labels.std()),
                            "count": len(test)}
    picked = [test[i] for i in evenly(len(test), args.recon)]
    recon = reconstruct(sampler, picked, args.seed, "reconstruction")
    out["reconstruction"] = {"match_rate": recon.match_rate, "rmse": None if np.isnan(recon.rmse) else recon.rmse,
                             "count": len(picked)}
    train_labels = parts["train"].property_array(prop)
    targets = np.random.default_rng(args.seed).choice(train_labels, size=args.samples)
    latents = [sampler.energy_latents(float(t), 1, seed=args.seed + k) for k, t in enumerate(targets)]
    z, cond = torch.cat([p[0] for p in latents]), torch.cat([p[1] for p in latents])
    generated = sampler.decode(z, cond, args.seed)
    out["validity"] = validity_rates(generated).as_dict()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
