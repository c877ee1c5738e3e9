"""A generated crystal -> one ``candidates`` row (every derived value and score)."""

from __future__ import annotations

import math

from pymatgen.core import Structure

from vdwgen.layers import analyse_layers
from vdwgen.scoring import compositionally_valid, min_distance, structurally_valid


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def candidate_record(index_in_run: int, structure: Structure, predicted_formation_energy: float | None,
                     novel: bool | None = None, duplicate_of: int | None = None) -> dict:
    """The ``candidates`` columns of one crystal (see :mod:`store.schema`)."""
    composition = structure.composition
    structural = structurally_valid(structure)
    compositional = compositionally_valid(composition)
    layers = analyse_layers(structure)
    a, b, c = structure.lattice.abc
    alpha, beta, gamma = structure.lattice.angles
    return {
        "index_in_run": index_in_run,
        "formula": composition.alphabetical_formula.replace(" ", ""),
        "reduced_formula": composition.reduced_formula,
        "elements": sorted(el.symbol for el in composition.elements),
        "num_atoms": len(structure),
        "a": a, "b": b, "c": c, "alpha": alpha, "beta": beta, "gamma": gamma,
        "volume": float(structure.volume), "density": float(structure.density),
        "predicted_formation_energy": _finite(predicted_formation_energy) if predicted_formation_energy is not None
        else None,
        "min_distance": _finite(min_distance(structure)),
        "structure_valid": structural, "composition_valid": compositional, "valid": structural and compositional,
        "n_layers": layers.n_layers, "periodic_along_c": layers.periodic_along_c,
        "vacuum": _finite(layers.vacuum), "interlayer_gap": _finite(layers.interlayer_gap),
        "interlayer_distance": _finite(layers.interlayer_distance),
        "interlayer_too_short": layers.interlayer_too_short,
        "novel": novel, "duplicate_of": duplicate_of,
        "poscar": structure.to(fmt="poscar"), "cif": structure.to(fmt="cif"),
    }
