"""The main path in a real browser: request a formula, see the rows, filter with SQL, download a POSCAR.

Runs ``streamlit run webapp/app.py`` on the shipped artifacts with an empty data folder and
drives it with Debian's chromium through Playwright (environment.md). Screenshots go to
``$VDWGEN_SCREENSHOT_DIR`` when set (the README's come from there), else to the test's tmp.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pymatgen.core import Composition, Structure

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

try:
    from playwright import sync_api as playwright_api
except ImportError:  # pinned in requirements.txt: only a hand-made environment lacks it
    playwright_api = None

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
"""Under CI (.ci/run sets CI=true) a missing browser fails the test: a skip there would go unnoticed."""


@pytest.fixture(autouse=True)
def _browser_available() -> None:
    """Skip when playwright or chromium is missing (fail instead under CI), before the app starts."""
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
def app_url(tmp_path: Path):
    port = _free_port()
    env = {**os.environ, "VDWGEN_DATA_DIR": str(tmp_path / "var"), "VDWGEN_ARTIFACTS_DIR": str(ROOT / "artifacts"),
           "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "webapp" / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.enableStaticServing", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not start within 60 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_request_filter_and_download_in_a_browser(app_url: str, tmp_path: Path) -> None:
    shots = Path(os.environ.get("VDWGEN_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_text("Generate bilayers").wait_for(timeout=60_000)

        page.get_by_text("Formula", exact=True).first.click()
        formula = page.get_by_role("textbox", name="Formula")
        formula.fill("GaInSSe")
        formula.press("Enter")
        count = page.get_by_role("spinbutton", name="Number of crystals")
        count.fill("4")
        count.press("Enter")
        page.get_by_text("Advanced settings").click()
        steps = page.get_by_role("spinbutton", name="Langevin steps per noise level")
        steps.fill("2")
        steps.press("Enter")
        page.get_by_role("button", name="Generate").click()
        page.get_by_text("Stored as run 1").wait_for(timeout=180_000)
        page.get_by_text("4 crystals from").wait_for(timeout=10_000)
        page.set_viewport_size({"width": 1400, "height": 1700})
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "generate.png"), full_page=True)

        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"{app_url}/candidates", wait_until="domcontentloaded")
        sql = page.get_by_role("textbox", name="SQL: one SELECT over the tables")
        sql.wait_for(timeout=60_000)
        sql.fill("SELECT id, formula, predicted_formation_energy, n_layers, interlayer_gap, valid\n"
                 "FROM candidates WHERE formula = 'Ga2In2S2Se2' ORDER BY id")
        page.get_by_role("button", name="Run query").click()
        page.get_by_text("rows in").first.wait_for(timeout=30_000)
        page.set_viewport_size({"width": 1400, "height": 2000})
        page.wait_for_timeout(3000)  # let the 3D viewer draw
        page.screenshot(path=str(shots / "candidates.png"), full_page=True)

        with page.expect_download(timeout=30_000) as download:
            page.get_by_role("button", name="POSCAR", exact=True).click()
        path = tmp_path / "downloaded.vasp"
        download.value.save_as(path)
        name = download.value.suggested_filename
        browser.close()
    structure = Structure.from_str(path.read_text(), fmt="poscar")
    assert structure.composition == Composition("Ga2In2S2Se2") and name.endswith("_Ga2In2S2Se2.vasp")
