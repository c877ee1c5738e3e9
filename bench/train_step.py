"""Cost of a stage-1 training step on this CPU, and what each speed-up buys at equal wall time (issue 14).

Two parts, one JSON file:

1. ``profile``: where a step of the cpu-small model goes (batch of ``--batch-size`` Janus training
   crystals, float32, eager): collating the batch, building the encoder's periodic graph and its
   edge rotations (the part a cache of the clean crystals' graphs could save), encoder forward +
   backward, decoder forward + backward, the heads and losses, the optimiser step (medians of
   ``--repeats`` after warm-up).
2. ``variants``: each setting trains the same freshly initialised model (seed 0) on the same batches
   for ``--minutes`` of wall time, then the validation loss is measured the way ``vdwgen train`` logs
   it (float32, eager, teacher forced, fixed noise) on ``--val`` validation crystals. Compilation
   happens before the clock starts and is reported as ``warmup_seconds`` (paid once per process).
   Settings: float32 (today), bfloat16 autocast, ``torch.compile``, and (bfloat16 having lost at equal
   time) ``torch.compile`` with a doubled batch and learning rate, and with 12 neighbours within 6 Å.
   ``--only`` reruns some settings and keeps the others' entries of an existing ``--out``.

Never touches the test part. The machine must be otherwise idle (the load average is recorded).

    python bench/train_step.py --minutes 4 --out bench/results/train_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from training.data.graph import batch_index, edge_vectors, radius_graph_pbc
from training.model.batching import training_batch
from training.train.config import load_config
from training.train.stage1 import build_model, load_parts, validation_loss

FEWER_NEIGHBOURS = [f"model.{p}.{k}={v}" for p in ("encoder", "decoder") for k, v in (("cutoff", 6.0),
                                                                                      ("max_neighbors", 12))]
VARIANTS: dict[str, dict] = {
    "float32": {"precision": "float32", "compile": False},
    "bfloat16": {"precision": "bfloat16", "compile": False},
    "compile": {"precision": "float32", "compile": True},
    "compile, batch 64, lr 2e-3": {"precision": "float32", "compile": True, "batch_size": 64, "lr": 2e-3},
    "compile, 12 neighbours / 6 A": {"precision": "float32", "compile": True, "overrides": FEWER_NEIGHBOURS},
}


def median_ms(work: Callable[[], object], repeats: int) -> float:
    for _ in range(2):
        work()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e3, 2)


def profile(batch_size: int, repeats: int) -> dict:
    """Milliseconds of each part of a float32 eager step."""
    config = load_config("cpu-small")
    train, _, elements = load_parts(config)
    model = build_model(config, train, elements)
    crystals = [train[i] for i in range(batch_size)]
    batch = training_batch(crystals, model.vocab, config.data.property)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    backbone = model.encoder.backbone
    cutoff, neighbours = float(model.config.encoder.cutoff), model.config.encoder.max_neighbors

    def graph() -> None:
        edges, offsets, _ = radius_graph_pbc(batch.frac_coords, batch.lattice, batch.num_atoms, cutoff, neighbours)
        vectors = edge_vectors(batch.frac_coords, batch.lattice, batch_index(batch.num_atoms), edges, offsets)
        backbone.wigner.to_edge_frame(vectors)

    def encoder() -> None:
        mu, logvar = model.encoder(batch.frac_coords, batch.atomic_numbers, batch.lattice, batch.num_atoms)
        (mu.sum() + logvar.sum()).backward()

    z_c = torch.randn(batch_size, model.config.latent_dim)
    types = torch.nn.functional.one_hot(batch.type_index, model.vocab.size).float()

    def decoder() -> None:
        coord, logits = model.decoder(batch.frac_coords, types, batch.lattice, batch.num_atoms, z_c)
        (coord.sum() + logits.sum()).backward()

    def step() -> None:
        loss = model(batch, True, torch.Generator().manual_seed(0))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def optimiser() -> None:
        optimizer.step()

    parts = {"collate_batch": median_ms(lambda: training_batch(crystals, model.vocab, config.data.property), repeats),
             "encoder_graph_and_edge_rotations": median_ms(graph, repeats),
             "encoder_forward_backward": median_ms(encoder, repeats),
             "decoder_forward_backward": median_ms(decoder, repeats),
             "optimiser_step": median_ms(optimiser, repeats),
             "whole_step": median_ms(step, repeats)}
    edges = radius_graph_pbc(batch.frac_coords, batch.lattice, batch.num_atoms, cutoff, neighbours)[0].shape[1]
    return {"batch_size": batch_size, "atoms": int(batch.num_atoms.sum()), "encoder_edges": int(edges),
            "milliseconds": parts}


def train_for(name: str, setting: dict, minutes: float, val_count: int) -> dict:
    """Train a fresh model under ``setting`` for ``minutes`` of wall time; its validation loss."""
    overrides = [f"train.limit_val={val_count}", *setting.get("overrides", [])]
    config = load_config("cpu-small", overrides)
    train, val, elements = load_parts(config)
    torch.manual_seed(0)
    model = build_model(config, train, elements)
    batch_size, lr = setting.get("batch_size", 32), setting.get("lr", 1e-3)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    net = torch.compile(model, dynamic=True) if setting["compile"] else model
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()

    def step(k: int) -> None:
        idx = [order[(k * batch_size + i) % len(order)] for i in range(batch_size)]
        batch = training_batch([train[i] for i in idx], model.vocab, config.data.property)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting["precision"] == "bfloat16"):
            loss = net(batch, True, torch.Generator().manual_seed(7919 + k))["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()

    t0 = time.perf_counter()
    for k in range(4):  # warm-up (compilation); the same batches start the timed run again
        step(k)
    warmup = time.perf_counter() - t0
    torch.manual_seed(0)
    model.load_state_dict(build_model(config, train, elements).state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps, t0, times = 0, time.perf_counter(), []
    while time.perf_counter() - t0 < minutes * 60:
        s0 = time.perf_counter()
        step(steps)
        times.append(time.perf_counter() - s0)
        steps += 1
    seconds = time.perf_counter() - t0
    loss = validation_loss(model, val, 32, 0, config.data.property)
    print(f"{name}: {steps} steps, {statistics.median(times):.3f} s/step, val loss {loss:.3f}", flush=True)
    return {**{k: v for k, v in setting.items() if k != "overrides"}, "overrides": setting.get("overrides", []),
            "warmup_seconds": round(warmup, 1), "seconds_per_step_median": round(statistics.median(times), 4),
            "ms_per_crystal": round(statistics.median(times) / batch_size * 1e3, 2), "steps": steps,
            "crystals_seen": steps * batch_size, "train_seconds": round(seconds, 1),
            "val_loss": round(loss, 4), "val_crystals": len(val)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training wall time per setting")
    parser.add_argument("--val", type=int, default=500, help="validation crystals for the loss")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", nargs="*", default=None, help="run only these settings")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    earlier = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    result = {"machine": {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
                          "torch": torch.__version__, "load_average_at_start": os.getloadavg()},
              "minutes_per_setting": args.minutes,
              "profile": earlier.get("profile") or profile(args.batch_size, args.repeats),
              "variants": {k: v for k, v in earlier.get("variants", {}).items() if k in VARIANTS}}
    print(json.dumps(result["profile"], indent=1), flush=True)
    for name, setting in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        result["variants"][name] = train_for(name, setting, args.minutes, args.val)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))  # after each setting: a cut run keeps the rest
    result["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
