"""`vdwgen verify`: check stored candidates with the physics oracle and store the verdicts.

Each candidate's POSCAR is relaxed at fixed cell with CHGNet + D3 (:mod:`vdwgen.verify`,
the paper's protocol: all positions, fmax 0.05 eV/Å, at most 500 FIRE steps), and the
oracle's formation energy, energy drop, interlayer gap, RMSD, steps and the relaxed POSCAR
go into the candidate's ``oracle_*`` columns. Candidates are relaxed in small batches and
each batch is stored as soon as it is done, so Ctrl-C loses at most the batch in progress.

Serving side: imports ``store`` and ``vdwgen`` and never ``training``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass

from pymatgen.core import Structure

from store.database import Store, StoreError, open_store
from vdwgen.errors import VdwgenError
from vdwgen.paths import dataset_dir
from vdwgen.verify import (OracleCheck, OracleCheckError, check_with_oracle, get_oracle, input_problem,
                           load_references)

BATCH = 8
"""Candidates relaxed together (one FIRE batch) and stored together."""
SHOWN_IDS = 10
"""At most this many ids are named in one message (unknown ids; ids stored before Ctrl-C)."""


@dataclass(frozen=True)
class Verified:
    """One checked candidate, for the printed table."""

    candidate_id: int
    formula: str
    predicted: float | None
    check: OracleCheck


def _load(store: Store, ids: list[int]) -> list[dict]:
    """The candidates' rows, in order; every unknown id is named (up to a few) in one error."""
    rows, missing = [], []
    for cid in ids:
        try:
            rows.append(store.candidate(cid))
        except StoreError:
            missing.append(cid)
    if missing:
        named = ", ".join(str(i) for i in missing[:SHOWN_IDS])
        more = f" and {len(missing) - SHOWN_IDS} more" if len(missing) > SHOWN_IDS else ""
        noun = "no candidate with id" if len(missing) == 1 else "no candidates with ids"
        raise StoreError(f"{noun} {named}{more} in {store.path}")
    return rows


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(verified: list[Verified]) -> None:
    """id, formula, predicted and oracle E_f (eV/atom), their difference, gap, RMSD, steps, converged."""
    print(f"{'id':>6}  {'formula':<14} {'E_f pred':>9} {'E_f oracle':>10} {'oracle-pred':>11} "
          f"{'gap (Å)':>8} {'RMSD (Å)':>8} {'steps':>5}  converged")
    for v in verified:
        c = v.check
        diff = None if v.predicted is None else c.formation_energy - v.predicted
        print(f"{v.candidate_id:>6}  {v.formula:<14} {_number(v.predicted, 3):>9} {c.formation_energy:>10.3f} "
              f"{_number(diff, 3):>11} {_number(c.interlayer_gap, 2):>8} {c.rmsd:>8.3f} {c.steps:>5}  "
              f"{'yes' if c.converged else 'no'}")


def run_verify(args: argparse.Namespace) -> int:
    """Check ``args.ids`` with the oracle, store each batch as it finishes, print a table."""
    from tqdm import tqdm

    if not args.fmax > 0:
        raise VdwgenError(f"--fmax must be a positive force in eV/Å (got {args.fmax})")
    if args.max_steps < 1:
        raise VdwgenError(f"--max-steps must be at least 1 (got {args.max_steps})")
    ids = list(dict.fromkeys(int(i) for i in args.ids))
    store = open_store(args.db)
    rows = _load(store, ids)
    references = load_references(dataset_dir())
    structures = [Structure.from_str(row["poscar"], fmt="poscar") for row in rows]
    for cid, structure in zip(ids, structures):  # every refusal before any relaxation
        problem = input_problem(structure, references)
        if problem is not None:
            raise OracleCheckError(f"candidate {cid}: {problem}")

    verified: list[Verified] = []
    with warnings.catch_warnings():
        # chgnet 0.4.2 converts grad-tracking tensors in every forward; harmless, and not the user's business
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
        oracle = get_oracle()
        bar = tqdm(total=len(ids), desc="oracle relaxation", unit="crystal", dynamic_ncols=True, file=sys.stderr)
        try:
            for start in range(0, len(ids), BATCH):
                base = bar.n
                checks = check_with_oracle(structures[start:start + BATCH], references, oracle, fmax=args.fmax,
                                           max_steps=args.max_steps,
                                           progress=lambda finished, _total: bar.update(base + finished - bar.n))
                for row, check in zip(rows[start:start + BATCH], checks):
                    store.record_oracle(int(row["id"]), check, oracle.label)
                    verified.append(Verified(int(row["id"]), str(row["formula"]),
                                             row["predicted_formation_energy"], check))
        except KeyboardInterrupt:
            bar.close()
            kept = ", ".join(str(v.candidate_id) for v in verified[:SHOWN_IDS]) or "none"
            more = f" and {len(verified) - SHOWN_IDS} more" if len(verified) > SHOWN_IDS else ""
            print(f"vdwgen: {len(verified)} of {len(ids)} checked and stored before the interrupt: {kept}{more}",
                  file=sys.stderr)
            raise
        finally:
            bar.close()
    print_table(verified)
    print(f"{len(verified)} checked with {oracle.label} (fixed cell, fmax {args.fmax} eV/Å, at most "
          f"{args.max_steps} steps; E_f in eV/atom); stored in {store.path}")
    return 0


__all__ = ["BATCH", "print_table", "run_verify"]
