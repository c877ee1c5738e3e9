"""`vdwgen generate --db`, `vdwgen query` and `vdwgen export-poscar` on the shipped model."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Composition, Structure

from store.database import close_store
from vdwgen.cli import main

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "artifacts" / "cdvae-plus-janus"


@pytest.fixture
def db(tmp_path: Path):
    path = tmp_path / "cands.duckdb"
    yield path
    close_store(path)


def test_generate_stores_a_scored_run_that_query_and_export_read(db: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["generate", "--formula", "GaInSSe", "--n", "3", "--steps-per-level", "1", "--seed", "2",
            "--artifacts", str(MODEL), "--db", str(db)]
    assert main(argv) == 0
    assert "stored as run 1 (completed), candidates 1..3" in capsys.readouterr().out
    assert main(argv) == 0  # the same seed again: the same crystals, now duplicates of run 1
    capsys.readouterr()

    assert main(["query", "SELECT id, run_id, formula, n_layers, duplicate_of, novel FROM candidates ORDER BY id",
                 "--db", str(db)]) == 0
    printed = capsys.readouterr().out
    assert "6 rows" in printed and printed.count("Ga2In2S2Se2") == 6

    from store.database import open_store
    from store.query import run_query

    frame = run_query(open_store(db), "SELECT id, duplicate_of, novel FROM candidates ORDER BY id").frame
    assert frame["duplicate_of"].iloc[3:].notna().all()  # run 2 repeats run 1
    assert set(frame["duplicate_of"].iloc[3:]) <= {1, 2, 3} and frame["novel"].notna().all()

    out = tmp_path / "picked.zip"
    assert main(["export-poscar", "--query", "SELECT id FROM candidates WHERE run_id = 1", "--out", str(out),
                 "--db", str(db)]) == 0
    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
        assert names == [f"00000{k}_Ga2In2S2Se2.{ext}" for k in (1, 2, 3) for ext in ("cif", "vasp")] + ["summary.csv"]
        for name in names[1:6:2]:
            text = archive.read(name).decode()
            s = Structure.from_str(text, fmt="poscar")
            assert s.composition == Composition("Ga2In2S2Se2")
            assert text.splitlines()[5:7] == ["Ga In S Se", "2 2 2 2"]  # grouped by element, for POTCARs
        summary = pd.read_csv(archive.open("summary.csv"))
        assert summary["id"].tolist() == [1, 2, 3] and "poscar" not in summary.columns
        assert {"a (Å)", "predicted_formation_energy (eV/atom)", "invalid_reason", "known_id"} <= set(summary.columns)

    folder = tmp_path / "poscars"
    assert main(["export-poscar", "--query", "SELECT id FROM candidates WHERE id > 4", "--out", str(folder),
                 "--db", str(db)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [f"00000{k}_Ga2In2S2Se2.{ext}" for k in (5, 6)
                                                        for ext in ("cif", "vasp")]

    # run ids are never taken for candidate ids (the rule the Candidates page applies)
    assert main(["export-poscar", "--query", "SELECT id FROM runs", "--out", str(tmp_path / "runs"),
                 "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "returns no candidate ids" in err[0] and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv", [
    ["query", "SELECT count(*) FROM candidates"],
    ["export-poscar", "--query", "SELECT id FROM candidates", "--out", "FILES"],
    ["verify", "1"],
    ["generate", "--resume", "1"],
])
def test_a_db_that_does_not_exist_is_named_not_made(argv: list[str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped --db for a command that reads what is stored: one line, and no empty store made in its place
    (it used to answer '0 rows' from a new empty file)."""
    missing = tmp_path / "typo.duckdb"
    argv = [str(tmp_path / "files") if a == "FILES" else a for a in argv]
    assert main([*argv, "--db", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no candidate store at {missing}" in err[0]
    assert not missing.exists() and not (tmp_path / "files").exists()


def test_refused_queries_exit_nonzero_with_one_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from store.database import open_store

    open_store(db)  # an empty store
    for sql, message in (("DELETE FROM candidates", "only SELECT"),
                         ("SELECT * FROM read_text('/etc/passwd')", "outside the store")):
        assert main(["query", sql, "--db", str(db)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    assert main(["export-poscar", "--query", "SELECT id FROM candidates", "--out", "x", "--db", str(db)]) == 2
    assert "selected no candidates" in capsys.readouterr().err


@pytest.mark.slow
def test_generate_with_relax_stores_and_writes_both_structures(db: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "files"
    argv = ["generate", "--target", "-0.75", "--n", "2", "--steps-per-level", "1", "--seed", "1",
            "--artifacts", str(MODEL), "--db", str(db), "--out", str(out), "--relax"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "relaxation (completed): 2 relaxed" in printed
    assert "within ±0.05 eV/atom of -0.750 by the oracle:" in printed and "dataset baseline:" in printed

    from store.database import open_store
    from store.query import run_query

    frame = run_query(open_store(db), "SELECT id, formula, index_in_run, poscar, oracle_cell, oracle_converged, "
                                      "oracle_relaxed_poscar, relaxed_valid, relaxed_known, relaxed_novel FROM "
                                      "candidates ORDER BY id").frame
    assert frame["oracle_cell"].tolist() == ["in_plane"] * 2 and frame["relaxed_valid"].notna().all()
    assert frame["relaxed_known"].notna().all() and frame["relaxed_novel"].notna().all()
    assert (open_store(db).run(1)["relax_status"]) == "completed"
    for row in frame.itertuples():  # the store's names (as export-poscar and the app): relaxed under the plain one
        relaxed = (out / f"{row.id:06d}_{row.formula}.vasp").read_text()
        assert relaxed == row.oracle_relaxed_poscar
        assert (out / f"{row.id:06d}_{row.formula}_generated.vasp").read_text() == row.poscar != relaxed
        assert Structure.from_str(relaxed, fmt="poscar").composition.reduced_formula
