"""Formulas as element counts of a model's cell (shared by training and serving).

A formula request names a composition, e.g. ``"GaInSSe"``; the model builds cells of the
sizes it was trained on (8 atoms for the Janus bilayers), so the formula is scaled to
one of them: ``"GaInSSe"`` -> Ga2In2S2Se2. Errors name what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pymatgen.core import Composition, Element


def parse_formula(text: str, vocabulary: Sequence[str]) -> list[int]:
    """Atoms per element of ``text``, in vocabulary order.

    Raises:
        ValueError: unreadable formula, no atoms, fractional amounts, or an element outside
            the vocabulary (the message lists the allowed elements).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("give a formula, e.g. GaInSSe")
    try:
        composition = Composition(text)
    except Exception as exc:  # pymatgen raises several types for bad input
        raise ValueError(f"cannot read formula {text!r}: {exc}") from None
    if composition.num_atoms == 0:
        raise ValueError(f"formula {text!r} has no atoms")
    unknown = [el.symbol for el in composition if not Element.is_valid_symbol(el.symbol)]
    if unknown:
        raise ValueError(f"cannot read formula {text!r}: {', '.join(unknown)} is not a chemical element; "
                         f"allowed elements: {', '.join(vocabulary)}")
    counts = [0] * len(vocabulary)
    for element, amount in composition.get_el_amt_dict().items():
        if element not in vocabulary:
            raise ValueError(f"element {element!r} in formula {text!r} is not in the vocabulary; "
                             f"allowed elements: {', '.join(vocabulary)}")
        if abs(amount - round(amount)) > 1e-6:
            raise ValueError(f"formula {text!r} has a fractional amount {amount} of {element}")
        counts[list(vocabulary).index(element)] = int(round(amount))
    return counts


def scale_to_cell(text: str, counts: Sequence[int], cell_sizes: Mapping[int, int]) -> list[int]:
    """``counts`` multiplied to fill a cell size the model was trained on.

    Among the whole multiples of the formula that match a training cell size, the size
    most common in training wins.

    Args:
        text: the formula as the user wrote it (for messages).
        counts: atoms per element of the formula.
        cell_sizes: atom count -> number of training crystals of that size.

    Raises:
        ValueError: no multiple of the formula fills a trained cell size (names the sizes).
    """
    atoms = sum(counts)
    trained = sorted(k for k, v in cell_sizes.items() if v > 0)
    fitting = [k for k in trained if k % atoms == 0]
    if not fitting:
        raise ValueError(f"formula {text!r} has {atoms} atoms, and no whole multiple of it fills a cell of "
                         f"the sizes this model was trained on ({', '.join(map(str, trained))} atoms)")
    best = max(fitting, key=lambda k: cell_sizes[k])
    return [c * (best // atoms) for c in counts]


def cell_formula(counts: Sequence[int], vocabulary: Sequence[str]) -> str:
    """``Ga2In2S2Se2``-style cell formula, elements in alphabetical order (zero counts left out)."""
    return "".join(f"{el}{n if n != 1 else ''}" for el, n in sorted(zip(vocabulary, counts)) if n)
