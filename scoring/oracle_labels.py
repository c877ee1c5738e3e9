"""The oracle's value of every design label for a relaxed bilayer, in the dataset's own definitions.

The bilayer table (training/data/assemble.py) defines

- ``formation_energy_per_atom``: the relaxed crystal's, from :class:`scoring.oracle_check.OracleCheck`;
- ``interlayer_energy_per_atom``: ``(E - E_bottom - E_top) / N`` with each layer alone in the bilayer's
  cell (the common lattice constant), its positions relaxed;
- ``binding_energy_per_area``: the same energy difference per cell area, in meV/Å²;
- ``interlayer_gap``: the relaxed crystal's gap between its two layers (Å);
- ``a_common``: the relaxed in-plane lattice constant (Å).

Here the layers are cut from the relaxed bilayer by its bond graph and relaxed (positions only, fixed cell)
with the same oracle. A crystal without exactly two layers has no interlayer labels (None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pymatgen.core import Structure

from scoring.layers import analyse_layers, site_layers

ORACLE_LABELS = frozenset({"formation_energy_per_atom", "interlayer_energy_per_atom", "binding_energy_per_area",
                           "interlayer_gap", "a_common"})
"""The labels the oracle can check (the bilayer table's); any other (a band gap, another dataset's convention of the
formation energy) is judged by the predictor only."""
LAYER_FMAX = 0.05
"""eV/Å: force threshold of the isolated layers' relaxation (the bilayers' own)."""
LAYER_STEPS = 300


def split_layers(structure: Structure) -> tuple[Structure, Structure] | None:
    """The bottom and top layer of a two-layer slab, each alone in the same cell (None otherwise)."""
    info = analyse_layers(structure)
    if not info.slab or info.n_layers != 2:
        return None
    layers = site_layers(structure)
    parts = []
    for k in (0, 1):
        keep = [i for i in range(len(structure)) if layers[i] == k]
        parts.append(Structure(structure.lattice, [structure[i].specie for i in keep],
                               structure.frac_coords[keep]))
    return parts[0], parts[1]


def layer_energies(oracle, structures: Sequence[Structure]) -> list[tuple[float, float] | None]:
    """Total energies (eV) of the bottom and top layer of each relaxed bilayer, each relaxed alone at its
    bilayer's cell (None for a crystal without two layers). ``oracle``: :class:`oracle.calculator.Oracle`."""
    pieces: list[Structure] = []
    where: list[int | None] = []
    for s in structures:
        split = split_layers(s)
        if split is None:
            where.append(None)
            continue
        where.append(len(pieces))
        pieces.extend(split)
    if not pieces:
        return [None] * len(structures)
    results = oracle.relax_positions(pieces, slab=True, fmax=LAYER_FMAX, max_steps=LAYER_STEPS, vertical_only=False)
    energies = [r.energy for r in results]
    return [None if k is None else (float(energies[k]), float(energies[k + 1])) for k in where]


def oracle_label_values(relaxed: Structure, formation_energy: float, references: Mapping[str, float],
                        layers: tuple[float, float] | None) -> dict[str, float | None]:
    """Every label of the bilayer table for one relaxed crystal (None where it is undefined)."""
    n = len(relaxed)
    total = formation_energy * n + sum(references[site.specie.symbol] for site in relaxed)
    area = float(np.linalg.norm(np.cross(relaxed.lattice.matrix[0], relaxed.lattice.matrix[1])))
    info = analyse_layers(relaxed)
    two = info.slab and info.n_layers == 2
    bound = None if layers is None else total - layers[0] - layers[1]
    return {
        "formation_energy_per_atom": formation_energy,
        "interlayer_energy_per_atom": None if bound is None else bound / n,
        "binding_energy_per_area": None if bound is None else bound / area * 1000.0,
        "interlayer_gap": float(info.interlayer_gap) if two else None,
        "a_common": float(relaxed.lattice.a) if info.slab else None,
    }


__all__ = ["ORACLE_LABELS", "layer_energies", "oracle_label_values", "split_layers"]
