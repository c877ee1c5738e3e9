"""The DuckDB candidate store: schema and its migration, atomic runs, hostile SQL, threads, a killed writer,
oracle checks."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import numpy as np
import pytest
from pymatgen.core import Structure

from scoring.record import candidate_record
from store.database import CANDIDATE_COLUMNS, RunInfo, StoreError, close_store, open_store
from store.query import EXAMPLES, QueryRefused, run_query
from store.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path):
    path = tmp_path / "c.duckdb"
    yield open_store(path)
    close_store(path)


def _run(store, bilayer, n: int = 3, status: str = "completed") -> tuple[int, list[int]]:
    run_id = store.start_run(RunInfo("formula", n, 0, "demo", "0" * 64, formula_request="GaS"))
    records = [candidate_record(i, bilayer(0.01 * i), -0.7 - 0.01 * i) for i in range(n)]
    return run_id, store.finish_run(run_id, records, status, seconds=1.0)


def test_schema_is_migrated_and_runs_are_stored(bilayer, store) -> None:
    assert store.schema_version == SCHEMA_VERSION
    run_id, ids = _run(store, bilayer)
    assert ids == [1, 2, 3]
    run = store.run(run_id)
    assert run["status"] == "completed" and run["count_stored"] == 3 and run["formula_request"] == "GaS"
    frame = run_query(store, "SELECT * FROM candidates ORDER BY id").frame
    assert list(frame["formula"]) == ["Ga4S4"] * 3 and list(frame["n_layers"]) == [2, 2, 2]
    assert frame["interlayer_gap"].round(6).tolist() == [3.2] * 3 and frame["valid"].all()


def test_poscar_and_cif_round_trip(bilayer, store) -> None:
    _run(store, bilayer, 1)
    (files,) = store.files([1])
    assert files.relaxed_poscar is None and files.relaxed_cif is None  # not relaxed by the oracle
    original = bilayer()
    for text, fmt in ((files.poscar, "poscar"), (files.cif, "cif")):
        back = Structure.from_str(text, fmt=fmt)
        assert back.composition == original.composition
        assert np.allclose(back.lattice.abc, original.lattice.abc, atol=1e-5)
        assert back.matches(original)


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT * FROM read_text('/etc/passwd')", "outside the store"),
    ("SELECT * FROM read_csv('/etc/hosts')", "outside the store"),
    ("COPY candidates TO '/tmp/stolen.csv'", "only SELECT"),
    ("ATTACH '/tmp/other.duckdb' AS other", "only SELECT"),
    ("SELECT 1; DELETE FROM candidates", "exactly one statement"),
    ("SET enable_external_access = true", "only SELECT"),
    ("PRAGMA database_list", "only SELECT"),
    ("INSTALL httpfs", "only SELECT"),
    ("LOAD httpfs", "only SELECT"),
    ("CREATE TABLE x AS SELECT 1", "only SELECT"),
    ("DELETE FROM candidates", "only SELECT"),
    ("UPDATE candidates SET valid = false", "only SELECT"),
    ("DROP TABLE candidates", "only SELECT"),
    ("SELEC * FROM candidates", "does not parse"),
    ("", "write one SELECT"),
])
def test_hostile_sql_is_refused_and_changes_nothing(bilayer, store, sql: str, message: str) -> None:
    _run(store, bilayer, 2)
    before = run_query(store, "SELECT * FROM candidates ORDER BY id").frame
    with pytest.raises(QueryRefused, match=message):
        run_query(store, sql)
    after = run_query(store, "SELECT * FROM candidates ORDER BY id").frame
    assert after.equals(before) and store.count("runs") == 1
    assert not Path("/tmp/stolen.csv").exists()


def test_a_query_that_runs_forever_is_interrupted(store) -> None:
    with pytest.raises(QueryRefused, match="longer than 0.3 s"):
        run_query(store, "SELECT count(*) FROM range(100000000000) a, range(10) b", timeout_s=0.3)
    assert run_query(store, "SELECT 42 AS x").frame["x"].tolist() == [42]


def test_row_cap_and_messages_without_paths(store) -> None:
    result = run_query(store, "SELECT * FROM range(50)", row_cap=10)
    assert len(result.frame) == 10 and result.truncated
    with pytest.raises(QueryRefused) as err:
        run_query(store, "SELECT no_such_column FROM candidates")
    assert "no_such_column" in str(err.value) and str(store.path) not in str(err.value)


def test_example_queries_run(bilayer, store) -> None:
    _run(store, bilayer, 2)
    for sql in EXAMPLES.values():
        run_query(store, sql)


def test_concurrent_runs_lose_and_duplicate_nothing(bilayer, store) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(3):
                _run(store, bilayer, 4)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    frame = run_query(store, "SELECT id, run_id, index_in_run FROM candidates").frame
    assert len(frame) == 4 * 3 * 4 and frame["id"].is_unique
    assert sorted(frame["id"]) == list(range(1, 49)) and store.count("runs") == 12
    assert frame.groupby("run_id").size().eq(4).all()


def test_a_run_rolled_back_leaves_nothing(bilayer, store) -> None:
    run_id = store.start_run(RunInfo("formula", 2, 0, "demo", "0" * 64))
    good = candidate_record(0, bilayer(), -0.7)
    bad = [good, dataclasses.replace(good, index_in_run=1, poscar=None)]  # second record is incomplete
    with pytest.raises(duckdb.ConstraintException):
        store.finish_run(run_id, bad)
    assert store.count() == 0 and store.run(run_id)["status"] == "running"
    store.finish_run(run_id, bad[:1], "interrupted", message="stopped by the user; 1 of 2 kept")
    assert store.run(run_id)["status"] == "interrupted" and store.count() == 1


def test_ctrl_c_inside_a_write_stores_none_of_it_and_frees_the_store(bilayer, store) -> None:
    run_id = store.start_run(RunInfo("formula", 2, 0, "demo", "0" * 64))
    with pytest.raises(KeyboardInterrupt):
        with store.transaction() as cur:
            cur.execute("UPDATE runs SET message = 'half-way' WHERE id = ?", [run_id])
            raise KeyboardInterrupt  # e.g. Ctrl-C between two statements of one write
    assert store.run(run_id)["message"] is None
    store.finish_run(run_id, [candidate_record(0, bilayer(), -0.7)])  # the next write goes through (rolled back)
    assert store.count() == 1 and store.run(run_id)["status"] == "completed"


def test_killed_writer_leaves_completed_runs_and_marks_its_run(bilayer, tmp_path: Path) -> None:
    path = tmp_path / "killed.duckdb"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pymatgen.core import Structure
        bilayer = lambda: Structure.from_str({bilayer().to(fmt='poscar')!r}, fmt='poscar')
        from store.database import RunInfo, open_store
        from scoring.record import candidate_record
        store = open_store({str(path)!r})
        for k in range(2):
            run = store.start_run(RunInfo("formula", 2, k, "demo", "0" * 64))
            store.finish_run(run, [candidate_record(i, bilayer(), -0.7) for i in range(2)])
        store.start_run(RunInfo("formula", 2, 9, "demo", "0" * 64))
        print("started", flush=True)
        os.kill(os.getpid(), 9)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9 and "started" in done.stdout
    store = open_store(path)
    try:
        runs = run_query(store, "SELECT id, status, count_stored FROM runs ORDER BY id").frame
        assert runs["status"].tolist() == ["completed", "completed", "interrupted"]
        assert runs["count_stored"].tolist() == [2, 2, 0] and store.count() == 4
    finally:
        close_store(path)


def test_another_process_holding_the_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from store.database import open_store
        open_store({str(path)!r}); print("open", flush=True); time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match=r"in use by another process \(PID \d+\)"):
            open_store(path)
    finally:
        holder.kill()
        holder.wait()


def _squeezed(bilayer) -> Structure:  # noqa: ANN001
    """The bilayer with its upper layer 1.6 Å lower: S-S 1.6 Å apart across the gap, valid by the paper's 0.5 Å."""
    s = bilayer()
    upper = [i for i, z in enumerate(s.cart_coords[:, 2]) if z > s.cart_coords[:, 2].mean()]
    s.translate_sites(upper, [0, 0, -1.6], frac_coords=False)
    return s


