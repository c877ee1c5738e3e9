"""Oxidation-number masks: which elements each site of a template may hold, so every output is neutral.

SMOACS (paper section 2.3, appendix B.3) derives the masks from the template: each element of the
template takes one of its oxidation numbers, the combinations that sum to zero over the cell are the
*patterns*, and under a pattern a site may hold any element of the vocabulary that has the site's
oxidation number. A candidate mixes the patterns with learnable weights while it is optimised and is
decoded under its heaviest pattern, so its elements always carry a neutral set of oxidation numbers.

Oxidation numbers:

- the III-VI family (vocabulary within Al, Ga, In, S, Se, Te): metals +2, chalcogens -2. In these layers
  the metals are formally +2 through their M-M bond; SMOACS's own tables (Al, Ga, In only +3) would reject
  every compound of the family. One pattern per template: metal sites take {Al, Ga, In}, chalcogen sites
  {S, Se, Te}, so the outer sites of each layer stay chalcogens and the inner ones metals (the layer order
  X-M-M-X holds by construction, Janus or mirror);
- any other vocabulary: pymatgen's common oxidation states (as the paper: realistic states only).

Masked elements get a logit of ``-inf``, so their probability is exactly zero at every step (the paper
instead clips the distribution from below, appendix B.5, to the same end).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

FAMILY_STATES: dict[str, tuple[int, ...]] = {"Al": (2,), "Ga": (2,), "In": (2,), "S": (-2,), "Se": (-2,),
                                             "Te": (-2,)}
"""Oxidation numbers of the III-VI bilayer family (formal: the M-M bond makes each metal +2)."""
MAX_PATTERNS = 16
"""Most patterns kept per template (the neutral combinations with the fewest distinct states first)."""


def oxidation_states(vocabulary: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """The oxidation numbers each element of ``vocabulary`` may take (see the module docstring)."""
    if set(vocabulary) <= set(FAMILY_STATES):
        return {el: FAMILY_STATES[el] for el in vocabulary}
    from pymatgen.core import Element

    return {el: tuple(int(q) for q in Element(el).common_oxidation_states) for el in vocabulary}


@dataclass(frozen=True)
class SitePatterns:
    """The patterns of one template.

    Attributes:
        oxidation: (K, N) the oxidation number of each site under each pattern; every row sums to zero.
        allowed: (K, N, T) whether the site may hold each vocabulary element under each pattern.
    """

    oxidation: np.ndarray
    allowed: np.ndarray

    @property
    def count(self) -> int:
        return int(self.oxidation.shape[0])


def site_patterns(species: Sequence[str], vocabulary: Sequence[str],
                  states: Mapping[str, tuple[int, ...]] | None = None,
                  max_patterns: int = MAX_PATTERNS) -> SitePatterns | None:
    """The neutral oxidation-number patterns of a template with these ``species`` (None when there is none).

    Sites of the same template element share one oxidation number (as the paper builds them); a pattern
    whose mask leaves some site no element of the vocabulary is dropped.
    """
    states = dict(states) if states is not None else oxidation_states(vocabulary)
    elements = list(dict.fromkeys(species))
    counts = [sum(1 for s in species if s == el) for el in elements]
    options = []
    for el in elements:
        own = states.get(el) or oxidation_states([el]).get(el, ())
        if not own:
            return None
        options.append(own)
    holders = {q: np.array([q in states.get(el, ()) for el in vocabulary]) for qs in options for q in qs}
    found = []
    for combo in itertools.product(*options):
        if sum(q * n for q, n in zip(combo, counts)) != 0:
            continue
        if not all(holders[q].any() for q in combo):
            continue
        found.append(combo)
    if not found:
        return None
    found.sort(key=lambda combo: (len(set(combo)), tuple(abs(q) for q in combo)))
    found = found[:max_patterns]
    by_element = [dict(zip(elements, combo)) for combo in found]
    oxidation = np.array([[pattern[s] for s in species] for pattern in by_element], dtype=np.int64)
    allowed = np.stack([np.stack([holders[q] for q in row]) for row in oxidation])
    return SitePatterns(oxidation, allowed)


def unmasked(species: Sequence[str], vocabulary: Sequence[str]) -> SitePatterns:
    """Every site may hold every element (the ablation without masks); oxidation numbers are not tracked."""
    n, t = len(species), len(vocabulary)
    return SitePatterns(np.zeros((1, n), dtype=np.int64), np.ones((1, n, t), dtype=bool))


def neutral(symbols: Sequence[str], oxidation: Sequence[int], states: Mapping[str, tuple[int, ...]]) -> bool:
    """Whether these elements can carry these oxidation numbers, and the numbers sum to zero."""
    return sum(oxidation) == 0 and all(q in states.get(el, ()) for el, q in zip(symbols, oxidation))


__all__ = ["FAMILY_STATES", "SitePatterns", "neutral", "oxidation_states", "site_patterns", "unmasked"]
