"""Validity of generated crystals, in pure pymatgen + SMACT (no ``training`` import).

The CDVAE / ConditionCDVAE+ protocol (method.md, section 3; paper, "Generation"):

- **structural validity**: every interatomic distance (minimum image) is at least 0.5 Å
  and the cell volume at least 0.1 Å^3 (Court et al.);
- **compositional validity**: SMACT charge neutrality with the Pauling electronegativity
  test, alloys (all-metal compositions) counted valid.

SMACT's oxidation-state set matters here. Its 4.x default (ICSD-2024 states) allows
Al only as +3, so 28 of the 225 formulas of our Janus III-VI training data (the Al-rich
MX-type bilayers, 3.6 % of rows; the M-M bonded III-VI layers have formal +2 metals) would
be "invalid". CDVAE's check, which the paper follows, read SMACT's own element table,
the ``smact14`` set, which accepts all 225 training formulas and still rejects NaCl2. We
use ``smact14``.

The paper's two checks let a crystal with atoms 0.89 Å apart pass. Our own check of **contacts** does not:
no two atoms may be closer than :data:`CONTACT_FRACTION` times the sum of their covalent radii (Cordero,
as tabulated by pymatgen). The fraction is set from the data: across all 19,926 bilayers of the Janus
dataset the shortest contact is 0.958 of its radii sum (In-In, the M-M bond of an In2X2 layer; median
0.994), so 0.85 passes every dataset bilayer with a margin of 0.108 (11 % of a bond). An Al-Se pair, for
example, must then be at least 2.05 Å apart, which refuses the 0.9-1.3 Å contacts generated crystals had.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
from pymatgen.core import Composition, Structure

MIN_DISTANCE = 0.5
"""Smallest interatomic distance (Å) of a structurally valid crystal."""
MIN_VOLUME = 0.1
"""Smallest cell volume (Å^3) of a structurally valid crystal."""
OXIDATION_STATES = "smact14"
"""SMACT oxidation-state set of the compositional check (see the module docstring)."""
CONTACT_FRACTION = 0.85
"""No two atoms closer than this fraction of the sum of their covalent radii (see the module docstring)."""
CONTACT_MARGIN = 0.9
"""A pair's limit is the lower of the covalent rule and this fraction of its shortest contact in the model's training
data (:class:`ContactLimits`): ionic crystals bond shorter than covalent radii say (22 % of the perov-5 perovskites
have an O-Ta, Ti-O, ... bond under 0.85 x covalent radii)."""
UNKNOWN_RADIUS = 1.5
"""Covalent radius (Å) taken for an element pymatgen's table lacks."""


def covalent_radius(symbol: str) -> float:
    """Covalent radius of an element in Å (Cordero et al. 2008, as tabulated by pymatgen)."""
    return float(CovalentRadius.radius.get(symbol, UNKNOWN_RADIUS))


def min_distance(structure: Structure) -> float:
    """Shortest distance (Å) between two different sites under periodic boundaries.

    A one-atom cell returns the shortest lattice translation's length.
    """
    if len(structure) == 1:
        return float(min(structure.lattice.abc))
    matrix = structure.distance_matrix + np.diag(np.full(len(structure), np.inf))
    return float(matrix.min())


def structurally_valid(structure: Structure) -> bool:
    """All distances >= :data:`MIN_DISTANCE` and volume >= :data:`MIN_VOLUME`."""
    return structure.volume >= MIN_VOLUME and min_distance(structure) >= MIN_DISTANCE


@lru_cache(maxsize=4096)
def _smact_valid(formula: str) -> bool:
    from smact.screening import smact_validity

    return bool(smact_validity(formula, use_pauling_test=True, include_alloys=True,
                               oxidation_states_set=OXIDATION_STATES))


def compositionally_valid(composition: Composition | str) -> bool:
    """SMACT charge neutrality + Pauling test (smact14 oxidation states)."""
    comp = Composition(composition)
    return _smact_valid(comp.formula.replace(" ", ""))


