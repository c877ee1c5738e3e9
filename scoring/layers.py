"""Two-dimensional checks of a generated bilayer: layers, vacuum, interlayer gap and contacts.

Layers are the connected pieces of the bond graph: two atoms are bonded when they are
closer than ``BOND_FACTOR`` times the sum of their covalent radii (Cordero, as tabulated by
pymatgen), periodic images included. A gap threshold along c alone cannot separate the
layers of III-VI bilayers: the metal-metal bond inside a M2X2 layer is vertical and as long
(In-In 2.8 Å) as the smallest interlayer gaps of the data (2.8 Å).

Heights are measured along the normal of the ab plane (the stacking direction):

- ``vacuum``: the largest empty slab along the normal (periodic), in Å;
- ``interlayer_gap``: the smallest vertical distance between neighbouring layers (Å);
- ``interlayer_distance``: the shortest interatomic distance between atoms of different
  layers (Å), and ``interlayer_too_short`` when any such contact is shorter than
  ``CONTACT_FACTOR`` times the sum of covalent radii -- closer than a van der Waals contact
  (no training crystal has one; see tests/test_layers.py).
A layer bonded to its own image along c (no vacuum) makes ``periodic_along_c`` true.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from pymatgen.core import Structure

from scoring.validity import covalent_radius

BOND_FACTOR = 1.1
"""Bonded: distance < BOND_FACTOR x (r_cov,i + r_cov,j)."""
CONTACT_FACTOR = 1.3
"""Interlayer contact too short: distance < CONTACT_FACTOR x (r_cov,i + r_cov,j)."""
SEARCH_RADIUS = 6.0
"""Neighbour search radius (Å) for bonds and interlayer contacts."""


SLAB_VACUUM = 6.0
"""Å: the least empty space along c that makes a cell a slab (a 2D crystal in vacuum). The van der Waals gaps
of layered bulk crystals are 2.5-4.5 Å (2.8-4.2 Å between the layers of our bilayers); our slabs have 20 Å."""


@dataclass(frozen=True)
class LayerAnalysis:
    """What the 2D checks found in one structure (distances in Å; NaN where undefined)."""

    n_layers: int
    periodic_along_c: bool
    vacuum: float
    interlayer_gap: float
    interlayer_distance: float
    interlayer_too_short: bool

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def slab(self) -> bool:
        """A 2D crystal: no bonded network runs along c and at least :data:`SLAB_VACUUM` of vacuum separates
        the periodic images. Only then do layers, vacuum and interlayer gap describe the crystal."""
        return not self.periodic_along_c and self.vacuum >= SLAB_VACUUM


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@dataclass(frozen=True)
class _Pieces:
    """The bond-graph layers of a structure and its atoms' heights along the normal, measured upwards
    from the first atom above the largest vacuum (so that a slab's layers do not wrap around)."""

    layer: np.ndarray
    heights: np.ndarray
    periodic_along_c: bool
    vacuum: float
    centers: np.ndarray
    neighbors: np.ndarray
    distances: np.ndarray
    radii: np.ndarray


def analyse_layers(structure: Structure) -> LayerAnalysis:
    """Layers, vacuum, interlayer gap and contacts of ``structure`` (see the module docstring)."""
    pieces = _pieces(structure)
    layer, unwrapped, centers, neighbors, distances, radii = (pieces.layer, pieces.heights, pieces.centers,
                                                              pieces.neighbors, pieces.distances, pieces.radii)
    n_layers = int(layer.max()) + 1 if len(layer) else 0
    spans = sorted((float(unwrapped[layer == k].min()), float(unwrapped[layer == k].max()))
                   for k in range(n_layers))
    gap = min((spans[k + 1][0] - spans[k][1] for k in range(len(spans) - 1)), default=float("nan"))

    between = layer[centers] != layer[neighbors]
    if between.any():
        contact = float(distances[between].min())
        too_short = bool((distances[between] < CONTACT_FACTOR * (radii[centers] + radii[neighbors])[between]).any())
    else:
        contact, too_short = float("nan"), False
    return LayerAnalysis(n_layers, pieces.periodic_along_c, pieces.vacuum if not pieces.periodic_along_c else 0.0,
                         gap, contact, too_short)


METALS = frozenset({"Al", "Ga", "In"})
"""The metal sites (M) of our III-VI layers."""
CHALCOGENS = frozenset({"S", "Se", "Te"})
"""The chalcogen sites (X) of our III-VI layers."""
GAP_RANGE = (2.5, 4.5)
"""Å: the interlayer gaps a bilayer of our family may have. The 19,926 dataset bilayers span 2.824-4.214 Å
(standard deviation 0.30 Å); the range adds about one standard deviation on either side (0.32 Å below,
0.29 Å above). A generated "bilayer" 7-11 Å apart is two monolayers, not a van der Waals heterostructure."""


def in_family(elements: Iterable[str]) -> bool:
    """True when every element is a III-VI metal or chalcogen: the layer motif and the gap range apply to the
    crystals of a model whose vocabulary passes (:mod:`scoring.record`)."""
    present = set(elements)
    return bool(present) and present <= METALS | CHALCOGENS


def gap_problem(layers: LayerAnalysis) -> str | None:
    """Why a two-layer slab's interlayer gap is outside :data:`GAP_RANGE` (None: inside, or not two layers)."""
    if not layers.slab or layers.n_layers != 2:
        return None
    low, high = GAP_RANGE
    if low <= layers.interlayer_gap <= high:
        return None
    return f"interlayer gap {layers.interlayer_gap:.2f} Å outside the van der Waals range {low}-{high} Å"


def motif_problem(structure: Structure) -> str | None:
    """Why ``structure`` is not a bilayer of our family in the right layer order, or None when it is.

    The right order: a slab of exactly two layers (bond-graph pieces), each X-M-M-X along the normal --
    its metals (Al, Ga, In) form one block of heights in the middle, with as many chalcogens (S, Se, Te)
    above that block as below it, and at least one on each side, and no other element. Every bilayer of
    the Janus dataset has it (tests/scoring/test_layer_motif.py).
    """
    symbols = [site.specie.symbol for site in structure]
    other = sorted(set(symbols) - METALS - CHALCOGENS)
    if other:
        return f"holds {', '.join(other)}: not a III-VI (Al, Ga, In with S, Se, Te) bilayer"
    pieces = _pieces(structure)
    if pieces.periodic_along_c or pieces.vacuum < SLAB_VACUUM:
        return "not a slab (no vacuum between the periodic images)"
    n_layers = int(pieces.layer.max()) + 1
    if n_layers != 2:
        return f"{n_layers} layers instead of 2"
    metal = np.array([el in METALS for el in symbols])
    for k in range(2):
        inside = pieces.layer == k
        h, is_metal = pieces.heights[inside], metal[inside]
        if not is_metal.any() or is_metal.all():
            return f"layer {k + 1} lacks {'metals' if not is_metal.any() else 'chalcogens'}"
        low, high = h[is_metal].min(), h[is_metal].max()
        below, above = int((h[~is_metal] < low).sum()), int((h[~is_metal] > high).sum())
        if below + above < int((~is_metal).sum()):
            return f"layer {k + 1} has a chalcogen between its metals (not X-M-M-X)"
        if below == 0 or below != above:
            return f"layer {k + 1} has {below} chalcogens below its metals and {above} above (not X-M-M-X)"
    return None


def site_layers(structure: Structure) -> np.ndarray:
    """The bond-graph layer of each atom, numbered upwards along the normal from the vacuum (0 = bottom)."""
    pieces = _pieces(structure)
    n_layers = int(pieces.layer.max()) + 1 if len(pieces.layer) else 0
    order = np.argsort([float(pieces.heights[pieces.layer == k].mean()) for k in range(n_layers)])
    rank = np.empty(n_layers, dtype=np.int64)
    rank[order] = np.arange(n_layers)
    return rank[pieces.layer]


def heights_from_vacuum(structure: Structure) -> tuple[np.ndarray, float]:
    """Each atom's height along the normal of the ab plane, measured upwards from the first atom above the
    largest empty space (so a slab that crosses the cell's boundary does not wrap), and that space's size (Å)."""
    lattice = structure.lattice.matrix
    normal = np.cross(lattice[0], lattice[1])
    area = float(np.linalg.norm(normal))
    period = float(structure.volume / area)
    heights = np.mod(structure.cart_coords @ (normal / area), period)
    order = np.sort(heights)
    gaps = np.diff(np.concatenate([order, [order[0] + period]]))
    cut = order[(int(gaps.argmax()) + 1) % len(order)]  # first atom above the vacuum
    return np.mod(heights - cut, period), float(gaps.max())


def _pieces(structure: Structure) -> _Pieces:
    n = len(structure)
    radii = np.array([covalent_radius(site.specie.symbol) for site in structure])

    centers, neighbors, images, distances = structure.get_neighbor_list(SEARCH_RADIUS)
    bonded = distances < BOND_FACTOR * (radii[centers] + radii[neighbors])
    parent = list(range(n))
    for i, j in zip(centers[bonded], neighbors[bonded]):
        parent[_find(parent, int(i))] = _find(parent, int(j))
    roots = np.array([_find(parent, i) for i in range(n)])
    layer_ids = {r: k for k, r in enumerate(dict.fromkeys(roots.tolist()))}
    layer = np.array([layer_ids[r] for r in roots.tolist()])

    # a bond to an image along c that closes a loop makes the layer infinite along c
    periodic_c = _infinite_along_c(n, centers[bonded], neighbors[bonded], images[bonded][:, 2])

    unwrapped, vacuum = heights_from_vacuum(structure)
    return _Pieces(layer, unwrapped, periodic_c, vacuum, centers, neighbors, distances, radii)


def _infinite_along_c(n: int, centers: np.ndarray, neighbors: np.ndarray, image_c: np.ndarray) -> bool:
    """True when the bond graph, unrolled along c, connects an atom to its own image.

    Each atom gets an integer offset along c by walking the bonds; a bond whose image
    offset disagrees with the offsets already assigned closes a loop through the c period.
    """
    offset = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    adjacency: dict[int, list[tuple[int, int]]] = {i: [] for i in range(n)}
    for i, j, c in zip(centers.tolist(), neighbors.tolist(), image_c.astype(int).tolist()):
        adjacency[i].append((j, c))
    for start in range(n):
        if offset[start] != np.iinfo(np.int64).min:
            continue
        offset[start] = 0
        stack = [start]
        while stack:
            i = stack.pop()
            for j, c in adjacency[i]:
                want = offset[i] + c
                if offset[j] == np.iinfo(np.int64).min:
                    offset[j] = want
                    stack.append(j)
                elif offset[j] != want:
                    return True
    return False


__all__ = ["BOND_FACTOR", "CHALCOGENS", "CONTACT_FACTOR", "GAP_RANGE", "METALS", "LayerAnalysis", "analyse_layers",
           "gap_problem", "heights_from_vacuum", "in_family", "motif_problem", "site_layers"]
