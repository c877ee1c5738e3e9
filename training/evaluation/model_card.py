"""The figures of a trained model (issue 3's closing note), measured on the test split, as JSON.

    vdwgen model-card --model models/NAME/model.pt --baseline models/NAME-baseline/model.pt \
        --out models/NAME/metrics.json

Unlike ``vdwgen evaluate`` (served artifacts, checked by the oracle) this reads the weights
files and checks generated crystals with the model's own encoder + property head.

Stages (each shows progress; finished stages are kept in the output file, so an
interrupted run picks up where it stopped):

1. ``parameters``: parameter counts of both models;
2. ``property_head``: MAE of the formation energy predicted by encoder + property head on
   the test part;
3. ``reconstruction``: Table-1 match rate / RMSE on the test part (``recon_limit`` crystals,
   spread evenly over it; 0 = all);
4. ``validity``: structural / compositional validity of ``samples`` crystals from the
   baseline's prior and as many formation-energy-conditioned crystals (targets drawn from
   the training labels);
5. ``energy_targets``: for targets at the 10th / 50th / 90th percentile of the training
   labels, ``per_target`` crystals each (100:1 screening), re-predicted by the trained
   encoder + head; also without screening (ratio 1) to show what screening adds;
6. ``formula_hits``: free-decoding hit rate (types not fixed) of three training formulas,
   next to how often the unconditional baseline produces each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from core.errors import VdwgenError
from training.data.janus import janus_species, load_janus_dataset
from training.evaluation.cache import StageRecord
from training.evaluation.generation import formula_hit_rate, summary, validity_rates
from training.evaluation.progress import with_bar
from training.evaluation.reconstruction import reconstruct
from training.evaluation.selection import PROPERTY, TRAINING_FORMULAS, evenly
from training.sample import Sampler, formula_counts, served_known, served_langevin
from training.train.weights import TrainedModel, load_trained


def property_head_mae(sampler: Sampler, crystals: list) -> dict[str, float]:
    predicted = sampler.predict_property(crystals)
    labels = np.array([c.properties[PROPERTY] for c in crystals])
    return {"mae": float(np.mean(np.abs(predicted - labels))), "count": len(crystals),
            "label_std": float(np.std(labels))}


def reconstruction(sampler: Sampler, crystals: list, seed: int) -> dict:
    result = reconstruct(sampler, crystals, seed, "reconstruction")
    return {"match_rate": result.match_rate, "rmse": result.rmse, "count": result.count}


def _decode(sampler: Sampler, z: torch.Tensor, cond: torch.Tensor, seed: int, desc: str) -> list:
    return with_bar(lambda progress: sampler.decode(z, cond, seed, progress=progress), desc, len(z))


STAGES = ("parameters", "property_head", "reconstruction", "validity", "energy_targets", "formula_hits")


class ModelCardError(VdwgenError):
    """A card file that holds figures of other settings (kept stages must not mix with new ones)."""


def write_model_card(model: Path, baseline: Path, out: Path, *, steps_per_level: int = 5, recon_limit: int = 0,
                     samples: int = 1000, per_target: int = 100, seed: int = 0,
                     log: Callable[[str], None] = print) -> dict:
    """Measure ``model`` (conditional) and ``baseline`` (unconditional CDVAE) on the random split's test part.

    Args:
        model, baseline: weights files or run folders.
        out: the JSON file; finished stages in it are kept, the others computed and added.
        steps_per_level: Langevin steps per noise level of every decoding.
        recon_limit: test crystals to reconstruct (0 = all).
        samples: crystals per model for the validity stage.
        per_target: crystals per energy target and per formula.
        seed: seed of every draw.
        log: where each finished stage's figures are reported.

    Returns:
        Everything in ``out``.
    """
    record = StageRecord(Path(out), indent=2)
    results = record.results
    settings = served_langevin(steps_per_level)
    trained: TrainedModel = load_trained(model)
    base_trained: TrainedModel = load_trained(baseline)
    train = load_janus_dataset(split="random", part="train")
    every = janus_species()

    def known(t: TrainedModel):  # what an export of t serves: its own split's training compositions, or none
        own = train if t.config.train.split == "random" else load_janus_dataset(split=t.config.train.split,
                                                                                 part="train")
        return served_known(t, [c.species for c in own], every)

    sampler = Sampler(trained, settings, known=known(trained))
    base_sampler = Sampler(base_trained, settings, known=known(base_trained))
    test = load_janus_dataset(split="random", part="test")
    placeable = [c for c in test if all(el in trained.vocab.symbols for el in c.species)]
    results["test_crystals"] = {"total": len(test), "outside_vocabulary": len(test) - len(placeable)}
    test = placeable
    train_labels = train.property_array(PROPERTY)
    measured = {"steps_per_level": steps_per_level, "site_types": settings.site_types,
                "noise_scale": settings.noise_scale, "compositions": "head" if sampler.known is None else "known",
                "baseline_compositions": "head" if base_sampler.known is None else "known",
                "seed": seed,
                "split": "random:test", "screening_ratio": 100}
    kept = [name for name in STAGES if name in record]
    if kept and results.get("settings") != measured:
        differ = sorted(k for k in measured.keys() | results.get("settings", {}).keys()
                        if results.get("settings", {}).get(k) != measured.get(k))
        raise ModelCardError(f"{out} holds stages ({', '.join(kept)}) measured with other settings "
                             f"({', '.join(differ)}); write the card to a new file, or delete those stages")
    results["settings"] = measured

    def stage(name: str, compute: Callable[[], dict]) -> None:
        if name in record:
            log(f"{name}: kept from {record.path}")
            return
        log(f"{name} {json.dumps(record.run(name, compute))}")

    stage("parameters", lambda: {"model": trained.parameter_counts(), "baseline": base_trained.parameter_counts()})
    stage("property_head", lambda: {"model": property_head_mae(sampler, test),
                                    "baseline": property_head_mae(base_sampler, test)})
    recon_set = [test[i] for i in evenly(len(test), recon_limit)]
    stage("reconstruction", lambda: {"model": reconstruction(sampler, recon_set, seed),
                                     "baseline": reconstruction(base_sampler, recon_set, seed)})

    def formula_cells() -> dict[str, dict[str, int]]:
        cells = {}
        for formula in TRAINING_FORMULAS:
            counts = formula_counts(formula, trained)
            cells[formula] = {trained.vocab.symbols[i]: int(n) for i, n in enumerate(counts) if int(n)}
        return cells

    def validity() -> dict:
        rng = np.random.default_rng(seed)
        targets = rng.choice(train_labels, size=samples)
        # one request per target (100:1 screening each, as the app does), decoded together
        picked = [sampler.energy_latents(float(t), 1, seed=seed + k) for k, t in enumerate(targets)]
        z, cond = torch.cat([p[0] for p in picked]), torch.cat([p[1] for p in picked])
        conditioned = _decode(sampler, z, cond, seed, "conditioned samples")
        prior = base_sampler.prior_latents(samples, seed)
        uncond = _decode(base_sampler, prior, base_sampler.no_condition(samples), seed, "unconditional samples")
        hits = {f: formula_hit_rate(uncond, cell) for f, cell in formula_cells().items()}
        return {"conditioned": validity_rates(conditioned).as_dict(),
                "unconditional": validity_rates(uncond).as_dict(), "unconditional_formula_hits": hits}

    stage("validity", validity)

    def energy_targets() -> dict:
        out = {}
        for q in (0.1, 0.5, 0.9):
            target = float(np.quantile(train_labels, q))
            row = {"target": target}
            for ratio in (100, 1):
                z, cond, _ = sampler.energy_latents(target, per_target, seed, ratio)
                gen = _decode(sampler, z, cond, seed, f"target p{int(q * 100)} ratio {ratio}")
                row[f"ratio_{ratio}"] = summary(sampler.predict_property(gen), target)
            out[f"p{int(q * 100)}"] = row
        return out

    stage("energy_targets", energy_targets)

    def formula_hits() -> dict:
        out = {}
        for formula, cell in formula_cells().items():
            z, cond = sampler.formula_latents(formula_counts(formula, trained), per_target, seed)
            gen = _decode(sampler, z, cond, seed, f"free decoding {formula}")
            out[formula] = {"cell": cell, "conditioned": formula_hit_rate(gen, cell),
                            "unconditional_baseline": results["validity"]["unconditional_formula_hits"][formula]}
        return out

    stage("formula_hits", formula_hits)
    return results
