"""`vdwgen verify`: check stored candidates with the physics oracle and store the verdicts.

Each candidate's POSCAR is relaxed (positions and in-plane cell) with CHGNet + D3 (:mod:`scoring.oracle_check`,
the paper's protocol: all positions, fmax 0.05 eV/Å, at most 500 FIRE steps), and the
oracle's formation energy, energy drop, interlayer gap, RMSD, steps and the relaxed POSCAR
go into the candidate's ``oracle_*`` columns. Candidates are relaxed in small batches and
each batch is stored as soon as it is done, so Ctrl-C loses at most the batch in progress.

The work is :func:`services.verification.verify_candidates`; this module prints its table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.verification import VerificationInterrupted, Verified, named_ids, verify_candidates
from store.database import Store, StoreError, open_existing_store


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _judge_design(store: Store, run: int) -> None:
    """A design run's criteria judged on its relaxed crystals not judged yet (a relaxation cut short)."""
    from core.paths import dataset_dir
    from oracle.convention import load_references
    from services.design import judge_relaxed

    judged = judge_relaxed(store, run, load_references(dataset_dir()))
    print(f"run {run}: {judged} relaxed designed crystal{'s' if judged != 1 else ''} judged against every target")


def _finish_run(store: Store, run: int) -> int:
    """Relax the candidates of ``run`` not relaxed yet (the run's relax stage, resumed) and say how it ended."""
    from core.paths import dataset_dir
    from oracle.convention import load_references
    from services.run_report import RunFigures
    from services.verification import relax_stored

    info = store.run(run)
    if info is None:
        raise StoreError(f"no run {run} in {store.path}")
    ids = store.unrelaxed(run)
    if not ids:
        print(f"run {run}: every candidate is relaxed already")
        if info["mode"] == "design":
            _judge_design(store, run)
        return 0
    from tqdm import tqdm

    with tqdm(total=len(ids), desc="oracle relaxation", unit="crystal", dynamic_ncols=True, file=sys.stderr) as bar:
        status, message = relax_stored(store, run, ids, load_references(dataset_dir()),
                                       progress=lambda done, _total: bar.update(done - bar.n))
    if info["mode"] == "design":
        _judge_design(store, run)
    figures = RunFigures(store.run_rows(run), info["target_formation_energy"])
    print(f"run {run}: relaxation {status}: {message}")
    print(figures.oracle_line() or "oracle: no crystal relaxed")
    return 0 if status == "completed" else 1


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


def run_verify(ids: list[int], db: Path | None, fmax: float, max_steps: int, run: int | None = None) -> int:
    """Check ``ids`` (or the unrelaxed candidates of ``run``) with the oracle, store each batch as it finishes,
    print a table."""
    from tqdm import tqdm

    from services.verification import oracle_label

    store = open_existing_store(db)
    if run is not None:
        return _finish_run(store, run)
    bars: list[tqdm] = []  # opened at the first step, so that a refused request prints its one line only

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="oracle relaxation", unit="crystal", dynamic_ncols=True,
                             file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        verified = verify_candidates(store, ids, fmax=fmax, max_steps=max_steps, progress=progress)
    except VerificationInterrupted as stop:
        for bar in bars:
            bar.close()
        kept = named_ids([v.candidate_id for v in stop.verified])
        print(f"vdwgen: {len(stop.verified)} of {stop.total} checked and stored before the interrupt: {kept}",
              file=sys.stderr)
        raise
    finally:
        for bar in bars:
            bar.close()
    print_table(verified)
    print(f"{len(verified)} checked with {oracle_label()} (positions and in-plane cell, fmax {fmax} eV/Å, at most "
          f"{max_steps} steps; E_f in eV/atom); stored in {store.path}")
    return 0
