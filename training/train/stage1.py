"""Stage-1 training loop (VAE + fusion + heads + score decoder), resumable at any moment.

Output folder layout:
- ``config.yaml``: the resolved run configuration;
- ``checkpoint.pt``: model, optimiser, position (epoch, batch) — written at least every
  ``checkpoint_minutes`` and at the end of every epoch (atomically);
- ``metrics.csv``: one row per epoch (train loss terms, validation loss, seconds), and every
  ``recon_every`` epochs the reconstruction of ``recon_crystals`` validation crystals (match rate,
  RMSE, share with the right layer motif) as the evaluation measures it.

Resuming (``resume=True``) reloads the checkpoint and continues at the next batch with
the same shuffling and noise as an uninterrupted run (both derive from the seed, the
epoch and the step).

Under torchrun (:mod:`training.train.distributed`) every rank shuffles alike, computes its
slice of each global batch of ``batch_size`` crystals with the noise a one-process run draws
for those crystals, and weights its loss terms by its share of the batch's crystals or atoms,
so that DDP's averaged gradient is the one-process gradient of the global batch (up to the
order of float sums). The logged loss terms are reduced over the ranks; the validation batches
are shared out and their losses gathered in order; only rank 0 writes.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor
from tqdm import tqdm

from training.data.crystal import CrystalDataset
from training.data.sources import load_parts as load_data_parts
from training.evaluation.reconstruction import validation_reconstruction
from training.model.batching import training_batch
from training.model.cdvae import ConditionCDVAEPlus, TrainingBatch
from training.model.conditions import ElementVocabulary
from training.model.heads import LatticeScaler
from training.train.config import RunConfig, TrainConfig
from training.train.distributed import SINGLE, Ranks, Share, all_sum, barrier, batch_share, data_parallel
from training.train.runfiles import TrainingError, append_row, save_atomic, truncate_rows
from training.train.weights import TrainedModel

RECON_COLUMNS = ("val_match_rate", "val_rmse", "val_motif_share", "recon_seconds")
TERMS = ("natoms", "lattice", "coord", "type", "kl", "composition", "property", "loss")
#: Loss terms that are means over the batch's atoms (``ConditionCDVAEPlus._denoising_losses``);
#: the others are means over its crystals.
MEAN_OVER_ATOMS = frozenset({"coord", "type"})


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
                 resume: bool = False, elements: Iterable[str] | None = None, ranks: Ranks = SINGLE) -> Path:
    """Train (or continue) stage 1 on ``train`` (validation loss on ``val``; vocabulary
    ``elements``, default those of ``train``); returns the checkpoint path. ``ranks``: this
    process's place in a torchrun run (default: the only process)."""
    cfg = config.train
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise TrainingError(f"{out} already holds a run; add --resume to continue it or choose another --out")
    if resume and not ckpt_path.exists():
        raise TrainingError(f"nothing to resume in {out} (no checkpoint.pt)")
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config.as_dict(), sort_keys=False))

    torch.manual_seed(cfg.seed)
    model = build_model(config, train, elements).to(ranks.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    epoch, start_batch, step = 0, 0, 0
    sums = {k: 0.0 for k in (*TERMS, "skipped")}  # running loss sums of the current epoch
    if resume:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, start_batch, step = state["epoch"], state["batch"], state["step"]
        sums = {"skipped": 0.0, **state["sums"]}
    barrier(ranks)  # every rank has read the checkpoint before rank 0 may replace it
    if ranks.main:
        truncate_rows(out / "metrics.csv", epoch)
    net = data_parallel(model, ranks)
    if cfg.compile:
        net = torch.compile(net, dynamic=True)
    vocab = model.vocab
    monitored = limit(val, cfg.recon_crystals)
    n_batches = math.ceil(len(train) / cfg.batch_size)
    # at least the first epoch decodes on the true lattice: an untrained lattice head is noise
    forced_epochs = max(1, math.ceil(cfg.teacher_forcing_fraction * cfg.epochs))

    def checkpoint(e: int, b: int) -> None:
        if not ranks.main:
            return
        save_atomic(ckpt_path, _on_cpu({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                        "epoch": e, "batch": b, "step": step, "sums": sums,
                                        "config": config.as_dict(), "vocab": list(vocab.symbols)}))

    last_save = time.time()
    bar = tqdm(total=cfg.epochs * n_batches, initial=epoch * n_batches + start_batch,
               desc="stage 1", unit="batch", dynamic_ncols=True, disable=not ranks.main)
    try:
        while epoch < cfg.epochs:
            t0 = time.time()
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
            model.train()
            for b in range(start_batch, n_batches):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size].tolist()
                share = batch_share([len(train[i].species) for i in idx], ranks)  # all of it: 1 process
                batch = _to(training_batch([train[i] for i in idx[share.start:share.stop]], vocab,
                                           config.data.property), ranks.device)
                noise = torch.Generator(ranks.device).manual_seed(cfg.seed * 7919 + step)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(cfg, step, cfg.epochs * n_batches)
                with torch.autocast(ranks.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bfloat16"):
                    losses = net(batch, epoch < forced_epochs, noise, share.rows)
                optimizer.zero_grad()
                step += 1
                loss, losses = (losses["loss"], losses) if not ranks.joined else _global_losses(losses, share, ranks)
                if not bool(torch.isfinite(losses["loss"])):
                    sums["skipped"] += 1  # a diverging batch must not poison the weights
                    continue
                loss.backward()
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
                   "val_loss": validation_loss(model, val, cfg.batch_size, cfg.seed, config.data.property,
                                               ranks=ranks),
                   **_monitor(config, model, monitored, epoch + 1, ranks),
                   "teacher_forcing": epoch < forced_epochs, "lr": optimizer.param_groups[0]["lr"],
                   "skipped_batches": int(sums["skipped"]), "seconds": time.time() - t0}
            if ranks.main:
                append_row(out / "metrics.csv", row)
            epoch, start_batch = epoch + 1, 0
            sums = {k: 0.0 for k in (*TERMS, "skipped")}
            checkpoint(epoch, 0)
            last_save = time.time()
    finally:
        bar.close()
    return ckpt_path


