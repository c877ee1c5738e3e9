"""Novelty against the training set and duplicates among stored candidates.

Both use the paper's StructureMatcher tolerances (stol 0.5, angle_tol 10°, ltol 0.3),
pre-filtered by reduced formula and atom count, so a candidate is compared with a few
hundred structures at most (the Janus data's training part has 53 stackings per formula
on average, up to 274; a novel crystal costs 0.1 s per stacking on this CPU, because
the matcher tries ~400 lattice mappings of a slab cell). Pairs whose atomic planes cannot
line up are ruled out first by the height test of :mod:`scoring.slab_filter`, which never
changes a verdict and skips most fits. The training structures are read from the dataset
table that the model manifest names (``bilayers.parquet``), rows of the training part only,
and built (and reduced) lazily per formula.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from scoring.slab_filter import SlabProfile, cannot_match, slab_profile

STOL, ANGLE_TOL, LTOL = 0.5, 10.0, 0.3


def matcher() -> StructureMatcher:
    """The paper's (and CDVAE's) matcher."""
    return StructureMatcher(stol=STOL, angle_tol=ANGLE_TOL, ltol=LTOL)


class ReducedCrystal:
    """A structure with its matcher-reduced form and height profile, computed on first use and
    kept: one crystal is compared with many, so build it once and pass it around."""

    def __init__(self, structure: Structure, structure_matcher: StructureMatcher) -> None:
        self.structure = structure
        self._matcher = structure_matcher

    @cached_property
    def profile(self) -> SlabProfile | None:
        return slab_profile(self.structure, self._matcher)


def fits(m: StructureMatcher, a: ReducedCrystal, b: ReducedCrystal) -> bool:
    """``m.fit(a, b)``, skipping the fit when the height test proves it False."""
    if cannot_match(a.profile, b.profile, m):
        return False
    if a.profile is not None and b.profile is not None:
        return bool(m.fit(a.profile.reduced, b.profile.reduced, skip_structure_reduction=True))
    return bool(m.fit(a.structure, b.structure))


def table_structure(lattice: np.ndarray, species: Iterable[str], frac: np.ndarray) -> Structure:
    """A crystal of the dataset table (its ``lattice``, ``species`` and ``frac_coords`` columns)."""
    return Structure(Lattice(np.asarray(lattice, dtype=float).reshape(3, 3)), list(species),
                     np.asarray(frac, dtype=float).reshape(-1, 3))


class TrainingSet:
    """Training crystals grouped by (reduced formula, atom count), structures built on demand."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self._rows: dict[tuple[str, int], list[int]] = defaultdict(list)
        self._frame = rows.reset_index(drop=True)
        for i, (formula, n) in enumerate(zip(self._frame["reduced_formula"], self._frame["num_atoms"])):
            self._rows[(str(formula), int(n))].append(i)
        self._built: dict[tuple[str, int], list[ReducedCrystal]] = {}
        self._matcher = matcher()

    @classmethod
    def load(cls, table: Path, split: str = "random", part: str | None = "train") -> TrainingSet:
        """Rows of ``part`` of the ``split`` split of a dataset table (``bilayers.parquet``); every row
        of the table when ``part`` is None (novelty against everything known)."""
        column = f"split_{split}"
        frame = pd.read_parquet(table, columns=["lattice", "species", "frac_coords", "reduced_formula",
                                                "num_atoms", column])
        return cls(frame if part is None else frame[frame[column] == part])

    def __len__(self) -> int:
        return len(self._frame)

    def _reduced(self, key: tuple[str, int]) -> list[ReducedCrystal]:
        if key not in self._built:
            rows = self._frame.iloc[self._rows.get(key, [])]
            self._built[key] = [ReducedCrystal(table_structure(r.lattice, r.species, r.frac_coords), self._matcher)
                                for r in rows.itertuples()]
        return self._built[key]

    def same_formula(self, structure: Structure) -> list[Structure]:
        """Training crystals with the reduced formula and atom count of ``structure``."""
        return [c.structure for c in self._reduced((structure.composition.reduced_formula, len(structure)))]

    def is_novel(self, crystal: Structure | ReducedCrystal) -> bool:
        """True when no training crystal of the same formula and size matches ``crystal``."""
        me = crystal if isinstance(crystal, ReducedCrystal) else ReducedCrystal(crystal, self._matcher)
        known = self._reduced((me.structure.composition.reduced_formula, len(me.structure)))
        return not any(fits(self._matcher, me, k) for k in known)


def first_duplicate(candidate: ReducedCrystal, stored: Iterable[tuple[int, ReducedCrystal]],
                    structure_matcher: StructureMatcher | None = None) -> int | None:
    """Id of the first ``(id, candidate)`` in ``stored`` that matches ``candidate`` (None: none)."""
    m = structure_matcher or matcher()
    n = len(candidate.structure)
    return next((cid for cid, other in stored if len(other.structure) == n and fits(m, candidate, other)), None)


__all__ = ["ReducedCrystal", "TrainingSet", "first_duplicate", "fits", "matcher", "table_structure"]
