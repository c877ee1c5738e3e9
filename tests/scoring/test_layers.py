"""2D checks: layers from the bond graph, vacuum, interlayer gap and contacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from scoring.layers import analyse_layers

ROOT = Path(__file__).resolve().parents[2]


def stack(gap: float, vacuum: float = 20.0, second_site: str = "ABBA") -> Structure:
    """Two S-Ga-Ga-S layers (vertical Ga-Ga bond) ``gap`` Å apart, ``vacuum`` Å of vacuum."""
    layer = np.array([0.0, 1.15, 3.60, 4.75])
    z = np.concatenate([layer, layer + 4.75 + gap])
    c = float(z[-1] + vacuum)
    site = {"A": (1 / 3, 2 / 3), "B": (2 / 3, 1 / 3)}
    frac = [site[p] + (zk / c,) for p, zk in zip("ABBA" + second_site, z)]
    return Structure(Lattice.hexagonal(3.6, c), ["S", "Ga", "Ga", "S"] * 2, frac)


def test_a_bilayer_has_two_layers_its_gap_and_vacuum() -> None:
    result = analyse_layers(stack(3.2))
    assert result.n_layers == 2 and not result.periodic_along_c
    assert result.interlayer_gap == pytest.approx(3.2) and result.vacuum == pytest.approx(20.0)
    assert result.interlayer_distance == pytest.approx(3.2)  # S above S across the gap
    assert not result.interlayer_too_short


def test_analysis_does_not_depend_on_where_the_cell_starts() -> None:
    s = stack(3.2)
    shifted = s.copy()
    shifted.translate_sites(range(len(s)), [0.1, 0.3, 0.47], frac_coords=True, to_unit_cell=True)
    a, b = analyse_layers(s), analyse_layers(shifted)
    assert a.n_layers == b.n_layers == 2
    assert a.interlayer_gap == pytest.approx(b.interlayer_gap) and a.vacuum == pytest.approx(b.vacuum)


def test_layers_pressed_together_are_flagged() -> None:
    close = analyse_layers(stack(2.5, second_site="AAAA"))  # S on top of S, 2.5 Å: not bonded, closer than vdW
    assert close.n_layers == 2 and close.interlayer_too_short
    fused = analyse_layers(stack(1.0, second_site="AAAA"))  # bonded across: one piece
    assert fused.n_layers == 1 and np.isnan(fused.interlayer_gap)


def test_no_vacuum_makes_a_layer_periodic_along_c() -> None:
    bulk = analyse_layers(stack(2.0, vacuum=2.0, second_site="AAAA"))  # S-S bonds across gap and boundary
    assert bulk.periodic_along_c and bulk.vacuum == 0.0 and bulk.n_layers == 1
    slab = analyse_layers(stack(3.2, vacuum=2.0, second_site="AAAA"))  # bonded across the boundary only
    assert not slab.periodic_along_c and slab.n_layers == 1 and slab.vacuum == pytest.approx(3.2)


@pytest.mark.skipif(not (ROOT / "data" / "janus_iii_vi" / "bilayers.parquet").is_file(), reason="no dataset")
def test_every_sampled_training_bilayer_is_two_layers_with_the_labelled_gap() -> None:
    df = pd.read_parquet(ROOT / "data" / "janus_iii_vi" / "bilayers.parquet",
                         columns=["lattice", "species", "frac_coords", "interlayer_gap"])
    rows = df.iloc[np.linspace(0, len(df) - 1, 300).round().astype(int)]
    for lattice, species, frac, gap in rows.itertuples(index=False):
        s = Structure(Lattice(np.asarray(lattice, dtype=float).reshape(3, 3)), list(species),
                      np.asarray(frac, dtype=float).reshape(-1, 3))
        result = analyse_layers(s)
        assert result.n_layers == 2 and not result.periodic_along_c and not result.interlayer_too_short
        assert result.interlayer_gap == pytest.approx(gap, abs=1e-6) and result.vacuum > 10
