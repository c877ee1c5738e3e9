"""Check generated crystals with the physics oracle that labelled the dataset.

The model predicts a formation energy; the oracle says what the physics of the dataset gives for the same crystal.
The protocol: for a two-layer slab, first the rigid scan of the interlayer gap that labelled the dataset
(:mod:`scoring.gap_scan`; the van der Waals forces of a bilayer started too far apart are below the threshold, so a
relaxation alone can stop short), then a relaxation of **all** atomic positions (a generated crystal does not sit
on the layers' high-symmetry sites, so in-plane forces need not vanish) **and of the in-plane cell** (a, b and the
angle between them; the height of c, hence the vacuum, stays fixed) with CHGNet 0.3.0 + DFT-D3 (zero damping, PBE;
:mod:`oracle.calculator`), D3 periodic in-plane only (a slab: the vacuum along c never matters), batched FIRE until
the largest force (atoms and cell) is below ``fmax = 0.05 eV/Å`` or ``500`` steps have passed.

Why the in-plane cell moves: the dataset's lattice constant is itself relaxed (the common a* that minimises
the two layers' energies), so a generated crystal whose lattice the model got 2 % wrong would otherwise be
judged strained, and its formation energy compared with relaxed labels would be too high. The vacuum stays
fixed because it is not physics: relaxing it would only let the cell drift. ``cell="fixed"`` keeps the
paper's fixed-cell check.

What a check reports (:class:`OracleCheck`):

- the formation energy in the dataset's convention (:mod:`oracle.convention`), exactly like the
  dataset's ``formation_energy_per_atom`` label;
- the energy drop from the generated (unrelaxed) crystal to the relaxed one, per cell and
  per atom: how far the generator put the atoms from a local minimum;
- the root-mean-square displacement of the atoms during the relaxation (Å, minimum image
  under the fixed lattice): the paper's measure of how close to relaxed a generated
  crystal is;
- the interlayer gap of the relaxed crystal (:mod:`scoring.layers`), when it has two layers;
- ``flags``: why the result looks wrong, if it does (:func:`oracle_flags`): an energy drop above
  :data:`DROP_FLAG`, layers that split or merged, a gap that left the van der Waals range.

Imports neither ``training`` nor, until an oracle is built, torch or CHGNet.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Lattice, Structure

from core.threads import torch_threads
from oracle.calculator import Oracle, RelaxResult
from oracle.convention import formation_energy
from oracle.shared import OracleError, get_oracle
from scoring.gap_scan import GAP_GRID, GapScan, scan_gaps
from scoring.layers import LayerAnalysis, analyse_layers, gap_problem, in_family
from scoring.record import grouped_by_element
from scoring.validity import MIN_DISTANCE, structurally_valid

FMAX = 0.05
"""eV/Å: convergence threshold on the largest atomic force (the paper's/issue's protocol)."""
MAX_STEPS = 500
"""FIRE steps before a relaxation is reported as not converged (the paper's/issue's protocol)."""
THREADS = 1
"""Torch intra-op threads during a check. An 8-atom cell is far too small to share between
threads: on a 2-core machine busy with other work, one CHGNet + D3 step took 1.7 s with two
threads (each operation waits for a descheduled thread) and 0.017 s with one; on the idle
machine two threads were only about 20 % faster (a batch of 4 crystals: 1.06 s against 1.32 s)."""


CELLS = ("in_plane", "fixed")
"""What a relaxation moves besides the atoms: the in-plane cell (the default), or nothing."""
DROP_FLAG = 0.3
"""eV/atom: an energy drop above this is flagged. It is three standard deviations (0.10) of the dataset's
formation energies and half their whole span (-1.07 to -0.42 eV/atom): a crystal that falls that far was not a
bilayer near a minimum, so the relaxed crystal is not the one the model proposed, whatever the oracle reports."""

_CHECK_LOCK = threading.Lock()
"""One check at a time per process: the app's sessions share the oracle."""


@dataclass(frozen=True)
class OracleCheck:
    """The oracle's verdict on one crystal (energies from CHGNet + D3, see the module docstring).

    Attributes:
        formation_energy: eV/atom of the relaxed crystal, the dataset's convention.
        initial_formation_energy: eV/atom of the crystal as generated (unrelaxed).
        energy_drop_per_atom: ``initial_formation_energy - formation_energy`` (eV/atom, >= 0
            for a relaxation that went downhill).
        energy_drop: the same per cell (eV), the paper's "energy difference".
        steps: FIRE steps taken.
        converged: the largest force fell below ``fmax`` within ``max_steps``.
        max_force: the largest atomic force at the end (eV/Å).
        interlayer_gap: smallest vertical distance between the two layers of the relaxed
            crystal (Å); None when it does not have exactly two layers.
        rmsd: root-mean-square displacement start -> relaxed (Å, minimum image, in the relaxed cell).
        relaxed: the relaxed crystal (sites wrapped into the cell and grouped by element; a relaxed cell with a
            along x and the layers in the xy plane, :func:`layers_in_xy`).
        cell: what moved besides the atoms (one of :data:`CELLS`).
        scan_gap: Å, the gap the rigid scan set before relaxing (None: not scanned, not a two-layer slab or the
            scan was switched off).
        flags: why the result looks wrong (:func:`oracle_flags`); empty when it does not.
    """

    formation_energy: float
    initial_formation_energy: float
    energy_drop_per_atom: float
    energy_drop: float
    steps: int
    converged: bool
    max_force: float
    interlayer_gap: float | None
    rmsd: float
    relaxed: Structure
    cell: str = "fixed"
    flags: tuple[str, ...] = ()
    scan_gap: float | None = None


