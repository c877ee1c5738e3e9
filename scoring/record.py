"""A generated crystal -> one typed :class:`CandidateRecord`: every derived value and score.

The record is what the store keeps (one ``candidates`` row, :mod:`store.schema`) and what the
app and the command line show: nothing downstream scores a crystal again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pymatgen.core import Structure

from scoring.layers import LayerAnalysis, analyse_layers, gap_problem, in_family, motif_problem
from scoring.validity import (
    COVALENT_RULE,
    MIN_DISTANCE,
    MIN_VOLUME,
    ContactLimits,
    compositionally_valid,
    contact_problem,
    min_distance,
    structurally_valid,
)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class CandidateRecord:
    """One scored crystal; the fields are the store's ``candidates`` columns.

    ``duplicate_of`` is a stored candidate id, or ``-(k + 1)`` for the crystal with
    ``index_in_run`` k of the same run (its id exists only once the run is stored).
    ``novel`` (no match in the model's training part: the paper's metric) and ``known`` (a match among all
    the dataset's crystals; ``known_id`` the row with the same stacking, else the first fit) are None when no
    dataset table was there to compare with.
    ``slab`` says whether the 2D checks
    apply (:attr:`scoring.layers.LayerAnalysis.slab`); for a bulk crystal ``n_layers``, ``vacuum`` and the
    ``interlayer_*`` fields are None: they were not checked, because they mean nothing there.

    Validity is every check that applies (:func:`validity_checks`): the paper's two (``structure_valid``,
    ``composition_valid``), ``contacts_valid`` for every crystal, and for a model of the III-VI bilayer family
    ``motif_valid`` (two X-M-M-X layers, chalcogens outside) and ``gap_valid`` (the interlayer gap in
    :data:`scoring.layers.GAP_RANGE`); a check that does not apply is None. ``invalid_reason`` says, in one
    line, what every failed check found.
    """

    index_in_run: int
    formula: str
    reduced_formula: str
    elements: list[str]
    num_atoms: int
    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    volume: float
    density: float
    predicted_formation_energy: float | None
    min_distance: float | None
    structure_valid: bool
    composition_valid: bool
    contacts_valid: bool
    motif_valid: bool | None
    gap_valid: bool | None
    valid: bool
    invalid_reason: str | None
    n_layers: int | None
    periodic_along_c: bool
    vacuum: float | None
    interlayer_gap: float | None
    interlayer_distance: float | None
    interlayer_too_short: bool | None
    novel: bool | None
    known: bool | None
    known_id: str | None
    duplicate_of: int | None
    poscar: str
    cif: str
    slab: bool

    def row(self) -> dict:
        """Column -> value, as the store writes it."""
        return asdict(self)

    @property
    def verdict(self) -> str:
        """Validity in words: ``valid`` or ``invalid:`` and what every failed check found."""
        return "valid" if self.valid else f"invalid: {self.invalid_reason}"


@dataclass(frozen=True)
class ValidityChecks:
    """Every validity check of one crystal: True (passed), False (failed) or None (does not apply), and the
    reasons of the failures, in the order the checks run."""

    structure: bool
    composition: bool
    contacts: bool
    motif: bool | None
    gap: bool | None
    reasons: tuple[str, ...]

    @property
    def valid(self) -> bool:
        """All checks that apply passed."""
        return not self.reasons

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) if self.reasons else None


def validity_checks(structure: Structure, family: bool | None = None,
                    layers: LayerAnalysis | None = None, contacts: ContactLimits = COVALENT_RULE) -> ValidityChecks:
    """Run every check that applies to ``structure`` (see :class:`CandidateRecord`).

    ``family`` says whether the layer motif and gap range apply: True for a model whose vocabulary is the
    III-VI family (:func:`scoring.layers.in_family`); None decides by the crystal's own elements. ``layers`` is
    the structure's :func:`scoring.layers.analyse_layers`, when the caller has it already. ``contacts`` are the
    limits of the contacts check: the model's training data's (:attr:`scoring.novelty.TrainingSet.contact_limits`)
    when at hand, else the covalent rule.
    """
    reasons: list[str] = []
    structural = structurally_valid(structure)
    if not structural:
        reasons.append(f"degenerate cell ({structure.volume:.3f} Å^3)" if structure.volume < MIN_VOLUME
                       else f"atoms {min_distance(structure):.2f} Å apart (paper's limit {MIN_DISTANCE} Å)")
    compositional = compositionally_valid(structure.composition)
    if not compositional:
        reasons.append("no charge-balanced oxidation states (SMACT)")
    contact = contact_problem(structure, contacts)
    if contact is not None:
        reasons.append(contact)
    family = in_family(el.symbol for el in structure.composition.elements) if family is None else family
    motif = gap = None
    if family:
        problem = motif_problem(structure)
        motif = problem is None
        if problem is not None:
            reasons.append(problem)
        else:
            too = gap_problem(layers if layers is not None else analyse_layers(structure))
            gap = too is None
            if too is not None:
                reasons.append(too)
    return ValidityChecks(structural, compositional, contact is None, motif, gap, tuple(reasons))


def grouped_by_element(structure: Structure) -> Structure:
    """``structure`` with its sites sorted by element symbol (stable within an element): a POSCAR of it has
    one symbol line and one count line (``Al Ga S Se / 2 2 2 2``), as a per-element POTCAR needs."""
    order = sorted(range(len(structure)), key=lambda i: structure[i].specie.symbol)
    if order == list(range(len(structure))):
        return structure
    return Structure.from_sites([structure[i] for i in order])


def candidate_record(index_in_run: int, structure: Structure, predicted_formation_energy: float | None,
                     novel: bool | None = None, duplicate_of: int | None = None,
                     family: bool | None = None, known_id: str | None = None,
                     known: bool | None = None, contacts: ContactLimits = COVALENT_RULE) -> CandidateRecord:
    """Score one crystal: validity (:func:`validity_checks`, ``family`` as there), geometry, the 2D layer
    analysis when it is a slab, the given novelty, known and duplicate verdicts (``known`` defaults to
    whether a ``known_id`` is given when ``novel`` was judged, else None; ``contacts`` as in
    :func:`validity_checks`)."""
    structure = grouped_by_element(structure)
    composition = structure.composition
    layers = analyse_layers(structure)
    checks = validity_checks(structure, family, layers, contacts)
    slab = layers.slab
    a, b, c = structure.lattice.abc
    alpha, beta, gamma = structure.lattice.angles
    return CandidateRecord(
        index_in_run=index_in_run,
        formula=composition.alphabetical_formula.replace(" ", ""),
        reduced_formula=composition.reduced_formula,
        elements=sorted(el.symbol for el in composition.elements),
        num_atoms=len(structure),
        a=a, b=b, c=c, alpha=alpha, beta=beta, gamma=gamma,
        volume=float(structure.volume), density=float(structure.density),
        predicted_formation_energy=_finite(predicted_formation_energy),
        min_distance=_finite(min_distance(structure)),
        structure_valid=checks.structure, composition_valid=checks.composition, contacts_valid=checks.contacts,
        motif_valid=checks.motif, gap_valid=checks.gap, valid=checks.valid, invalid_reason=checks.reason,
        n_layers=layers.n_layers if slab else None, periodic_along_c=layers.periodic_along_c,
        vacuum=_finite(layers.vacuum) if slab else None,
        interlayer_gap=_finite(layers.interlayer_gap) if slab else None,
        interlayer_distance=_finite(layers.interlayer_distance) if slab else None,
        interlayer_too_short=layers.interlayer_too_short if slab else None, slab=slab,
        novel=novel, duplicate_of=duplicate_of, known_id=known_id,
        known=known if known is not None else (None if novel is None else known_id is not None),
        poscar=structure.to(fmt="poscar"), cif=structure.to(fmt="cif"),
    )
