"""The `vdwgen` command line: dataset import and info, ship, and one-line errors for bad numbers and paths."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from vdwgen.cli import main

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "cdvae-plus-janus"
WEIGHTS = ROOT / "models" / "cdvae-plus-janus" / "model.pt"


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


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> None:
    """``argv`` exits with status 2 and one line on stderr that holds every ``expected`` fragment."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("vdwgen: ") and err.count("\n") == 1, err
    assert all(fragment in err for fragment in expected), err


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


@pytest.fixture
def no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the library code of these commands fails: refusals must come before any work."""
    for module in ("training.evaluation.evaluate", "training.evaluation.model_card", "export.build",
                   "training.data.cdvae_csv", "training.train.ship", "training.train.run"):
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.usefixtures("no_library")
def test_evaluate_refuses_bad_paths_and_numbers_first(tmp_path: Path, a_file: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "report")
    _refused(["evaluate", str(tmp_path / "missing"), "--out", out], capsys, "no such artifact folder", "missing")
    _refused(["evaluate", str(ARTIFACTS), "--baseline", str(tmp_path / "nothing"), "--out", out], capsys,
             "no such artifact folder")
    _refused(["evaluate", str(ARTIFACTS), "--out", str(a_file / "report")], capsys,
             "cannot write to --out", "is a file")
    _refused(["evaluate", str(ARTIFACTS), "--out", str(a_file)], capsys, "--out", "is a file")
    _refused(["evaluate", str(ARTIFACTS), "--out", out, "--workers", "0"], capsys, "--workers")
    _refused(["evaluate", str(ARTIFACTS), "--out", out, "--seed", "-1"], capsys, "--seed")
    _refused(["evaluate", str(ARTIFACTS), "--out", out, "--steps-per-level", "0"], capsys, "--steps-per-level")
    assert not (tmp_path / "report").exists()


@pytest.mark.usefixtures("no_library")
def test_export_refuses_an_out_under_a_file(tmp_path: Path, a_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["export", str(WEIGHTS), "--out", str(a_file / "artifact")], capsys, "cannot write to --out", "a_file")
    _refused(["export", str(WEIGHTS), "--out", str(a_file)], capsys, "is a file")
    assert a_file.read_text() == "not a folder"  # the file an export would replace is left alone
    _refused(["export", str(WEIGHTS), "--out", str(tmp_path / "x"), "--steps-per-level", "0"], capsys,
             "--steps-per-level")
    _refused(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")], capsys, "no such weights file")


@pytest.mark.usefixtures("no_library")
def test_import_refuses_an_out_it_cannot_write(tmp_path: Path, a_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.csv"
    _write_csv(src)
    argv = ["dataset", "import", str(src), "--property", "formation_energy_per_atom", "--out"]
    _refused([*argv, str(a_file / "out.parquet")], capsys, "cannot write to --out", "is a file")
    _refused([*argv, str(tmp_path)], capsys, "is a folder")


@pytest.mark.usefixtures("no_library")
def test_model_card_and_ship_refuse_bad_paths_and_numbers_first(tmp_path: Path, a_file: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    card = ["model-card", "--model", str(WEIGHTS), "--baseline", str(WEIGHTS)]
    _refused([*card, "--out", str(a_file / "metrics.json")], capsys, "cannot write to --out")
    _refused([*card, "--out", str(tmp_path)], capsys, "is a folder")
    _refused([*card, "--out", str(tmp_path / "m.json"), "--samples", "0"], capsys, "--samples")
    _refused([*card, "--out", str(tmp_path / "m.json"), "--recon-limit", "-1"], capsys, "--recon-limit")
    _refused(["model-card", "--model", str(tmp_path / "none.pt"), "--baseline", str(WEIGHTS), "--out",
              str(tmp_path / "m.json")], capsys, "--model", "none.pt")
    _refused(["ship", str(tmp_path), str(a_file / "models")], capsys, "cannot write to DEST")
    _refused(["train", "--out", str(a_file / "run")], capsys, "cannot write to --out")


def test_ship_a_run(tiny_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "models" / "tiny"
    assert main(["ship", str(tiny_runs["model"]), str(dest)]) == 0
    assert f"wrote {dest / 'model.pt'}" in capsys.readouterr().out
    assert (dest / "model.pt").stat().st_size > 0 and (dest / "training.json").is_file()
    _refused(["ship", str(tmp_path / "no-run"), str(tmp_path / "elsewhere")], capsys, "no run folder")


def test_a_file_error_mid_way_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import vdwgen.cli as cli

    def full_disk(args) -> int:  # noqa: ANN001
        raise OSError(28, "No space left on device", "/data/candidates.duckdb")

    monkeypatch.setitem(cli._COMMANDS, ("query", None), full_disk)
    assert cli.main(["query", "SELECT 1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["vdwgen: No space left on device (/data/candidates.duckdb)"]
