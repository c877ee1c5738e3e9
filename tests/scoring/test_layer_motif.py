"""The layer motif of our bilayers: two layers, each chalcogen-metal-metal-chalcogen along the normal."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from scoring.layers import motif_problem
from training.data.janus import load_janus_dataset


def bilayer(first: str = "SGaGaS", second: str = "SeInInSe", gap: float = 3.2, tilt: float = 0.0,
            vacuum: float = 20.0) -> Structure:
    """Two X-M-M-X layers ``gap`` Å apart in a hexagonal cell with ``vacuum`` Å of vacuum; each string
    lists one layer's four elements from bottom to top; ``tilt`` shears c in the plane."""
    def symbols(text: str) -> list[str]:
        out, i = [], 0
        while i < len(text):
            n = 2 if i + 1 < len(text) and text[i + 1].islower() else 1
            out.append(text[i:i + n])
            i += n
        return out

    layer = np.array([0.0, 1.15, 3.60, 4.75])
    z = np.concatenate([layer, layer + 4.75 + gap])
    c = float(z[-1] + vacuum)
    matrix = Lattice.hexagonal(3.6, c).matrix.copy()
    matrix[2, :2] += tilt
    pattern = "ABBAACCA"
    site = {"A": (1 / 3, 2 / 3), "B": (2 / 3, 1 / 3), "C": (0.0, 0.0)}
    frac = [site[p] + (zk / c,) for p, zk in zip(pattern, z)]
    return Structure(Lattice(matrix), symbols(first) + symbols(second), frac)


def test_the_right_order_passes_in_any_cell_origin_and_shear() -> None:
    right = bilayer()
    assert motif_problem(right) is None
    moved = right.copy()
    moved.translate_sites(range(len(moved)), [0.2, 0.7, 0.55], frac_coords=True, to_unit_cell=True)
    assert motif_problem(moved) is None  # a slab split by the cell boundary is the same slab
    assert motif_problem(bilayer(tilt=1.3)) is None


@pytest.mark.parametrize(("first", "second", "reason"), [
    ("GaSSGa", "SeInInSe", "layers instead of 2"),  # metals outside: S-S is no bond, the layer splits
    ("SGaSGa", "SeInInSe", "layer 1"),     # a chalcogen between the metals
    ("SGaGaS", "SeInSeIn", "layer 2"),
    ("SGaGaGa", "SeInInSe", "layer 1"),    # one chalcogen: below but none above
])
def test_a_wrong_order_in_either_layer_is_named(first: str, second: str, reason: str) -> None:
    problem = motif_problem(bilayer(first, second))
    assert problem is not None and reason in problem


def test_layers_count_slab_and_elements_are_checked() -> None:
    fused = bilayer(gap=0.9)  # the layers bond across the gap: one piece
    assert "1 layers" in (motif_problem(fused) or "")
    assert "not a slab" in (motif_problem(bilayer(vacuum=3.2)) or "")  # layered bulk: 3.2 Å both ways
    assert "holds O" in (motif_problem(bilayer(second="OInInO")) or "")


def test_swapping_a_metal_and_a_chalcogen_of_a_dataset_bilayer_breaks_the_motif() -> None:
    # every dataset bilayer has the motif: tests/scoring/test_validity_checks.py
    data = load_janus_dataset()
    crystal = data[0].to_structure()
    metal = next(i for i, s in enumerate(crystal) if s.specie.symbol in {"Al", "Ga", "In"})
    heights = crystal.cart_coords @ np.cross(*crystal.lattice.matrix[:2])
    chalcogen = min((i for i, s in enumerate(crystal) if s.specie.symbol in {"S", "Se", "Te"}),
                    key=lambda i: abs(heights[i] - heights[metal]))
    swapped = crystal.copy()
    swapped.replace(metal, crystal[chalcogen].specie, crystal[metal].frac_coords)
    swapped.replace(chalcogen, crystal[metal].specie, crystal[chalcogen].frac_coords)
    assert motif_problem(swapped) is not None
