"""Sampling benchmark (issue 4): crystals per second end to end, TorchScript vs eager decoder.

For each steps-per-level value, in one process on this machine:

1. the exported engine answers a formation-energy request (target: the median training
   label, 100:1 screening) for ``--n`` crystals -> pymatgen Structures, then each is scored
   (structural validity: all distances >= 0.5 Å, volume >= 0.1 Å^3; SMACT charge
   neutrality) -- the clock covers request -> scored structures;
2. the same request with the engine's TorchScript decoder swapped for the eager
   ``CrystalDecoder`` built from the shipped weights (same seeds, same chunks), so the ratio
   is measured in the same run on the same inputs;
3. peak resident memory of each pass (Linux ``VmHWM``, reset before each pass);
4. with ``--recon-val N``: reconstruction match rate and RMSE (StructureMatcher 0.5/10/0.3)
   of N crystals spread over the *validation* part, eager sampler, same steps per level --
   the quality side of choosing the default (the test part is never touched here).

Writes one JSON file (``--out``). Needs the training code for the eager decoder only.

    python bench/sampling.py --artifacts artifacts/cdvae-plus-janus \
        --weights models/cdvae-plus-janus/model.pt --out bench/results/sampling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from scoring.validity import compositionally_valid, structurally_valid
from serving.engine import Engine
from serving.request import GenerationRequest
from training.data.janus import load_janus_dataset
from training.evaluation.reconstruction import reconstruction_metrics
from training.model.langevin import AnnealedLangevin, CrystalDecoder, LangevinSettings
from training.sample import Sampler
from training.train.weights import load_trained


def _reset_peak_memory() -> bool:
    """Reset the kernel's resident-set high-water mark of this process (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_memory_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pass(engine: Engine, request: GenerationRequest) -> dict:
    reset = _reset_peak_memory()
    t0 = time.perf_counter()
    result = engine.generate(request)
    structural = [structurally_valid(c.structure) for c in result.crystals]
    compositional = [compositionally_valid(c.structure.composition) for c in result.crystals]
    seconds = time.perf_counter() - t0
    n = len(result.crystals)
    valid = sum(s and c for s, c in zip(structural, compositional))
    return {"crystals": n, "seconds": round(seconds, 2), "crystals_per_s": round(n / seconds, 3),
            "structural_validity": round(sum(structural) / n, 4),
            "compositional_validity": round(sum(compositional) / n, 4),
            "valid_crystals_per_s": round(valid / seconds, 3),
            "median_predicted_formation_energy": round(float(np.median([c.predicted_formation_energy
                                                                          for c in result.crystals])), 4),
            "peak_rss_mib": round(_peak_memory_mib(), 1), "peak_reset": reset}


def _reconstruction(trained, steps: int, n: int) -> dict:  # noqa: ANN001
    val = load_janus_dataset(split=trained.config.train.split, part="val")
    crystals = [val[int(i)] for i in np.linspace(0, len(val) - 1, min(n, len(val))).round()]
    t0 = time.perf_counter()
    out = Sampler(trained, LangevinSettings(steps_per_level=steps)).reconstruct(crystals, seed=0)
    result = reconstruction_metrics(out, crystals)
    return {"crystals": result.count, "match_rate": round(result.match_rate, 4),
            "rmse": None if result.rmse != result.rmse else round(result.rmse, 4),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True, help="the model.pt the artifacts were exported from")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--skip-eager", action="store_true", help="TorchScript only (e.g. a 10,000-crystal GPU run)")
    parser.add_argument("--recon-val", type=int, default=0, help="validation crystals to reconstruct per setting")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    engine = Engine.load(args.artifacts, device=args.device)
    scripted = engine.decoder
    trained = load_trained(args.weights)
    model = trained.model.to(engine.device).eval()
    target = engine.manifest.property.percentile("50")
    results = []
    for steps in args.steps:
        request = GenerationRequest("formation_energy", args.n, target=target, seed=0, steps_per_level=steps)
        engine.generate(GenerationRequest("formation_energy", 2, target=target, seed=1, steps_per_level=1))  # warm-up
        row: dict = {"steps_per_level": steps, "decoder_calls": steps * engine.manifest.sampling.noise_levels}
        engine.decoder = scripted
        row["torchscript"] = _pass(engine, request)
        if not args.skip_eager:
            settings = LangevinSettings(steps_per_level=steps,
                                        step_lr=engine.manifest.sampling.step_lr)
            engine.decoder = CrystalDecoder(AnnealedLangevin(model.decoder, model.coord_sigmas, settings),
                                            model.vocab.size).eval()
            row["eager"] = _pass(engine, request)
            engine.decoder = scripted
            row["torchscript_over_eager"] = round(row["torchscript"]["crystals_per_s"]
                                                  / row["eager"]["crystals_per_s"], 3)
        if args.recon_val:
            row["validation_reconstruction"] = _reconstruction(trained, steps, args.recon_val)
        results.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "what": "end-to-end crystals/s (request -> scored pymatgen Structures), formation-energy request "
                "at the median training label with 100:1 screening",
        "artifacts": str(args.artifacts), "model": engine.name, "device": engine.device,
        "cpu_threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "n": args.n, "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
