"""The physics oracle: CHGNet (weights shipped in its wheel) + DFT-D3.

It labels the dataset (``training.data``) and checks generated crystals
(:mod:`scoring.oracle_check`), so it sits below both and imports neither. Heavy packages (CHGNet, torch, dftd3)
are imported only when an :class:`Oracle` is built.

Energies are CHGNet 0.3.0 total energies plus the D3 dispersion energy with zero
damping and PBE parameters, no three-body term.  CHGNet was fitted to Materials
Project energies that carry the MP2020 anion corrections, so energies of compounds
computed here include those corrections (the dataset's elemental references and
formation energies follow the same convention).

Slabs (monolayers, bilayers) are periodic in-plane only for D3 (``periodic=[T, T, F]``),
so the vacuum along c never matters; bulk references are periodic in 3D.

:class:`Oracle` evaluates many structures in CHGNet batches and relaxes them with a
batched FIRE optimiser (the ASE FIRE algorithm applied to every structure of the batch
at once): atomic positions at fixed cell (:meth:`Oracle.relax_positions`), or positions
and the in-plane cell of slabs with the vacuum kept (:meth:`Oracle.relax`, the variables
of ASE's ``UnitCellFilter`` restricted to the in-plane strains).  :func:`make_ase_calculator`
wraps the same physics as an ASE calculator with stress, used for the bulk references'
cell relaxation.

Stress follows ASE's convention: ``stress = (1/V) dE/d(strain)`` in eV/Å^3, positive when
the crystal is under tension (it would lower its energy by shrinking); the virial is
``-V * stress``.  CHGNet's ``s`` output is the same derivative in GPa; the ``virial`` of
the dftd3 library is, despite its name, ``+dE/d(strain)`` in Hartree (both checked by
finite differences in ``tests/oracle/test_cell_relaxation.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pymatgen.core import Lattice, Structure

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator

BOHR = 0.529177210903  # angstrom
HARTREE = 27.211386245988  # eV
EV_PER_A3_IN_GPA = 160.21766208  # CHGNet's stress unit conversion

CellMode = Literal["fixed", "in_plane"]


@dataclass(frozen=True)
class D3Parameters:
    """DFT-D3 with zero damping and the PBE parameters of Grimme et al. (2010)."""

    s6: float = 1.0
    rs6: float = 1.217
    s8: float = 0.722
    rs8: float = 1.0
    alp: float = 14.0
    s9: float = 0.0  # no Axilrod-Teller-Muto three-body term


@dataclass(frozen=True)
class FireSettings:
    """Parameters of ASE's FIRE optimiser (unit masses)."""

    dt: float = 0.1
    dt_max: float = 1.0
    max_step: float = 0.2
    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    a_start: float = 0.1
    f_a: float = 0.99


@dataclass
class RelaxResult:
    """Outcome of one relaxation (fixed cell, or positions and in-plane cell)."""

    structure: Structure
    energy: float  # eV, total, of the relaxed structure
    steps: int
    converged: bool
    max_force: float  # eV/angstrom at the end; with a relaxed cell, the largest generalised force (atoms and cell rows)
    initial_energy: float  # eV, total, of the starting structure (the first step's evaluation)


class _InPlaneCell:
    """The generalised coordinates of one slab whose positions and in-plane cell relax.

    ASE's ``UnitCellFilter`` variables with the strain mask xx, yy, xy: the structure is
    rotated so that a lies along x and a, b span the xy plane (e3 = a x b / |a x b| is z);
    the coordinates are the atom positions of the undeformed reference cell plus
    ``cell_factor * F``, F the deformation gradient (identity at the start).  Only the
    in-plane block F[:2, :2] moves, so the lattice ``L0 @ F.T`` keeps c's height along z
    (the vacuum) exactly and a, b stay in the plane.

    Generalised forces are the exact negative gradient of the energy in these variables:
    ``f @ F`` for the atoms and ``virial @ inv(F).T / cell_factor`` (in-plane block only)
    for the cell, where ``virial = -dE/d(strain)``; the mask (Voigt xx, yy, xy, made a 3x3
    as a stress, as ASE 3.29 does) keeps the whole in-plane 2x2 block with weight one.
    """

    def __init__(self, structure: Structure) -> None:
        lattice = structure.lattice.matrix
        e1 = lattice[0] / np.linalg.norm(lattice[0])
        normal = np.cross(lattice[0], lattice[1])
        e3 = normal / np.linalg.norm(normal)
        e2 = np.cross(e3, e1)
        rotation = np.array([e1, e2, e3])  # rows: the new axes in the old frame
        self.lattice0 = lattice @ rotation.T
        self.lattice0[0, 1:] = 0.0  # zero up to rounding by construction
        self.lattice0[1, 2] = 0.0
        self.species = structure.species
        self.n_atoms = len(structure)
        self.cell_factor = float(self.n_atoms)
        self.start = np.vstack([structure.cart_coords @ rotation.T, self.cell_factor * np.eye(3)])

    def deformation(self, coords: np.ndarray) -> np.ndarray:
        """F from the generalised coordinates: the in-plane block moves, the rest is the identity."""
        f = np.eye(3)
        f[:2, :2] = coords[self.n_atoms:self.n_atoms + 2, :2] / self.cell_factor
        return f

    def structure(self, coords: np.ndarray) -> Structure:
        f = self.deformation(coords)
        return Structure(Lattice(self.lattice0 @ f.T), self.species, coords[:self.n_atoms] @ f.T,
                         coords_are_cartesian=True, to_unit_cell=False)

    def forces(self, coords: np.ndarray, forces: np.ndarray, virial: np.ndarray) -> np.ndarray:
        f = self.deformation(coords)
        out = np.zeros((self.n_atoms + 3, 3))
        out[:self.n_atoms] = forces @ f
        cell = virial @ np.linalg.inv(f).T / self.cell_factor
        out[self.n_atoms:self.n_atoms + 2, :2] = cell[:2, :2]
        return out


