"""The rigid gap scan (:mod:`scoring.gap_scan`) and why the oracle check runs it first.

A bilayer's layers attract each other weakly: started 0.8 Å too far apart, the forces are below the relaxation's
threshold and FIRE stops near where it started. The scan that labelled the dataset finds the gap whatever the
start. The geometry tests need no CHGNet; the physics tests run it (``slow``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Structure

from oracle.convention import load_references
from oracle.shared import get_oracle
from scoring.gap_scan import GAP_GRID, scan_gaps, scannable, with_gap
from scoring.layers import analyse_layers, site_layers
from scoring.novelty import table_structure
from scoring.oracle_check import check_with_oracle

DATASET = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi"
ROW = "jb-04882"  # a relaxed, converged bilayer that FIRE alone leaves 0.5 Å too far apart from +0.8 Å


@pytest.fixture(scope="module")
def row() -> pd.Series:
    return pd.read_parquet(DATASET / "bilayers.parquet").set_index("id").loc[ROW]


@pytest.fixture(scope="module")
def bilayer(row: pd.Series) -> Structure:
    return table_structure(row["lattice"], row["species"], row["frac_coords"])


def test_with_gap_moves_only_the_upper_layer_rigidly_along_the_normal(bilayer: Structure) -> None:
    before = analyse_layers(bilayer)
    moved = with_gap(bilayer, before.interlayer_gap + 0.8)
    after = analyse_layers(moved)
    assert after.n_layers == 2 and abs(after.interlayer_gap - (before.interlayer_gap + 0.8)) < 1e-9
    assert abs(after.vacuum - (before.vacuum - 0.8)) < 1e-9
    upper = site_layers(bilayer) == 1
    shift = moved.cart_coords - bilayer.cart_coords
    assert np.allclose(shift[~upper], 0.0)
    normal = np.cross(bilayer.lattice.matrix[0], bilayer.lattice.matrix[1])
    normal /= np.linalg.norm(normal)
    assert np.allclose(shift[upper], 0.8 * normal)  # rigid, along the normal: no sliding, no bond changes
    assert moved.lattice == bilayer.lattice and moved.species == bilayer.species


def test_with_gap_refuses_what_has_no_single_gap(bilayer: Structure) -> None:
    lower = Structure.from_sites([s for s, k in zip(bilayer, site_layers(bilayer)) if k == 0])
    assert not scannable(lower) and scannable(bilayer)
    with pytest.raises(ValueError, match="only a two-layer slab"):
        with_gap(lower, 3.3)
    with pytest.raises(ValueError, match="less than 1 Å of vacuum"):
        with_gap(bilayer, analyse_layers(bilayer).vacuum + 3.0)


@pytest.mark.slow
def test_the_scan_finds_the_labelled_gap_from_any_start(bilayer: Structure, row: pd.Series) -> None:
    starts = [with_gap(bilayer, g) for g in (2.9, 4.3)]
    scans = scan_gaps(starts + [Structure.from_sites(bilayer[:4])], get_oracle())
    for scan in scans[:2]:
        assert scan.scanned and not scan.at_edge
        assert abs(scan.gap - row["interlayer_gap_scan"]) < 0.02  # the dataset's own rigid scan
        assert abs(analyse_layers(scan.structure).interlayer_gap - scan.gap) < 1e-9
    assert not scans[2].scanned and scans[2].structure == Structure.from_sites(bilayer[:4])  # passed through
    assert GAP_GRID[0] < row["interlayer_gap"] < GAP_GRID[-1]


@pytest.mark.slow
def test_the_oracle_check_relaxes_a_bilayer_started_too_far_apart_to_its_label(
        bilayer: Structure, row: pd.Series) -> None:
    references = load_references(DATASET)
    apart = with_gap(bilayer, row["interlayer_gap"] + 0.8)
    scanned, plain = (check_with_oracle([apart], references, get_oracle(), gap_scan=flag)[0] for flag in (True, False))
    # without the scan the weak van der Waals forces stop FIRE far from the minimum: the reason for the scan
    assert plain.converged and plain.interlayer_gap > row["interlayer_gap"] + 0.25
    assert scanned.converged and abs(scanned.interlayer_gap - row["interlayer_gap"]) < 0.05
    assert abs(scanned.formation_energy - row["formation_energy_per_atom"]) < 0.002
    assert plain.formation_energy > scanned.formation_energy + 0.003
    # the drop and the initial energy are those of the crystal as given, not of the scanned one
    assert abs(scanned.initial_formation_energy - plain.initial_formation_energy) < 1e-6
    assert scanned.scan_gap is not None and plain.scan_gap is None
    assert scanned.rmsd > 0.3  # the upper layer moved 0.8 Å: half the atoms
