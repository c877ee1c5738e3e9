"""Seconds per crystal of the oracle's relaxation (issue 15's goal: under 1 s for an 8-atom cell on this CPU).

Dataset bilayers (every 500th row of the committed table) are strained by 2 % in-plane and their atoms moved
0.1 Å (seeded), as generated crystals arrive a little off their minimum, and relaxed by
:func:`scoring.oracle_check.check_with_oracle` with the pipeline's protocol (positions and in-plane cell,
fmax 0.05 eV/Å, at most 500 steps) in batches of 1, 8 and 32, with one torch thread (what a relax worker
uses). Each setting reports seconds per crystal, mean FIRE steps and the largest remaining error against the
label (meV/atom). Writes one JSON file.

    python bench/relax_speed.py --out bench/results/relax_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Lattice, Structure

from oracle.convention import load_references
from oracle.shared import get_oracle
from scoring.novelty import table_structure
from scoring.oracle_check import check_with_oracle

TABLE = Path("data/janus_iii_vi/bilayers.parquet")


def strained_displaced(structure: Structure, seed: int) -> Structure:
    matrix = structure.lattice.matrix @ np.diag([1.02, 1.02, 1.0])
    s = Structure(Lattice(matrix), structure.species, structure.frac_coords)
    directions = np.random.default_rng(seed).normal(size=(len(s), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return Structure(s.lattice, s.species, s.cart_coords + 0.1 * directions, coords_are_cartesian=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/relax_speed.json"))
    parser.add_argument("--crystals", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    frame = pd.read_parquet(TABLE).iloc[::500].head(args.crystals)
    starts = [strained_displaced(table_structure(r.lattice, r.species, r.frac_coords), k)
              for k, r in enumerate(frame.itertuples())]
    labels = frame["formation_energy_per_atom"].to_numpy()
    references = load_references(TABLE.parent)
    oracle = get_oracle()
    check_with_oracle(starts[:1], references, oracle)  # warm-up: graph converter, D3 tables
    out: dict = {"machine": platform.processor() or platform.machine(), "torch_threads": 1,
                 "atoms_per_crystal": len(starts[0]), "crystals": len(starts), "protocol":
                 "positions + in-plane cell, fmax 0.05 eV/A, <= 500 FIRE steps", "batches": {}}
    for size in (1, 8, 32):
        t0 = time.perf_counter()
        checks = [c for k in range(0, len(starts), size)
                  for c in check_with_oracle(starts[k:k + size], references, oracle)]
        seconds = time.perf_counter() - t0
        errors = 1000 * np.abs(np.array([c.formation_energy for c in checks]) - labels)
        out["batches"][str(size)] = {"seconds_per_crystal": seconds / len(starts),
                                     "mean_steps": float(np.mean([c.steps for c in checks])),
                                     "converged": float(np.mean([c.converged for c in checks])),
                                     "max_error_vs_label_meV_per_atom": float(errors.max()),
                                     "median_error_vs_label_meV_per_atom": float(np.median(errors))}
        print(size, out["batches"][str(size)], flush=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