class Oracle:
    """Batched CHGNet + D3 energies, forces, stresses and relaxations (fixed cell or in-plane cell).

    Args:
        d3: dispersion parameters.
        batch_size: CHGNet batch size (structures per forward pass).
    """

    def __init__(self, d3: D3Parameters = D3Parameters(), batch_size: int = 128) -> None:
        from chgnet.model import CHGNet
        from dftd3.interface import ZeroDampingParam

        self.model = CHGNet.load(verbose=False)
        self.model.eval()
        self.d3 = d3
        self._d3_param = ZeroDampingParam(
            s6=d3.s6, rs6=d3.rs6, s8=d3.s8, rs8=d3.rs8, alp=d3.alp, s9=d3.s9
        )
        self.batch_size = batch_size

    @property
    def chgnet_version(self) -> str:
        return str(self.model.version)

    @property
    def label(self) -> str:
        """The physics in words, e.g. ``CHGNet 0.3.0 + D3(zero, PBE)`` (stored with every check)."""
        d3 = "D3(zero, PBE)" if self.d3 == D3Parameters() else (
            f"D3(zero, s6={self.d3.s6}, rs6={self.d3.rs6}, s8={self.d3.s8}, rs8={self.d3.rs8}, "
            f"alp={self.d3.alp}, s9={self.d3.s9})")
        return f"CHGNet {self.chgnet_version} + {d3}"

    # -- single points -------------------------------------------------------------
    def energies(self, structures: Sequence[Structure], slab: bool = True) -> np.ndarray:
        """Total energies (eV), shape (n,)."""
        return self._evaluate(structures, slab, forces=False)[0]

    def energies_forces(
        self, structures: Sequence[Structure], slab: bool = True
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Total energies (n,) in eV and forces, a list of (N_i, 3) arrays in eV/angstrom."""
        energies, forces = self._evaluate(structures, slab, forces=True)
        return energies, forces

    def energies_forces_stress(
        self, structures: Sequence[Structure], slab: bool = True
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Total energies (n,) in eV, forces (list of (N_i, 3), eV/angstrom) and stresses
        (n, 3, 3) in eV/angstrom^3, ASE's convention (``(1/V) dE/d(strain)``, positive =
        tensile).  For a slab (D3 periodic in-plane only) only the in-plane components mean
        anything, and they scale with 1/V: ``volume * stress`` is the slab's own quantity.
        """
        graphs = [self.model.graph_converter(s) for s in structures]
        preds = self.model.predict_graph(graphs, task="efs", batch_size=self.batch_size)
        if isinstance(preds, dict):
            preds = [preds]
        energies = np.zeros(len(structures))
        out_forces: list[np.ndarray] = []
        stresses = np.zeros((len(structures), 3, 3))
        for i, (p, s) in enumerate(zip(preds, structures)):
            e_d3, g_d3, strain_derivative_d3 = self.dispersion(s, slab, grad=True)
            energies[i] = float(p["e"]) * len(s) + e_d3
            out_forces.append(np.asarray(p["f"], dtype=float) - g_d3)
            stress_chgnet = np.asarray(p["s"], dtype=float).reshape(3, 3) / EV_PER_A3_IN_GPA
            stresses[i] = stress_chgnet + strain_derivative_d3 / s.volume
        return energies, out_forces, stresses

    def _evaluate(
        self, structures: Sequence[Structure], slab: bool, forces: bool
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        graphs = [self.model.graph_converter(s) for s in structures]
        task = "ef" if forces else "e"
        preds = self.model.predict_graph(graphs, task=task, batch_size=self.batch_size)
        if isinstance(preds, dict):
            preds = [preds]
        energies = np.array([float(p["e"]) * len(s) for p, s in zip(preds, structures)])
        out_forces = [np.asarray(p["f"], dtype=float) for p in preds] if forces else []
        for i, s in enumerate(structures):
            e_d3, g_d3, _ = self.dispersion(s, slab, grad=forces)
            energies[i] += e_d3
            if forces:
                out_forces[i] = out_forces[i] - g_d3
        return energies, out_forces

    def dispersion(
        self, structure: Structure, slab: bool, grad: bool = True
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """D3 energy (eV), gradient (N, 3) in eV/angstrom and the dftd3 library's "virial" (3, 3)
        in eV, which is the strain derivative ``+dE/d(strain)`` (``V * stress`` in ASE's convention)."""
        from dftd3.interface import DispersionModel

        periodic = np.array([True, True, not slab])
        model = DispersionModel(
            np.array(structure.atomic_numbers),
            structure.cart_coords / BOHR,
            structure.lattice.matrix / BOHR,
            periodic,
        )
        res = model.get_dispersion(self._d3_param, grad=grad)
        energy = float(res["energy"]) * HARTREE
        if not grad:
            return energy, np.zeros((len(structure), 3)), np.zeros((3, 3))
        gradient = np.asarray(res["gradient"]) * HARTREE / BOHR
        virial = np.asarray(res["virial"]) * HARTREE
        return energy, gradient, virial

    # -- relaxation ----------------------------------------------------------------
    def relax(
        self,
        structures: Sequence[Structure],
        cell: CellMode = "in_plane",
        fmax: float = 0.05,
        max_steps: int = 500,
        fire: FireSettings = FireSettings(),
        progress: Callable[[int, int], None] | None = None,
    ) -> list[RelaxResult]:
        """Relax slabs (D3 periodic in-plane only), all structures batched together.

        Args:
            structures: starting slabs (not modified); a and b span the layers' plane.
            cell: ``"in_plane"`` relaxes the atoms and the in-plane lattice (a, b and the
                in-plane shear) with c's height along the normal, the vacuum, fixed;
                ``"fixed"`` relaxes the atoms only (in every direction) and leaves the
                lattice untouched.
            fmax: convergence threshold (eV/angstrom) on the largest atomic force and, with
                ``"in_plane"``, on the rows of the cell force ``virial @ inv(F).T / N``
                (ASE's cell factor N, the number of atoms).  For the dataset's 8-atom
                bilayers 0.05 leaves the lattice constant ~0.01 Å from its minimum (a
                residual in-plane virial of ~0.4 eV), 0.01 about 0.002 Å.
            max_steps: FIRE steps before giving up (the result says not converged).
            progress: called after every batched step with (structures finished, total).

        With ``"in_plane"`` the relaxed structures are returned in the frame where a lies
        along x and the layers' normal along z (the input's frame when it already is so);
        ``"fixed"`` keeps the input's frame.  Each result carries the energy of its starting
        structure, taken from the first step's evaluation.
        """
        if cell not in ("fixed", "in_plane"):
            raise ValueError(f"cell must be 'fixed' or 'in_plane', not {cell!r}")
        return self._relax(structures, True, cell, fmax, max_steps, False, fire, progress)

    def relax_positions(
        self,
        structures: Sequence[Structure],
        slab: bool = True,
        fmax: float = 0.02,
        max_steps: int = 300,
        vertical_only: bool = True,
        fire: FireSettings = FireSettings(),
        progress: Callable[[int, int], None] | None = None,
    ) -> list[RelaxResult]:
        """Relax atomic positions at fixed cell, all structures batched together.

        Args:
            structures: starting structures (not modified).
            slab: D3 periodic in-plane only.
            fmax: convergence threshold on the largest atomic force (eV/angstrom).
            max_steps: FIRE steps before giving up (the result says not converged).
            vertical_only: move atoms along z only (keeps the layers' high-symmetry
                in-plane sites exactly; in-plane forces vanish there by symmetry anyway).
                Generated crystals are not on such sites: relax them with ``False``.
            progress: called after every batched step with (structures finished, total).

        Each result carries the energy of its starting structure too, taken from the
        first step's evaluation (no extra pass).
        """
        return self._relax(structures, slab, "fixed", fmax, max_steps, vertical_only, fire, progress)

    def _relax(
        self,
        structures: Sequence[Structure],
        slab: bool,
        cell: CellMode,
        fmax: float,
        max_steps: int,
        vertical_only: bool,
        fire: FireSettings,
        progress: Callable[[int, int], None] | None,
    ) -> list[RelaxResult]:
        """Batched FIRE on each structure's generalised coordinates: Cartesian positions at
        fixed cell, or an :class:`_InPlaneCell`'s positions and deformation gradient."""
        n = len(structures)
        cells = [_InPlaneCell(s) for s in structures] if cell == "in_plane" else None
        if cells is None:
            coords = [s.cart_coords.copy() for s in structures]
            current = [s.copy() for s in structures]
        else:
            coords = [c.start.copy() for c in cells]
            current = [c.structure(x) for c, x in zip(cells, coords)]
        vel = [np.zeros_like(x) for x in coords]
        dt = np.full(n, fire.dt)
        alpha = np.full(n, fire.a_start)
        n_pos = np.zeros(n, dtype=int)
        steps = np.zeros(n, dtype=int)
        energy = np.zeros(n)
        initial = np.full(n, np.nan)
        fmax_now = np.full(n, np.inf)
        active = list(range(n))
        while active:
            batch = [current[i] for i in active]
            if cells is None:
                e, f = self.energies_forces(batch, slab)
                stress = None
            else:
                e, f, stress = self.energies_forces_stress(batch, slab)
            still: list[int] = []
            for k, i in enumerate(active):
                if cells is None:
                    force = f[k]
                    if vertical_only:
                        force = force.copy()
                        force[:, :2] = 0.0
                else:
                    assert stress is not None
                    virial = -batch[k].volume * stress[k]
                    force = cells[i].forces(coords[i], f[k], virial)
                energy[i] = e[k]
                if steps[i] == 0:
                    initial[i] = e[k]
                fmax_now[i] = float(np.linalg.norm(force, axis=1).max())
                if fmax_now[i] < fmax or steps[i] >= max_steps:
                    continue
                v = vel[i]
                power = float(np.vdot(force, v))
                if power > 0:
                    v = (1 - alpha[i]) * v + alpha[i] * force / np.linalg.norm(force) * np.linalg.norm(v)
                    if n_pos[i] > fire.n_min:
                        dt[i] = min(dt[i] * fire.f_inc, fire.dt_max)
                        alpha[i] *= fire.f_a
                    n_pos[i] += 1
                else:
                    v = np.zeros_like(v)
                    alpha[i] = fire.a_start
                    dt[i] *= fire.f_dec
                    n_pos[i] = 0
                v = v + dt[i] * force
                dr = dt[i] * v
                norm = float(np.linalg.norm(dr))
                if norm > fire.max_step:
                    dr *= fire.max_step / norm
                vel[i] = v
                coords[i] = coords[i] + dr
                steps[i] += 1
                if cells is None:
                    s = current[i]
                    current[i] = Structure(
                        s.lattice, s.species, coords[i], coords_are_cartesian=True, to_unit_cell=False
                    )
                else:
                    current[i] = cells[i].structure(coords[i])
                still.append(i)
            active = still
            if progress is not None:
                progress(n - len(active), n)
        return [
            RelaxResult(current[i], float(energy[i]), int(steps[i]), bool(fmax_now[i] < fmax),
                        float(fmax_now[i]), float(initial[i]))
            for i in range(n)
        ]


def make_ase_calculator(oracle: Oracle, slab: bool = False) -> Calculator:
    """An ASE calculator with energy, forces and stress from the same CHGNet + D3 physics."""
    from ase.calculators.calculator import Calculator, all_changes
    from pymatgen.io.ase import AseAtomsAdaptor

    class OracleCalculator(Calculator):
        implemented_properties = ["energy", "free_energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            structure = AseAtomsAdaptor.get_structure(self.atoms)
            graph = oracle.model.graph_converter(structure)
            pred = oracle.model.predict_graph(graph, task="efs")
            e_d3, g_d3, virial = oracle.dispersion(structure, slab, grad=True)
            volume = structure.volume
            energy = float(pred["e"]) * len(structure) + e_d3
            stress_chgnet = np.asarray(pred["s"]) / EV_PER_A3_IN_GPA  # GPa -> eV/A^3
            stress = np.asarray(stress_chgnet).reshape(3, 3) + virial / volume
            self.results["energy"] = energy
            self.results["free_energy"] = energy
            self.results["forces"] = np.asarray(pred["f"]) - g_d3
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]

    return OracleCalculator()
