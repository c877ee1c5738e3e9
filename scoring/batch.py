"""Scoring a batch of generated crystals: one :class:`~scoring.record.CandidateRecord` each.

Besides each crystal's own scores, a batch knows two comparisons:

- novelty: no crystal of the model's training part matches it (:class:`scoring.novelty.TrainingSet`);
- duplicates: the first earlier crystal that matches it, among stored candidates of the same
  reduced formula (the newest :data:`MAX_DUPLICATE_CHECKS`) and earlier crystals of the batch.

Stored candidates come from a function (reduced formula -> ``(id, POSCAR)`` pairs) so that
scoring never imports the store; without one, duplicates are looked for inside the batch only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pymatgen.core import Structure

from scoring.novelty import ReducedCrystal, TrainingSet, first_duplicate, matcher
from scoring.record import CandidateRecord, candidate_record

MAX_DUPLICATE_CHECKS = 500
"""Stored candidates of the same formula a new one is compared with (the newest ones)."""

StoredSameFormula = Callable[[str], list[tuple[int, str]]]
"""Reduced formula -> stored ``(candidate id, POSCAR)`` pairs, oldest first."""
Progress = Callable[[int, int], None]
"""Called with (crystals scored, total)."""


class Scorable(Protocol):
    """What scoring needs of a generated crystal."""

    index: int
    structure: Structure
    predicted_formation_energy: float


def score_crystals(crystals: Sequence[Scorable], reference: TrainingSet | None,
                   stored: StoredSameFormula | None = None, progress: Progress | None = None) -> list[CandidateRecord]:
    """One record per crystal, in order (see the module docstring for novelty and duplicates)."""
    m = matcher()
    earlier: dict[str, list[tuple[int, ReducedCrystal]]] = {}  # reduced once, compared with every later crystal
    records = []
    for done, crystal in enumerate(crystals, 1):
        s = crystal.structure
        me = ReducedCrystal(s, m)
        formula = s.composition.reduced_formula
        if formula not in earlier:
            pairs = stored(formula)[-MAX_DUPLICATE_CHECKS:] if stored is not None else []
            earlier[formula] = [(cid, ReducedCrystal(Structure.from_str(poscar, fmt="poscar"), m))
                                for cid, poscar in pairs]
        duplicate = first_duplicate(me, earlier[formula], m)
        novel = None if reference is None else reference.is_novel(me)
        records.append(candidate_record(crystal.index, s, crystal.predicted_formation_energy, novel, duplicate))
        earlier[formula].append((-(crystal.index + 1), me))  # same batch: -(index + 1), resolved by the store
        if progress is not None:
            progress(done, len(crystals))
    return records
