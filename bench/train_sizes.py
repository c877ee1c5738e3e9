"""CPU size benchmark of the stage-1 model (issue 3): which EquiformerV2 size trains best in a fixed budget.

For each candidate size, on this machine's CPU threads:

1. seconds per training batch (median of 15 after 3 warm-up batches) -> seconds per epoch;
2. decoder inference cost per crystal and call (no grad, 256 crystals), which sets the
   sampling speed (a Langevin run makes 50 x steps_per_level decoder calls);
3. stage-1 training within ``--budget-minutes`` (epochs = what fits, teacher forcing for the
   first third), then the validation loss on the validation part.

Writes one JSON file (``--out``). Never touches the test part.

    python bench/train_sizes.py --budget-minutes 25 --out bench/results/train_sizes.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from training.model.batching import training_batch
from training.train.config import load_config, with_train
from training.train.stage1 import build_model, load_parts, train_stage1, validation_loss

SIZES: dict[str, list[str]] = {
    # 2 + 2 layers, 32 channels, lmax 2, mmax 1, 7 A / 20 neighbours (the cpu-small starting point)
    "S-2x32-l2": [],
    # the same with a 6 A cutoff and 12 neighbours: 40 % fewer edges
    "S-2x32-l2-r6n12": [f"model.{p}.{k}={v}" for p in ("encoder", "decoder")
                        for k, v in (("cutoff", 6.0), ("max_neighbors", 12))],
    # wider and deeper: 3 + 3 layers, 48 channels
    "M-3x48-l2": [f"model.{p}.{k}={v}" for p in ("encoder", "decoder")
                  for k, v in (("num_layers", 3), ("sphere_channels", 48), ("attn_hidden_channels", 48),
                               ("ffn_hidden_channels", 96), ("edge_channels", 48))],
}


def time_batches(config, train, n: int = 15, batch_size: int = 32) -> float:
    model = build_model(config, train)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for k in range(n + 3):
        batch = training_batch([train[(k * batch_size + i) % len(train)] for i in range(batch_size)], model.vocab)
        t0 = time.perf_counter()
        loss = model(batch, True, torch.Generator().manual_seed(k))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if k >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def time_decoder(config, train, crystals: int = 256, calls: int = 5) -> float:
    model = build_model(config, train).eval()
    batch = training_batch([train[i % len(train)] for i in range(crystals)], model.vocab)
    probs = torch.nn.functional.one_hot(batch.type_index, model.vocab.size).float()
    z = torch.randn(crystals, config.model.latent_dim)
    model.decoder(batch.frac_coords, probs, batch.lattice, batch.num_atoms, z)
    t0 = time.perf_counter()
    for _ in range(calls):
        model.decoder(batch.frac_coords, probs, batch.lattice, batch.num_atoms, z)
    return (time.perf_counter() - t0) / calls / crystals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=25.0)
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated subset of {', '.join(SIZES)}")
    parser.add_argument("--runs", type=Path, default=Path("var/bench/train_sizes"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_sizes.json"))
    args = parser.parse_args(argv)
    base = load_config("cpu-small")
    train, val, _ = load_parts(base)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
                          "torch": torch.__version__, "budget_minutes": args.budget_minutes}
    results.setdefault("sizes", {})
    for name in args.sizes.split(","):
        config = load_config("cpu-small", SIZES[name])
        model = build_model(config, train)
        params = {"encoder": sum(p.numel() for p in model.encoder.parameters()),
                  "decoder": sum(p.numel() for p in model.decoder.parameters()),
                  "total_stage1": sum(p.numel() for p in model.parameters())}
        per_batch = time_batches(config, train)
        per_epoch = per_batch * -(-len(train) // config.train.batch_size)
        decoder_ms = time_decoder(config, train) * 1000
        epochs = max(1, int(args.budget_minutes * 60 // per_epoch))
        config = with_train(config, epochs=epochs)
        out = args.runs / name
        t0 = time.perf_counter()
        train_stage1(config, out, train, val, resume=(out / "checkpoint.pt").exists())
        wall = time.perf_counter() - t0
        state = torch.load(out / "checkpoint.pt", weights_only=False)
        model.load_state_dict(state["model"])
        results["sizes"][name] = {
            "overrides": SIZES[name], "parameters": params, "seconds_per_batch_32": per_batch,
            "seconds_per_epoch_estimate": per_epoch, "decoder_ms_per_crystal_call": decoder_ms,
            "epochs_in_budget": epochs, "train_wall_seconds": wall,
            "val_loss": validation_loss(model, val, 64, 0),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(json.dumps({name: results["sizes"][name]}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
