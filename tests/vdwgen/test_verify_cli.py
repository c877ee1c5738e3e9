"""`vdwgen verify`: stored candidates checked with the oracle (CHGNet + D3), results in the store.

One candidate is a dataset bilayer with its atoms moved a little (seeded), so the relaxation
is real but short. The refusals need no CHGNet.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pymatgen.core import Structure

from scoring.record import candidate_record
from store.database import RunInfo, close_store, open_store
from store.query import run_query
from vdwgen.cli import main

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "data" / "janus_iii_vi" / "bilayers.parquet"  # the committed dataset (the CLI's default)


@pytest.fixture
def db(tmp_path: Path):
    path = tmp_path / "verify.duckdb"
    yield path
    close_store(path)


def _store_one(db: Path, structure: Structure, predicted: float) -> int:
    store = open_store(db)
    run = store.start_run(RunInfo("formula", 1, 0, "demo", "0" * 64, formula_request="AlGa2InTe4"))
    (cid,) = store.finish_run(run, [candidate_record(0, structure, predicted)])
    return cid


@pytest.mark.slow
@pytest.mark.skipif(not TABLE.is_file(), reason="the committed dataset is not in this checkout")
def test_verify_stores_the_oracle_check(
    perturbed_dataset_bilayer, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    structure, label = perturbed_dataset_bilayer()
    cid = _store_one(db, structure, label + 0.02)
    assert main(["verify", str(cid), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("    id  formula")  # the table first: nothing else on stdout
    assert "1 checked with CHGNet 0.3.0 + D3(zero, PBE)" in out and open_store(db).candidate(cid)["formula"] in out
    frame = run_query(open_store(db), "SELECT oracle_formation_energy, oracle_energy_drop_per_atom, oracle_steps, "
                                      "oracle_converged, oracle_rmsd, oracle_interlayer_gap, oracle_version "
                                      "FROM candidates").frame.iloc[0]
    assert abs(frame["oracle_formation_energy"] - label) < 0.005 and frame["oracle_energy_drop_per_atom"] > 0
    assert bool(frame["oracle_converged"]) and 0 < frame["oracle_steps"] < 500 and 0 < frame["oracle_rmsd"] < 0.2
    assert 2.5 < frame["oracle_interlayer_gap"] < 4.5 and frame["oracle_version"].startswith("CHGNet 0.3.0")
    table_row = next(line for line in out.splitlines() if line.split()[:1] == [str(cid)])
    assert f"{frame['oracle_formation_energy']:.3f}" in table_row and table_row.endswith("yes")


def test_bad_ids_and_options_exit_with_one_line(bilayer, db: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _store_one(db, bilayer(), -0.7)
    for argv, message in ((["verify", "1", "7"], "no candidate with id 7 in"),
                          (["verify", "5", "6"], "no candidates with ids 5, 6 in"),
                          (["verify", "1", "--fmax", "0"], "--fmax must be a positive force"),
                          (["verify", "1", "--max-steps", "0"], "--max-steps must be at least 1"),
                          (["verify"], "give candidate ids or --run RUN"),
                          (["verify", "1", "--run", "1"], "give candidate ids or --run RUN"),
                          (["verify", "--run", "9"], "no run 9 in")):
        assert main([*argv, "--db", str(db)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    monkeypatch.setenv("VDWGEN_DATASET_DIR", str(tmp_path / "no-dataset"))
    assert main(["verify", "1", "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no elemental references at" in err[0]
    assert run_query(open_store(db), "SELECT count(*) AS n FROM candidates WHERE oracle_checked_at IS NOT NULL"
                     ).frame["n"].tolist() == [0]


def test_verify_modules_load_in_a_fresh_process_without_training() -> None:
    script = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "training" or name.startswith("training."):
            raise ImportError("training is not importable here")
sys.meta_path.insert(0, Block())
import oracle.calculator, scoring.oracle_check, vdwgen.verify_cli, webapp.oracle_check
from vdwgen.cli import main
try:
    main(["verify", "--help"])
except SystemExit as exc:
    assert exc.code == 0
assert not any(m == "training" or m.startswith("training.") for m in sys.modules)
assert "chgnet" not in sys.modules and "torch" not in sys.modules  # CHGNet loads on the first check only
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
