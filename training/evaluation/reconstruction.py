"""Reconstruction metrics of the paper's Table 1 (the CDVAE protocol).

Each test crystal is encoded and decoded; a reconstruction counts as matched when it is
valid (structurally and compositionally) and pymatgen's ``StructureMatcher(stol=0.5,
angle_tol=10, ltol=0.3)`` finds it equivalent to the original. Match rate = matched / all;
RMSE = mean of the matcher's normalised RMS displacement (``get_rms_dist``, divided by
``(V / N)^(1/3)``) over the matched pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from scoring.layers import CHALCOGENS, METALS, motif_problem
from scoring.validity import compositionally_valid, structurally_valid
from training.data.crystal import Crystal
from training.evaluation.progress import with_bar

if TYPE_CHECKING:
    from training.sample import Sampler
    from training.train.weights import TrainedModel

STOL, ANGLE_TOL, LTOL = 0.5, 10.0, 0.3


def paper_matcher() -> StructureMatcher:
    """The matcher of CDVAE and the paper: stol 0.5, angle_tol 10, ltol 0.3."""
    return StructureMatcher(stol=STOL, angle_tol=ANGLE_TOL, ltol=LTOL)


@dataclass(frozen=True)
class ReconstructionResult:
    """Match rate (fraction of all pairs), mean RMS over matches (NaN without any), per-pair RMS, and
    the share of reconstructions with the right layer motif (:func:`scoring.layers.motif_problem`;
    NaN unless every original is a III-VI bilayer)."""

    match_rate: float
    rmse: float
    rms: tuple[float | None, ...]
    motif_share: float = float("nan")

    @property
    def count(self) -> int:
        return len(self.rms)


def valid(structure: Structure) -> bool:
    """Structurally and compositionally valid (paper's "Validity")."""
    return structurally_valid(structure) and compositionally_valid(structure.composition)


def rms_distance(pred: Structure, truth: Structure, matcher: StructureMatcher | None = None) -> float | None:
    """Normalised RMS displacement between two structures, or None when they do not match."""
    matcher = matcher or paper_matcher()
    try:
        result = matcher.get_rms_dist(pred, truth)
    except Exception:  # pymatgen raises on degenerate lattices; such a pair does not match
        return None
    return None if result is None else float(result[0])


def reconstruction_metrics(predicted: list[Crystal], truth: list[Crystal]) -> ReconstructionResult:
    """Table-1 metrics of reconstructions ``predicted[i]`` of ``truth[i]``."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} reconstructions for {len(truth)} crystals")
    if not truth:
        raise ValueError("no crystals to compare")
    matcher = paper_matcher()
    structures = [pred.to_structure() for pred in predicted]
    rms = [rms_distance(p, gt.to_structure(), matcher) if valid(p) else None
           for p, gt in zip(structures, truth, strict=True)]
    matched = [r for r in rms if r is not None]
    family = all(set(c.species) <= METALS | CHALCOGENS for c in truth)
    motif = float(np.mean([motif_problem(p) is None for p in structures])) if family else float("nan")
    return ReconstructionResult(len(matched) / len(rms), float(np.mean(matched)) if matched else float("nan"),
                                tuple(rms), motif)


def validation_reconstruction(trained: TrainedModel, crystals: list[Crystal], seed: int) -> ReconstructionResult:
    """Reconstruct ``crystals`` with a model in training as an export would sample it (default steps,
    site typing and noise; the training loop's monitor; the model is left in eval mode)."""
    # training.sample needs training.train, which imports this module
    from training.sample import Sampler, served_langevin

    sampler = Sampler(trained, served_langevin())
    return reconstruct(sampler, crystals, seed, "validation reconstruction")


def reconstruct(sampler: Sampler, crystals: list[Crystal], seed: int, desc: str) -> ReconstructionResult:
    """Encode ``crystals``, decode them again (a progress bar named ``desc``) and score the pairs."""
    mu, cond = sampler.encode(crystals)
    decoded = with_bar(lambda progress: sampler.decode(mu, cond, seed, progress=progress), desc, len(crystals))
    return reconstruction_metrics(decoded, crystals)
