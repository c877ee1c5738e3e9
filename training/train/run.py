"""`vdwgen train`: stage 1 then stage 2 from one config, resumable at any moment.

The run folder ends up holding ``config.yaml`` (resolved config), ``metrics.csv`` and
``checkpoint.pt`` (stage 1), ``gan_metrics.csv`` and ``gan.pt`` (stage 2), and
``model.pt``: the weights-only file that sampling, evaluation and shipping read.

Started by torchrun (``torchrun --nproc_per_node N -m vdwgen train ...``), stage 1 trains
data-parallel on N processes (:mod:`training.train.distributed`); rank 0 alone reads or writes
the dataset table first, trains stage 2 and writes ``model.pt`` while the others wait, and
writes every file of the run folder (which must be one folder all nodes see).
"""

from __future__ import annotations

from pathlib import Path

import torch

from training.train.config import RunConfig
from training.train.distributed import (
    barrier,
    check_batch_size,
    idle_threads,
    main_first,
    process_group,
    world_size,
)
from training.train.runfiles import TrainingError
from training.train.stage1 import load_parts, train_stage1
from training.train.stage2 import train_stage2
from training.train.weights import load_trained, save_weights

WEIGHTS_FILE = "model.pt"


def run_training(config: RunConfig, out: Path, resume: bool = False) -> Path:
    """Train both stages into ``out`` (continue them with ``resume``); returns ``out/model.pt``."""
    out = Path(out)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not resume:
        raise TrainingError(f"{out} already holds a run; add --resume to continue it or choose another --out")
    if resume and not checkpoint.exists():
        raise TrainingError(f"nothing to resume in {out} (no checkpoint.pt)")
    check_batch_size(config.train.batch_size, world_size())  # before the processes meet
    with process_group() as ranks:
        with main_first(ranks):  # a --data run: rank 0 writes data.parquet, the others read it
            train, val, elements = load_parts(config, out)
        finished = (resume and torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"]
                    >= config.train.epochs)
        if not finished:
            train_stage1(config, out, train, val, resume=resume, elements=elements, ranks=ranks)
        if ranks.main:  # stage 2 is small: rank 0 alone (see training.train.stage2)
            with idle_threads(ranks):
                if config.model.condition != "none":
                    train_stage2(config, out, train, resume=resume)
            save_weights(load_trained(out), out / WEIGHTS_FILE)
        barrier(ranks)
    return out / WEIGHTS_FILE
