"""Time per task of each design method (issue 16), in CPU seconds, so that a shared machine does not blur them.

One task of `vdwgen evaluate-design` (default: the issue's example) with each method, ``--n`` candidates, run and
relaxed exactly as the evaluation runs a job (:func:`services.design_evaluation.make_job`, then
:func:`services.design_evaluation.relax_job`: in this process, one torch thread) into a fresh DuckDB file. For each
stage (making the candidates: templates or generation, then the search; the oracle's relaxation and judging) it
records CPU seconds of this process (``time.process_time``: not counting time another process had the core) and
wall seconds, per candidate too, and the share that met every target after relaxation (the work done is the
evaluation's). The predictor, the generator and the oracle are loaded before any clock starts. Other processes on
the machine still share its caches and memory bandwidth: the load average is recorded beside each entry.
One entry per ``--label`` (default: task and n) in ``--out``; other entries of the file are kept.

    python bench/design_speed.py --n 64 --out bench/results/design_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from design.targets import parse_targets
from oracle.shared import get_oracle
from services.design_evaluation import (
    KNOWN_TASKS,
    METHODS,
    NEEDS_GENERATOR,
    Job,
    make_job,
    relax_job,
    run_figures,
)
from serving.artifacts import find_artifact
from serving.engine import Engine
from serving.predictor import load_predictor_artifact
from store.database import close_store, open_store


def timed(work):  # noqa: ANN001, ANN201
    """``work()`` with its CPU and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = work()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def measure(task: str, method: str, n: int, steps: int, seed: int, predictor, engine, folder: Path) -> dict:  # noqa: ANN001
    store = open_store(folder / f"{method}.duckdb")
    try:
        load = os.getloadavg()[0]
        entry, make_cpu, make_wall = timed(lambda: make_job(Job(task, method), predictor, store, n, steps, seed,
                                                            engine if method in NEEDS_GENERATOR else None))
        done, relax_cpu, relax_wall = timed(lambda: relax_job(entry, predictor, store))
        figures = run_figures(store, entry["run_id"], parse_targets(KNOWN_TASKS[task], predictor.label_infos()))
    finally:
        close_store(folder / f"{method}.duckdb")
    return {"method": method, "n": n, "make_cpu_s": round(make_cpu, 1), "make_wall_s": round(make_wall, 1),
            "search_wall_s": entry["search_seconds"], "relax_cpu_s": round(relax_cpu, 1),
            "relax_wall_s": round(relax_wall, 1), "cpu_s_per_candidate": round((make_cpu + relax_cpu) / n, 2),
            "relax_status": done["relax_status"], "all_met_designed": figures.get("all_designed"),
            "all_met_relaxed": figures.get("all_relaxed"), "load_average_at_start": round(load, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="issue-example", choices=list(KNOWN_TASKS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predictor", type=Path, default=Path("artifacts/predictor-janus"))
    parser.add_argument("--label", default=None)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    predictor = load_predictor_artifact(args.predictor)
    engine = Engine.load(find_artifact("formation_energy")) if set(args.methods) & set(NEEDS_GENERATOR) else None
    get_oracle()  # CHGNet + D3 loaded before the clocks start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            rows.append(measure(args.task, method, args.n, args.steps, args.seed, predictor, engine, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    label = args.label or f"{args.task}, n={args.n}"
    record = json.loads(args.out.read_text()) if args.out.is_file() else {}
    record[label] = {"task": args.task, "targets": list(KNOWN_TASKS[args.task]), "steps": args.steps, "seed": args.seed,
                     "torch_threads": 1, "cpu": platform.processor() or platform.machine(),
                     "cores": os.cpu_count(), "note": args.note, "methods": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
