"""The element counts of free-composition crystals (``core.compositions``), chosen on the validation part (issue 14).

The composition head is sharp on the encoder's latents but not on the generator's: rounded by largest
remainders, 6 % of the shipped model's screened latents get counts that two X-M-M-X layers cannot hold
(five metals and three chalcogens, ...). For each rule this script makes 32 crystals at each of the
validation part's 10th/50th/90th percentile formation energies (100:1 screening, the artifact's other
sampling settings, seeds 310/350/390; the evaluation uses seed 0 on the test part), relaxes them with the
oracle (CHGNet + D3, in-plane cell, as the evaluation; cached under var/bench/) and records: layer order
before and after relaxation, the oracle's share within +-0.05 eV/atom of the target and median absolute
error, convergence and median energy drop, distinct stackings in order, and the number of elements (EMD to
the validation part's).

Beside that, cheaply and on many more crystals: the counts each rule gives 1,000 screened latents (targets
drawn from the training labels, seed 0, as the evaluation's samples), without decoding: elements per crystal
(EMD to the validation part's), and the share whose counts no training crystal of that size has.

Rules: ``head`` (the head's counts, the reference), ``known`` (the nearest training composition of that atom
count), ``known-T<t>`` (the head's fractions sharpened as p^(1/t) first: fewer elements per crystal).

    python bench/composition_rule.py artifacts/cdvae-plus-janus --rules head known known-T0.6 \
        --out bench/results/composition_rule.json

Resumable: finished (rule, target) cells in ``--out`` are kept; relaxations are cached beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Structure
from scipy.stats import wasserstein_distance

from core.compositions import KnownCompositions
from core.paths import dataset_dir
from scoring.layers import motif_problem
from scoring.stacking import stacking_key
from serving.engine import Engine, HeadOutputs
from serving.request import GenerationRequest
from training.evaluation.cache import oracle_checks

PERCENTILES = (10, 50, 90)
COUNT = 32


def _rule_engine(engine: Engine, rule: str, known: KnownCompositions, heads) -> None:
    """Set ``engine`` to serve free compositions by ``rule`` (``heads`` is the engine's own heads call)."""
    engine.known = None if rule == "head" else known
    if not rule.startswith("known-T"):
        engine.heads = heads
        return
    temperature = float(rule[len("known-T"):])

    def sharpened(z: np.ndarray, cond: np.ndarray | None, override: np.ndarray) -> HeadOutputs:
        h = heads(z, cond, override)
        p = np.clip(h.composition.astype(np.float64), 1e-12, 1.0) ** (1.0 / temperature)
        return h._replace(composition=(p / p.sum(axis=1, keepdims=True)).astype(np.float32))

    engine.heads = sharpened


def measure(engine: Engine, rule: str, q: int, target: float, nel_val: np.ndarray, cache: Path) -> dict:
    """One (rule, target) cell: generated, relaxed and judged."""
    t0 = time.time()
    result = engine.generate(GenerationRequest("formation_energy", count=COUNT, target=target, seed=300 + q))
    structures = [c.structure for c in result.crystals]
    in_order = [motif_problem(s) is None for s in structures]
    checks = oracle_checks(structures, cache / f"{rule}_p{q}.json", f"{rule} p{q}", dataset_dir())
    relaxed = [Structure.from_str(c["relaxed_poscar"], fmt="poscar") for c in checks]
    energy = np.array([c["formation_energy"] for c in checks])
    error = np.abs(energy - target)
    nel = [len(s.composition.elements) for s in structures]
    return {"target": target, "motif": float(np.mean(in_order)),
            "motif_relaxed": float(np.mean([motif_problem(s) is None for s in relaxed])),
            "within_0.05": float(np.mean(error <= 0.05)), "median_abs_error": float(np.median(error)),
            "converged": float(np.mean([c["converged"] for c in checks])),
            "median_drop": float(np.median([c["energy_drop_per_atom"] for c in checks])),
            "distinct_in_order": len({stacking_key(s) for s, ok in zip(structures, in_order) if ok}),
            "n_elements": np.bincount(nel, minlength=7)[1:].tolist(),
            "emd_n_elements_val": float(wasserstein_distance(nel, nel_val)), "seconds": time.time() - t0}


def latent_counts(engine: Engine, known: KnownCompositions, train_labels: np.ndarray,
                  nel_val: np.ndarray, n: int = 1000) -> dict:
    """The element counts the engine's rule gives ``n`` screened latents (no decoding): elements per crystal and
    how many counts no training crystal of that size has."""
    from training.model.langevin import counts_from_composition

    targets = np.random.default_rng(0).choice(train_labels, size=n)
    z, cond, _ = engine.screened_latents(targets, engine.manifest.sampling.screening_ratio, 0)
    h = engine.heads(z, cond, np.zeros(n, dtype=np.int64))
    composition = h.composition if engine.known is None else engine.known.nearest(h.composition, h.num_atoms)
    counts = counts_from_composition(torch.from_numpy(np.asarray(composition, dtype=np.float32)),
                                     torch.from_numpy(h.num_atoms).long()).numpy()
    rows = {size: {tuple(r) for r in table} for size, table in known.by_size.items()}
    unknown = [tuple(c) not in rows.get(int(c.sum()), set()) for c in counts]
    nel = (counts > 0).sum(axis=1)
    return {"n": n, "n_elements": np.bincount(nel, minlength=7)[1:].tolist(),
            "emd_n_elements_val": float(wasserstein_distance(nel, nel_val)), "unknown_counts": float(np.mean(unknown))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--rules", nargs="+", default=["head", "known", "known-T0.6"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/composition_rule.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = Engine.load(args.artifact)
    table = pd.read_parquet(dataset_dir() / "bilayers.parquet",
                            columns=["species", "split_random", "formation_energy_per_atom"])
    known = KnownCompositions.from_species(table.loc[table.split_random == "train", "species"], engine.vocabulary)
    val = table[table.split_random == "val"]
    nel_val = np.array([len(set(s)) for s in val.species])
    labels = val.formation_energy_per_atom.to_numpy()
    cache = Path("var") / "bench" / f"{args.out.stem}_oracle"  # relaxed crystals: kept out of git
    cache.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"artifact": str(args.artifact), "rules": {}}
    heads = engine.heads
    for rule in args.rules:
        _rule_engine(engine, rule, known, heads)
        cells = results["rules"].setdefault(rule, {})
        for q in PERCENTILES:
            if f"p{q}" in cells:
                continue
            cells[f"p{q}"] = measure(engine, rule, q, float(np.percentile(labels, q)), nel_val, cache)
            print(rule, q, json.dumps(cells[f"p{q}"]), flush=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
        if "latents" not in cells:
            train = table.loc[table.split_random == "train", "formation_energy_per_atom"].to_numpy()
            cells["latents"] = latent_counts(engine, known, train, nel_val)
            print(rule, "latents", json.dumps(cells["latents"]), flush=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
