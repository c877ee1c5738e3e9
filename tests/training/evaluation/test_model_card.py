"""`vdwgen model-card` end to end on tiny trained models: every stage computed from real samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.evaluation.selection import TRAINING_FORMULAS
from vdwgen.cli import main


@pytest.fixture(scope="module")
def runs(tiny_runs: dict[str, Path]) -> tuple[Path, Path]:
    return tiny_runs["model"] / "model.pt", tiny_runs["baseline"] / "model.pt"


def test_figures_from_real_samples(runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, baseline = runs
    out = tmp_path / "metrics.json"
    argv = ["model-card", "--model", str(model), "--baseline", str(baseline), "--out", str(out),
            "--steps-per-level", "1", "--recon-limit", "3", "--samples", "4", "--per-target", "3"]
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    assert figures["parameters"]["model"]["generator"] > 0 and figures["parameters"]["baseline"]["generator"] == 0
    assert figures["reconstruction"]["model"]["count"] == 3
    assert 0 <= figures["reconstruction"]["model"]["match_rate"] <= 1
    assert figures["validity"]["conditioned"]["count"] == 4 == figures["validity"]["unconditional"]["count"]
    for row in figures["energy_targets"].values():
        assert row["ratio_100"]["median"] == row["ratio_100"]["median"]  # a number, not NaN
        assert row["target"] < 0
    assert set(figures["formula_hits"]) == set(TRAINING_FORMULAS)
    assert figures["formula_hits"]["GaInSSe"]["cell"] == {"Ga": 2, "In": 2, "S": 2, "Se": 2}
    # a rerun keeps finished stages instead of recomputing them
    before = out.read_text()
    assert main(argv) == 0
    assert out.read_text() == before
    # figures measured with another sampler are not mixed with new ones: the card is refused in one line
    card = json.loads(before)
    card["settings"]["compositions"] = "head"
    out.write_text(json.dumps(card))
    capsys.readouterr()
    assert main(argv) == 2
    assert "measured with other settings (compositions)" in capsys.readouterr().err
    assert json.loads(out.read_text()) == card
