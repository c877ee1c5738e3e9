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

:class:`Oracle` evaluates many structures in CHGNet batches and relaxes atomic
positions at fixed cell with a batched FIRE optimiser (the ASE FIRE algorithm applied
to every structure of the batch at once).  :func:`make_ase_calculator` wraps the same
physics as an ASE calculator with stress, used for the bulk references' cell relaxation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pymatgen.core import Structure

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator

BOHR = 0.529177210903  # angstrom
HARTREE = 27.211386245988  # eV


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
    """Outcome of one fixed-cell relaxation."""

    structure: Structure
    energy: float  # eV, total, of the relaxed structure
    steps: int
    converged: bool
    max_force: float  # eV/angstrom at the end
    initial_energy: float  # eV, total, of the starting structure (the first step's evaluation)


class Oracle:
    """Batched CHGNet + D3 energies, forces and fixed-cell relaxations.

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
        """D3 energy (eV), gradient (N, 3) in eV/angstrom and virial (3, 3) in eV."""
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
        n = len(structures)
        pos = [s.cart_coords.copy() for s in structures]
        vel = [np.zeros_like(p) for p in pos]
        dt = np.full(n, fire.dt)
        alpha = np.full(n, fire.a_start)
        n_pos = np.zeros(n, dtype=int)
        steps = np.zeros(n, dtype=int)
        energy = np.zeros(n)
        initial = np.full(n, np.nan)
        fmax_now = np.full(n, np.inf)
        active = list(range(n))
        current = [s.copy() for s in structures]
        while active:
            batch = [current[i] for i in active]
            e, f = self.energies_forces(batch, slab)
            still: list[int] = []
            for k, i in enumerate(active):
                force = f[k]
                if vertical_only:
                    force = force.copy()
                    force[:, :2] = 0.0
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
                pos[i] = pos[i] + dr
                steps[i] += 1
                s = current[i]
                current[i] = Structure(
                    s.lattice, s.species, pos[i], coords_are_cartesian=True, to_unit_cell=False
                )
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
            stress_chgnet = np.asarray(pred["s"]) / 160.21766208  # GPa -> eV/A^3
            stress = np.asarray(stress_chgnet).reshape(3, 3) + virial / volume
            self.results["energy"] = energy
            self.results["free_energy"] = energy
            self.results["forces"] = np.asarray(pred["f"]) - g_d3
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]

    return OracleCalculator()