def input_problem(structure: Structure, references: Mapping[str, float]) -> str | None:
    """Why the oracle cannot check ``structure`` (None: it can).

    Every element needs a reference energy, and no two atoms may overlap (closer than the
    structural-validity limit): CHGNet has never seen such contacts and its forces there
    are meaningless.
    """
    missing = missing_references(structure, references)
    if missing:
        return (f"no elemental reference for {', '.join(missing)} "
                f"(known: {', '.join(sorted(references))}); the formation energy needs one per element")
    if not structurally_valid(structure):
        return (f"atoms closer than {MIN_DISTANCE} Å (or a degenerate cell): not a crystal the oracle "
                "can relax")
    return None


def missing_references(structure: Structure, references: Mapping[str, float]) -> list[str]:
    """The elements of ``structure`` without an elemental reference energy, sorted."""
    return sorted({el.symbol for el in structure.composition.elements} - set(references))


def refused_summary(structures: Sequence[Structure], references: Mapping[str, float]) -> str | None:
    """One line on the crystals among ``structures`` the oracle cannot take (:func:`input_problem`), by reason,
    e.g. ``256 crystals not relaxed: 256 with an element the oracle has no reference for (Ba, O, Ti; it has Al,
    Ga, In, S, Se, Te)``; None when it can take them all."""
    missing: set[str] = set()
    no_reference = overlapping = 0
    for structure in structures:
        lacking = missing_references(structure, references)
        if lacking:
            no_reference += 1
            missing.update(lacking)
        elif input_problem(structure, references) is not None:
            overlapping += 1
    if not no_reference and not overlapping:
        return None
    parts = []
    if no_reference:
        parts.append(f"{no_reference} with an element the oracle has no reference for ({', '.join(sorted(missing))};"
                     f" it has {', '.join(sorted(references))})")
    if overlapping:
        parts.append(f"{overlapping} with atoms closer than {MIN_DISTANCE} Å")
    total = no_reference + overlapping
    return f"{total} crystal{'s' if total != 1 else ''} not relaxed: {', '.join(parts)}"


def displacement_rmsd(start: Structure, end: Structure) -> float:
    """Root-mean-square displacement (Å) of the atoms from ``start`` to ``end``, relative to the cell.

    The change of each atom's fractional coordinates is measured in ``end``'s lattice, so a relaxation that
    also strained (or, in another Cartesian frame, rotated) the cell counts only how the atoms moved within it;
    at a fixed cell this is the plain Cartesian displacement. Each atom's displacement is its shortest periodic
    image (minimum image), so an atom that crossed a cell face counts by how far it moved, not by a lattice
    vector. The fractional difference is first reduced to [-1/2, 1/2) and then the 27 neighbouring images are
    compared, which is exact for skewed (e.g. hexagonal) cells too.
    """
    if len(start) != len(end):
        raise ValueError(f"cannot compare {len(start)} atoms with {len(end)}")
    if len(start) == 0:
        return 0.0
    lattice = end.lattice.matrix
    delta = end.frac_coords - start.frac_coords
    delta -= np.round(delta)
    images = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)
    cartesian = (delta[:, None, :] + images[None, :, :]) @ lattice
    shortest = np.min(np.einsum("nki,nki->nk", cartesian, cartesian), axis=1)
    return float(np.sqrt(shortest.mean()))


def layers_in_xy(lattice: Lattice) -> Lattice:
    """``lattice`` rotated so that a lies along x and a, b span the xy plane (the normal of the layers along z),
    as slab DFT set-ups expect; lengths, angles and fractional coordinates are unchanged."""
    m = lattice.matrix
    e1 = m[0] / np.linalg.norm(m[0])
    e3 = np.cross(m[0], m[1])
    e3 /= np.linalg.norm(e3)
    rotated = m @ np.array([e1, np.cross(e3, e1), e3]).T
    rotated[0, 1:] = 0.0  # zero up to rounding by construction
    rotated[1, 2] = 0.0
    return Lattice(rotated)


