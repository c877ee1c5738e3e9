"""Data-parallel stage 1 on this machine: training steps per second of 1 process vs 2 (torchrun, gloo).

Every setting trains the cpu-small config on the same ``--crystals`` Janus training crystals in global
batches of ``--batch-size`` for ``--epochs`` epochs through :func:`training.train.stage1.train_stage1`
(the code ``vdwgen train`` runs), with the validation loss switched off so that only training steps are
timed; the first epoch is a warm-up and is not counted. The settings run in turn, ``--rounds`` times
(the machine is shared: each setting keeps its best round, and the load average is recorded). Settings:

- ``1 process x 2 threads``: a plain ``vdwgen train`` (torch uses every core);
- ``1 process x 1 thread``;
- ``2 processes x 1 thread``: ``torchrun --nproc_per_node 2`` (gloo; torchrun's default of
  ``OMP_NUM_THREADS=1`` per process), each rank computing half of every global batch.

It also times stage-2 epochs (the CWGAN-GP, which runs on rank 0 alone) over ``--stage2-crystals``
latents and scales them to the whole Janus training part, to size stage 2 against stage 1.
Writes one JSON file:

    python bench/ddp.py --out bench/results/ddp.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def overrides(crystals: int, batch_size: int, epochs: int) -> list[str]:
    return [f"train.limit_train={crystals}", f"train.batch_size={batch_size}", f"train.epochs={epochs}",
            "train.limit_val=1", "train.lr_schedule=constant", "train.checkpoint_minutes=1000",
            "train.compile=false", "train.precision=float32", "train.recon_every=0"]  # as when ddp.json was measured


def worker(args: argparse.Namespace) -> None:
    """One training process (alone, or one rank under torchrun): trains into ``args.folder``."""
    import training.train.stage1 as stage1
    from training.train.config import load_config
    from training.train.distributed import main_first, process_group

    torch.set_num_threads(args.threads)
    stage1.validation_loss = lambda *a, **k: float("nan")  # time the training steps only
    config = load_config("cpu-small", overrides(args.crystals, args.batch_size, args.epochs))
    with process_group() as ranks:
        with main_first(ranks):
            train, val, elements = stage1.load_parts(config, args.folder)
        stage1.train_stage1(config, args.folder, train, val, elements=elements, ranks=ranks)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(processes: int, threads: int, args: argparse.Namespace) -> dict:
    """Train one setting in a fresh folder; steps/s over the epochs after the first."""
    run = Path(tempfile.mkdtemp(prefix="ddp_bench_"))
    worker_argv = [str(Path(__file__).resolve()), "--worker", "--folder", str(run / "run"), "--threads", str(threads),
                   "--crystals", str(args.crystals), "--batch-size", str(args.batch_size), "--epochs", str(args.epochs)]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="")
    if processes == 1:
        cmd = [sys.executable, *worker_argv]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *worker_argv]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rows = list(csv.DictReader((run / "run" / "metrics.csv").open()))
    steps = -(-args.crystals // args.batch_size)
    timed = rows[1:]
    seconds = sum(float(r["seconds"]) for r in timed)
    return {"processes": processes, "torch_threads_per_process": threads,
            "steps_per_second": round(len(timed) * steps / seconds, 3),
            "seconds_per_step": round(seconds / (len(timed) * steps), 3),
            "timed_steps": len(timed) * steps, "final_train_loss": float(rows[-1]["train_loss"]),
            "wall_seconds_with_start_up": round(wall, 1)}


def stage2_epochs(crystals: int, threads: int, stage1_seconds_per_step: float, batch_size: int) -> dict:
    """Seconds per CWGAN-GP epoch of cpu-small over ``crystals`` latents, and both stages' epochs scaled
    to the whole Janus training part (an untrained encoder: the cost does not depend on the weights)."""
    from training.train.config import load_config
    from training.train.stage1 import build_model, load_parts
    from training.train.stage2 import train_stage2

    torch.set_num_threads(threads)
    config = load_config("cpu-small", [f"train.limit_train={crystals}", "train.epochs=1", "gan.epochs=3"])
    train, _, elements = load_parts(config)
    everything = len(load_parts(load_config("cpu-small"))[0])
    model = build_model(config, train, elements)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        torch.save({"model": model.state_dict(), "epoch": 1, "step": 0, "config": config.as_dict(),
                    "vocab": list(model.vocab.symbols)}, out / "checkpoint.pt")
        train_stage2(config, out, train)
        rows = list(csv.DictReader((out / "gan_metrics.csv").open()))
    per_epoch = min(float(r["seconds"]) for r in rows)
    return {"latents": len(train), "torch_threads": threads, "gan_batch_size": config.gan.batch_size,
            "seconds_per_epoch": [round(float(r["seconds"]), 3) for r in rows],
            "whole_training_part": everything,
            "estimated_stage2_seconds_per_epoch_whole_part": round(per_epoch * everything / len(train), 1),
            "estimated_stage1_seconds_per_epoch_whole_part_2_processes":
                round(stage1_seconds_per_step * -(-everything // batch_size), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ddp.json")
    parser.add_argument("--crystals", type=int, default=384, help="training crystals (a global batch divides it)")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs; the first is not timed")
    parser.add_argument("--rounds", type=int, default=2, help="times each setting runs (the best is kept)")
    parser.add_argument("--stage2-crystals", type=int, default=1920, help="latents of the stage-2 timing")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    load = os.getloadavg()[0]
    kinds = [(1, 2), (1, 1), (2, 1)]
    rounds = [[measure(p, t, args) for p, t in kinds] for _ in range(args.rounds)]
    settings = [max((r[i] for r in rounds), key=lambda m: m["steps_per_second"]) for i in range(len(kinds))]
    for i, setting in enumerate(settings):
        setting["steps_per_second_each_round"] = [r[i]["steps_per_second"] for r in rounds]
    alone, one_thread, ddp = settings
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "load_average_1min_at_start": round(load, 2),
        "config": "cpu-small", "data": f"{args.crystals} Janus training crystals (spread evenly)",
        "global_batch_size": args.batch_size, "epochs": args.epochs, "timed_epochs": args.epochs - 1,
        "validation": "off (timing training steps only)",
        "settings": settings,
        "speedup_2_processes_vs_1_process_2_threads": round(ddp["steps_per_second"] / alone["steps_per_second"], 3),
        "speedup_2_processes_vs_1_process_1_thread": round(ddp["steps_per_second"] / one_thread["steps_per_second"],
                                                            3),
        # under torchrun rank 0 trains stage 2 with the threads of both ranks (1 x 2)
        "stage2": stage2_epochs(args.stage2_crystals, 2, ddp["seconds_per_step"], args.batch_size),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
