"""Templates: the crystals a design starts from (dataset bilayers, or crystals our generator made).

A template fixes what the optimisation does not change: the number of sites, their layer and role, and
the cell's out-of-plane axis. For a slab the atoms are re-wrapped so the slab sits whole in the middle of
the cell (no layer split across the periodic boundary), which lets heights and the interlayer gap be read
directly from the fractional coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from scoring.layers import BOND_FACTOR, analyse_layers, site_layers
from scoring.validity import covalent_radius


@dataclass(frozen=True)
class Template:
    """One starting crystal.

    Attributes:
        id: where it came from (a dataset id, or ``generated:<n>``).
        species: element symbols, one per site.
        frac_coords: (N, 3) fractional coordinates (a slab whole and centred along c).
        lattice: (3, 3) rows are the lattice vectors (Å).
        slab: a 2D crystal in vacuum (the in-plane cell scales, c stays).
        layers: (N,) the bond-graph layer of each site, 0 = bottom (all zeros when not a slab).
        bonds: (E, 2) site pairs bonded in the template (closer than ``BOND_FACTOR`` x their covalent radii),
            each pair once; ``images`` (E, 3) the lattice image of the second site; ``stretch`` (E,) the bond's
            length over the sum of the two covalent radii (what the geometry prior keeps).
    """

    id: str
    species: tuple[str, ...]
    frac_coords: np.ndarray
    lattice: np.ndarray
    slab: bool
    layers: np.ndarray
    bonds: np.ndarray
    images: np.ndarray
    stretch: np.ndarray

    @property
    def num_atoms(self) -> int:
        return len(self.species)

    @property
    def n_layers(self) -> int:
        return int(self.layers.max()) + 1 if self.slab else 1


def _centred_along_c(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates with the largest empty stretch along c around z = 0 (the atoms in the middle)."""
    z = np.mod(frac[:, 2], 1.0)
    order = np.sort(z)
    gaps = np.diff(np.concatenate([order, [order[0] + 1.0]]))
    k = int(gaps.argmax())
    bottom = order[(k + 1) % len(order)]
    span = 1.0 - float(gaps[k])
    out = frac.copy()
    out[:, 2] = np.mod(z - bottom, 1.0) + (1.0 - span) / 2
    return out


def _bonds(structure: Structure, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bonded pairs (i < j, or i == j across an image), the image of j and length / radii sum, on ``frac``."""
    lattice = structure.lattice.matrix
    radii = np.array([covalent_radius(site.specie.symbol) for site in structure])
    centred = Structure(structure.lattice, structure.species, frac)
    centers, neighbors, images, distances = centred.get_neighbor_list(BOND_FACTOR * 2 * radii.max())
    pairs, shifts, stretch = [], [], []
    for i, j, image, d in zip(centers, neighbors, images, distances):
        limit = radii[i] + radii[j]
        if d >= BOND_FACTOR * limit or (i, j) > (j, i) or (i == j and tuple(image) < (0, 0, 0)):
            continue
        pairs.append((int(i), int(j)))
        shifts.append(image)
        stretch.append(float(np.linalg.norm((frac[j] + image - frac[i]) @ lattice)) / limit)
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64), np.zeros((0, 3)), np.zeros(0)
    return np.array(pairs, dtype=np.int64), np.array(shifts, dtype=np.float64), np.array(stretch)


def template_from_structure(structure: Structure, id: str) -> Template:
    """A template of ``structure``: a slab (by the 2D checks) is centred along c and its layers labelled."""
    layers_info = analyse_layers(structure)
    frac = np.array(structure.frac_coords, dtype=np.float64)
    if layers_info.slab:
        frac = _centred_along_c(frac)
        layers = site_layers(structure)
    else:
        layers = np.zeros(len(structure), dtype=np.int64)
    bonds, images, stretch = _bonds(structure, frac)
    return Template(id, tuple(site.specie.symbol for site in structure), frac,
                    np.array(structure.lattice.matrix, dtype=np.float64), bool(layers_info.slab), layers, bonds,
                    images, stretch)


__all__ = ["Template", "template_from_structure"]
