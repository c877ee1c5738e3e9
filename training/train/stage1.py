"""Stage-1 training loop (VAE + fusion + heads + score decoder), resumable at any moment.

Output folder layout:
- ``config.yaml``: the resolved run configuration;
- ``checkpoint.pt``: model, optimiser, position (epoch, batch) — written at least every
  ``checkpoint_minutes`` and at the end of every epoch (atomically);
- ``metrics.csv``: one row per epoch (train loss terms, validation loss, seconds).

Resuming (``resume=True``) reloads the checkpoint and continues at the next batch with
the same shuffling and noise as an uninterrupted run (both derive from the seed, the
epoch and the step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from training.data.crystal import CrystalDataset
from training.data.sources import load_parts as load_data_parts
from training.model.batching import training_batch
from training.model.cdvae import ConditionCDVAEPlus
from training.model.conditions import ElementVocabulary
from training.model.heads import LatticeScaler
from training.train.config import RunConfig, TrainConfig
from training.train.runfiles import TrainingError, append_row, save_atomic, truncate_rows

TERMS = ("natoms", "lattice", "coord", "type", "kl", "composition", "property", "loss")


def build_model(config: RunConfig, train: CrystalDataset, elements: Iterable[str] | None = None) -> ConditionCDVAEPlus:
    """A fresh model whose scalers are fitted on ``train``; its vocabulary is ``elements``
    (default: the elements of ``train``)."""
    vocab = ElementVocabulary.from_symbols(
        elements if elements is not None else {el for c in train for el in c.species}
    )
    prop = config.data.property
    values = train.property_array(prop)
    batch = training_batch(list(train), vocab, prop)
    scaler = LatticeScaler.fit(batch.lengths, batch.angles, batch.num_atoms)
    model = ConditionCDVAEPlus(config.model, vocab, float(values.mean()), float(values.std()), scaler)
    if int(batch.num_atoms.max()) > config.model.max_atoms:
        raise TrainingError(f"the training data has cells of up to {int(batch.num_atoms.max())} atoms, "
                            f"more than model.max_atoms={config.model.max_atoms}")
    model.cell_size_counts.copy_(torch.bincount(batch.num_atoms, minlength=config.model.max_atoms + 1))
    return model


def limit(data: CrystalDataset, n: int) -> CrystalDataset:
    """``n`` crystals spread evenly over the part (all when ``n <= 0``): the table is ordered by
    monolayer pair, so the first ``n`` rows would cover only a few chemistries."""
    if n <= 0 or n >= len(data):
        return data
    return data.subset(sorted({int(round(i * (len(data) - 1) / max(n - 1, 1))) for i in range(n)}))


def load_parts(config: RunConfig, out: Path | None = None) -> tuple[CrystalDataset, CrystalDataset, tuple[str, ...]]:
    """The training and validation parts of the configured data (never the test part), and the
    elements of the whole training part (the vocabulary, also when ``limit_train`` cuts it).

    A dataset other than the committed Janus table keeps its split in ``out/data.parquet``
    (:func:`training.data.sources.load_parts`)."""
    cfg = config.train
    parts = load_data_parts(config.data, cfg.split, out)
    for line in parts.skipped[:20]:
        tqdm.write(f"data: skipped {line}")
    if len(parts.skipped) > 20:
        tqdm.write(f"data: ... and {len(parts.skipped) - 20} more skipped rows")
    elements = tuple(sorted({el for c in parts.train for el in c.species}))
    known = set(elements)
    inside = [i for i, c in enumerate(parts.val) if set(c.species) <= known]
    if len(inside) < len(parts.val):  # the vocabulary is the training part's: the model cannot encode the rest
        tqdm.write(f"data: {len(parts.val) - len(inside)} of {len(parts.val)} validation crystals hold elements "
                   "absent from the training part; validated on the other "
                   f"{len(inside)}")
    val = parts.val if len(inside) == len(parts.val) else parts.val.subset(inside)
    return limit(parts.train, cfg.limit_train), limit(val, cfg.limit_val), elements


def train_stage1(config: RunConfig, out: Path, train: CrystalDataset, val: CrystalDataset,
                 resume: bool = False, elements: Iterable[str] | None = None) -> Path:
    """Train (or continue) stage 1 on ``train`` (validation loss on ``val``; vocabulary
    ``elements``, default those of ``train``); returns the checkpoint path."""
    cfg = config.train
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise TrainingError(f"{out} already holds a run; add --resume to continue it or choose another --out")
    if resume and not ckpt_path.exists():
        raise TrainingError(f"nothing to resume in {out} (no checkpoint.pt)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.as_dict(), sort_keys=False))

    torch.manual_seed(cfg.seed)
    model = build_model(config, train, elements)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    epoch, start_batch, step = 0, 0, 0
    sums = {k: 0.0 for k in (*TERMS, "skipped")}  # running loss sums of the current epoch
    if resume:
        state = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, start_batch, step = state["epoch"], state["batch"], state["step"]
        sums = {"skipped": 0.0, **state["sums"]}
    truncate_rows(out / "metrics.csv", epoch)
    vocab = model.vocab
    n_batches = math.ceil(len(train) / cfg.batch_size)
    # at least the first epoch decodes on the true lattice: an untrained lattice head is noise
    forced_epochs = max(1, math.ceil(cfg.teacher_forcing_fraction * cfg.epochs))

    def checkpoint(e: int, b: int) -> None:
        save_atomic(ckpt_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "epoch": e, "batch": b, "step": step, "sums": sums, "config": config.as_dict(),
                          "vocab": list(vocab.symbols)})

    last_save = time.time()
    bar = tqdm(total=cfg.epochs * n_batches, initial=epoch * n_batches + start_batch,
               desc="stage 1", unit="batch", dynamic_ncols=True)
    try:
        while epoch < cfg.epochs:
            t0 = time.time()
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
            model.train()
            for b in range(start_batch, n_batches):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size].tolist()
                batch = training_batch([train[i] for i in idx], vocab, config.data.property)
                noise = torch.Generator().manual_seed(cfg.seed * 7919 + step)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(cfg, step, cfg.epochs * n_batches)
                losses = model(batch, epoch < forced_epochs, noise)
                optimizer.zero_grad()
                step += 1
                if not bool(torch.isfinite(losses["loss"])):
                    sums["skipped"] += 1  # a diverging batch must not poison the weights
                    continue
                losses["loss"].backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                for k in TERMS:
                    sums[k] += float(losses[k].detach())
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(losses['loss'].detach()):.3f}")
                bar.update(1)
                if time.time() - last_save > cfg.checkpoint_minutes * 60:
                    checkpoint(epoch, b + 1)
                    last_save = time.time()
            done = max(n_batches - int(sums["skipped"]), 1)
            row = {"epoch": epoch + 1, **{f"train_{k}": sums[k] / done for k in TERMS},
                   "val_loss": validation_loss(model, val, cfg.batch_size, cfg.seed, config.data.property),
                   "teacher_forcing": epoch < forced_epochs, "lr": optimizer.param_groups[0]["lr"],
                   "skipped_batches": int(sums["skipped"]), "seconds": time.time() - t0}
            append_row(out / "metrics.csv", row)
            epoch, start_batch = epoch + 1, 0
            sums = {k: 0.0 for k in (*TERMS, "skipped")}
            checkpoint(epoch, 0)
            last_save = time.time()
    finally:
        bar.close()
    return ckpt_path


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of optimisation step ``step`` (0-based) out of ``total_steps``."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = min(step / max(total_steps - 1, 1), 1.0)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def validation_loss(model: ConditionCDVAEPlus, data: CrystalDataset, batch_size: int, seed: int,
                    property_name: str = "formation_energy_per_atom") -> float:
    """Mean total loss on a part, teacher-forced, with fixed noise (comparable across epochs)."""
    if len(data) == 0:
        return float("nan")
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        crystals = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        losses = model(training_batch(crystals, model.vocab, property_name), True,
                       torch.Generator().manual_seed(seed + start))
        total += float(losses["loss"]) * len(crystals)
        count += len(crystals)
    model.train()
    return total / count
