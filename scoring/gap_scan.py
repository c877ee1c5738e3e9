"""The interlayer gap of a bilayer set the way the dataset's labels set it: by a rigid scan, before relaxing.

Why: the van der Waals attraction between the layers is weak. A bilayer started 0.5-1 Å too far apart feels
forces of a few hundredths of an eV/Å on each atom, below the relaxation's threshold (0.05 eV/Å), so FIRE can stop
short of the minimum. Measured on 8 relaxed dataset bilayers with the upper layer moved 0.5 / 0.8 / 1.2 Å away:
relaxation alone ended 3 / 1 / 3 of them more than 0.15 Å from their labelled gap (up to 1.03 Å and 21 meV/atom
off); scan then relaxation ended all 24 within 0.06 Å and 0.3 meV/atom. On the first design evaluation (the
many-gap task) the optimiser had left the layers a median 0.46 Å farther apart than the gap the predictor gave them;
of its first 32 crystals, relaxation alone put 17 inside the task's 3.2-3.5 Å, scan then relaxation 26.

The dataset labelled every stacking by a rigid-layer scan of the gap between facing chalcogen planes (2.6-4.6 Å
in 0.2 Å steps, a cubic spline's minimum), then relaxed from there; the oracle check does the same, so that what
it reports for a generated bilayer does not depend on where the generator put the upper layer.

The scan moves the upper layer as a rigid body along the normal of the layers; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure
from scipy.interpolate import CubicSpline
from scipy.optimize import minimize_scalar

from oracle.calculator import Oracle
from scoring.layers import analyse_layers, site_layers

GAP_GRID = tuple(np.round(np.linspace(2.6, 4.6, 11), 6).tolist())
"""Å: the gaps scanned, as the dataset's labelling protocol (``training/data/stages.py``: 2.6 to 4.6 in 0.2)."""


@dataclass(frozen=True)
class GapScan:
    """The scan of one bilayer.

    Attributes:
        structure: the bilayer with its upper layer at ``gap`` (the input itself when it is not a two-layer slab).
        gap: Å, the gap of the lowest energy (a spline's minimum; a grid end when the minimum is there); NaN when
            nothing was scanned.
        start_gap: Å, the gap as given (NaN when not a two-layer slab).
        at_edge: the lowest energy was at an end of the grid (the true minimum may lie beyond it).
    """

    structure: Structure
    gap: float
    start_gap: float
    at_edge: bool

    @property
    def scanned(self) -> bool:
        return bool(np.isfinite(self.gap))


def scannable(structure: Structure) -> bool:
    """A two-layer slab: the only crystals whose gap is one rigid degree of freedom."""
    layers = analyse_layers(structure)
    return layers.slab and layers.n_layers == 2 and bool(np.isfinite(layers.interlayer_gap))


def with_gap(structure: Structure, gap: float) -> Structure:
    """``structure`` (a two-layer slab) with its upper layer moved rigidly along the layers' normal so that the
    interlayer gap is ``gap`` Å (the lower layer, the lattice and the species unchanged).

    Raises:
        ValueError: not a two-layer slab, or a gap that would not fit in the cell's vacuum.
    """
    return _Bilayer(structure).with_gap(gap)


class _Bilayer:
    """A two-layer slab analysed once (layers, gap, vacuum, normal), to be moved to any number of gaps."""

    def __init__(self, structure: Structure) -> None:
        layers = analyse_layers(structure)
        if not (layers.slab and layers.n_layers == 2):
            raise ValueError(f"only a two-layer slab has one interlayer gap (this crystal has {layers.n_layers} "
                             f"layer(s){'' if layers.slab else ' and is not a slab'})")
        self.structure, self.layers = structure, layers
        matrix = structure.lattice.matrix
        normal = np.cross(matrix[0], matrix[1])
        self.normal = normal / np.linalg.norm(normal)
        self.upper = site_layers(structure) == 1

    def with_gap(self, gap: float) -> Structure:
        layers = self.layers
        shift = float(gap) - layers.interlayer_gap
        if shift >= layers.vacuum - 1.0:
            raise ValueError(f"a gap of {gap:.2f} Å leaves less than 1 Å of vacuum (vacuum {layers.vacuum:.2f} Å, "
                             f"gap {layers.interlayer_gap:.2f} Å)")
        cart = self.structure.cart_coords.copy()
        cart[self.upper] += shift * self.normal
        return Structure(self.structure.lattice, self.structure.species, cart, coords_are_cartesian=True,
                         site_properties=self.structure.site_properties or None)


def scan_gaps(structures: Sequence[Structure], oracle: Oracle, grid: Sequence[float] = GAP_GRID) -> list[GapScan]:
    """The rigid gap scan of every two-layer slab (one batch of single points), others passed through.

    Each scannable bilayer is evaluated at every gap of ``grid``; the gap of the lowest energy is refined by a
    cubic spline between the grid's neighbours of the lowest point (as the dataset's labels were).
    """
    structures = list(structures)
    grid_arr = np.asarray(grid, dtype=float)
    todo = [k for k, s in enumerate(structures) if scannable(s)]
    bilayers = {k: _Bilayer(structures[k]) for k in todo}  # the bond graph once per crystal, not per grid point
    points = [bilayers[k].with_gap(g) for k in todo for g in grid_arr]
    energies = oracle.energies(points).reshape(len(todo), len(grid_arr)) if points else np.zeros((0, len(grid_arr)))
    out = [GapScan(s, float("nan"), float("nan"), False) for s in structures]
    for row, k in zip(energies, todo):
        i = int(np.argmin(row))
        edge = not 0 < i < len(grid_arr) - 1
        if edge:
            best = float(grid_arr[i])
        else:
            spline = CubicSpline(grid_arr, row)
            best = float(minimize_scalar(spline, bounds=(grid_arr[i - 1], grid_arr[i + 1]), method="bounded").x)
        out[k] = GapScan(bilayers[k].with_gap(best), best, float(bilayers[k].layers.interlayer_gap), edge)
    return out


__all__ = ["GAP_GRID", "GapScan", "scan_gaps", "scannable", "with_gap"]
