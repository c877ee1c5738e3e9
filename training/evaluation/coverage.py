"""Coverage (COV-R / COV-P) and property EMDs of generated crystals (paper Table 2, CDVAE protocol).

Fingerprints, as CDVAE computes them:

- **structure**: matminer's ``CrystalNNFingerprint`` with the "ops" preset (61 local
  order parameters per site), averaged over the sites of the crystal;
- **composition**: matminer's Magpie ``ElementProperty`` (132 statistics of element
  properties), standardised with the mean and standard deviation of the *training*
  crystals (:class:`CompositionScaler`), so a distance of 10 means something on our data.

Coverage with cutoffs ``delta_struc = 0.4`` and ``delta_comp = 10`` (Euclidean distances):

- **COV-R** (recall): share of reference crystals that have, among the *valid* generated
  crystals, one within the structure cutoff and one within the composition cutoff (the
  two minima are taken separately, as CDVAE's ``compute_cov`` does);
- **COV-P** (precision): share of *all* generated crystals that are valid and have a
  reference crystal within both cutoffs (invalid crystals count as not covered).

**EMD** (Wasserstein-1 distance between two 1-D samples) of density (g/cm^3) and of the
number of elements, between valid generated crystals and the reference crystals.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Composition, Structure
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance

STRUC_CUTOFF = 0.4
COMP_CUTOFF = 10.0


def _quiet() -> None:
    warnings.filterwarnings("ignore")


def structure_fingerprint(structure: Structure) -> np.ndarray:
    """CrystalNN "ops" site fingerprints averaged over sites (61,); NaN row when CrystalNN fails."""
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    _quiet()
    featurizer = CrystalNNFingerprint.from_preset("ops")
    try:
        sites = [featurizer.featurize(structure, i) for i in range(len(structure))]
    except Exception:  # CrystalNN gives up on some broken generated geometries
        return np.full(len(featurizer.feature_labels()), np.nan)
    return np.asarray(sites, dtype=float).mean(axis=0)


def composition_features(composition: Composition | str) -> np.ndarray:
    """Magpie element-property statistics of a composition (132,), unscaled."""
    from matminer.featurizers.composition import ElementProperty

    _quiet()
    return np.asarray(ElementProperty.from_preset("magpie", impute_nan=True).featurize(Composition(composition)),
                      dtype=float)


def structure_fingerprints(structures: Sequence[Structure], workers: int = 2,
                           progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Structure fingerprints (n, 61), computed in ``workers`` processes, in input order."""
    if workers <= 1:
        out = []
        for s in structures:
            out.append(structure_fingerprint(s))
            if progress is not None:
                progress(1)
        return np.asarray(out).reshape(len(structures), -1)
    with ProcessPoolExecutor(workers, initializer=_quiet) as pool:
        out = []
        for fp in pool.map(structure_fingerprint, structures, chunksize=8):
            out.append(fp)
            if progress is not None:
                progress(1)
    return np.asarray(out).reshape(len(structures), -1)


def composition_fingerprints(compositions: Sequence[Composition | str]) -> np.ndarray:
    """Magpie features (n, 132) of compositions (computed once per distinct reduced formula)."""
    cache: dict[str, np.ndarray] = {}
    rows = []
    for c in compositions:
        key = Composition(c).reduced_formula
        if key not in cache:
            cache[key] = composition_features(key)
        rows.append(cache[key])
    return np.asarray(rows)


@dataclass(frozen=True)
class CompositionScaler:
    """Standardisation of Magpie features with training statistics (zero spread -> 1)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> CompositionScaler:
        std = features.std(axis=0)
        return cls(features.mean(axis=0), np.where(std > 1e-12, std, 1.0))

    def transform(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.std


@dataclass(frozen=True)
class Coverage:
    """COV-R and COV-P (0..1) and the distances behind them."""

    recall: float
    precision: float
    generated: int
    valid: int
    reference: int

    def as_dict(self) -> dict[str, float | int]:
        return {"cov_r": self.recall, "cov_p": self.precision, "generated": self.generated,
                "valid_generated": self.valid, "reference": self.reference}


def coverage(gen_struc: np.ndarray, gen_comp: np.ndarray, valid: np.ndarray,
             ref_struc: np.ndarray, ref_comp: np.ndarray,
             struc_cutoff: float = STRUC_CUTOFF, comp_cutoff: float = COMP_CUTOFF) -> Coverage:
    """COV-R / COV-P of generated fingerprints against reference fingerprints (see module docstring).

    Args:
        gen_struc, gen_comp: structure (n, S) and scaled composition (n, C) fingerprints of
            all generated crystals.
        valid: (n,) bool, which generated crystals are valid; a NaN structure fingerprint
            (CrystalNN failed) also counts as invalid.
        ref_struc, ref_comp: the same for the reference crystals (m rows, no NaN).
    """
    valid = np.asarray(valid, dtype=bool) & ~np.isnan(gen_struc).any(axis=1)
    n, m = len(gen_struc), len(ref_struc)
    if n == 0 or m == 0:
        raise ValueError(f"coverage needs generated and reference crystals (got {n} and {m})")
    if not valid.any():
        return Coverage(0.0, 0.0, n, 0, m)
    struc = cdist(gen_struc[valid], ref_struc)
    comp = cdist(gen_comp[valid], ref_comp)
    recall = np.mean((struc.min(axis=0) <= struc_cutoff) & (comp.min(axis=0) <= comp_cutoff))
    covered = (struc.min(axis=1) <= struc_cutoff) & (comp.min(axis=1) <= comp_cutoff)
    return Coverage(float(recall), float(covered.sum() / n), n, int(valid.sum()), m)


def density(structure: Structure) -> float:
    """Mass density (g/cm^3) of the cell."""
    return float(structure.density)


def n_elements(structure: Structure) -> int:
    """Number of distinct elements."""
    return len(structure.composition.elements)


def emd(a: Sequence[float], b: Sequence[float]) -> float:
    """Wasserstein-1 distance between two 1-D samples (0 for identical samples)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("EMD needs two non-empty samples")
    return float(wasserstein_distance(a, b))
