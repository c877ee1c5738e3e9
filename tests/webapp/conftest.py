"""Fixtures of the app tests: the app's folders, the app opened in AppTest, stored candidates, and the app
served by ``streamlit run`` for tests in a real browser.

Tests get these as fixtures (never by importing another test file). The session fixtures of
``tests/conftest.py`` (``bilayer``, ``perturbed_dataset_bilayer``, ...) apply here too.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from pymatgen.core import Structure
from streamlit.testing.v1 import AppTest

from store.database import close_store

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "webapp" / "app.py"
SHIPPED = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

try:
    from playwright import sync_api as playwright_api
except ImportError:  # pinned in requirements.txt: only a hand-made environment lacks it
    playwright_api = None

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
"""Under CI (.ci/run sets CI=true) a missing browser fails the test: a skip there would go unnoticed."""


# -- the app in-process (AppTest) ----------------------------------------------------------------------------
@pytest.fixture
def app_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tmp_path``, with the app on its empty ``artifacts``, ``dataset`` and ``var`` (data) folders, the
    default reports folder and database; the app's cached store is closed after the test."""
    for name in ("artifacts", "dataset", "var"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("VDWGEN_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("VDWGEN_DATASET_DIR", str(tmp_path / "dataset"))
    monkeypatch.setenv("VDWGEN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("VDWGEN_REPORTS_DIR", raising=False)
    monkeypatch.delenv("VDWGEN_DB", raising=False)
    yield tmp_path
    # The app caches its store (st.cache_resource); drop it so no DuckDB handle outlives the test.
    st.cache_resource.clear()
    close_store(tmp_path / "var" / "candidates.duckdb")
    gc.collect()


@pytest.fixture
def shipped_models(app_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """:func:`app_dirs` but the app on the shipped artifacts (returned), which hold the default model."""
    monkeypatch.setenv("VDWGEN_ARTIFACTS_DIR", str(SHIPPED))
    assert (SHIPPED / "cdvae-plus-janus" / "manifest.json").is_file(), "the default model is not shipped"
    return SHIPPED


def _open_app(page: str | None = None, timeout: float = 60) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=timeout).run(timeout=timeout)
    assert not at.exception, [e.value for e in at.exception]
    if page is not None:
        at.switch_page(page).run(timeout=timeout)
        assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def open_app() -> Callable[..., AppTest]:
    """``(page=None, timeout=60) -> AppTest``: ``webapp/app.py`` run (runs without a timeout of their own
    wait ``timeout`` s), switched to ``page`` (``"views/<name>.py"``) if given; no exception raised."""
    return _open_app


@pytest.fixture
def store_candidates(app_dirs: Path) -> Callable[..., list[int]]:
    """``(structures, predicted=-0.7) -> ids``: each structure stored as its own run of one candidate
    (predicted formation energy ``predicted``) in the app's store under ``app_dirs / "var"``."""
    from scoring.record import candidate_record
    from store.database import RunInfo, open_store

    def store_them(structures: list[Structure], predicted: float = -0.7) -> list[int]:
        store = open_store(app_dirs / "var" / "candidates.duckdb")
        ids = []
        for structure in structures:
            run = store.start_run(RunInfo("formula", 1, 0, "demo", "0" * 64))
            ids += store.finish_run(run, [candidate_record(0, structure, predicted)])
        return ids

    return store_them


# -- the app served, in a real browser -----------------------------------------------------------------------
@pytest.fixture
def browser_available() -> None:
    """Skip when playwright or chromium is missing (fail instead under CI)."""
    if playwright_api is None:
        missing = "playwright is not installed (make venv installs the pins in requirements.txt)"
    elif not Path(CHROMIUM).exists():
        missing = (f"no chromium at {CHROMIUM}: run `make browser` as root, or "
                   "`sudo apt-get install -y --no-install-recommends chromium`")
    else:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {missing}", pytrace=False)
    pytest.skip(missing)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_url(browser_available: None, tmp_path: Path) -> Iterator[str]:
    """The URL of ``streamlit run webapp/app.py`` on the shipped artifacts with an empty data folder
    (``tmp_path / "var"``); stopped after the test. Checks for the browser first (:func:`browser_available`)."""
    port = _free_port()
    env = {**os.environ, "VDWGEN_DATA_DIR": str(tmp_path / "var"), "VDWGEN_ARTIFACTS_DIR": str(SHIPPED),
           "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.enableStaticServing", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the app did not start within 60 s")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def new_browser_page(app_url: str) -> Iterator[Callable[[int], object]]:
    """``height -> page``: a chromium page (Playwright; 1400 x ``height`` px, downloads accepted) on
    :func:`app_url`, its Generate page shown. The browsers are closed after the test."""
    with playwright_api.sync_playwright() as p:
        browsers = []

        def new_page(height: int):
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            browsers.append(browser)
            page = browser.new_page(viewport={"width": 1400, "height": height}, accept_downloads=True)
            page.goto(app_url, wait_until="domcontentloaded")
            page.get_by_text("Generate crystals").wait_for(timeout=60_000)
            return page

        yield new_page
        for browser in browsers:
            browser.close()
