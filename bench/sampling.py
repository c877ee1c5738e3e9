"""Sampling benchmark (issues 4, 17): valid crystals per second end to end, where the time goes, and the quality
of each setting on the validation part.

In one process on this machine (``--n`` crystals per pass, a formation-energy request at the median
training label with the 100:1 screening, the same seed every pass):

1. **throughput** for each steps-per-level value and each way to decode:

   - ``served``: the engine as it ships (:meth:`serving.engine.Engine.decode`: chunks of 32 crystals side by
     side, one thread each);
   - ``before``: the engine as it was before issue 17 (one chunk of 128 crystals, each operation split over the
     process's threads), in the same run, so the two are compared on the same machine at the same time;
   - ``eager``: the served path with the training code's eager decoder in place of the TorchScript one (same
     inputs), the ratio of the two stated.

   Each pass is timed per stage: screening (condition, generator and heads on 100 latents per crystal),
   decoding (heads, Langevin, pymatgen Structures), scoring (every validity check, of which novelty against the
   training part), and storing the run in a fresh DuckDB file. Valid crystals are those the store would call
   valid (the paper's checks, contacts, layer motif, interlayer gap). Passes run in a warm process (the
   novelty reference built for every formula, as in an app that has served many requests); the cold costs are
   recorded once.
   Peak resident memory per pass (Linux ``VmHWM``, reset before each pass).
2. **quality** (``--quality N``) for each steps-per-level value on the served path: N crystals for each of
   the validation part's 10th/50th/90th percentile formation energies; validity and layer order, then every
   crystal relaxed by the oracle (CHGNet + D3, as ``vdwgen verify``): median |E - target| and the share
   within ±0.05 eV/atom, every crystal counted: one with overlapping atoms, which the oracle is not asked to
   relax (as in the evaluation), misses its target. Oracle checks are kept in ``--cache`` (an interrupted run
   resumes). The test part is never used.

``--default S`` marks the entry of the shipped default (``"default": true``). Writes one JSON file (``--out``).
Needs the training code for the eager decoder only.

    python bench/sampling.py --artifacts artifacts/cdvae-plus-janus \\
        --weights models/cdvae-plus-janus/model.pt --out bench/results/sampling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from core.memory import peak_resident_mib, reset_peak
from core.paths import dataset_dir
from export.script_decoder import eager_decoder
from scoring.batch import score_crystals
from scoring.layers import in_family
from services.generation import novelty_reference
from serving.engine import DECODE_BATCH, Engine, GeneratedCrystal
from serving.request import CheckedRequest, GenerationRequest, check_request
from store.database import RunInfo, open_store
from training.data.janus import load_janus_dataset
from training.evaluation.cache import oracle_checks
from training.evaluation.selection import relaxable

WITHIN = 0.05
"""eV/atom: a crystal hits its formation-energy target when the oracle puts it this close."""


def decode_before(engine: Engine, z: np.ndarray, cond: np.ndarray | None, checked: CheckedRequest) -> list:
    """The engine's decoding before issue 17: chunks of 128 crystals one after another, each operation split
    over the process's threads (the crystals of a seed then depend on the thread count)."""
    out = []
    for chunk, start in enumerate(range(0, z.shape[0], DECODE_BATCH)):
        stop = start + DECODE_BATCH
        out += engine._decode_chunk(z[start:stop], None if cond is None else cond[start:stop], checked.counts,
                                    checked.request.seed * 1_000 + chunk, checked.steps_per_level)
    return out


Decode = Callable[[Engine, np.ndarray, "np.ndarray | None", CheckedRequest], list]


