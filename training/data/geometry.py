"""Atomic geometry of recipe monolayers and bilayers as pymatgen structures.

Conventions: hexagonal cell with a = b, gamma = 120 degrees, c normal to the layers;
chalcogen columns of the bottom layer on site P = (1/3, 2/3), metal columns on
Q = (2/3, 1/3) (see :mod:`training.data.recipe`).  A layer's geometry is its in-plane
lattice constant and the heights of its four atoms, bottom atom at height 0.  The
interlayer gap is the vertical distance between the two facing chalcogen planes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Lattice, Structure

from training.data.recipe import SITES, BilayerConfig, Monolayer

#: Vacuum kept between periodic images of a slab along c, in angstrom.
VACUUM = 20.0

# Covalent radii (Cordero et al. 2008), angstrom: only for the starting guess of heights.
_COVALENT_RADIUS = {"Al": 1.21, "Ga": 1.22, "In": 1.42, "S": 1.05, "Se": 1.20, "Te": 1.38}


@dataclass(frozen=True)
class LayerGeometry:
    """Heights (angstrom) of the four atoms of a layer in its canonical orientation.

    Attributes:
        a: in-plane lattice constant.
        heights: (4,) heights bottom to top, first one 0.
    """

    a: float
    heights: tuple[float, float, float, float]

    @property
    def thickness(self) -> float:
        """Vertical distance between the outer chalcogen planes."""
        return self.heights[3] - self.heights[0]

    def oriented(self, flipped: bool) -> np.ndarray:
        """Heights (4,) bottom to top after an optional flip, bottom atom at 0."""
        h = np.asarray(self.heights, dtype=float)
        return (h[-1] - h[::-1]) if flipped else h - h[0]


def initial_heights(layer: Monolayer, a: float) -> tuple[float, float, float, float]:
    """Starting heights from covalent radii: X-M bonds across the P-Q in-plane offset."""
    x1, m1, m2, x2 = layer.sequence
    in_plane = a / np.sqrt(3.0)

    def rise(el1: str, el2: str) -> float:
        bond = _COVALENT_RADIUS[el1] + _COVALENT_RADIUS[el2] + 0.1
        return float(np.sqrt(max(bond**2 - in_plane**2, 0.8**2)))

    h1 = rise(x1, m1)
    h2 = h1 + _COVALENT_RADIUS[m1] + _COVALENT_RADIUS[m2] + 0.1
    return (0.0, h1, h2, h2 + rise(m2, x2))


def monolayer_structure(layer: Monolayer, geometry: LayerGeometry) -> Structure:
    """The 4-atom monolayer cell with :data:`VACUUM` along c, slab centred in the cell."""
    c = geometry.thickness + VACUUM
    z0 = VACUUM / 2
    sites = ["P", "Q", "Q", "P"]
    coords = [[*SITES[s], (z0 + h) / c] for s, h in zip(sites, geometry.heights)]
    return Structure(Lattice.hexagonal(geometry.a, c), list(layer.sequence), coords)


def bilayer_structure(
    config: BilayerConfig,
    a: float,
    bottom_heights: np.ndarray,
    top_heights: np.ndarray,
    gap: float,
) -> Structure:
    """The 8-atom bilayer cell for one configuration.

    Args:
        config: which layers, flips and stacking.
        a: common in-plane lattice constant (angstrom).
        bottom_heights: (4,) heights of the bottom layer as stacked (already flipped).
        top_heights: (4,) heights of the top layer as stacked (already flipped).
        gap: vertical distance between the facing chalcogen planes (angstrom).
    """
    b = np.asarray(bottom_heights, dtype=float) - bottom_heights[0]
    t = np.asarray(top_heights, dtype=float) - top_heights[0] + b[-1] + gap
    heights = np.concatenate([b, t])
    c = heights[-1] + VACUUM
    z = (heights + VACUUM / 2) / c
    columns = config.atom_columns()
    species = [el for el, _ in columns]
    coords = [[*SITES[site], zi] for (_, site), zi in zip(columns, z)]
    return Structure(Lattice.hexagonal(a, c), species, coords)


def layer_heights_in_bilayer(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian heights (4,), (4,) of the bottom and top layer atoms of a bilayer cell."""
    z = structure.cart_coords[:, 2]
    return z[:4], z[4:]


def interlayer_gap(structure: Structure) -> float:
    """Vertical distance between the top atom plane of layer 1 and the bottom one of layer 2."""
    bottom, top = layer_heights_in_bilayer(structure)
    return float(top.min() - bottom.max())
