"""Novelty against the training set and duplicates among stored candidates.

Both use the paper's StructureMatcher tolerances (stol 0.5, angle_tol 10°, ltol 0.3),
pre-filtered by reduced formula and atom count, so a candidate is compared with a few
hundred structures at most (the Janus data's training part has 53 stackings per formula
on average, up to 274; pymatgen's matcher takes 0.06-0.1 s per failing fit on this CPU, because
it tries ~400 lattice mappings of a slab cell one by one). Pairs whose atomic planes cannot
line up are ruled out first by the height test of :mod:`scoring.slab_filter`, which never
changes a verdict and skips most fits; the fits left go through the vectorised lattice search of
:mod:`scoring.lattice_search` (pymatgen's verdicts, ~25 ms per failing fit). The training structures are
read from the dataset table that the model manifest names (``bilayers.parquet``) and built (and reduced) lazily
per formula.

A reference of the whole table (``part=None``) answers two questions at once (:meth:`TrainingSet.match`):
is a crystal *known* (it matches a dataset crystal of any part; which one) and is it *novel* in the
paper's sense (it matches no crystal of the training part). Training rows are tried first, so a crystal
that matches both a training and a test row counts as not novel. The paper's tolerances cannot tell stackings
apart (30 of 66 pairs of different stackings of one formula fit), so *which* crystal it is comes from the exact
stacking key of :mod:`scoring.stacking` whenever the crystal has one (``Match.exact``), and from the first fit
only otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from scoring import lattice_search
from scoring.slab_filter import SlabProfile, cannot_match, height_distances, slab_profile
from scoring.stacking import stacking_key
from scoring.validity import ContactLimits, table_contact_limits

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
    """``m.fit(a, b)``, skipping the fit when the height test proves it False (the fit itself with the lattice
    search of :mod:`scoring.lattice_search`: the same verdicts, ~3x faster when the answer is no)."""
    if cannot_match(a.profile, b.profile, m):
        return False
    if a.profile is not None and b.profile is not None:
        return lattice_search.fit(m, a.profile.reduced, b.profile.reduced)
    return bool(m.fit(a.structure, b.structure))


def table_structure(lattice: np.ndarray, species: Iterable[str], frac: np.ndarray) -> Structure:
    """A crystal of the dataset table (its ``lattice``, ``species`` and ``frac_coords`` columns)."""
    return Structure(Lattice(np.asarray(lattice, dtype=float).reshape(3, 3)), list(species),
                     np.asarray(frac, dtype=float).reshape(-1, 3))


@dataclass(frozen=True)
class Match:
    """The dataset crystal a crystal is.

    Attributes:
        id: the row with the same stacking when ``exact`` (:mod:`scoring.stacking`), else the first row the paper's
            matcher fits (training rows first); the row number when the table has no ``id`` column.
        part: the split part of the first row the paper's matcher fits (training rows first), which decides
            novelty in the paper's sense (None when the reference was not loaded by part).
        exact: ``id`` has the same stacking key; False: only the paper's tolerances (which cannot tell stackings
            apart) say they match.
    """

    id: str
    part: str | None
    exact: bool = False


class TrainingSet:
    """Dataset crystals grouped by (reduced formula, atom count), structures built on demand.

    ``parts`` (one entry per row, e.g. ``train``/``val``/``test``) and ``training_part`` order the
    comparisons: the training part's rows first (see the module docstring).
    """

    def __init__(self, rows: pd.DataFrame, parts: pd.Series | None = None, training_part: str = "train") -> None:
        self._rows: dict[tuple[str, int], list[int]] = defaultdict(list)
        self._frame = rows.reset_index(drop=True)
        self._ids = ([str(v) for v in self._frame["id"]] if "id" in self._frame.columns
                     else [str(i) for i in range(len(self._frame))])
        self._parts = None if parts is None else [str(v) for v in parts]
        self.training_part = training_part
        for i, (formula, n) in enumerate(zip(self._frame["reduced_formula"], self._frame["num_atoms"])):
            self._rows[(str(formula), int(n))].append(i)
        if self._parts is not None:
            for rows_of_key in self._rows.values():
                rows_of_key.sort(key=lambda i: self._parts[i] != training_part)  # stable: training rows first
        self._built: dict[tuple[str, int], list[ReducedCrystal]] = {}
        self._stackings: dict[tuple[str, int], dict[str, int]] = {}
        self._matcher = matcher()

    @classmethod
    def load(cls, table: Path, split: str = "random", part: str | None = "train",
             training_part: str = "train") -> TrainingSet:
        """Rows of ``part`` of the ``split`` split of a dataset table (``bilayers.parquet``); every row
        of the table when ``part`` is None (known vs new; novel means no match in ``training_part``)."""
        column = f"split_{split}"
        wanted = ["lattice", "species", "frac_coords", "reduced_formula", "num_atoms", column]
        present = set(pq.read_schema(table).names)
        frame = pd.read_parquet(table, columns=[*(["id"] if "id" in present else []), *wanted])
        if part is None:
            return cls(frame, frame[column], training_part)
        return cls(frame[frame[column] == part], training_part=part)

    def __len__(self) -> int:
        return len(self._frame)

    @property
    def training_rows(self) -> int:
        """Rows of the training part (all rows of a reference loaded by part)."""
        return len(self._frame) if self._parts is None else sum(p == self.training_part for p in self._parts)

    @cached_property
    def contact_limits(self) -> ContactLimits:
        """The contact limits this data sets (:func:`scoring.validity.table_contact_limits`), over all its rows,
        computed once (3 s for the 19,926 bilayers)."""
        return table_contact_limits(self._frame)

    def _reduced(self, key: tuple[str, int]) -> list[ReducedCrystal]:
        if key not in self._built:
            rows = self._frame.iloc[self._rows.get(key, [])]
            self._built[key] = [ReducedCrystal(table_structure(r.lattice, r.species, r.frac_coords), self._matcher)
                                for r in rows.itertuples()]
        return self._built[key]

    def _stacking_rows(self, key: tuple[str, int]) -> dict[str, int]:
        """Stacking key -> the first row with it (training rows first), for one (formula, size) group."""
        if key not in self._stackings:
            found: dict[str, int] = {}
            for row, crystal in zip(self._rows.get(key, []), self._reduced(key)):
                name = stacking_key(crystal.structure)
                if name is not None:
                    found.setdefault(name, row)
            self._stackings[key] = found
        return self._stackings[key]

    def prepare(self) -> None:
        """Build every group's structures, height profiles and stacking keys now, which the first crystal of each
        formula and size would otherwise pay for (e.g. before timing requests as a long-running app serves them)."""
        for key in list(self._rows):
            self._stacking_rows(key)
            for crystal in self._reduced(key):
                _ = crystal.profile

    def same_formula(self, structure: Structure) -> list[Structure]:
        """Training crystals with the reduced formula and atom count of ``structure``."""
        return [c.structure for c in self._reduced((structure.composition.reduced_formula, len(structure)))]

    def is_novel(self, crystal: Structure | ReducedCrystal) -> bool:
        """True when no crystal of this reference (of the same formula and size) matches ``crystal``."""
        return self.match(crystal) is None

    def match(self, crystal: Structure | ReducedCrystal) -> Match | None:
        """The crystal of this reference that ``crystal`` is, or None (see :class:`Match`).

        The row with the same stacking key when there is one; the paper's matcher still decides novelty, so it
        runs unless that row is itself a training row (it then fits at once: same crystal)."""
        me = crystal if isinstance(crystal, ReducedCrystal) else ReducedCrystal(crystal, self._matcher)
        key = (me.structure.composition.reduced_formula, len(me.structure))
        name = stacking_key(me.structure)
        exact = self._stacking_rows(key).get(name) if name is not None else None
        if exact is not None and (self._parts is None or self._parts[exact] == self.training_part):
            return Match(self._ids[exact], self._part(exact), exact=True)
        pairs = list(zip(self._rows.get(key, []), self._reduced(key)))
        if exact is not None and self._parts is not None:
            pairs = self._nearest_training_rows_first(me, pairs)
        for row, known in pairs:
            if fits(self._matcher, me, known):
                return Match(self._ids[row if exact is None else exact], self._part(row), exact=exact is not None)
        return None if exact is None else Match(self._ids[exact], self._part(exact), exact=True)

    def _nearest_training_rows_first(self, me: ReducedCrystal,
                                     pairs: list[tuple[int, ReducedCrystal]]) -> list[tuple[int, ReducedCrystal]]:
        """``pairs`` with the training rows sorted by :func:`~scoring.slab_filter.height_distances` from ``me`` and the
        other rows after them as they were.

        Used only when the stacking key has already named the row (a row of another part), so :meth:`match`'s answer
        cannot depend on which training row fits first: the id is the exact row and the part is the training part
        whenever any training row fits. A crystal of a validation or test stacking then costs about one fit instead
        of the ~10 failed fits (0.2 s each) that the table's order made before the first success."""
        training = [p for p in pairs if self._parts[p[0]] == self.training_part]
        distances = height_distances(me.profile, [known.profile for _, known in training])
        nearest_first = [training[i] for i in np.argsort(distances, kind="stable")]
        return nearest_first + [p for p in pairs if self._parts[p[0]] != self.training_part]

    def _part(self, row: int) -> str | None:
        return None if self._parts is None else self._parts[row]

    def novel_given(self, found: Match | None) -> bool:
        """Whether a crystal whose :meth:`match` was ``found`` is novel against the training part: it matched
        nothing, or (for a reference of the whole table) only crystals of other parts."""
        return found is None or (self._parts is not None and found.part != self.training_part)


def first_duplicate(candidate: ReducedCrystal, stored: Iterable[tuple[int, ReducedCrystal]],
                    structure_matcher: StructureMatcher | None = None) -> int | None:
    """Id of the first ``(id, candidate)`` in ``stored`` that matches ``candidate`` (None: none)."""
    m = structure_matcher or matcher()
    n = len(candidate.structure)
    return next((cid for cid, other in stored if len(other.structure) == n and fits(m, candidate, other)), None)


__all__ = ["Match", "ReducedCrystal", "TrainingSet", "first_duplicate", "fits", "matcher", "table_structure"]