def timed_pass(engine: Engine, request: GenerationRequest, decode: Decode, db: Path) -> dict:
    """One request through every stage, each timed (see the module docstring)."""
    reference, _ = novelty_reference(engine.manifest)
    family = in_family(engine.manifest.vocabulary)
    reset = reset_peak()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    checked = engine.check(request)
    z, cond, predicted = engine.latents(checked)
    stages["screening"] = time.perf_counter() - t0
    t = time.perf_counter()
    structures = decode(engine, z, cond, checked)
    stages["decoding"] = time.perf_counter() - t
    crystals = [GeneratedCrystal(i, s, float(p)) for i, (s, p) in enumerate(zip(structures, predicted))]
    novelty = [0.0]
    if reference is not None:
        match = reference.match

        def timed_match(crystal):  # noqa: ANN001, ANN202 - wraps TrainingSet.match
            start = time.perf_counter()
            try:
                return match(crystal)
            finally:
                novelty[0] += time.perf_counter() - start

        reference.match = timed_match  # type: ignore[method-assign]
    t = time.perf_counter()
    try:
        records = score_crystals(crystals, reference, None, None, family)
    finally:
        if reference is not None:
            del reference.match
    stages["scoring"] = time.perf_counter() - t
    stages["of_which_novelty"] = novelty[0]
    t = time.perf_counter()
    store = open_store(db)
    run = store.start_run(RunInfo(request.mode, request.count, request.seed, engine.name, "bench", request.target,
                                  None, checked.steps_per_level, checked.screening_ratio, False))
    store.finish_run(run, records, "completed", 0.0)
    stages["store"] = time.perf_counter() - t
    seconds = time.perf_counter() - t0
    n, valid = len(records), sum(r.valid for r in records)
    t = time.perf_counter()
    for s in structures:  # structure building, measured apart (it is part of "decoding" above)
        type(s)(s.lattice, s.species, s.frac_coords)
    stages["of_which_structures_rebuilt"] = time.perf_counter() - t
    return {"crystals": n, "seconds": round(seconds, 2), "crystals_per_s": round(n / seconds, 3),
            "valid": round(valid / n, 4), "valid_crystals_per_s": round(valid / seconds, 3),
            "layer_order": round(float(np.mean([bool(r.motif_valid) for r in records])), 4),
            "novel": round(float(np.mean([bool(r.novel) for r in records])), 4),
            "stages_s": {k: round(v, 3) for k, v in stages.items()},
            "stage_share": {k: round(v / seconds, 3) for k, v in stages.items() if not k.startswith("of_which")},
            "peak_rss_mib": round(peak_resident_mib(), 1), "peak_reset": reset}


def served_decode(engine: Engine, z: np.ndarray, cond: np.ndarray | None, checked: CheckedRequest) -> list:
    return engine.decode(z, cond, checked)


def quality(engine: Engine, steps: int, n: int, targets: dict[str, float], cache: Path, seed: int) -> dict:
    """Validity, layer order and oracle accuracy of ``n`` served crystals per validation target."""
    reference, _ = novelty_reference(engine.manifest)
    family = in_family(engine.manifest.vocabulary)
    out: dict = {}
    errors_all, hits_all = [], []
    for name, target in targets.items():
        request = GenerationRequest("formation_energy", n, target=target, seed=seed, steps_per_level=steps)
        result = engine.generate(request)
        records = score_crystals(result.crystals, reference, None, None, family)
        structures = [c.structure for c in result.crystals]
        index = relaxable(structures)  # as the evaluation: the oracle is not asked about overlapping atoms
        checks = oracle_checks([structures[i] for i in index], cache / f"steps{steps}_{name}.json",
                               f"oracle {name} ({steps} steps/level)", dataset_dir())
        energies = np.array([c["formation_energy"] for c in checks], dtype=float)
        errors = np.full(n, np.inf)  # a crystal the oracle cannot relax misses its target
        errors[index] = np.abs(energies - target)
        errors_all += list(errors)
        hits_all += list(errors <= WITHIN)
        out[name] = {"target": round(target, 4), "crystals": n, "relaxed": len(index),
                     "valid": round(float(np.mean([r.valid for r in records])), 4),
                     "layer_order": round(float(np.mean([bool(r.motif_valid) for r in records])), 4),
                     "oracle_median_abs_error": round(float(np.median(errors)), 4),
                     f"oracle_within_{WITHIN}": round(float(np.mean(errors <= WITHIN)), 4),
                     "oracle_converged": round(float(np.mean([c["converged"] for c in checks])), 4)}
    out["all"] = {"oracle_median_abs_error": round(float(np.median(errors_all)), 4),
                  f"oracle_within_{WITHIN}": round(float(np.mean(hits_all)), 4),
                  "valid": round(float(np.mean([out[k]["valid"] for k in targets])), 4),
                  "layer_order": round(float(np.mean([out[k]["layer_order"] for k in targets])), 4)}
    return out