def pair_key(a: str, b: str) -> tuple[str, str]:
    """An element pair in alphabetical order, e.g. ``("O", "Ta")``."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class ContactLimits:
    """The shortest distance each element pair may have: ``fraction`` (:data:`CONTACT_FRACTION`) x the sum of the
    covalent radii, or :data:`CONTACT_MARGIN` x the shortest contact of the pair in a model's training data
    (``data_shortest``, Å) where that is lower: no crystal need be closer than the closest its data holds, less 10 %.

    The covalent rule was set on the III-VI bilayers, whose every pair sits at 0.958 of its radii sum or more, so
    for them ``data_shortest`` is empty and nothing changes; ionic crystals (oxides, nitrides, fluorides) bond
    shorter than covalent radii say, and their own data sets their limits (:func:`contact_limits`).
    """

    data_shortest: Mapping[tuple[str, str], float] = field(default_factory=dict)
    fraction: float = CONTACT_FRACTION

    def limit(self, a: str, b: str) -> tuple[float, bool]:
        """(limit in Å, whether it comes from the data) of the pair ``a``-``b``."""
        covalent = self.fraction * (covalent_radius(a) + covalent_radius(b))
        shortest = self.data_shortest.get(pair_key(a, b))
        if shortest is not None and CONTACT_MARGIN * shortest < covalent:
            return CONTACT_MARGIN * shortest, True
        return covalent, False


COVALENT_RULE = ContactLimits()
"""The covalent rule alone (no data): what a crystal is checked against when no training data is at hand."""


def shortest_contacts(lattices: np.ndarray, frac_coords: np.ndarray, species: np.ndarray,
                      chunk: int = 1024) -> dict[tuple[str, str], float]:
    """Shortest distance (Å) of every element pair over a stack of crystals with the same atom count.

    ``lattices`` (R, 3, 3) rows as vectors, ``frac_coords`` (R, n, 3), ``species`` (R, n) symbols. Periodic
    images one cell away in every direction count (an atom and its own image too), which holds the shortest
    contact of any cell whose lattice vectors are longer than its bonds. ``chunk`` crystals at a time.
    """
    symbols, codes = np.unique(np.asarray(species).astype(str), return_inverse=True)
    codes = codes.reshape(np.shape(species))
    t = len(symbols)
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float32)
    first, second = np.triu_indices(frac_coords.shape[1])  # each pair once, an atom with its own images too
    best = np.full(t * t, np.inf)
    for start in range(0, len(lattices), chunk):
        frac = frac_coords[start:start + chunk].astype(np.float32)
        lattice = lattices[start:start + chunk].astype(np.float32)
        cart, images = frac @ lattice, shifts @ lattice  # (r, n, 3), (r, 27, 3)
        diff = cart[:, second, None, :] - cart[:, first, None, :] + images[:, None]  # (r, P, 27, 3)
        squared = np.einsum("rpsc,rpsc->rps", diff, diff)
        squared[:, first == second, 13] = np.inf  # an atom and itself, unshifted
        closest = np.sqrt(squared.min(axis=-1))  # (r, P)
        a, b = codes[start:start + chunk, first], codes[start:start + chunk, second]
        np.minimum.at(best, (np.minimum(a, b) * t + np.maximum(a, b)).ravel(), closest.ravel())
    return {(str(symbols[k // t]), str(symbols[k % t])): float(best[k])
            for k in np.flatnonzero(np.isfinite(best))}


def contact_limits(groups: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> ContactLimits:
    """:class:`ContactLimits` of a dataset given as stacks of (lattices, frac_coords, species) of equal atom
    counts (see :func:`shortest_contacts`); only the pairs whose data limit is below the covalent rule are kept."""
    shortest: dict[tuple[str, str], float] = {}
    for lattices, frac, species in groups:
        for pair, d in shortest_contacts(lattices, frac, species).items():
            shortest[pair] = min(shortest.get(pair, np.inf), d)
    every = ContactLimits(shortest)
    return ContactLimits({pair: d for pair, d in shortest.items() if every.limit(*pair)[1]})


def table_contact_limits(frame: pd.DataFrame) -> ContactLimits:
    """:func:`contact_limits` of the rows of a dataset table (its ``lattice``, ``frac_coords`` and ``species``
    columns)."""
    def stacks() -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for _, rows in frame.groupby(frame["species"].map(len)):
            yield (np.stack([np.asarray(v, dtype=float).reshape(3, 3) for v in rows["lattice"]]),
                   np.stack([np.asarray(v, dtype=float).reshape(-1, 3) for v in rows["frac_coords"]]),
                   np.stack([np.asarray(v).astype(str) for v in rows["species"]]))
    return contact_limits(stacks())


def contact_problem(structure: Structure, contacts: ContactLimits = COVALENT_RULE) -> str | None:
    """Why two atoms of ``structure`` are too close, or None when none are.

    Too close: nearer than the pair's limit under ``contacts`` (by default ``fraction`` x (r_cov,i + r_cov,j),
    :data:`CONTACT_FRACTION`), periodic images included. The reason names the worst pair relative to its limit,
    e.g. ``Al-Se 1.27 Å apart (limit 2.05 Å = 0.85 x covalent radii)``, and how many pairs more are too close.
    """
    symbols = [site.specie.symbol for site in structure]
    if len(structure) == 0:
        return None
    radii = np.array([covalent_radius(s) for s in symbols])
    reach = float(2 * contacts.fraction * radii.max()) + 1e-6  # no limit exceeds the covalent rule
    centers, neighbors, _images, distances = structure.get_neighbor_list(reach)
    rule = {pair_key(a, b): contacts.limit(a, b) for a in set(symbols) for b in set(symbols)}
    chosen = [rule[pair_key(symbols[i], symbols[j])] for i, j in zip(centers, neighbors)]
    limits = np.array([limit for limit, _ in chosen], dtype=float)
    close = distances < limits
    if not close.any():
        return None
    ratio = np.where(close, distances / limits, np.inf)
    k = int(ratio.argmin())
    i, j = int(centers[k]), int(neighbors[k])
    pairs = int(close.sum()) // 2  # the neighbour list holds each pair from both ends
    more = f"; {pairs - 1} more pair{'s' if pairs > 2 else ''} too close" if pairs > 1 else ""
    basis = (f"{CONTACT_MARGIN} x the training data's shortest {'-'.join(pair_key(symbols[i], symbols[j]))}"
             if chosen[k][1] else f"{contacts.fraction:g} x covalent radii")
    return f"{symbols[i]}-{symbols[j]} {distances[k]:.2f} Å apart (limit {limits[k]:.2f} Å = {basis}){more}"
