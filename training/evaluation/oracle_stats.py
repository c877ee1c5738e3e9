"""Summaries of oracle checks (CHGNet + D3 relaxations of positions and in-plane cell) of generated crystals.

The checks themselves are :func:`scoring.oracle_check.check_with_oracle`; this module turns lists
of them into the figures of the report: accuracy against a formation-energy target, the
Table-3 analogue of relaxation behaviour, and how many distinct stackings a set holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymatgen.core import Structure

from scoring.novelty import matcher

WITHIN = 0.05
"""eV/atom: the tolerance of "on target" (the issue's and the model card's)."""


def target_accuracy(energies: Sequence[float], target: float) -> dict[str, float | int]:
    """Median, median absolute error to ``target`` and share within +-0.05 eV/atom."""
    e = np.asarray(energies, dtype=float)
    if e.size == 0:
        raise ValueError("no oracle energies to compare with the target")
    err = np.abs(e - target)
    return {"count": int(e.size), "target": float(target), "median": float(np.median(e)),
            "median_abs_error": float(np.median(err)), "within_0.05": float(np.mean(err <= WITHIN)),
            "p10": float(np.quantile(e, 0.1)), "p90": float(np.quantile(e, 0.9))}


def relaxation_summary(checks: Sequence) -> dict[str, float | int]:
    """Table-3 analogue: convergence share, mean steps, mean energy drop, mean RMSD.

    ``checks`` are :class:`scoring.oracle_check.OracleCheck`. Energy drops are reported per cell
    (eV, the paper's "Avg energy diff") and per atom, whose median is also given: a few crystals that
    fall apart on relaxation drop by electronvolts and carry the mean, while the median says how far a
    typical generated crystal sits from its relaxed form.
    """
    if not checks:
        raise ValueError("no relaxations to summarise")
    return {
        "count": len(checks),
        "converged": float(np.mean([c.converged for c in checks])),
        "mean_steps": float(np.mean([c.steps for c in checks])),
        "median_steps": float(np.median([c.steps for c in checks])),
        "mean_energy_drop_ev": float(np.mean([c.energy_drop for c in checks])),
        "mean_energy_drop_ev_per_atom": float(np.mean([c.energy_drop_per_atom for c in checks])),
        "median_energy_drop_ev_per_atom": float(np.median([c.energy_drop_per_atom for c in checks])),
        "mean_rmsd": float(np.mean([c.rmsd for c in checks])),
        "median_rmsd": float(np.median([c.rmsd for c in checks])),
    }


def distinct_structures(structures: Sequence[Structure]) -> int:
    """Number of distinct crystals among ``structures`` (paper tolerances)."""
    if not structures:
        return 0
    return len(matcher().group_structures(list(structures)))