def _monitor(config: RunConfig, model: ConditionCDVAEPlus, crystals: CrystalDataset, epoch: int,
             ranks: Ranks) -> dict[str, float | str]:
    """The validation-reconstruction columns of epoch ``epoch``'s row: measured (rank 0) every
    ``recon_every`` epochs and after the last, blank otherwise (the columns are in every row)."""
    cfg = config.train
    due = cfg.recon_every > 0 and (epoch % cfg.recon_every == 0 or epoch == cfg.epochs)
    if not (due and ranks.main and len(crystals)):
        return dict.fromkeys(RECON_COLUMNS, "")
    t0 = time.time()
    # measured on the CPU (the sampler's tensors live there): a copy of a model that trains on a GPU
    measured = model if ranks.device.type == "cpu" else copy.deepcopy(model).cpu()
    result = validation_reconstruction(TrainedModel(config, measured, None), list(crystals), cfg.seed)
    model.train()
    return {"val_match_rate": result.match_rate, "val_rmse": result.rmse, "val_motif_share": result.motif_share,
            "recon_seconds": round(time.time() - t0, 1)}


def _global_losses(losses: dict[str, Tensor], share: Share, ranks: Ranks) -> tuple[Tensor, dict[str, Tensor]]:
    """This rank's share of a data-parallel step: the loss it back-propagates (its terms weighted by
    its share of the batch, see :class:`~training.train.distributed.Share`) and the global batch's
    loss terms (the weighted terms summed over the ranks, divided by their number)."""
    parts = [k for k in TERMS if k != "loss"]
    weighted = torch.stack([losses[k] * (share.atom_weight if k in MEAN_OVER_ATOMS else share.crystal_weight)
                            for k in parts])
    overall = all_sum(weighted.detach().clone(), ranks) / ranks.world_size
    return weighted.sum(), {**dict(zip(parts, overall, strict=True)), "loss": overall.sum()}


def _to(batch: TrainingBatch, device: torch.device) -> TrainingBatch:
    """The batch's tensors on ``device`` (the batch itself on the CPU)."""
    return batch if device.type == "cpu" else TrainingBatch(*(t.to(device) for t in batch))


def _on_cpu(value: Any) -> Any:
    """A (nested) checkpoint payload with its tensors on the CPU, so any machine can resume it."""
    if isinstance(value, Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_on_cpu(v) for v in value)
    return value


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of optimisation step ``step`` (0-based) out of ``total_steps``."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = min(step / max(total_steps - 1, 1), 1.0)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def validation_loss(model: ConditionCDVAEPlus, data: CrystalDataset, batch_size: int, seed: int,
                    property_name: str = "formation_energy_per_atom", ranks: Ranks = SINGLE) -> float:
    """Mean total loss on a part, teacher-forced, with fixed noise (comparable across epochs).

    Under torchrun rank r computes batches r, r + N, ...; the per-batch sums are gathered and
    added in batch order, so every rank gets the one-process value, bit for bit."""
    if len(data) == 0:
        return float("nan")
    model.eval()
    device = next(model.parameters()).device
    starts = range(0, len(data), batch_size)
    sums = torch.zeros(len(starts), dtype=torch.float64, device=ranks.device)
    for i, start in enumerate(starts):
        if i % ranks.world_size != ranks.rank:
            continue
        crystals = [data[j] for j in range(start, min(start + batch_size, len(data)))]
        losses = model(_to(training_batch(crystals, model.vocab, property_name), device), True,
                       torch.Generator(device).manual_seed(seed + start))
        sums[i] = float(losses["loss"]) * len(crystals)
    model.train()
    total = 0.0
    for value in all_sum(sums, ranks).tolist():
        total += value
    return total / len(data)
