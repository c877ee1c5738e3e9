"""Elemental reference phases for formation energies, relaxed with the oracle.

Ground-state phases (experimental starting structures, fully relaxed with CHGNet + D3):
fcc Al (Fm-3m); alpha-Ga (Cmce, 8f); tetragonal In (I4/mmm); alpha-S8 (Fddd,
four 32h sites, primitive cell of 32 atoms); trigonal Se and Te (P3_121, 3a).

Energy convention.  CHGNet learned Materials Project energies that include the
MP2020 anion corrections, so ``E(compound) - sum(n_i * mu_i)`` from the oracle is an
MP2020-compatible formation energy.  Adding back the correction of each anion
(S, Se, Te; read from pymatgen's ``MP2020Compatibility.yaml``) gives a raw-PBE-like
value.  :func:`anion_corrections` returns those per-atom corrections (eV, negative).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from oracle.calculator import Oracle, make_ase_calculator

ANIONS = ("S", "Se", "Te")


def reference_structure(element: str) -> Structure:
    """Starting structure of the elemental ground state (room-temperature experiment)."""
    if element == "Al":
        return Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.0495), ["Al"], [[0, 0, 0]])
    if element == "Ga":
        lattice = Lattice.orthorhombic(4.5197, 7.6633, 4.5260)
        return Structure.from_spacegroup("Cmce", lattice, ["Ga"], [[0.0, 0.1549, 0.0810]])
    if element == "In":
        lattice = Lattice.tetragonal(3.2523, 4.9461)
        return Structure.from_spacegroup("I4/mmm", lattice, ["In"], [[0, 0, 0]]).get_primitive_structure()
    if element == "S":
        # Origin choice 1 of Fddd: coordinates of the usual origin-2 table shifted by 1/8.
        origin2 = np.array([
            [0.8554, 0.9526, 0.9516], [0.7844, 0.0301, 0.0763],
            [0.7069, 0.9795, 0.0040], [0.7862, 0.9073, 0.1290],
        ])
        lattice = Lattice.orthorhombic(10.4646, 12.8660, 24.4860)
        conventional = Structure.from_spacegroup("Fddd", lattice, ["S"] * 4, origin2 + 0.125)
        return conventional.get_primitive_structure()
    if element in ("Se", "Te"):
        a, c, x = (4.3662, 4.9536, 0.2254) if element == "Se" else (4.4572, 5.9290, 0.2636)
        return Structure.from_spacegroup("P3_121", Lattice.hexagonal(a, c), [element], [[x, 0, 1 / 3]])
    raise ValueError(f"no reference phase for {element!r}; known: Al, Ga, In, S, Se, Te")


def relax_reference(oracle: Oracle, element: str, fmax: float = 0.01, steps: int = 600) -> dict:
    """Relax cell and positions of one elemental phase; returns energy per atom and the cell."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    start = reference_structure(element)
    atoms = AseAtomsAdaptor.get_atoms(start)
    atoms.calc = make_ase_calculator(oracle, slab=False)
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    relaxed = AseAtomsAdaptor.get_structure(atoms)
    energy = float(atoms.get_potential_energy())
    return {
        "element": element,
        "energy_per_atom": energy / len(relaxed),
        "num_atoms": len(relaxed),
        "converged": converged,
        "steps": int(opt.nsteps),
        "volume_per_atom": relaxed.volume / len(relaxed),
        "volume_per_atom_start": start.volume / len(start),
        "lattice_abc": [float(v) for v in relaxed.lattice.abc],
        "structure": relaxed.as_dict(),
    }


def relax_references(oracle: Oracle, elements: Iterable[str]) -> dict[str, dict]:
    """Relax every requested element's reference phase."""
    return {el: relax_reference(oracle, el) for el in elements}


def anion_corrections() -> dict[str, float]:
    """MP2020 composition corrections (eV per anion atom) for S, Se and Te, from pymatgen."""
    import pymatgen.entries as entries_pkg
    import yaml

    path = Path(entries_pkg.__file__).parent / "MP2020Compatibility.yaml"
    if not path.exists():  # moved between pymatgen releases
        import pymatgen.analysis.compatibility as comp_pkg

        path = Path(comp_pkg.__file__).parent / "MP2020Compatibility.yaml"
    data = yaml.safe_load(path.read_text())
    table = data["Corrections"]["CompositionCorrections"]
    return {el: float(table[el]) for el in ANIONS}