def oracle_flags(drop_per_atom: float, before: LayerAnalysis, after: LayerAnalysis, family: bool,
                 scan: GapScan | None = None) -> tuple[str, ...]:
    """Why a relaxation's result looks wrong: a drop above :data:`DROP_FLAG`, layers that split or merged (a slab
    whose number of layers changed), for our bilayer family a gap that left :data:`scoring.layers.GAP_RANGE`, and a
    rigid gap scan whose lowest energy lay at an end of its grid."""
    flags = []
    if scan is not None and scan.scanned and scan.at_edge:
        flags.append(f"the rigid gap scan's lowest energy is at the end of its grid ({scan.gap:.1f} Å; "
                     f"{GAP_GRID[0]}-{GAP_GRID[-1]} Å scanned)")
    if drop_per_atom > DROP_FLAG:
        flags.append(f"energy fell {drop_per_atom:.2f} eV/atom (flagged above {DROP_FLAG}): not near a minimum as "
                     "generated")
    if before.slab and after.n_layers != before.n_layers:
        flags.append(f"layers {'merged' if after.n_layers < before.n_layers else 'split'}: {before.n_layers} -> "
                     f"{after.n_layers}")
    gap = gap_problem(after) if family else None
    if gap is not None:
        flags.append(f"after relaxation, {gap}")
    return tuple(flags)


def _check(start: Structure, result: RelaxResult, references: Mapping[str, float], cell: str,
           initial_energy: float, scan: GapScan) -> OracleCheck:
    n = len(start)
    final = formation_energy(result.energy, start, references)
    initial = formation_energy(initial_energy, start, references)
    moved = result.structure
    standard = moved.lattice if cell == "fixed" else layers_in_xy(moved.lattice)
    relaxed = grouped_by_element(Structure(standard, moved.species, moved.frac_coords, to_unit_cell=True))
    layers = analyse_layers(relaxed)
    gap = layers.interlayer_gap if layers.n_layers == 2 and math.isfinite(layers.interlayer_gap) else None
    family = in_family(el.symbol for el in start.composition.elements)
    return OracleCheck(
        formation_energy=final,
        initial_formation_energy=initial,
        energy_drop_per_atom=initial - final,
        energy_drop=(initial - final) * n,
        steps=result.steps,
        converged=result.converged,
        max_force=result.max_force,
        interlayer_gap=None if gap is None else float(gap),
        rmsd=displacement_rmsd(start, moved),
        relaxed=relaxed,
        cell=cell,
        flags=oracle_flags(initial - final, analyse_layers(start), layers, family, scan),
        scan_gap=scan.gap if scan.scanned else None,
    )


def check_with_oracle(
    structures: Sequence[Structure],
    references: Mapping[str, float],
    oracle: Oracle | None = None,
    fmax: float = FMAX,
    max_steps: int = MAX_STEPS,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = THREADS,
    cell: str = "in_plane",
    gap_scan: bool = True,
) -> list[OracleCheck]:
    """Relax every crystal with the oracle, all in one batch, and report on each.

    Protocol (see the module docstring): a two-layer slab's gap is first set by the rigid scan of
    :func:`scoring.gap_scan.scan_gaps` (unless ``gap_scan`` is False), then all atomic positions move, and the in-
    plane cell unless ``cell`` is ``fixed``; D3 is periodic in-plane only, FIRE stops when the largest force is
    below ``fmax`` (0.05 eV/Å) or after ``max_steps`` (500) steps.

    Args:
        structures: the crystals as generated (not modified).
        references: element -> energy per atom of its ground state (:func:`load_references`).
        oracle: the oracle to use (default :func:`get_oracle`, loaded on first use).
        fmax: force threshold, eV/Å.
        max_steps: largest number of FIRE steps.
        progress: called after every batched FIRE step with (crystals finished, total).
        threads: torch threads during the relaxation (:data:`THREADS`; None leaves torch's).
        gap_scan: scan the gap of two-layer slabs before relaxing (the dataset's protocol).

    Raises:
        OracleError: a crystal has an element without a reference, or overlapping atoms
            (checked for all crystals before any work).
    """
    if not fmax > 0:
        raise ValueError(f"fmax must be a positive force in eV/Å (got {fmax})")
    if max_steps < 0:
        raise ValueError(f"max_steps must be 0 or more (got {max_steps})")
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)} (got {cell!r})")
    structures = list(structures)
    for k, structure in enumerate(structures):
        problem = input_problem(structure, references)
        if problem is not None:
            formula = structure.composition.alphabetical_formula.replace(" ", "")
            raise OracleError(f"crystal {k} ({formula}): {problem}")
    if not structures:
        return []
    oracle = oracle if oracle is not None else get_oracle()
    with _CHECK_LOCK, torch_threads(threads):  # one check at a time per process (app sessions share the model)
        scans = scan_gaps(structures, oracle) if gap_scan else [GapScan(s, math.nan, math.nan, False)
                                                                 for s in structures]
        results = oracle.relax([scan.structure for scan in scans], cell=cell, fmax=fmax, max_steps=max_steps,
                               progress=progress)
        moved = [k for k, scan in enumerate(scans) if scan.scanned]
        as_given = dict(zip(moved, oracle.energies([structures[k] for k in moved]))) if moved else {}
    initial = [float(as_given.get(k, r.initial_energy)) for k, r in enumerate(results)]
    return [_check(s, r, references, cell, e0, scan)
            for s, r, e0, scan in zip(structures, results, initial, scans)]
