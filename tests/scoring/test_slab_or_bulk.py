"""The 2D checks run only on slabs: a bilayer in vacuum is a slab, a perovskite and a layered bulk crystal
(van der Waals gaps, no vacuum) are not, and their records say so instead of reporting layers."""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from scoring.layers import SLAB_VACUUM, analyse_layers
from scoring.record import candidate_record


def test_a_bilayer_in_vacuum_is_a_slab_with_its_layers(bilayer) -> None:  # noqa: ANN001
    record = candidate_record(0, bilayer(0.0), -0.7)
    assert record.slab and record.n_layers == 2 and record.vacuum > SLAB_VACUUM
    assert abs(record.interlayer_gap - 3.2) < 1e-6


def test_a_perovskite_is_bulk_and_gets_no_2d_figures() -> None:
    perovskite = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    assert analyse_layers(perovskite).periodic_along_c
    record = candidate_record(0, perovskite, -2.0)
    assert not record.slab and record.valid
    assert (record.n_layers, record.vacuum, record.interlayer_gap, record.interlayer_distance,
            record.interlayer_too_short) == (None, None, None, None, None)
    assert record.row()["slab"] is False  # the store keeps the verdict


def test_layered_bulk_without_vacuum_is_not_a_slab(bilayer) -> None:  # noqa: ANN001
    # the bilayer's cell squeezed along c so its images stack 3.2 Å apart: graphite-like, no vacuum
    s = bilayer(0.0)
    z = s.cart_coords[:, 2] - s.cart_coords[:, 2].min()
    c = float(z.max()) + 3.2
    stacked = Structure(Lattice.hexagonal(s.lattice.a, c), s.species,
                        [[f[0], f[1], zk / c] for f, zk in zip(s.frac_coords, z, strict=True)])
    layers = analyse_layers(stacked)
    assert not layers.periodic_along_c and layers.vacuum < SLAB_VACUUM  # layers, but no vacuum
    assert not candidate_record(0, stacked, -0.7).slab
