"""Ship a finished training run under ``models/<name>/``: small weights plus the training record.

    vdwgen ship var/runs/NAME models/NAME

Copies into the destination:

- ``model.pt``: weights only (no optimiser state), floating parameters stored as float16 so
  the file stays small; every figure of the model card is measured on this file, so what
  ships is what was measured;
- ``config.yaml``: the resolved training configuration;
- ``metrics.csv`` (stage 1, one row per epoch) and ``gan_metrics.csv`` (stage 2): the
  training log;
- ``data.parquet``: the crystals and split the run learned from, when they are not the committed
  Janus table (the exported artifact carries them as its novelty reference);
- ``training.json``: parameter counts, epochs, wall-clock seconds of each stage and the file size;
- ``learning_curve.png``: stage-1 losses and validation reconstruction against training hours.

A model card (``metrics.json``) already there measured the weights being replaced and is removed: run
``vdwgen model-card`` again.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from training.data.sources import TABLE_NAME as DATA_TABLE
from training.evaluation.plots import learning_curve
from training.train.runfiles import TrainingError, logged_time
from training.train.weights import load_trained, save_weights

MAX_BYTES = 10 * 1024 * 1024
"""Largest weights file we commit (issue 3: <= 10 MB)."""


def ship(run: Path, dest: Path) -> Path:
    """Write the shipped form of ``run`` to ``dest``; returns the weights path."""
    run, dest = Path(run), Path(dest)
    if not run.is_dir():
        raise TrainingError(f"no run folder at {run}")
    if not (run / "model.pt").exists():
        raise TrainingError(f"{run} has no model.pt: the run is not finished (vdwgen train --resume)")
    trained = load_trained(run / "model.pt")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "metrics.json").unlink(missing_ok=True)  # the card of the weights being replaced
    weights = save_weights(trained, dest / "model.pt", half=True)
    size = weights.stat().st_size
    if size > MAX_BYTES:
        raise TrainingError(f"{weights} is {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.1f} MB limit "
                            "for committed weights")
    for name in ("config.yaml", "metrics.csv", "gan_metrics.csv", DATA_TABLE):
        if (run / name).exists():
            shutil.copyfile(run / name, dest / name)
    epochs1, seconds1 = logged_time(run / "metrics.csv")
    epochs2, seconds2 = logged_time(run / "gan_metrics.csv")
    record = {"name": dest.name, "parameters": trained.parameter_counts(), "weights_bytes": size,
              "weights_dtype": "float16", "stage1": {"epochs": epochs1, "seconds": round(seconds1, 1)},
              "stage2": {"epochs": epochs2, "seconds": round(seconds2, 1)},
              "condition": trained.config.model.condition, "split": trained.config.train.split}
    (dest / "training.json").write_text(json.dumps(record, indent=2))
    if (run / "metrics.csv").exists():
        with (run / "metrics.csv").open(newline="") as fh:
            learning_curve({dest.name: list(csv.DictReader(fh))}, dest / "learning_curve.png")
    return weights

