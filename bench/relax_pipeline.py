"""The generation pipeline with the oracle's relaxation in it (issue 15): what relaxing changes, and what it costs.

For each request (three formation-energy targets and three formulas, ``--n`` crystals each, the shipped model's
default settings), one run goes through :func:`services.generation.generate_and_store` with ``relax=True`` into a
scratch store, exactly as the app and ``vdwgen generate --relax`` run it, and the stored rows are summarised:

- validity by each check (the paper's two, contacts, layer motif, van der Waals gap, every check), of the crystals
  as generated and as relaxed;
- the oracle's formation energy before relaxation (the generated crystal) and after, and for a target the share
  within ±0.05 eV/atom of it (hits) both ways; the model's own predicted hits beside them;
- novel (no match in the training part) and known (a match anywhere in the dataset) before and after relaxation;
- flagged results, converged share, median energy drop, FIRE steps;
- seconds per stage (decoding, scoring, relaxing: each from the first progress report of the stage to the first
  of the next, so scoring includes storing; the oracle and the novelty reference are loaded before the clock
  starts, as in a warm app) and crystals per second with and without the relax stage.

Each request's figures are written to ``--out`` as soon as it finishes; a rerun skips the requests already there
(resume after an interrupt).

    python bench/relax_pipeline.py --n 100 --out bench/results/relax_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from oracle.shared import get_oracle
from services.dataset_answer import TARGET_WINDOW
from services.generation import generate_and_store, novelty_reference
from serving.artifacts import find_artifact
from serving.engine import Engine
from serving.request import GenerationRequest
from store.database import close_store, open_store

TARGETS = (-0.95, -0.75, -0.60)
FORMULAS = ("In4Se4", "Al2Ga2S4", "GaInSSe")
CHECKS = ("structure_valid", "composition_valid", "contacts_valid", "motif_valid", "gap_valid", "valid")
RELAXED_CHECKS = ("relaxed_valid",)


def share(rows: list[dict], column: str, value: object = True) -> float | None:
    """Share of rows whose ``column`` equals ``value`` among rows where it is not NULL (None: none judged)."""
    judged = [r[column] for r in rows if r[column] is not None]
    return None if not judged else sum(v == value for v in judged) / len(judged)


def summarise(rows: list[dict], target: float | None, stage_seconds: dict[str, float]) -> dict:
    n = len(rows)
    relaxed = [r for r in rows if r["oracle_formation_energy"] is not None]
    out: dict = {"count": n, "relaxed": len(relaxed),
                 "generated": {c: share(rows, c) for c in CHECKS},
                 "generated_checked": {c: sum(r[c] is not None for r in rows) for c in CHECKS},
                 "relaxed_valid": share(relaxed, "relaxed_valid"),
                 "relaxed_layers_2": share(relaxed, "relaxed_n_layers", 2),
                 "novel_generated": share(rows, "novel"), "novel_relaxed": share(relaxed, "relaxed_novel"),
                 "known_generated": share(rows, "known"), "known_relaxed": share(relaxed, "relaxed_known"),
                 "novel_and_valid_relaxed": (sum(bool(r["relaxed_novel"]) and bool(r["relaxed_valid"]) for r in relaxed)
                                             / len(relaxed)) if relaxed else None,
                 "flagged": (sum(bool(r["oracle_flags"]) for r in relaxed) / len(relaxed)) if relaxed else None,
                 "converged": share(relaxed, "oracle_converged"),
                 "median_energy_drop_per_atom": statistics.median(r["oracle_energy_drop_per_atom"] for r in relaxed)
                 if relaxed else None,
                 "mean_steps": statistics.fmean(r["oracle_steps"] for r in relaxed) if relaxed else None,
                 "seconds": stage_seconds}
    if target is not None and relaxed:
        def hits(column: str, pool: list[dict]) -> float:
            return sum(abs(r[column] - target) <= TARGET_WINDOW for r in pool) / len(pool)

        out["hits_predicted"] = hits("predicted_formation_energy", rows)
        out["hits_oracle_generated"] = hits("oracle_initial_formation_energy", relaxed)
        out["hits_oracle_relaxed"] = hits("oracle_formation_energy", relaxed)
        out["median_abs_error_relaxed"] = statistics.median(abs(r["oracle_formation_energy"] - target)
                                                            for r in relaxed)
    total = sum(stage_seconds.values())
    without = stage_seconds.get("decoding", 0) + stage_seconds.get("scoring", 0)
    out["crystals_per_s_with_relax"] = n / total if total else None
    out["crystals_per_s_without_relax"] = n / without if without else None
    out["relax_seconds_per_crystal"] = stage_seconds.get("relaxing", 0) / len(relaxed) if relaxed else None
    return out


def run_one(engine: Engine, request: GenerationRequest, db: Path) -> dict:
    store = open_store(db)
    marks: dict[str, float] = {}
    order: list[str] = []

    def progress(stage: str, _done: int, _total: int) -> None:
        if stage not in marks:
            marks[stage] = time.perf_counter()
            order.append(stage)

    start = time.perf_counter()
    try:
        stored = generate_and_store(engine, engine.check(request), store, progress, relax=True)
        end = time.perf_counter()
        rows = store.run_rows(stored.run_id)
    finally:
        close_store(db)
    bounds = [start, *[marks[s] for s in order[1:]], end]
    seconds = {stage: bounds[k + 1] - bounds[k] for k, stage in enumerate(order)}
    out = summarise(rows, request.target, seconds)
    out["relax_status"], out["relax_message"] = stored.relax_status, stored.relax_message
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--artifacts", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/relax_pipeline.json"))
    parser.add_argument("--db", type=Path, default=Path("var/bench/relax_pipeline.duckdb"))
    args = parser.parse_args()
    engine = Engine.load(args.artifacts or find_artifact("formation_energy"))
    get_oracle()  # loaded once, before any clock (a warm app has it)
    novelty_reference(engine.manifest)
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result.update({"model": engine.name, "n": args.n, "seed": args.seed, "torch_threads": torch.get_num_threads(),
                   "machine": platform.processor() or platform.machine(), "requests": result.get("requests", {})})
    requests = {f"target {t:+.2f}": GenerationRequest("formation_energy", args.n, target=t, seed=args.seed)
                for t in TARGETS}
    requests.update({f"formula {f}": GenerationRequest("formula", args.n, formula=f, seed=args.seed)
                     for f in FORMULAS})
    args.db.parent.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, request in requests.items():
        if name in result["requests"]:
            print(f"{name}: done before, kept")
            continue
        print(f"{name}: {args.n} crystals, relaxed by the oracle", flush=True)
        result["requests"][name] = run_one(engine, request, args.db)
        args.out.write_text(json.dumps(result, indent=1))
        print(json.dumps(result["requests"][name], indent=1), flush=True)


if __name__ == "__main__":
    main()
