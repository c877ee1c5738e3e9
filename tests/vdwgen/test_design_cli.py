"""`vdwgen design`, `vdwgen train-predictor` and `vdwgen export-predictor` as a user runs them."""

from __future__ import annotations

import json
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
    table = out.splitlines()[:4]  # a header naming each target in full, then one line per candidate
    assert "formation_energy_per_atom<=-0.6 (designed / oracle)" in table[0] and "a_common=3.6:4" in table[0]
    assert len({len(line) for line in table}) == 1, table  # the columns line up whatever the formulas' lengths
    assert len(list((tmp_path / "files").glob("*.vasp"))) == 3 and len(list((tmp_path / "files").glob("*.cif"))) == 3


def test_predictor_commands_refuse_bad_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-predictor", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "a")]) == 2
    assert "no such weights file" in capsys.readouterr().err
    assert main(["train-predictor", "--out", str(tmp_path / "run"), "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err


def test_any_dataset_trains_a_predictor_and_designs_with_what_the_oracle_cannot_check(
        perovskite_csv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = perovskite_csv(tmp_path / "perov.csv", 30)
    run, art = tmp_path / "run", tmp_path / "artifacts" / "perov-predictor"
    assert main(["train-predictor", "--data", str(csv), "--label", "heat_ref:eV/atom", "--label", "band_gap:eV",
                 "--out", str(run), "--epochs", "1"]) == 0
    assert main(["export-predictor", str(run / "predictor.pt"), "--out", str(art)]) == 0
    manifest = json.loads((art / "predictor.json").read_text())
    assert manifest["training"]["table"] == "training_data.parquet" and (art / "training_data.parquet").is_file()
    assert manifest["labels"]["band_gap"]["unit"] == "eV" and set(manifest["vocabulary"]) == {
        "Ba", "Ca", "O", "Sr", "Ti", "Zr"}
    capsys.readouterr()
    code = main(["design", "--target", "heat_ref<=-0.9", "--target", "band_gap=1.9:2.1", "--n", "4", "--steps", "3",
                 "--predictor", str(art), "--db", str(tmp_path / "d.duckdb")])
    out = capsys.readouterr().out
    assert code == 0
    # neither: a band gap is beyond the oracle; heat_ref is another dataset's convention of the formation energy
    assert "the oracle (CHGNet + D3) cannot check heat_ref, band_gap" in out
    assert "not relaxed" in out  # no reference energies for these elements: said, not hidden
