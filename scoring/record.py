"""A generated crystal -> one typed :class:`CandidateRecord`: every derived value and score.

The record is what the store keeps (one ``candidates`` row, :mod:`store.schema`) and what the
app and the command line show: nothing downstream scores a crystal again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pymatgen.core import Structure

from scoring.layers import analyse_layers
from scoring.validity import compositionally_valid, min_distance, structurally_valid


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class CandidateRecord:
    """One scored crystal; the fields are the store's ``candidates`` columns.

    ``duplicate_of`` is a stored candidate id, or ``-(k + 1)`` for the crystal with
    ``index_in_run`` k of the same run (its id exists only once the run is stored).
    ``novel`` is None when no training table was available to compare with. ``slab`` says whether the 2D checks
    apply (:attr:`scoring.layers.LayerAnalysis.slab`); for a bulk crystal ``n_layers``, ``vacuum`` and the
    ``interlayer_*`` fields are None: they were not checked, because they mean nothing there.
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
    valid: bool
    n_layers: int | None
    periodic_along_c: bool
    vacuum: float | None
    interlayer_gap: float | None
    interlayer_distance: float | None
    interlayer_too_short: bool | None
    novel: bool | None
    duplicate_of: int | None
    poscar: str
    cif: str
    slab: bool

    def row(self) -> dict:
        """Column -> value, as the store writes it."""
        return asdict(self)

    @property
    def verdict(self) -> str:
        """Validity in words: ``valid`` or why not (overlapping atoms, charge balance)."""
        if self.valid:
            return "valid"
        if not self.structure_valid:
            dmin = "?" if self.min_distance is None else f"{self.min_distance:.2f}"
            return f"invalid: atoms {dmin} Å apart"
        return "invalid: no charge-balanced oxidation states (SMACT)"


def candidate_record(index_in_run: int, structure: Structure, predicted_formation_energy: float | None,
                     novel: bool | None = None, duplicate_of: int | None = None) -> CandidateRecord:
    """Score one crystal: validity, geometry, the 2D layer analysis when it is a slab, the given novelty and
    duplicate verdicts."""
    composition = structure.composition
    structural = structurally_valid(structure)
    compositional = compositionally_valid(composition)
    layers = analyse_layers(structure)
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
        structure_valid=structural, composition_valid=compositional, valid=structural and compositional,
        n_layers=layers.n_layers if slab else None, periodic_along_c=layers.periodic_along_c,
        vacuum=_finite(layers.vacuum) if slab else None,
        interlayer_gap=_finite(layers.interlayer_gap) if slab else None,
        interlayer_distance=_finite(layers.interlayer_distance) if slab else None,
        interlayer_too_short=layers.interlayer_too_short if slab else None, slab=slab,
        novel=novel, duplicate_of=duplicate_of,
        poscar=structure.to(fmt="poscar"), cif=structure.to(fmt="cif"),
    )
