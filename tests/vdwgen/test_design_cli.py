"""`vdwgen design`, `vdwgen train-predictor` and `vdwgen export-predictor` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from vdwgen.cli import main


@pytest.mark.parametrize("argv, words", [
    (["--target", "band_gap<=1"], ["unknown label 'band_gap'", "interlayer_gap (", "Å)"]),
    (["--target", "interlayer_gap=3.5:3.1"], ["empty range"]),
    (["--target", "interlayer_gap=6:7"], ["outside what the data spans"]),
    ([], ["give at least one target"]),
    (["--target", "interlayer_gap>=3", "--n", "0"], ["--n must be between 1 and 1024"]),
])
def test_bad_design_requests_get_one_line(argv: list[str], words: list[str], tiny_predictor_artifact: Path,
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["design", *argv, "--predictor", str(tiny_predictor_artifact), "--db", str(tmp_path / "d.duckdb")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("vdwgen: ")
    for word in words:
        assert word in err[0]


def test_a_design_without_relaxation_prints_each_criterion_and_writes_files(
        tiny_predictor_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["design", "--target", "formation_energy_per_atom<=-0.6", "--target", "a_common=3.6:4.0",
                 "--n", "3", "--steps", "3", "--no-relax", "--predictor", str(tiny_predictor_artifact),
                 "--db", str(tmp_path / "d.duckdb"), "--out", str(tmp_path / "files")])
    out = capsys.readouterr().out
    assert code == 0
    assert "every target met as designed:" in out
    assert "targets: formation_energy_per_atom<=-0.6 AND a_common=3.6:4" in out
    assert len(list((tmp_path / "files").glob("*.vasp"))) == 3 and len(list((tmp_path / "files").glob("*.cif"))) == 3


def test_predictor_commands_refuse_bad_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-predictor", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "a")]) == 2
    assert "no such weights file" in capsys.readouterr().err
    assert main(["train-predictor", "--out", str(tmp_path / "run"), "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