def _version_1_file(path: Path, bilayer) -> None:
    """A store file as vdwgen wrote it before the oracle columns (schema version 1), with two candidates: a
    sound bilayer and one whose layers touch, both ``valid`` by the paper's checks, as version 1 stored it."""
    import datetime as dt

    import duckdb

    from store.schema import MIGRATIONS

    good, squeezed = candidate_record(0, bilayer(), -0.7), candidate_record(1, _squeezed(bilayer), -0.7)
    now = dt.datetime(2026, 1, 1)
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied TIMESTAMP NOT NULL)")
        con.execute(MIGRATIONS[0])
        con.execute("INSERT INTO schema_version VALUES (1, ?)", [now])
        con.execute("INSERT INTO runs (id, created, finished, status, mode, formula_request, count_requested, "
                    "count_stored, seed, model_name, manifest_sha256) "
                    "VALUES (1, ?, ?, 'completed', 'formula', 'GaS', 2, 2, 0, 'demo', ?)", [now, now, "0" * 64])
        version_1 = CANDIDATE_COLUMNS[:CANDIDATE_COLUMNS.index("slab")]  # slab came with version 3, the rest after
        columns = ("id", "run_id", "index_in_run", "created", *version_1)
        for k, record in enumerate((good, squeezed)):
            values = {**record.row(), "valid": record.structure_valid and record.composition_valid,  # version 1
                      "poscar": bilayer().to(fmt="poscar") if k == 0 else record.poscar}  # sites not grouped
            con.execute(f"INSERT INTO candidates ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                        [k + 1, 1, k, now, *(values[c] for c in version_1)])
    finally:
        con.close()


def _fake_check(bilayer, formation_energy: float = -0.75):  # noqa: ANN202 - an OracleCheck
    from scoring.oracle_check import OracleCheck

    return OracleCheck(formation_energy=formation_energy, initial_formation_energy=formation_energy + 0.01,
                       energy_drop_per_atom=0.01, energy_drop=0.08, steps=12, converged=True, max_force=0.03,
                       interlayer_gap=3.1, rmsd=0.05, relaxed=bilayer(0.1))


def test_a_version_1_file_migrates_and_keeps_its_rows(bilayer, tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _version_1_file(path, bilayer)
    store = open_store(path)
    try:
        assert store.schema_version == SCHEMA_VERSION >= 3
        frame = run_query(store, "SELECT id, formula, predicted_formation_energy, oracle_formation_energy, "
                                 "oracle_checked_at, slab, valid, contacts_valid, invalid_reason FROM candidates "
                                 "ORDER BY id").frame
        assert frame["slab"].isna().all()  # not known for a row stored before version 3
        assert frame["id"].tolist() == [1, 2] and frame["formula"].tolist() == ["Ga4S4", "Ga4S4"]
        assert frame["predicted_formation_energy"].tolist() == [-0.7, -0.7]
        # version 4 scored the old rows again: the touching layers are no longer "valid", and say why
        assert frame["valid"].tolist() == [True, False] and frame["contacts_valid"].tolist() == [True, False]
        assert frame["invalid_reason"].iloc[0] is None and "S-S 1.60 Å apart" in frame["invalid_reason"].iloc[1]
        assert bilayer().to(fmt="poscar").splitlines()[5] == "S Ga S Ga S"  # as version 1 wrote it ...
        assert store.candidate(1)["poscar"].splitlines()[5:7] == ["Ga S", "4 4"]  # ... grouped by the migration
        assert frame["oracle_formation_energy"].isna().all() and frame["oracle_checked_at"].isna().all()
        assert store.run(1)["status"] == "completed"
        store.record_oracle(1, _fake_check(bilayer), "CHGNet 0.3.0 + D3(zero, PBE)")  # the new columns work
    finally:
        close_store(path)
    store = open_store(path)  # reopening applies nothing twice
    try:
        assert run_query(store, "SELECT count(*) AS n FROM schema_version").frame["n"].tolist() == [SCHEMA_VERSION]
        steps = run_query(store, "SELECT oracle_steps FROM candidates ORDER BY id").frame["oracle_steps"]
        assert steps.tolist()[0] == 12
    finally:
        close_store(path)


def test_record_oracle_is_visible_in_sql_and_refuses_unknown_ids(bilayer, store) -> None:
    _run(store, bilayer, 2)
    store.record_oracle(2, _fake_check(bilayer), "CHGNet 0.3.0 + D3(zero, PBE)")
    frame = run_query(store, "SELECT id, oracle_formation_energy, oracle_energy_drop_per_atom, oracle_interlayer_gap, "
                             "oracle_rmsd, oracle_steps, oracle_converged, oracle_relaxed_poscar, oracle_version, "
                             "oracle_checked_at FROM candidates ORDER BY id").frame
    checked = frame.iloc[1]
    assert frame.iloc[0].drop("id").isna().all()  # candidate 1 was not checked
    assert checked["oracle_formation_energy"] == -0.75 and checked["oracle_energy_drop_per_atom"] == 0.01
    assert checked["oracle_interlayer_gap"] == 3.1 and checked["oracle_rmsd"] == 0.05
    assert checked["oracle_steps"] == 12 and bool(checked["oracle_converged"])
    assert checked["oracle_version"] == "CHGNet 0.3.0 + D3(zero, PBE)" and checked["oracle_checked_at"] is not None
    assert Structure.from_str(checked["oracle_relaxed_poscar"], fmt="poscar").matches(bilayer(0.1))

    store.record_oracle(2, _fake_check(bilayer, float("nan")), "CHGNet 0.3.0 + D3(zero, PBE)")  # replaced; NaN -> NULL
    again = run_query(store, "SELECT oracle_formation_energy FROM candidates WHERE id = 2").frame
    assert again["oracle_formation_energy"].isna().all()

    with pytest.raises(StoreError, match=r"^no candidate with id 99$"):
        store.record_oracle(99, _fake_check(bilayer), "CHGNet 0.3.0 + D3(zero, PBE)")
    with pytest.raises(StoreError, match=r"^no candidate with id 99$"):
        store.candidate(99)
    assert store.candidate(2)["oracle_steps"] == 12


def test_design_criteria_conserve_what_each_target_asked_and_the_oracle_found(bilayer, store) -> None:
    from store.database import DesignCriterion

    _, ids = _run(store, bilayer, n=2)
    rows = [DesignCriterion(ids[0], "formation_energy_per_atom", "formation_energy_per_atom<=-0.8", None, -0.8,
                            "eV/atom", -0.85, -0.84, True),
            DesignCriterion(ids[0], "band_gap", "band_gap=1:2", 1.0, 2.0, "eV", 1.5, 1.5, True),
            DesignCriterion(ids[1], "formation_energy_per_atom", "formation_energy_per_atom<=-0.8", None, -0.8,
                            "eV/atom", -0.7, -0.7, False)]
    store.record_design(rows, {ids[0]: "jb-00001", ids[1]: "jb-00002"})
    first = store.candidate(ids[0])
    assert first["design_met"] and first["template_id"] == "jb-00001" and not store.candidate(ids[1])["design_met"]
    store.record_design_oracle(ids[0], {"formation_energy_per_atom": -0.81, "band_gap": None})
    stored = {r["label"]: r for r in store.design_rows(1) if r["candidate_id"] == ids[0]}
    assert stored["formation_energy_per_atom"]["oracle_met"] and stored["band_gap"]["oracle_met"] is None
    assert store.candidate(ids[0])["design_oracle_met"] is None  # the oracle cannot tell a band gap
    store.record_design_oracle(ids[1], {"formation_energy_per_atom": -0.79})
    assert store.candidate(ids[1])["design_oracle_met"] is False
    store.record_design_oracle(ids[0], {"formation_energy_per_atom": -0.5, "band_gap": None})
    assert store.candidate(ids[0])["design_oracle_met"] is False  # one target missed decides, unknowns or not
    assert len(store.design_rows(1)) == 3
    frame = run_query(store, "SELECT c.id, d.label, d.oracle_met FROM candidates c JOIN design_criteria d "
                             "ON d.candidate_id = c.id WHERE d.oracle_met = false ORDER BY c.id").frame
    assert frame["id"].tolist() == [ids[0], ids[1]]
