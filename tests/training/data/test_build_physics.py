"""A tiny real build (GaS and InSe) through the command line: physics, resume, refusal.

Runs CHGNet + D3 for real (about half a minute), so it is marked ``slow``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data.references import anion_corrections
from vdwgen.cli import main

pytestmark = pytest.mark.slow

MONOLAYERS = "S-Ga-Ga-S,Se-In-In-Se"
# CHGNet + D3 lattice constants of these monolayers, as measured when the dataset was built
# (data/janus_iii_vi/monolayers.json holds the same E(a) minima)
EXPECTED_A = {"S-Ga-Ga-S": 3.602, "Se-In-In-Se": 4.017}


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    argv = ["dataset", "build", "--out", str(out), "--workers", "1", "--monolayers", MONOLAYERS,
            "--chunk-size", "5"]
    assert main(argv) == 0
    return out


def test_relaxed_lattice_constants(tiny_build: Path) -> None:
    curves = json.loads((tiny_build / "monolayers.json").read_text())
    for name, a in EXPECTED_A.items():
        assert curves[name]["a0"] == pytest.approx(a, abs=0.05)
        assert curves[name]["minimum_inside_grid"]


def test_bilayer_labels_are_physical(tiny_build: Path) -> None:
    df = pd.read_parquet(tiny_build / "bilayers.parquet")
    assert len(df) == 3 * 6  # GaS/GaS, GaS/InSe, InSe/InSe (mirror-symmetric: one flip class each)
    assert (df["binding_energy_per_area"] < 0).all()  # D3 binds the layers
    assert df["interlayer_gap"].between(2.6, 4.6).all()
    assert df["formation_energy_per_atom"].between(-1.5, 0.0).all()
    # the raw-PBE-like convention differs by the MP2020 anion corrections only
    corrections = anion_corrections()
    expected = [-sum(corrections.get(el, 0.0) for el in sp) / len(sp) for sp in df["species"]]
    diff = df["formation_energy_per_atom_raw"] - df["formation_energy_per_atom"]
    np.testing.assert_allclose(diff, expected, atol=1e-12)
    assert (diff > 0.2).all()  # half the atoms are anions, each corrected by -0.42 to -0.50 eV
    # a hetero pair shares a lattice constant between its two layers' own
    hetero = df[df["bottom"] != df["top"]]
    assert hetero["a_common"].between(EXPECTED_A["S-Ga-Ga-S"] - 0.05, EXPECTED_A["Se-In-In-Se"] + 0.05).all()
    # one relaxed (lowest) stacking per flip class, and relaxing never raises the energy
    assert df.groupby("flip_class")["relaxed"].sum().eq(1).all()
    relaxed = df[df["relaxed"]]
    assert (relaxed["energy"] <= relaxed["energy_scan"] + 1e-6).all()
    # symmetry duplicates (homo pairs) carry the energy of the crystal they repeat
    dups = df[df["symmetry_duplicate_of"].notna() & ~df["relaxed"]]
    assert len(dups) > 0
    energy = df.set_index("id")["energy_scan"]
    np.testing.assert_allclose(dups["energy_scan"], energy[dups["symmetry_duplicate_of"]].to_numpy(), atol=1e-4)


def test_outputs_written(tiny_build: Path) -> None:
    for name in ("dataset_card.md", "hist_formation_energy.png", "hist_interlayer_energy.png",
                 "hist_interlayer_gap.png", "references.json"):
        assert (tiny_build / name).stat().st_size > 0, name


def test_resume_recomputes_only_missing_chunks(tiny_build: Path) -> None:
    before = pd.read_parquet(tiny_build / "bilayers.parquet")
    chunks = sorted((tiny_build / "_work" / "scan").glob("chunk-*.json"))
    assert len(chunks) == 4
    kept = {p: p.stat().st_mtime_ns for p in chunks[1:]}
    chunks[0].unlink()
    argv = ["dataset", "build", "--out", str(tiny_build), "--workers", "1", "--monolayers", MONOLAYERS,
            "--chunk-size", "5"]
    assert main(argv) == 0
    assert chunks[0].exists()
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    after = pd.read_parquet(tiny_build / "bilayers.parquet")
    pd.testing.assert_frame_equal(before, after)


def test_other_settings_are_refused(tiny_build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["dataset", "build", "--out", str(tiny_build), "--workers", "1", "--monolayers", "S-Ga-Ga-S"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--fresh" in err and "monolayers" in err


def test_unknown_monolayer_names_the_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "build", "--out", str(tmp_path), "--monolayers", "GaS"]) == 2
    err = capsys.readouterr().err
    assert "unknown monolayer" in err and "S-Ga-Ga-S" in err
