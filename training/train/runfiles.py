"""The files of a training run folder: atomic checkpoints and per-epoch metric tables.

A run can be cut off at any moment. Checkpoints are written to a temporary file and
renamed, so a checkpoint on disk is always whole; metric rows are appended after the
epoch they describe, and :func:`truncate_rows` drops rows newer than the checkpoint a run
resumes from, so a resumed run never repeats an epoch in its table.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch

from core.errors import VdwgenError


class TrainingError(VdwgenError):
    """A run cannot start or continue (e.g. its folder holds another run)."""


def save_atomic(path: Path, payload: dict) -> None:
    """``torch.save`` through a temporary file and an atomic rename."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def append_row(path: Path, row: dict) -> None:
    """Append one row to a CSV table, writing the header when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def truncate_rows(path: Path, last_epoch: int) -> None:
    """Keep only rows with ``epoch <= last_epoch`` (rows of epochs a resumed run will redo)."""
    if not path.exists():
        return
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for r in rows if int(r["epoch"]) <= last_epoch]
    if len(kept) == len(rows):
        return
    if not kept:
        path.unlink()
        return
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, path)


def logged_time(path: Path) -> tuple[int, float]:
    """Epochs and summed ``seconds`` of a run's per-epoch log (``metrics.csv``, ``gan_metrics.csv``);
    ``(0, 0.0)`` when the log does not exist."""
    if not Path(path).exists():
        return 0, 0.0
    with Path(path).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return len(rows), sum(float(row["seconds"]) for row in rows)
