"""The J2DH recipe: 45 Janus III-VI monolayers and the 19,926 bilayer configurations built from them.

Each monolayer is a 4-atom hexagonal quadruple layer X-M-M'-X' (bottom to top) with
M, M' in {Al, Ga, In} and X, X' in {S, Se, Te}: both chalcogens sit on the in-plane
site P = (1/3, 2/3), both metals on Q = (2/3, 1/3), and the M-M' bond is vertical.

Families (45 in all): 9 MX (mirror-symmetric, P-6m2), 9 MM'X2, 9 M2XX' and
18 MM'XX' (two metal orders each); the last three are Janus (P3m1).

A bilayer is a bottom and a top monolayer, each possibly flipped upside down, in one
of six stackings: two relative rotations (0 and 60 degrees) times three lateral
registries of the top layer, shifts (0, 0), (1/3, 2/3) and (2/3, 1/3).  Flipping the
whole bilayer swaps its layers, so a hetero pair keeps its first monolayer at the
bottom; flips of a mirror-symmetric layer change nothing; for a homo pair of a Janus
layer "both up" and "both down" are one bilayer.  That gives 3,321 flip classes and
19,926 configurations.  Some stackings of homo pairs are the same crystal (related by a
lattice symmetry); :func:`symmetry_duplicates` finds them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement, product
from typing import Literal

METALS: tuple[str, ...] = ("Al", "Ga", "In")
CHALCOGENS: tuple[str, ...] = ("S", "Se", "Te")

Family = Literal["MX", "MM'X2", "M2XX'", "MM'XX'"]

#: In-plane sites of the hexagonal cell, as fractional (x, y).
SITES: dict[str, tuple[float, float]] = {"O": (0.0, 0.0), "P": (1 / 3, 2 / 3), "Q": (2 / 3, 1 / 3)}

#: The six stackings: rotation of the top layer (degrees) and its lateral shift (a site name).
STACKINGS: tuple[tuple[int, str], ...] = tuple(product((0, 60), ("O", "P", "Q")))


@dataclass(frozen=True)
class Monolayer:
    """One X-M-M'-X' quadruple layer in its canonical (unflipped) orientation.

    Attributes:
        sequence: element symbols bottom to top, e.g. ``("S", "Ga", "In", "Se")``.
        family: which of the four recipe families it belongs to.
    """

    sequence: tuple[str, str, str, str]
    family: Family

    @property
    def name(self) -> str:
        """Stable identifier, the sequence joined by dashes (``"S-Ga-In-Se"``)."""
        return "-".join(self.sequence)

    @property
    def formula(self) -> str:
        """Formula of the 4-atom cell, metals then chalcogens, e.g. ``"GaInSSe"`` or ``"Ga2S2"``."""
        order = METALS + CHALCOGENS
        counts = {el: self.sequence.count(el) for el in order if el in self.sequence}
        return "".join(f"{el}{n if n > 1 else ''}" for el, n in counts.items())

    @property
    def mirror_symmetric(self) -> bool:
        """True when flipping the layer gives the same layer (space group P-6m2)."""
        return self.sequence == self.sequence[::-1]

    @property
    def space_group_number(self) -> int:
        """187 (P-6m2) for mirror-symmetric layers, 156 (P3m1) for Janus layers."""
        return 187 if self.mirror_symmetric else 156

    def oriented(self, flipped: bool) -> tuple[str, str, str, str]:
        """Sequence bottom to top after an optional flip."""
        return self.sequence[::-1] if flipped else self.sequence


def enumerate_monolayers() -> list[Monolayer]:
    """All 45 monolayers of the recipe, in a fixed order (MX, MM'X2, M2XX', MM'XX').

    Canonical orientation: the lighter chalcogen at the bottom; for equal chalcogens
    the lighter metal at the bottom (orders S < Se < Te and Al < Ga < In).
    """
    layers: list[Monolayer] = []
    for m, x in product(METALS, CHALCOGENS):
        layers.append(Monolayer((x, m, m, x), "MX"))
    for (m1, m2), x in product(_distinct_pairs(METALS), CHALCOGENS):
        layers.append(Monolayer((x, m1, m2, x), "MM'X2"))
    for m, (x1, x2) in product(METALS, _distinct_pairs(CHALCOGENS)):
        layers.append(Monolayer((x1, m, m, x2), "M2XX'"))
    for (m1, m2), (x1, x2) in product(_distinct_pairs(METALS), _distinct_pairs(CHALCOGENS)):
        layers.append(Monolayer((x1, m1, m2, x2), "MM'XX'"))
        layers.append(Monolayer((x1, m2, m1, x2), "MM'XX'"))
    return layers


def _distinct_pairs(elements: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(elements) for b in elements[i + 1 :]]


@dataclass(frozen=True)
class FlipClass:
    """A bottom and a top monolayer with their flips (one of the 3,321 flip classes)."""

    index: int
    bottom: Monolayer
    bottom_flipped: bool
    top: Monolayer
    top_flipped: bool

    @property
    def name(self) -> str:
        """E.g. ``"S-Ga-Ga-S/Se-In-In-Te^"``; a caret marks a flipped layer."""
        return (
            f"{self.bottom.name}{'^' if self.bottom_flipped else ''}/"
            f"{self.top.name}{'^' if self.top_flipped else ''}"
        )


@dataclass(frozen=True)
class BilayerConfig:
    """One bilayer configuration: a flip class in one of the six stackings.

    Attributes:
        index: position in the enumeration, 0..19925 (stable: the dataset id derives from it).
        flip_class: the two layers and their flips.
        rotation_deg: 0 or 60, rotation of the top layer about the c axis.
        shift: site name ``"O"``, ``"P"`` or ``"Q"``: lateral shift of the top layer.
    """

    index: int
    flip_class: FlipClass
    rotation_deg: int
    shift: str

    @property
    def id(self) -> str:
        """Stable identifier ``"jb-00000"``..``"jb-19925"``."""
        return f"jb-{self.index:05d}"

    @property
    def stacking(self) -> str:
        """Stacking label ``"r0_sO"`` ... ``"r60_sQ"``."""
        return f"r{self.rotation_deg}_s{self.shift}"

    def top_sites(self) -> tuple[str, str]:
        """In-plane sites (chalcogen column, metal column) of the top layer.

        The bottom layer has its chalcogens on P and metals on Q.  A 60-degree rotation
        swaps P and Q; a shift by P or Q permutes O -> P -> Q -> O (resp. twice).
        """
        x_site, m_site = ("P", "Q") if self.rotation_deg == 0 else ("Q", "P")
        return _shift_site(x_site, self.shift), _shift_site(m_site, self.shift)

    def registry(self) -> str:
        """Where the top layer's chalcogen and metal columns sit over the bottom layer.

        ``X`` = over the bottom chalcogens, ``M`` = over the bottom metals, ``H`` = over
        the hollow site; e.g. ``"X/H"`` means top chalcogens over bottom chalcogens and
        top metals over the hollow.
        """
        names = {"P": "X", "Q": "M", "O": "H"}
        x_site, m_site = self.top_sites()
        return f"{names[x_site]}/{names[m_site]}"

    def atom_columns(self) -> list[tuple[str, str]]:
        """The 8 atoms bottom to top as (element, in-plane site)."""
        fc = self.flip_class
        x_site, m_site = self.top_sites()
        bottom = fc.bottom.oriented(fc.bottom_flipped)
        top = fc.top.oriented(fc.top_flipped)
        rows = [(el, "P" if i in (0, 3) else "Q") for i, el in enumerate(bottom)]
        rows += [(el, x_site if i in (0, 3) else m_site) for i, el in enumerate(top)]
        return rows


_SHIFT_STEPS = {"O": 0, "P": 1, "Q": 2}
_SITE_ORDER = ("O", "P", "Q")


def _shift_site(site: str, shift: str) -> str:
    return _SITE_ORDER[(_SHIFT_STEPS[site] + _SHIFT_STEPS[shift]) % 3]


def enumerate_flip_classes(monolayers: list[Monolayer] | None = None) -> list[FlipClass]:
    """All flip-distinct bilayers (3,321 for the 45 recipe monolayers)."""
    layers = enumerate_monolayers() if monolayers is None else monolayers
    classes: list[FlipClass] = []
    for bottom, top in combinations_with_replacement(layers, 2):
        for b_flip, t_flip in _flip_patterns(bottom, top):
            classes.append(FlipClass(len(classes), bottom, b_flip, top, t_flip))
    return classes


def _flip_patterns(bottom: Monolayer, top: Monolayer) -> list[tuple[bool, bool]]:
    b_opts = [False] if bottom.mirror_symmetric else [False, True]
    t_opts = [False] if top.mirror_symmetric else [False, True]
    patterns = list(product(b_opts, t_opts))
    if bottom == top and not bottom.mirror_symmetric:
        patterns.remove((True, True))  # both down = both up, seen from below
    return patterns


def enumerate_bilayers(monolayers: list[Monolayer] | None = None) -> list[BilayerConfig]:
    """All bilayer configurations: every flip class in every stacking (19,926)."""
    configs: list[BilayerConfig] = []
    for fc in enumerate_flip_classes(monolayers):
        for rotation, shift in STACKINGS:
            configs.append(BilayerConfig(len(configs), fc, rotation, shift))
    return configs


def _canonical_columns(columns: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Smallest image of an (element, site) column list under the lattice symmetries.

    The symmetries that keep the hexagonal lattice and the 8-atom cell act on the sites
    {O, P, Q} as all six permutations (translations by P and Q cycle them, a 60-degree
    rotation swaps P and Q), and a 2-fold rotation about an in-plane axis turns the
    stack upside down (reverses the column list, and swaps P and Q, already covered).
    """
    images = []
    for perm in _site_permutations():
        for seq in (columns, columns[::-1]):
            images.append(tuple((el, perm[site]) for el, site in seq))
    return min(images)


def _site_permutations() -> list[dict[str, str]]:
    from itertools import permutations

    return [dict(zip(_SITE_ORDER, p)) for p in permutations(_SITE_ORDER)]


def symmetry_duplicates(configs: list[BilayerConfig]) -> dict[int, int]:
    """Map each configuration that repeats an earlier one to the index of that first one.

    Two configurations are the same crystal when their atom columns coincide under a
    lattice symmetry (see :func:`_canonical_columns`); given the same relaxed layers, they
    also have the same energy.  Only homo pairs produce such repeats.
    """
    first: dict[tuple[tuple[str, str], ...], int] = {}
    duplicates: dict[int, int] = {}
    for cfg in configs:
        key = _canonical_columns(cfg.atom_columns())
        if key in first:
            duplicates[cfg.index] = first[key]
        else:
            first[key] = cfg.index
    return duplicates
