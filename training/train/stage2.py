"""Stage-2 training: the conditional WGAN-GP on the frozen stage-1 latent space.

Paper, "Generative adversarial networks" and Eq. 7; method.md, stage 2. Real samples are
latents of training crystals, ``z = mu + exp(logvar / 2) * eps`` from the frozen encoder
(drawn afresh for every batch, the distribution the heads and decoder were trained on),
paired with their condition vectors from the frozen stage-1 condition embedding. For a
``"both"`` model the same modality dropout as in stage 1 is applied, so the generator can
be asked for a formation energy, a formula or both.

Per generator step the critic takes ``n_critic`` steps, each on a fresh batch of real
latents; critic loss ``E[D(fake)] - E[D(real)] + lambda * GP``; generator loss
``-E[D(G(noise, c), c)] + w * MSE(property_head(G(noise, c)), c)`` (the reference's property
term, only for rows whose condition includes the formation energy). Both learning rates
follow reduce-on-plateau (x0.6 after 30 epochs without improvement, floor 1e-5), stepped
once per epoch with that epoch's mean Wasserstein estimate ``E[D(real)] - E[D(fake)]``;
the learning rates go into ``gan_metrics.csv`` so the schedule can be seen to act.

Files in the run folder: ``gan.pt`` (generator, critic, optimisers, schedulers, epoch;
saved at least every minute and at the end) and ``gan_metrics.csv`` (one row per epoch).

Under torchrun this stage runs on rank 0 alone, with the torch threads of its node's idle
ranks on a CPU node, while the other ranks wait at a barrier
(:func:`training.train.run.run_training`); it is not data-parallel. Measured on the 2-core
machine (bench/results/ddp.json): an epoch over the 11,961 Janus training latents of cpu-small
takes about 4 s, against about 115 s for a stage-1 epoch on 2 processes, so a data-parallel
critic would save little, and on that machine nothing at all: rank 0 already uses both cores,
and stage 1 trained no faster on 2 processes x 1 thread than on 1 x 2. It would also break
reproducibility: the critic's dropout draws from torch's global generator, so ranks holding
slices of a batch could not draw the masks a one-process run draws for each latent.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from training.data.crystal import CrystalDataset
from training.model.batching import training_batch
from training.model.cdvae import ConditionCDVAEPlus
from training.model.gan import (
    Critic,
    critic_loss,
    generator_loss,
    gradient_penalty,
    make_optimizers,
    make_schedulers,
)
from training.train.config import RunConfig
from training.train.runfiles import TrainingError, append_row, save_atomic, truncate_rows
from training.train.weights import make_generator, rebuild

GAN_FILE = "gan.pt"
GAN_METRICS = "gan_metrics.csv"
SAVE_SECONDS = 60.0


@torch.no_grad()
def encode_dataset(model: ConditionCDVAEPlus, data: CrystalDataset, batch_size: int = 256,
                   property_name: str = "formation_energy_per_atom") -> dict[str, Tensor]:
    """Posterior parameters and conditions of every crystal.

    Returns:
        ``mu``, ``logvar`` (N, D); ``property`` (N,) in physical units; ``counts`` (N, V).
    """
    model.eval()
    parts: dict[str, list[Tensor]] = {"mu": [], "logvar": [], "property": [], "counts": []}
    for start in range(0, len(data), batch_size):
        batch = training_batch([data[i] for i in range(start, min(start + batch_size, len(data)))],
                               model.vocab, property_name)
        mu, logvar = model.encoder(batch.frac_coords, batch.atomic_numbers, batch.lattice, batch.num_atoms)
        for key, value in (("mu", mu), ("logvar", logvar), ("property", batch.property), ("counts", batch.counts)):
            parts[key].append(value)
    return {k: torch.cat(v) for k, v in parts.items()}


def train_stage2(config: RunConfig, out: Path, train_data: CrystalDataset, resume: bool = False) -> Path:
    """Train (or continue) the CWGAN-GP of the finished stage-1 model in ``out``; returns ``gan.pt``."""
    cfg = config.gan
    out = Path(out)
    stage1 = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    if stage1["epoch"] < config.train.epochs:
        raise TrainingError(f"stage 1 in {out} is at epoch {stage1['epoch']} of {config.train.epochs}; "
                            "finish it first (vdwgen train --resume)")
    model = rebuild(stage1["config"], stage1["vocab"], stage1["model"], None).model
    if model.config.condition == "none":
        raise TrainingError("the unconditional baseline has no stage 2 (it samples its prior)")
    for p in model.parameters():
        p.requires_grad_(False)
    gan_path = out / GAN_FILE
    if gan_path.exists() and not resume:
        raise TrainingError(f"{out} already holds a stage-2 run; add --resume to continue it")
    if not resume:
        (out / GAN_METRICS).unlink(missing_ok=True)

    torch.manual_seed(cfg_seed(config))
    generator = make_generator(config, model)
    assert generator is not None
    critic = Critic(latent_dim=model.config.latent_dim, cond_dim=model.cond_in, dropout=cfg.critic_dropout)
    opt_g, opt_c = make_optimizers(generator, critic, cfg)
    sched_g, sched_c = make_schedulers(opt_g, opt_c, cfg)
    epoch = 0
    previous = torch.load(gan_path, map_location="cpu", weights_only=False) if gan_path.exists() else None
    if previous is not None and previous.get("stage1_step") != stage1["step"]:
        # stage 1 trained on since this GAN was fitted: its latents moved, start stage 2 afresh
        tqdm.write(f"stage 2: stage 1 changed (step {previous.get('stage1_step')} -> {stage1['step']}), "
                   "training the CWGAN-GP from scratch")
        previous = None
        (out / GAN_METRICS).unlink(missing_ok=True)
    if previous is not None:
        state = previous
        for obj, key in ((generator, "generator"), (critic, "critic"), (opt_g, "opt_g"), (opt_c, "opt_c"),
                         (sched_g, "sched_g"), (sched_c, "sched_c")):
            obj.load_state_dict(state[key])
        epoch = state["epoch"]
    truncate_rows(out / GAN_METRICS, epoch)

    data = encode_dataset(model, train_data, batch_size=max(64, cfg.batch_size), property_name=config.data.property)
    n = data["mu"].shape[0]
    if n < cfg.batch_size:
        raise TrainingError(f"stage 2 needs at least batch_size={cfg.batch_size} training crystals, got {n}")
    prop_std = model.property_embedding.standardise(data["property"])
    batches_per_epoch = n // cfg.batch_size
    gen_steps = max(1, batches_per_epoch // cfg.n_critic)
    uses_property = model.config.condition in ("formation_energy", "both") and cfg.property_weight > 0

    def real_batch(idx: Tensor, rng: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mu, logvar = data["mu"][idx], data["logvar"][idx]
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=rng)
        keep_p, keep_f = model.condition_masks(len(idx), rng, mu.device)
        with torch.no_grad():
            cond = model.condition_embedding(data["property"][idx], data["counts"][idx], keep_p, keep_f)
        has_property = keep_p if keep_p is not None else torch.ones(len(idx), dtype=torch.bool)
        if model.config.condition == "formula":
            has_property = torch.zeros(len(idx), dtype=torch.bool)
        return z, cond, prop_std[idx], has_property

    def save() -> None:
        save_atomic(gan_path, {"generator": generator.state_dict(), "critic": critic.state_dict(),
                               "opt_g": opt_g.state_dict(), "opt_c": opt_c.state_dict(),
                               "sched_g": sched_g.state_dict(), "sched_c": sched_c.state_dict(),
                               "epoch": epoch, "stage1_step": stage1["step"], "config": config.as_dict()})

    bar = tqdm(total=cfg.epochs, initial=epoch, desc="stage 2 (CWGAN-GP)", unit="epoch", dynamic_ncols=True)
    last_save = time.time()
    try:
        while epoch < cfg.epochs:
            t0 = time.time()
            rng = torch.Generator().manual_seed(cfg_seed(config) * 1_000_003 + epoch)
            torch.manual_seed(cfg_seed(config) * 1_000_033 + epoch)  # the critic's dropout draws from it
            order = torch.randperm(n, generator=rng)
            generator.train()
            critic.train()
            sums = {"critic_loss": 0.0, "gradient_penalty": 0.0, "wasserstein": 0.0,
                    "generator_loss": 0.0, "property_mse": 0.0}
            for step in range(gen_steps):
                for k in range(cfg.n_critic):
                    b = (step * cfg.n_critic + k) % batches_per_epoch
                    real, cond, _, _ = real_batch(order[b * cfg.batch_size:(b + 1) * cfg.batch_size], rng)
                    with torch.no_grad():
                        fake = generator(generator.sample_noise(real.shape[0], rng), cond)
                    real_scores, fake_scores = critic(real, cond), critic(fake, cond)
                    penalty = gradient_penalty(critic, real, fake, cond, rng)
                    loss_c = critic_loss(real_scores, fake_scores) + cfg.gp_lambda * penalty
                    opt_c.zero_grad()
                    loss_c.backward()
                    opt_c.step()
                    sums["critic_loss"] += float(loss_c.detach()) / cfg.n_critic
                    sums["gradient_penalty"] += float(penalty.detach()) / cfg.n_critic
                    sums["wasserstein"] += float((real_scores.mean() - fake_scores.mean()).detach()) / cfg.n_critic
                # the generator answers the conditions of the last critic batch
                _, cond, target, has_property = real_batch(order[b * cfg.batch_size:(b + 1) * cfg.batch_size], rng)
                fake = generator(generator.sample_noise(cond.shape[0], rng), cond)
                loss_g = generator_loss(critic(fake, cond))
                mse = torch.zeros(())
                if uses_property and bool(has_property.any()):
                    pred = model.predict_property(fake, cond)
                    mse = F.mse_loss(pred[has_property], target[has_property])
                opt_g.zero_grad()
                (loss_g + cfg.property_weight * mse).backward()
                opt_g.step()
                sums["generator_loss"] += float(loss_g.detach())
                sums["property_mse"] += float(mse.detach())
            row = {"epoch": epoch + 1, **{k: v / gen_steps for k, v in sums.items()},
                   "lr_generator": opt_g.param_groups[0]["lr"], "lr_critic": opt_c.param_groups[0]["lr"],
                   "seconds": time.time() - t0}
            # plateau on the Wasserstein estimate: the generator closes the gap, the critic
            # stops finding one; a flat estimate for 30 epochs lowers both rates
            sched_g.step(row["wasserstein"])
            sched_c.step(row["wasserstein"])
            epoch += 1
            append_row(out / GAN_METRICS, row)
            bar.set_postfix(W=f"{row['wasserstein']:.3f}", prop=f"{row['property_mse']:.3f}",
                            lr=f"{row['lr_generator']:.1e}")
            bar.update(1)
            if time.time() - last_save > SAVE_SECONDS or epoch == cfg.epochs:
                save()
                last_save = time.time()
    finally:
        bar.close()
    if epoch == 0 or not gan_path.exists():
        save()
    return gan_path


def cfg_seed(config: RunConfig) -> int:
    """Stage 2 draws from the run's seed, offset so it never replays stage 1's stream."""
    return config.train.seed + 2
