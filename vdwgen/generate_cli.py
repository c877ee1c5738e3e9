"""`vdwgen generate`: request -> engine -> POSCAR/CIF files and a summary table.

Serving side: imports ``export.runtime`` and never ``training``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vdwgen.errors import VdwgenError
from vdwgen.paths import artifacts_dir


def find_artifact(mode: str, root: Path | None = None) -> Path:
    """The first artifact folder (by name) under ``root`` whose model serves ``mode``."""
    from export.manifest import ArtifactError, read_manifest
    from export.request import SUPPORTED

    root = root or artifacts_dir()
    folders = sorted(p.parent for p in root.glob("*/manifest.json")) if root.is_dir() else []
    for folder in folders:
        try:
            manifest = read_manifest(folder, verify=False)
        except ArtifactError:
            continue
        if mode in SUPPORTED[manifest.condition]:
            return folder
    raise VdwgenError(f"no model under {root} serves {mode} requests; export one with `vdwgen export`")


def _progress_bar(total: int):  # noqa: ANN202
    from tqdm import tqdm

    bar = tqdm(total=total, desc="decoding", unit="crystal", dynamic_ncols=True, file=sys.stderr)
    return bar, lambda done, _total: bar.update(done - bar.n)


def run_generate(args: argparse.Namespace) -> int:
    from export.request import GenerationRequest
    from export.runtime import Engine
    from vdwgen.scoring import compositionally_valid, min_distance, structurally_valid

    if args.formation_energy is not None:
        request = GenerationRequest("formation_energy", args.n, target=args.formation_energy, seed=args.seed,
                                    steps_per_level=args.steps_per_level, screening_ratio=args.screening_ratio)
    elif args.formula is not None:
        request = GenerationRequest("formula", args.n, formula=args.formula, seed=args.seed,
                                    steps_per_level=args.steps_per_level)
    else:
        request = GenerationRequest("unconditional", args.n, seed=args.seed, steps_per_level=args.steps_per_level)
    folder = args.artifacts or find_artifact(request.mode)
    engine = Engine.load(folder, device=args.device)
    engine.check(request)  # bad requests fail before any work
    bar, callback = _progress_bar(request.count)
    stored = None
    try:
        if args.db is not None:
            from store.database import open_store
            from vdwgen.runs import generate_and_store

            store = open_store(args.db)
            stored = generate_and_store(engine, request, store,
                                        lambda stage, done, total: callback(done, total) if stage == "decoding" else None)
            result = stored.result
        else:
            result = engine.generate(request, callback)
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in result.candidates:
        s = c.structure
        structural, compositional = structurally_valid(s), compositionally_valid(s.composition)
        rows.append((c.index, c.formula, c.predicted_formation_energy, min_distance(s), structural, compositional))
        if args.out is not None:
            stem = f"{c.index:04d}_{c.formula}"
            (args.out / f"{stem}.vasp").write_text(s.to(fmt="poscar"))
            (args.out / f"{stem}.cif").write_text(s.to(fmt="cif"))
    print(f"model {result.model}: {len(rows)} crystals in {result.seconds:.1f} s "
          f"({result.steps_per_level} Langevin steps per level, screening {result.screening_ratio}:1)")
    print(f"{'#':>4}  {'formula':<16} {'E_f pred (eV/atom)':>18} {'d_min (Å)':>9}  valid")
    for index, formula, energy, dmin, structural, compositional in rows:
        flag = "yes" if structural and compositional else ("no (structure)" if not structural else "no (SMACT)")
        print(f"{index:>4}  {formula:<16} {energy:>18.3f} {dmin:>9.2f}  {flag}")
    valid = sum(1 for r in rows if r[4] and r[5])
    if stored is not None:
        ids = stored.candidate_ids
        span = f"candidates {ids[0]}..{ids[-1]}" if ids else "no candidates"
        print(f"stored as run {stored.run_id} ({stored.status}), {span}, in {args.db}")
    print(f"valid: {valid}/{len(rows)}" + (f"; files in {args.out}" if args.out is not None else ""))
    return 0
