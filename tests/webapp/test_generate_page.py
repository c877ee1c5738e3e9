"""The Generate page on the shipped model: stored records shown, runs in the background, requests checked.

Requests are small (one or two crystals, one Langevin step per level) and seeded. Where a test needs a run
caught mid-way it holds the run at a gate (a patched step that waits for an event) instead of racing a clock.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pymatgen.core import Composition, Structure
from streamlit.testing.v1 import AppTest

from core.manifest import read_manifest
from scoring.record import candidate_record, grouped_by_element
from serving.engine import Engine
from serving.request import MAX_SCREENING_RATIO, MAX_STEPS_PER_LEVEL, GenerationRequest
from store.database import RunInfo, close_store, open_store
from store.files import poscar_name
from webapp.run_results import duplicate_label, results_table

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "artifacts" / "cdvae-plus-janus"
GENERATE_PAGE = "views/generate.py"
OTHER_PAGE = "views/dataset.py"  # any other page: leaving the Generate page is what matters
JOB = "generate_job"
WAIT = 180.0


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[object, str], threading.Event]]:
    """``(owner, name) -> event``: ``owner.name`` waits for the event before doing its work."""
    events: list[threading.Event] = []

    def hold(owner: object, name: str) -> threading.Event:
        original, event = getattr(owner, name), threading.Event()

        def gated(*args, **kwargs):
            if not event.wait(WAIT):
                raise TimeoutError(f"the test never opened the gate of {name}")
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, gated)
        events.append(event)
        return event

    yield hold
    for event in events:  # a failed test must not leave a run waiting
        event.set()


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str | None, bytes]]:
    """Download URL -> (file name, data) of every download button drawn during the test."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    files: dict[str, tuple[str | None, bytes]] = {}
    original = MediaFileManager.add

    def add(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        url = original(self, path_or_data, mimetype, coordinates, file_name, is_for_static_download)
        files[url] = (file_name, path_or_data.encode() if isinstance(path_or_data, str) else path_or_data)
        return url

    monkeypatch.setattr(MediaFileManager, "add", add)
    return files


def _ask(at: AppTest, formula: str | None = "GaInSSe", count: int = 2, seed: int = 0, relax: bool = False) -> AppTest:
    """Fill a formula request (one Langevin step per level; relaxation off unless asked) and click Generate."""
    if formula is not None:
        at.radio(key="generate_mode").set_value("formula").run()
        at.text_input(key="generate_formula").set_value(formula)
    at.checkbox(key="generate_relax").set_value(relax)
    at.number_input(key="generate_count").set_value(count)
    at.number_input(key="generate_seed").set_value(seed)
    at.number_input(key="generate_steps").set_value(1)
    at.button(key="generate_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _finish(at: AppTest) -> AppTest:
    """Wait for the session's run to end, then show the page again."""
    assert at.session_state[JOB].wait(WAIT), "the run did not end"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _rows(var: Path, sql: str) -> list[tuple]:
    return open_store(var / "candidates.duckdb").cursor().execute(sql).fetchall()


def _download(at: AppTest, files: dict[str, tuple[str | None, bytes]], label: str) -> tuple[str | None, bytes]:
    """The file name and data behind the download button ``label``."""
    (button,) = [b for b in at.get("download_button") if b.proto.label == label]
    return files[button.proto.url]


def test_the_table_and_the_files_are_the_stored_records(app_dirs: Path, shipped_models: Path, open_app, downloads,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    var = app_dirs / "var"
    at = _finish(_ask(open_app(), count=2, seed=0))
    at = _finish(_ask(at, formula=None, count=2, seed=0))  # the same crystals again: duplicates of run 1's
    stored = _rows(var, "SELECT id, formula, valid, novel, duplicate_of, n_layers, poscar, cif FROM candidates "
                        "WHERE run_id = 2 ORDER BY index_in_run")
    table = at.dataframe[0].value
    assert table["id"].tolist() == [r[0] for r in stored] == [3, 4]
    assert table["formula"].tolist() == [r[1] for r in stored]
    assert [v == "valid" for v in table["validity"]] == [r[2] for r in stored]
    assert table["novel"].tolist() == [{True: "yes", False: "no", None: "-"}[r[3]] for r in stored]
    assert all(r[4] in (1, 2) for r in stored), "the same seed gives run 1's crystals again"
    assert table["duplicate of"].tolist() == [f"candidate {r[4]}" for r in stored]
    assert table["layers"].tolist() == [r[5] for r in stored]

    # The pick and the files belong to the run shown, named as on the Candidates page and by export-poscar.
    assert not [s for s in at.selectbox if s.key == "generate_pick_1"]
    pick = at.selectbox(key="generate_pick_2")
    assert pick.options == [f"#{i} {r[1]} (candidate {r[0]})" for i, r in enumerate(stored)]
    first = poscar_name(3, stored[0][1])
    assert _download(at, downloads, "POSCAR") == (first, stored[0][6].encode())
    assert _download(at, downloads, "CIF") == (first.replace(".vasp", ".cif"), stored[0][7].encode())
    pick.set_value(1).run()
    assert _download(at, downloads, "POSCAR") == (poscar_name(4, stored[1][1]), stored[1][6].encode())
    assert at.code[0].value == stored[1][6].strip()
    _, data = _download(at, downloads, "All files (ZIP: relaxed and generated POSCARs, CIFs, summary.csv)")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == [n for r in stored for n in (poscar_name(r[0], r[1]), poscar_name(r[0], r[1],
                                                                                                        ".cif"))
                                      ] + ["summary.csv"]
        assert [archive.read(poscar_name(r[0], r[1])).decode() for r in stored] == [r[6] for r in stored]

    # Showing the run again scores nothing: the page only reads the records.
    def no_scoring(*args, **kwargs):
        raise AssertionError("the page scored a crystal")

    for module, name in (("scoring.validity", "structurally_valid"), ("scoring.validity", "compositionally_valid"),
                         ("scoring.validity", "min_distance"), ("scoring.layers", "analyse_layers")):
        monkeypatch.setattr(f"{module}.{name}", no_scoring)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe[0].value["id"].tolist() == [3, 4]


def test_the_run_table_is_the_stored_rows(bilayer, tmp_path: Path) -> None:  # noqa: ANN001
    records = [candidate_record(0, bilayer(), -0.7, novel=True, duplicate_of=None, known_id=None),
               candidate_record(1, bilayer(0.3), -0.6, novel=None, duplicate_of=-1),
               candidate_record(2, bilayer(), None, novel=False, duplicate_of=12, known_id="jb-00001")]
    store = open_store(tmp_path / "table.duckdb")
    try:
        run = store.start_run(RunInfo("formula", 3, 0, "demo", "0" * 64, formula_request="GaS"))
        ids = store.finish_run(run, records)
        table = results_table(store.run_rows(run))
    finally:
        close_store(tmp_path / "table.duckdb")
    assert table["id"].tolist() == ids and table["#"].tolist() == [0, 1, 2]
    assert table["novel"].tolist() == ["yes", "-", "no"] and table["known as"].tolist() == ["-", "-", "jb-00001"]
    # a duplicate of an earlier crystal of the run is stored as that crystal's id
    assert table["duplicate of"].tolist() == ["-", f"candidate {ids[0]}", "candidate 12"]
    assert table["validity"].tolist() == [r.verdict for r in records]
    assert table["relaxed"].tolist() == ["-"] * 3 and table["oracle E_f (eV/atom)"].isna().all()  # not relaxed
    assert table["predicted E_f (eV/atom)"].isna().tolist() == [False, False, True]
    assert duplicate_label(-3) == "#2 of this run"


def _limit_cases() -> list[tuple[str, int, str]]:
    cap = read_manifest(MODEL).sampling.max_count
    return [("generate_count", 0, f"count must be a whole number from 1 to {cap}, got 0"),
            ("generate_count", 100_000, f"count must be a whole number from 1 to {cap}, got 100000"),
            ("generate_steps", 0, f"steps per level must be from 1 to {MAX_STEPS_PER_LEVEL}, got 0"),
            ("generate_steps", MAX_STEPS_PER_LEVEL + 1, f"from 1 to {MAX_STEPS_PER_LEVEL}"),
            ("generate_ratio", MAX_SCREENING_RATIO + 1, f"screening ratio must be from 1 to {MAX_SCREENING_RATIO}"),
            ("generate_seed", -1, "seed must be a whole number >= 0, got -1")]


@pytest.mark.parametrize(("key", "value", "message"), _limit_cases())
def test_an_out_of_range_value_is_refused_and_nothing_runs(app_dirs: Path, shipped_models: Path, open_app, key: str,
                                                           value: int, message: str) -> None:
    at = open_app()  # a formation-energy request: every setting applies
    at.number_input(key="generate_count").set_value(2)
    at.number_input(key=key).set_value(value)
    at.button(key="generate_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert JOB not in at.session_state and not at.dataframe and not at.progress
    assert _rows(app_dirs / "var", "SELECT count(*) FROM runs") == [(0,)]


def test_progress_while_the_reference_loads_and_the_crystals_decode(app_dirs: Path, shipped_models: Path, open_app,
                                                                    gate) -> None:
    import services.generation

    var = app_dirs / "var"
    reference = gate(services.generation, "training_set")
    decoding = gate(Engine, "decode")
    at = _ask(open_app(), count=2)
    job = at.session_state[JOB]
    assert job.running and job.progress().stage == "reference"
    assert "Loading the novelty reference" in at.progress[0].text
    assert "50 noise levels x 1 Langevin steps" in "\n".join(c.value for c in at.caption)

    at.button(key="generate_run").click().run()  # a second click while the run is on starts nothing
    assert any("already in progress" in w.value for w in at.warning)
    assert at.session_state[JOB] is job

    reference.set()
    _until(lambda: job.progress().stage == "decoding")
    at.run()
    assert "decoding: 0/2 crystals decoded" in at.progress[0].text and at.progress[0].value == 0
    assert _rows(var, "SELECT id, status FROM runs") == [(1, "running")]

    decoding.set()
    at = _finish(at)
    assert not at.progress and len(at.dataframe[0].value) == 2
    assert any("Stored as run 1" in s.value for s in at.success)
    assert _rows(var, "SELECT id, status, count_stored FROM runs") == [(1, "completed", 2)]


def test_a_run_goes_on_when_the_user_leaves_the_page(app_dirs: Path, shipped_models: Path, open_app, gate) -> None:
    var = app_dirs / "var"
    decoding = gate(Engine, "decode")
    at = _ask(open_app(), count=2, seed=3)
    job = at.session_state[JOB]
    at.switch_page(OTHER_PAGE).run()  # the script of the Generate page stops here
    at.switch_page(GENERATE_PAGE).run()
    assert job.running and at.progress, "back on the page, the run's progress shows"
    at.switch_page(OTHER_PAGE).run()
    decoding.set()
    assert job.wait(WAIT) and job.error is None
    assert _rows(var, "SELECT status, count_stored, message FROM runs") == [("completed", 2, None)]
    assert _rows(var, "SELECT count(*) FROM candidates WHERE run_id = 1") == [(2,)]

    at.switch_page(GENERATE_PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe[0].value["id"].tolist() == [1, 2]
    assert any("Stored as run 1" in s.value for s in at.success)


def test_the_app_gives_the_crystals_the_engine_gives_for_a_seed(app_dirs: Path, shipped_models: Path, open_app) -> None:
    """The run in a background thread keeps the seeding: the same request gives the same crystals."""
    _finish(_ask(open_app(), count=2, seed=7))
    stored = [r[0] for r in _rows(app_dirs / "var", "SELECT poscar FROM candidates ORDER BY index_in_run")]
    direct = Engine.load(MODEL).generate(GenerationRequest("formula", 2, formula="GaInSSe", seed=7, steps_per_level=1))
    assert len(stored) == 2
    for poscar, crystal in zip(stored, direct.crystals, strict=True):
        mine = Structure.from_str(poscar, fmt="poscar")
        assert mine.composition == Composition("Ga2In2S2Se2") == crystal.structure.composition
        assert poscar == grouped_by_element(crystal.structure).to(fmt="poscar")  # the same crystal, sites grouped


# -- in a real browser: what a user saw (the defects were found this way) -----------------------------------------
def _browser_request(page, formula: str, count: int, steps: int) -> None:
    page.get_by_text("Formula", exact=True).first.click()
    box = page.get_by_role("textbox", name="Formula")
    box.fill(formula)
    box.press("Enter")
    for name, value in (("Number of crystals", count), ("Langevin steps per noise level", steps)):
        if name.startswith("Langevin") and not page.get_by_role("spinbutton", name=name).is_visible():
            page.get_by_text("Advanced settings").click()
        box = page.get_by_role("spinbutton", name=name)
        box.fill(str(value))
        box.press("Enter")
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Generate", exact=True).click()


def test_in_a_browser_a_run_outlives_leaving_the_page_and_the_pick_follows_the_run(new_browser_page,
                                                                                    tmp_path: Path) -> None:
    page = new_browser_page(1400)
    _browser_request(page, "GaInSSe", count=2, steps=5)
    page.get_by_text("noise levels x 5 Langevin steps").wait_for(timeout=60_000)  # the progress shows
    page.get_by_role("link", name="Candidates").click()  # leave the page during the run
    page.get_by_role("textbox", name="SQL: one SELECT over the tables").wait_for(timeout=60_000)
    page.get_by_role("link", name="Generate").click()
    page.get_by_text("Stored as run 1").wait_for(timeout=180_000)
    page.get_by_text("2 crystals from").wait_for(timeout=10_000)
    assert page.get_by_text("ended interrupted").count() == 0 and page.get_by_text("failed").count() == 0

    _browser_request(page, "AlGaSeTe", count=1, steps=1)
    page.get_by_text("Stored as run 2").wait_for(timeout=180_000)
    pick = page.get_by_role("combobox", name="Crystal to download")
    assert pick.input_value() == "#0 Al2Ga2Se2Te2 (candidate 3)"  # the pick shows this run's crystal, not run 1's
    # relaxation is on by default: the download is the crystal the oracle relaxed, grouped by element
    page.get_by_text("Oracle (CHGNet + D3").first.wait_for(timeout=10_000)
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="POSCAR (relaxed)", exact=True).click()
    assert download.value.suggested_filename == poscar_name(3, "Al2Ga2Se2Te2")
    path = tmp_path / "downloaded.vasp"
    download.value.save_as(path)
    assert Structure.from_str(path.read_text(), fmt="poscar").composition == Composition("Al2Ga2Se2Te2")
    assert path.read_text().splitlines()[5:7] == ["Al Ga Se Te", "2 2 2 2"]
    page.screenshot(path=str(tmp_path / "generate_relaxed.png"), full_page=True)


def test_the_model_picker_offers_every_model_and_the_form_follows_the_one_picked(
        app_dirs: Path, perovskite_artifact: Path, open_app) -> None:  # noqa: ANN001
    artifacts = app_dirs / "artifacts"
    shutil.copytree(MODEL, artifacts / "cdvae-plus-janus")
    shutil.copytree(perovskite_artifact, artifacts / "perov")
    at = open_app()
    # two models with different properties take a target: the mode is named for what they share
    assert list(at.radio(key="generate_mode").options) == ["Property target", "Formula"]
    picker = at.selectbox(key="generate_model_formation_energy")
    assert list(picker.options) == ["cdvae-plus-janus", "perov"] and picker.value == "cdvae-plus-janus"
    assert at.number_input(key="generate_target").label == "Target formation energy (eV/atom)"
    picker.set_value("perov").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="generate_target").label == "Target heat_ref (eV/atom)"
    assert any("property heat_ref (eV/atom); trained on perov:data:train" in c.value for c in at.caption)
    at.radio(key="generate_mode").set_value("formula").run()
    at.selectbox(key="generate_model_formula").set_value("perov").run()
    at.text_input(key="generate_formula").set_value("GaInSSe").run()
    at.button(key="generate_run").click().run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "allowed elements: " in errors[0] and "Sr" in errors[0]  # the picked model's


@pytest.mark.slow
def test_a_request_with_relaxation_shows_the_oracle_verdicts_it_stored(app_dirs: Path, shipped_models: Path, open_app,
                                                                        downloads) -> None:
    at = _ask(open_app(), count=2, seed=0, relax=True)
    job = at.session_state[JOB]
    assert job.relax
    at = _finish(at)
    assert job.error is None, job.error
    stored = _rows(app_dirs / "var", "SELECT id, formula, oracle_formation_energy, oracle_relaxed_poscar, poscar, "
                                     "relaxed_valid FROM candidates ORDER BY id")
    assert len(stored) == 2 and all(r[2] is not None and r[3] for r in stored), "both crystals relaxed and stored"
    assert _rows(app_dirs / "var", "SELECT relax, relax_status FROM runs") == [(True, "completed")]
    table = at.dataframe[0].value
    assert table["oracle E_f (eV/atom)"].tolist() == [round(r[2], 4) for r in stored]
    assert [v.split(":")[0] for v in table["relaxed"]] == [("valid" if r[5] else "invalid") for r in stored]
    assert any(c.value.startswith("Oracle (CHGNet + D3") for c in at.caption)
    # the download gives the relaxed crystal, the crystal as generated on request
    first = poscar_name(stored[0][0], stored[0][1])
    assert _download(at, downloads, "POSCAR (relaxed)") == (first, stored[0][3].encode())
    assert _download(at, downloads, "POSCAR as generated") == (first.replace(".vasp", "_generated.vasp"),
                                                                stored[0][4].encode())
