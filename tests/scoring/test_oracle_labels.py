"""The oracle's value of each design label reproduces the dataset's own labels of relaxed bilayers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Structure

from scoring.oracle_labels import oracle_label_values, split_layers


@pytest.fixture(scope="module")
def relaxed_rows() -> pd.DataFrame:
    from core.paths import dataset_dir

    table = pd.read_parquet(dataset_dir() / "bilayers.parquet")
    rows = table[table["relaxed"]].head(1)
    return pd.concat([rows, table[table["id"] == "jb-06002"]])


def _structure(row: pd.Series) -> Structure:
    return Structure(np.asarray(row["lattice"]).reshape(3, 3), list(row["species"]),
                     np.asarray(row["frac_coords"]).reshape(-1, 3))


def test_layers_split_into_bottom_and_top(relaxed_rows: pd.DataFrame, bilayer) -> None:
    bottom, top = split_layers(_structure(relaxed_rows.iloc[0]))
    assert len(bottom) == len(top) == 4
    assert max(s.coords[2] for s in bottom) < min(s.coords[2] for s in top)
    single = Structure(bilayer(0.0).lattice, bilayer(0.0).species[:4], bilayer(0.0).frac_coords[:4])
    assert split_layers(single) is None


def test_oracle_values_of_relaxed_bilayers_equal_their_labels(relaxed_rows: pd.DataFrame) -> None:
    from core.paths import dataset_dir
    from oracle.convention import formation_energy, load_references
    from oracle.shared import get_oracle
    from scoring.oracle_labels import layer_energies

    oracle = get_oracle()
    references = load_references(dataset_dir())
    structures = [_structure(row) for _, row in relaxed_rows.iterrows()]
    energies = oracle.energies(structures)
    layers = layer_energies(oracle, structures)
    for (_, row), s, e, pair in zip(relaxed_rows.iterrows(), structures, energies, layers):
        values = oracle_label_values(s, formation_energy(float(e), s, references), references, pair)
        assert values["formation_energy_per_atom"] == pytest.approx(row["formation_energy_per_atom"], abs=1e-4)
        assert values["interlayer_energy_per_atom"] == pytest.approx(row["interlayer_energy_per_atom"], abs=5e-4)
        assert values["binding_energy_per_area"] == pytest.approx(row["binding_energy_per_area"], abs=0.3)
        assert values["interlayer_gap"] == pytest.approx(row["interlayer_gap"], abs=1e-6)
        assert values["a_common"] == pytest.approx(row["a_common"], abs=1e-6)