def eager_decoder_of(weights: Path, engine: Engine, steps: int) -> torch.nn.Module:
    """The training code's eager decoder of ``weights`` with ``engine``'s sampling settings at ``steps`` per
    level, on its device (what the served TorchScript decoder is compared with)."""
    s = engine.manifest.sampling
    return eager_decoder(weights, {"steps_per_level": steps, "step_lr": s.step_lr, "site_types": s.site_types,
                                   "noise_scale": s.noise_scale}).to(engine.device)


def sweep(engine: Engine, batches: list[int], steps: int, target: float, scored: int, eager: Engine | None) -> dict:
    """Decoding throughput per batch size (``engine.decode_chunk`` = n = the batch), for a GPU.

    Per batch: screening and decoding (heads, Langevin, Structures) timed over the whole batch; the validity
    checks (no novelty) timed on its first ``scored`` crystals, which give the valid share. Valid crystals/s
    of the decoding is n x valid share / (screening + decoding); the scoring's cost per crystal, on the CPU,
    is stated apart (it is not on the GPU and splits over processes). A rerun of the smallest batch with the
    same seed says whether the GPU gives the same crystals twice; ``eager`` (the training code's decoder on
    the same device) is timed at the middle batch."""
    family = in_family(engine.manifest.vocabulary)
    rows = []

    def decode_pass(e: Engine, n: int) -> tuple[dict, list]:
        e.decode_chunk = n
        request = GenerationRequest("formation_energy", n, target=target, seed=0, steps_per_level=steps)
        checked = check_request(request, e.manifest, max_count=max(n, e.manifest.sampling.max_count))
        t = time.perf_counter()
        z, cond, predicted = e.latents(checked)
        screening = time.perf_counter() - t
        t = time.perf_counter()
        structures = e.decode(z, cond, checked)
        decoding = time.perf_counter() - t
        return {"screening_s": round(screening, 3), "decoding_s": round(decoding, 3)}, structures

    decode_pass(engine, batches[0])  # warm-up: CUDA context, TorchScript's profiling runs
    for n in batches:
        times, structures = decode_pass(engine, n)
        k = min(scored, n)
        t = time.perf_counter()
        records = score_crystals([GeneratedCrystal(i, s, 0.0) for i, s in enumerate(structures[:k])], None, None,
                                 None, family)
        scoring = (time.perf_counter() - t) / k
        valid = float(np.mean([r.valid for r in records]))
        seconds = times["screening_s"] + times["decoding_s"]
        rows.append({"batch": n, **times, "crystals_per_s": round(n / seconds, 2), "valid_of_scored": round(valid, 4),
                     "scored": k, "valid_crystals_per_s": round(n * valid / seconds, 2),
                     "scoring_s_per_crystal_cpu": round(scoring, 4)})
        print(json.dumps(rows[-1]), flush=True)
    first, again = (decode_pass(engine, batches[0])[1] for _ in range(2))
    same = all(a.species == b.species and np.array_equal(a.frac_coords, b.frac_coords) for a, b in zip(first, again))
    out = {"steps_per_level": steps, "rows": rows, "same_crystals_on_a_rerun": bool(same)}
    if eager is not None:
        n = batches[len(batches) // 2]
        out["eager"] = {"batch": n, **decode_pass(eager, n)[0]}
        served = next(r for r in rows if r["batch"] == n)
        out["torchscript_over_eager_decoding"] = round(out["eager"]["decoding_s"] / served["decoding_s"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True, help="the model.pt the artifacts were exported from")
    parser.add_argument("--n", type=int, default=128, help="crystals per throughput pass")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--before", type=int, nargs="*", default=[1, 5],
                        help="steps-per-level values also timed with the decoding of before issue 17")
    parser.add_argument("--eager", type=int, nargs="*", default=[1],
                        help="steps-per-level values also timed with the eager decoder")
    parser.add_argument("--default", type=int, default=None, help="the shipped default's steps per level")
    parser.add_argument("--quality", type=int, default=0, help="crystals per validation target and setting")
    parser.add_argument("--cache", type=Path, default=Path("var/bench/sampling"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--chunk", type=int, default=None, help="crystals decoded together (GPU batch size)")
    parser.add_argument("--sweep", type=int, nargs="+", default=None,
                        help="only the decoding throughput at these batch sizes (a GPU's sweep), default steps")
    parser.add_argument("--scored", type=int, default=256, help="crystals per batch checked for validity (--sweep)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    t = time.perf_counter()
    engine = Engine.load(args.artifacts, device=args.device)
    cold = {"engine_load_s": time.perf_counter() - t}
    if args.chunk:
        engine.decode_chunk = args.chunk
    default = args.default or engine.manifest.sampling.steps_per_level
    target = engine.manifest.property.percentile("50")
    if args.sweep:
        eager = Engine.load(args.artifacts, device=args.device)
        eager.decoder = eager_decoder_of(args.weights, eager, default)
        report = {"what": "decoding throughput per batch size (screening + decoding; validity on a sample, "
                          "scoring on the CPU apart), formation-energy request at the median training label",
                  "artifacts": str(args.artifacts), "model": engine.name, "device": engine.device,
                  "gpu": torch.cuda.get_device_name() if engine.device == "cuda" else None,
                  "torch": torch.__version__, "cold_start_s": {k: round(v, 2) for k, v in cold.items()},
                  "sweep": sweep(engine, args.sweep, default, target, args.scored, eager)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0
    t = time.perf_counter()
    reference, _ = novelty_reference(engine.manifest)
    cold["novelty_reference_s"] = time.perf_counter() - t
    tmp = Path(tempfile.mkdtemp(prefix="vdwgen-bench-"))
    t = time.perf_counter()  # warm-up: the first request builds the novelty reference's structures
    timed_pass(engine, GenerationRequest("formation_energy", 8, target=target, seed=1, steps_per_level=1),
               served_decode, tmp / "warm.duckdb")
    cold["first_request_of_8_s"] = time.perf_counter() - t
    if reference is not None:  # every formula's reference built, as in an app that has served many requests
        t = time.perf_counter()
        reference.prepare()
        cold["novelty_reference_every_group_s"] = time.perf_counter() - t

    scripted = engine.decoder
    sampling = engine.manifest.sampling
    rows = []
    for steps in args.steps:
        request = GenerationRequest("formation_energy", args.n, target=target, seed=0, steps_per_level=steps)
        row: dict = {"steps_per_level": steps, "decoder_calls": steps * sampling.noise_levels}
        if steps == default:
            row["default"] = True
        row["served"] = timed_pass(engine, request, served_decode, tmp / f"served{steps}.duckdb")
        row["valid_crystals_per_s"] = row["served"]["valid_crystals_per_s"]
        print(json.dumps({"steps": steps, "served": row["served"]}), flush=True)
        if steps in args.before:
            row["before"] = timed_pass(engine, request, decode_before, tmp / f"before{steps}.duckdb")
            row["served_over_before"] = round(row["served"]["crystals_per_s"] / row["before"]["crystals_per_s"], 3)
            print(json.dumps({"steps": steps, "before": row["before"]}), flush=True)
        if steps in args.eager:
            engine.decoder = eager_decoder_of(args.weights, engine, steps)
            try:
                row["eager"] = timed_pass(engine, request, served_decode, tmp / f"eager{steps}.duckdb")
            finally:
                engine.decoder = scripted
            row["torchscript_over_eager_decoding"] = round(row["eager"]["stages_s"]["decoding"]
                                                           / row["served"]["stages_s"]["decoding"], 3)
        rows.append(row)

    report = {
        "what": "end-to-end valid crystals/s (request -> scored crystals stored in DuckDB), formation-energy "
                "request at the median training label with 100:1 screening, warm process",
        "artifacts": str(args.artifacts), "model": engine.name, "device": engine.device,
        "decode_chunk": engine.decode_chunk, "cpu_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__, "n": args.n,
        "cold_start_s": {k: round(v, 2) for k, v in cold.items()}, "results": rows,
    }
    if args.quality:
        val = load_janus_dataset(split="random", part="val").property_array("formation_energy_per_atom")
        targets = {f"p{q}": float(np.percentile(val, q)) for q in (10, 50, 90)}
        report["quality"] = {"what": f"{args.quality} served crystals per validation-part percentile target, "
                                     "relaxed by the oracle (CHGNet + D3)", "targets": targets,
                             "by_steps_per_level": {str(s): quality(engine, s, args.quality, targets, args.cache, 11)
                                                    for s in args.steps}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
