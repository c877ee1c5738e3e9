"""Validity that means something: every check a referee would ask for, each with its column and its reason.

The thresholds come from the data: every one of the 19,926 dataset bilayers passes every check, with the
stated margins, and hand-made bad cells fail the check they break, with a reason that names the numbers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from scoring.layers import GAP_RANGE
from scoring.novelty import table_structure
from scoring.record import candidate_record, grouped_by_element, validity_checks
from scoring.validity import CONTACT_FRACTION, ContactLimits, contact_problem, covalent_radius

DATASET_TABLE = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi" / "bilayers.parquet"


def moved_layer(structure: Structure, dz: float) -> Structure:
    """``structure`` with its upper layer moved ``dz`` Å along z."""
    s = structure.copy()
    z = s.cart_coords[:, 2]
    s.translate_sites([i for i in range(len(s)) if z[i] > z.mean()], [0, 0, dz], frac_coords=False)
    return s


def test_every_dataset_bilayer_passes_every_check_with_the_stated_margins() -> None:
    frame = pd.read_parquet(DATASET_TABLE, columns=["id", "lattice", "species", "frac_coords"])
    failing, too_close = [], []
    for row in frame.itertuples():
        s = table_structure(row.lattice, row.species, row.frac_coords)
        checks = validity_checks(s)
        if not checks.valid or checks.motif is not True or checks.gap is not True:
            failing.append((row.id, checks.reason))
        if contact_problem(s, ContactLimits(fraction=CONTACT_FRACTION + 0.1)) is not None:  # the stated margin
            too_close.append(row.id)
    assert len(frame) == 19_926
    assert not failing, failing[:5]
    assert not too_close, too_close[:5]
    gaps = pd.read_parquet(DATASET_TABLE, columns=["interlayer_gap"])["interlayer_gap"]  # = the layer analysis's gap
    assert gaps.min() - GAP_RANGE[0] > 0.3 and GAP_RANGE[1] - gaps.max() > 0.25


def test_atoms_pressed_together_fail_the_contacts_check_and_the_reason_names_pair_and_limit(bilayer) -> None:  # noqa: ANN001
    squeezed = moved_layer(bilayer(), -1.6)  # S-S 1.6 Å across the gap: valid by the paper's 0.5 Å
    record = candidate_record(0, squeezed, -0.7)
    assert record.structure_valid and record.composition_valid  # the paper's checks let it through
    assert not record.contacts_valid and not record.valid
    limit = CONTACT_FRACTION * 2 * covalent_radius("S")
    assert f"S-S 1.60 Å apart (limit {limit:.2f} Å" in record.invalid_reason
    assert record.verdict.startswith("invalid: S-S 1.60 Å apart")
    assert contact_problem(bilayer()) is None


def test_layers_too_far_apart_fail_the_gap_check_only(bilayer) -> None:  # noqa: ANN001
    apart = moved_layer(bilayer(), 7.7 - 3.2)  # two monolayers 7.7 Å apart, as generated crystals had
    record = candidate_record(0, apart, -0.7)
    assert record.contacts_valid and record.motif_valid and record.gap_valid is False and not record.valid
    low, high = GAP_RANGE
    assert record.invalid_reason == f"interlayer gap 7.70 Å outside the van der Waals range {low}-{high} Å"
    assert candidate_record(0, bilayer(), -0.7).valid


def test_a_wrong_layer_order_fails_the_motif_check_and_skips_the_gap(bilayer) -> None:  # noqa: ANN001
    s = bilayer()
    s.replace(1, "S", s[1].frac_coords)  # a chalcogen between the metals of layer 1
    s.replace(0, "Ga", s[0].frac_coords)
    record = candidate_record(0, s, -0.7)
    assert record.motif_valid is False and record.gap_valid is None and not record.valid
    assert "layer" in record.invalid_reason


def test_the_bilayer_checks_apply_to_our_family_only() -> None:
    perovskite = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    record = candidate_record(0, perovskite, -2.0)
    assert record.valid and record.contacts_valid and (record.motif_valid, record.gap_valid) == (None, None)
    crowded = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.12], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    assert not candidate_record(0, crowded, -2.0).contacts_valid  # Ti-O 1.47 Å: contacts apply everywhere


@pytest.mark.parametrize("family", [True, False])
def test_the_model_decides_whether_the_bilayer_checks_apply(bilayer, family: bool) -> None:  # noqa: ANN001
    apart = moved_layer(bilayer(), 4.5)
    checks = validity_checks(apart, family=family)
    assert checks.valid is not family and (checks.gap is None) is not family


def test_poscars_are_grouped_by_element_and_read_back_the_same_crystal() -> None:
    frame = pd.read_parquet(DATASET_TABLE).set_index("id")
    row = frame.loc["jb-05000"]
    s = table_structure(row["lattice"], row["species"], row["frac_coords"])
    assert len(s.symbol_set) < len(s)  # some element appears twice, split by others in the table's order
    record = candidate_record(0, s, -0.7)
    lines = record.poscar.splitlines()
    symbols, counts = lines[5].split(), [int(v) for v in lines[6].split()]
    assert symbols == sorted(set(symbols)) and sum(counts) == len(s)
    back = Structure.from_str(record.poscar, fmt="poscar")
    assert [site.specie.symbol for site in back] == sorted(site.specie.symbol for site in s)
    assert back.composition == s.composition
    assert grouped_by_element(s).matches(s, stol=1e-4, ltol=1e-4, angle_tol=1e-3, primitive_cell=False, scale=False)
