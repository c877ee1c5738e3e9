"""The `vdwgen` command line: dataset import and info, with one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from vdwgen.cli import main


def _write_csv(path: Path) -> None:
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    gas = Structure(Lattice.hexagonal(3.6, 25.0), ["S", "Ga", "Ga", "S"],
                    [[1 / 3, 2 / 3, 0.4], [2 / 3, 1 / 3, 0.45], [2 / 3, 1 / 3, 0.55], [1 / 3, 2 / 3, 0.6]])
    rows = [
        {"material_id": "nacl", "cif": nacl.to(fmt="cif"), "formation_energy_per_atom": "-2.1"},
        {"material_id": "broken", "cif": "data_nothing\n_cell_length_a 3\n", "formation_energy_per_atom": "-1"},
        {"material_id": "gas", "cif": gas.to(fmt="cif"), "formation_energy_per_atom": "-0.9"},
    ]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_import_reports_bad_rows_and_writes_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    _write_csv(src)
    assert main(["dataset", "import", str(src), "--property", "formation_energy_per_atom",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "row 3 (broken)" in captured.err
    assert "read 3 rows, kept 2, skipped 1" in captured.out
    table = pd.read_parquet(out)
    assert list(table["id"]) == ["nacl", "gas"]
    assert table["formation_energy_per_atom"].tolist() == [-2.1, -0.9]


def test_strict_import_stops_with_row_and_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.csv"
    _write_csv(src)
    assert main(["dataset", "import", str(src), "--property", "formation_energy_per_atom", "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vdwgen: ") and "row 3" in err and "broken" in err
    assert "Traceback" not in err


def test_import_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "import", str(tmp_path / "missing.csv"), "--property", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    src = tmp_path / "in.csv"
    _write_csv(src)
    assert main(["dataset", "import", str(src), "--property", "band_gap"]) == 2
    err = capsys.readouterr().err
    assert "band_gap" in err and "formation_energy_per_atom" in err  # names the available columns
    assert main(["dataset", "import", str(src), "--property", "formation_energy_per_atom",
                 "--max-atoms", "0"]) == 2
    assert "--max-atoms" in capsys.readouterr().err


def test_info_on_the_committed_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "info"]) == 0
    out = capsys.readouterr().out
    assert "19,926 configurations" in out and "3,321 flip classes" in out


def test_info_without_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "info", "--path", str(tmp_path)]) == 2
    assert "vdwgen dataset build" in capsys.readouterr().err
