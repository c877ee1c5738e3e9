"""The main path in a real browser: request a formula, see the rows, filter with SQL, download a relaxed POSCAR.

Runs ``streamlit run webapp/app.py`` on the shipped artifacts with an empty data folder and
drives it with Debian's chromium through Playwright (environment.md). Screenshots go to
``$VDWGEN_SCREENSHOT_DIR`` when set (the README's come from there), else to the test's tmp.
"""

from __future__ import annotations

import os
from pathlib import Path

from pymatgen.core import Composition, Structure


def test_request_filter_and_download_in_a_browser(app_url: str, new_browser_page, tmp_path: Path) -> None:
    shots = Path(os.environ.get("VDWGEN_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page = new_browser_page(1000)

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
    page.get_by_role("button", name="Generate", exact=True).click()  # relaxation by the oracle is on by default
    page.get_by_text("Stored as run 1").wait_for(timeout=180_000)
    page.get_by_text("4 crystals from").wait_for(timeout=10_000)
    page.get_by_text("Oracle (CHGNet + D3").first.wait_for(timeout=10_000)
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
        page.get_by_role("button", name="POSCAR (relaxed)", exact=True).click()
    path = tmp_path / "downloaded.vasp"
    download.value.save_as(path)
    name = download.value.suggested_filename
    structure = Structure.from_str(path.read_text(), fmt="poscar")
    assert structure.composition == Composition("Ga2In2S2Se2") and name.endswith("_Ga2In2S2Se2.vasp")
    assert path.read_text().splitlines()[5:7] == ["Ga In S Se", "2 2 2 2"]  # grouped by element, as DFT wants


def test_design_for_three_targets_in_a_browser(app_url: str, new_browser_page, tmp_path: Path) -> None:
    """The Design page on the shipped predictor: the issue's three targets (the page's default rows), a few
    candidates relaxed by the oracle, every criterion before and after, the dataset's own answer."""
    shots = Path(os.environ.get("VDWGEN_SCREENSHOT_DIR") or tmp_path)
    page = new_browser_page(1000)
    page.goto(f"{app_url}/design", wait_until="domcontentloaded")
    page.get_by_text("Design crystals for several targets").wait_for(timeout=60_000)
    count = page.get_by_role("spinbutton", name="Candidates")
    count.fill("4")
    count.press("Enter")
    page.get_by_text("Advanced settings").click()
    steps = page.get_by_role("spinbutton", name="Optimisation steps")
    steps.fill("40")
    steps.press("Enter")
    page.get_by_role("button", name="Design", exact=True).click()
    page.get_by_text("Stored as run 1").wait_for(timeout=300_000)
    page.get_by_text("4 designed crystals (run 1)").wait_for(timeout=10_000)
    page.get_by_text("What the dataset already holds:").wait_for(timeout=10_000)
    page.get_by_text("after the oracle's relaxation:").first.wait_for(timeout=10_000)
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / "design.png"), full_page=True)
