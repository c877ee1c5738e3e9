"""Scoring a batch of generated crystals: one :class:`~scoring.record.CandidateRecord` each.

Besides each crystal's own scores, a batch knows two comparisons:

- novelty and known vs new: no crystal of the model's training part matches it (novel), and the first
  dataset crystal of any part it matches (known), both from one :class:`scoring.novelty.TrainingSet` of the
  whole table (:meth:`~scoring.novelty.TrainingSet.match`);
- duplicates: the first earlier original that matches it, among stored candidates of the same reduced formula
  (the newest :data:`MAX_DUPLICATE_CHECKS`) and earlier crystals of the batch. An original is a crystal that
  duplicates no earlier one: a duplicate's copies are found through its original, so a crystal near a class of
  k near-identical ones costs one StructureMatcher fit, not k (a failing fit tries every supercell lattice).

Stored candidates come from a function (reduced formula -> ``(id, POSCAR)`` pairs) so that
scoring never imports the store; without one, duplicates are looked for inside the batch only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from scoring.novelty import ReducedCrystal, TrainingSet, first_duplicate, matcher
from scoring.record import CandidateRecord, candidate_record

MAX_DUPLICATE_CHECKS = 500
"""Stored originals of the same formula a new one is compared with (the newest ones)."""

StoredSameFormula = Callable[[str], list[tuple[int, str]]]
"""Reduced formula -> stored ``(candidate id, POSCAR)`` pairs of originals (no ``duplicate_of``), oldest first."""
Progress = Callable[[int, int], None]
"""Called with (crystals scored, total)."""


class Scorable(Protocol):
    """What scoring needs of a generated crystal."""

    index: int
    structure: Structure
    predicted_formation_energy: float


class DuplicateFinder:
    """The first earlier original each new one matches: stored originals of its reduced formula (the newest
    :data:`MAX_DUPLICATE_CHECKS`, read once per formula), then the originals seen before it, which are
    kept as ``-(index + 1)`` (resolved to candidate ids by the store)."""

    def __init__(self, stored: StoredSameFormula | None, m: StructureMatcher) -> None:
        self.stored = stored
        self.matcher = m
        self.earlier: dict[str, list[tuple[int, ReducedCrystal]]] = {}  # reduced once, compared with every later

    def trim(self) -> None:
        """Keep the newest :data:`MAX_DUPLICATE_CHECKS` of each formula: what reading the stored candidates again
        would give once the crystals seen so far are stored (a streamed run keeps one finder for all its chunks, so
        each stored crystal is read and reduced once, not once per chunk)."""
        for seen in self.earlier.values():
            del seen[:-MAX_DUPLICATE_CHECKS]

    def first_match(self, index: int, crystal: ReducedCrystal, formula: str) -> int | None:
        """The id (or ``-(index + 1)``) of the first earlier original ``crystal`` matches; with none, it is an
        original and joins the earlier ones."""
        if formula not in self.earlier:
            pairs = self.stored(formula)[-MAX_DUPLICATE_CHECKS:] if self.stored is not None else []
            self.earlier[formula] = [(cid, ReducedCrystal(Structure.from_str(poscar, fmt="poscar"), self.matcher))
                                     for cid, poscar in pairs]
        duplicate = first_duplicate(crystal, self.earlier[formula], self.matcher)
        if duplicate is None:
            self.earlier[formula].append((-(index + 1), crystal))
        return duplicate


def judged_record(index: int, structure: Structure, predicted: float | None, reference: TrainingSet | None,
                  family: bool | None, duplicate_of: int | None = None,
                  crystal: ReducedCrystal | None = None) -> CandidateRecord:
    """The record of one crystal with its novelty and known verdicts against ``reference`` (None: not judged),
    whose data also sets the contact limits (:attr:`scoring.novelty.TrainingSet.contact_limits`)."""
    if reference is None:
        return candidate_record(index, structure, predicted, None, duplicate_of, family)
    found = reference.match(crystal if crystal is not None else structure)
    return candidate_record(index, structure, predicted, reference.novel_given(found), duplicate_of, family,
                            None if found is None else found.id, found is not None, reference.contact_limits)


def score_crystals(crystals: Sequence[Scorable], reference: TrainingSet | None,
                   stored: StoredSameFormula | None = None, progress: Progress | None = None,
                   family: bool | None = None, duplicates: DuplicateFinder | None = None) -> list[CandidateRecord]:
    """One record per crystal, in order (see the module docstring for novelty and duplicates; ``family`` as
    in :func:`scoring.record.validity_checks`). ``duplicates``: the finder of the earlier chunks of a run whose
    crystals are stored chunk by chunk (trimmed here as a fresh read of the store would be), else a new one."""
    if duplicates is None:
        duplicates = DuplicateFinder(stored, matcher())
    duplicates.trim()
    m = duplicates.matcher
    records = []
    for done, crystal in enumerate(crystals, 1):
        s = crystal.structure
        me = ReducedCrystal(s, m)
        duplicate = duplicates.first_match(crystal.index, me, s.composition.reduced_formula)
        records.append(judged_record(crystal.index, s, crystal.predicted_formation_energy, reference, family,
                                     duplicate, me))
        if progress is not None:
            progress(done, len(crystals))
    return records
