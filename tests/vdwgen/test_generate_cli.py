"""`vdwgen generate`: POSCAR and CIF files that pymatgen reads, the scored table, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Composition, Structure

from vdwgen.cli import main


@pytest.fixture(scope="module")
def artifacts(tiny_artifacts: dict[str, Path]) -> dict[str, Path]:
    return tiny_artifacts


def test_cli_writes_poscars_that_pymatgen_reads(artifacts: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "poscars"
    argv = ["generate", "--formula", "GaInSSe", "--n", "2", "--artifacts", str(artifacts["model"]),
            "--out", str(out), "--steps-per-level", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "valid:" in printed and "Ga2In2S2Se2" in printed
    files = sorted(out.glob("*.vasp"))
    assert [f.name for f in files] == ["000000_Ga2In2S2Se2.vasp", "000001_Ga2In2S2Se2.vasp"]  # not stored: by index
    for f in files:
        structure = Structure.from_str(f.read_text(), fmt="poscar")
        assert structure.composition == Composition("Ga2In2S2Se2")
        cif = Structure.from_str(f.with_suffix(".cif").read_text(), fmt="cif")
        assert len(cif) == 8
    assert main(["generate", "--formula", "FeS", "--artifacts", str(artifacts["model"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "allowed elements" in err[0]
    assert main(["generate", "--unconditional", "--n", "0", "--artifacts", str(artifacts["baseline"])]) == 2
    assert "from 1 to" in capsys.readouterr().err


def test_a_stored_run_writes_its_files_by_candidate_id_into_the_out_folder(
        artifacts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "named like an archive.zip"  # --out is a folder, whatever its name ends with
    argv = ["generate", "--formula", "GaInSSe", "--n", "2", "--artifacts", str(artifacts["model"]), "--out", str(out),
            "--steps-per-level", "1", "--db", str(tmp_path / "c.duckdb")]
    assert main(argv) == 0
    assert out.is_dir() and sorted(f.name for f in out.iterdir()) == [
        "000001_Ga2In2S2Se2.cif", "000001_Ga2In2S2Se2.vasp", "000002_Ga2In2S2Se2.cif", "000002_Ga2In2S2Se2.vasp"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--formation-energy", "inf"], "--target must be a finite number"),
    (["--target", "nan"], "--target must be a finite number"),
    (["--target", "1e309"], "--target must be a finite number"),
    (["--formula", "GaInSSe", "--screening-ratio", "0"], "screening ratio must be from 1"),
    (["--formation-energy", "-0.7", "--steps-per-level", "0"], "steps per level must be from 1"),
    (["--formation-energy", "-0.7", "--n", "-3"], "count must be a whole number from 1"),
])
def test_bad_numbers_exit_2_with_one_line(artifacts: dict[str, Path], argv: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", *argv, "--artifacts", str(artifacts["model"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_out_where_nothing_can_be_written_exits_2_with_one_line(artifacts: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "sub"):
        assert main(["generate", "--formula", "GaInSSe", "--n", "1", "--artifacts", str(artifacts["model"]),
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("vdwgen: ") and f"--out {out}" in err[0], err


def test_table_shows_the_scored_record(artifacts: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.duckdb"
    argv = ["generate", "--formula", "GaInSSe", "--n", "2", "--steps-per-level", "1",
            "--artifacts", str(artifacts["model"]), "--db", str(db)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "novel" in printed and "dup. of" in printed and "stored as run 1 (completed), candidates 1..2" in printed
    from store.database import close_store, open_store
    from store.query import run_query

    rows = run_query(open_store(db), "SELECT index_in_run, formula, valid, novel, n_layers FROM candidates "
                                     "ORDER BY id").frame
    close_store(db)
    for row in rows.itertuples():
        line = next(x for x in printed.splitlines() if x.split()[:2] == [str(row.index_in_run), row.formula])
        assert line.split()[4] == str(row.n_layers)
        assert ("valid" == line.split()[-1]) == bool(row.valid)
