"""The figures of a trained model (issue 3's closing note), measured on the test split, as JSON.

    python -m training.evaluation.model_card --model models/NAME/model.pt \
        --baseline models/NAME-baseline/model.pt --out models/NAME/metrics.json

Stages (each shows progress; finished stages are kept in the output file, so an
interrupted run picks up where it stopped):

1. ``parameters``: parameter counts of both models;
2. ``property_head``: MAE of the formation energy predicted by encoder + property head on
   the test part;
3. ``reconstruction``: Table-1 match rate / RMSE on the test part (``--recon-limit`` crystals,
   spread evenly over it; 0 = all);
4. ``validity``: structural / compositional validity of ``--samples`` crystals from the
   baseline's prior and as many formation-energy-conditioned crystals (targets drawn from
   the training labels);
5. ``energy_targets``: for targets at the 10th / 50th / 90th percentile of the training
   labels, ``--per-target`` crystals each (100:1 screening), re-predicted by the trained
   encoder + head; also without screening (ratio 1) to show what screening adds;
6. ``formula_hits``: free-decoding hit rate (types not fixed) of three training formulas,
   next to how often the unconditional baseline produces each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from training.data.janus import load_janus_dataset
from training.evaluation.generation import formula_hit_rate, summary, validity_rates
from training.evaluation.reconstruction import reconstruction_metrics
from training.model.langevin import LangevinSettings
from training.sample import Sampler, formula_counts
from training.train.weights import TrainedModel, load_trained

FORMULAS = ("GaInSSe", "AlGaIn2S2SeTe", "In2SeTe")
PROPERTY = "formation_energy_per_atom"


def _progress(desc: str, total: int) -> tqdm:
    return tqdm(total=total, desc=desc, unit="crystal", dynamic_ncols=True)


def _decode_with_bar(fn, desc: str, total: int):  # noqa: ANN001, ANN202
    bar = _progress(desc, total)
    try:
        return fn(lambda done: bar.update(done - bar.n))
    finally:
        bar.close()


def property_head_mae(sampler: Sampler, crystals: list) -> dict[str, float]:
    predicted = sampler.predict_property(crystals)
    labels = np.array([c.properties[PROPERTY] for c in crystals])
    return {"mae": float(np.mean(np.abs(predicted - labels))), "count": len(crystals),
            "label_std": float(np.std(labels))}


def reconstruction(sampler: Sampler, crystals: list, seed: int) -> dict:
    mu, cond = sampler.encode(crystals)
    out = _decode_with_bar(lambda cb: sampler.decode(mu, cond, seed, progress=cb), "reconstruction", len(crystals))
    result = reconstruction_metrics(out, crystals)
    return {"match_rate": result.match_rate, "rmse": result.rmse, "count": result.count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Issue-3 figures of a trained model (test split).")
    parser.add_argument("--model", type=Path, required=True, help="weights file or run folder (conditional model)")
    parser.add_argument("--baseline", type=Path, required=True, help="the unconditional CDVAE baseline")
    parser.add_argument("--out", type=Path, required=True, help="JSON file (kept and extended on reruns)")
    parser.add_argument("--steps-per-level", type=int, default=5)
    parser.add_argument("--recon-limit", type=int, default=0, help="test crystals to reconstruct (0 = all)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--per-target", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    settings = LangevinSettings(steps_per_level=args.steps_per_level)
    model: TrainedModel = load_trained(args.model)
    baseline: TrainedModel = load_trained(args.baseline)
    sampler, base_sampler = Sampler(model, settings), Sampler(baseline, settings)
    test = load_janus_dataset(split="random", part="test")
    placeable = [c for c in test if all(el in model.vocab.symbols for el in c.species)]
    results["test_crystals"] = {"total": len(test), "outside_vocabulary": len(test) - len(placeable)}
    test = placeable
    train_labels = load_janus_dataset(split="random", part="train").property_array(PROPERTY)
    results["settings"] = {"steps_per_level": args.steps_per_level, "seed": args.seed, "split": "random:test",
                           "screening_ratio": 100}

    def stage(name: str, compute) -> None:  # noqa: ANN001
        if name in results:
            print(f"{name}: kept from {args.out}")
            return
        t0 = time.time()
        results[name] = compute()
        results.setdefault("seconds", {})[name] = round(time.time() - t0, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(name, json.dumps(results[name]))

    stage("parameters", lambda: {"model": model.parameter_counts(), "baseline": baseline.parameter_counts()})
    stage("property_head", lambda: {"model": property_head_mae(sampler, test),
                                    "baseline": property_head_mae(base_sampler, test)})
    limit = args.recon_limit or len(test)
    recon_set = [test[i] for i in np.linspace(0, len(test) - 1, min(limit, len(test))).round().astype(int)]
    stage("reconstruction", lambda: {"model": reconstruction(sampler, recon_set, args.seed),
                                     "baseline": reconstruction(base_sampler, recon_set, args.seed)})

    def formula_cells() -> dict[str, dict[str, int]]:
        cells = {}
        for formula in FORMULAS:
            counts = formula_counts(formula, model)
            cells[formula] = {model.vocab.symbols[i]: int(n) for i, n in enumerate(counts) if int(n)}
        return cells

    def validity() -> dict:
        rng = np.random.default_rng(args.seed)
        targets = rng.choice(train_labels, size=args.samples)
        # one request per target (100:1 screening each, as the app does), decoded together
        picked = [sampler.energy_latents(float(t), 1, seed=args.seed + k) for k, t in enumerate(targets)]
        z, cond = torch.cat([p[0] for p in picked]), torch.cat([p[1] for p in picked])
        conditioned = _decode_with_bar(lambda cb: sampler.decode(z, cond, args.seed, progress=cb),
                                       "conditioned samples", args.samples)
        prior = base_sampler.prior_latents(args.samples, args.seed)
        uncond = _decode_with_bar(lambda cb: base_sampler.decode(prior, base_sampler.no_condition(args.samples),
                                                                 args.seed, progress=cb),
                                  "unconditional samples", args.samples)
        hits = {f: formula_hit_rate(uncond, cell) for f, cell in formula_cells().items()}
        return {"conditioned": validity_rates(conditioned).as_dict(), "unconditional": validity_rates(uncond).as_dict(),
                "unconditional_formula_hits": hits}

    stage("validity", validity)

    def energy_targets() -> dict:
        out = {}
        for q in (0.1, 0.5, 0.9):
            target = float(np.quantile(train_labels, q))
            row = {"target": target}
            for ratio in (100, 1):
                z, cond, _ = sampler.energy_latents(target, args.per_target, args.seed, ratio)
                gen = _decode_with_bar(lambda cb, z=z, cond=cond: sampler.decode(z, cond, args.seed, progress=cb),
                                       f"target p{int(q * 100)} ratio {ratio}", args.per_target)
                row[f"ratio_{ratio}"] = summary(sampler.predict_property(gen), target)
            out[f"p{int(q * 100)}"] = row
        return out

    stage("energy_targets", energy_targets)

    def formula_hits() -> dict:
        out = {}
        for formula, cell in formula_cells().items():
            z, cond = sampler.formula_latents(formula_counts(formula, model), args.per_target, args.seed)
            gen = _decode_with_bar(lambda cb, z=z, cond=cond: sampler.decode(z, cond, args.seed, progress=cb),
                                   f"free decoding {formula}", args.per_target)
            out[formula] = {"cell": cell, "conditioned": formula_hit_rate(gen, cell),
                            "unconditional_baseline": results["validity"]["unconditional_formula_hits"][formula]}
        return out

    stage("formula_hits", formula_hits)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
