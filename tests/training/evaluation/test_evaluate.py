"""`vdwgen evaluate --quick` on the shipped model: every stage runs and every figure comes from real samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure

from core.manifest import read_manifest
from scoring.validity import compositionally_valid, structurally_valid
from vdwgen.cli import main

ROOT = Path(__file__).resolve().parents[3]
STAGES = ("reconstruction", "samples", "generation", "energy_targets", "formulas", "relaxation", "new_and_right",
          "latent")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["evaluate", str(ROOT / "artifacts" / "cdvae-plus-janus"), "--quick", "--out", str(out),
                 "--steps-per-level", "1", "--workers", "1"]) == 0
    return out


def _poscars(path: Path) -> list[Structure]:
    return [Structure.from_str(p, fmt="poscar") for p in json.loads(path.read_text())["poscars"]]


def test_every_stage_and_the_report_are_written(report: Path) -> None:
    metrics = json.loads((report / "metrics.json").read_text())
    assert all(stage in metrics for stage in STAGES)
    text = (report / "report.md").read_text()
    for heading in ("Reconstruction (Table 1)", "Generation (Table 2)", "checked by the oracle", "Table 3 analogue",
                    "different data"):
        assert heading in text
    for png in ("energy_targets.png", "predicted_vs_oracle.png", "property_distributions.png", "latent_tsne.png"):
        assert (report / png).stat().st_size > 5_000
    for label, name in (("ConditionCDVAE+", "cdvae-plus-janus"), ("CDVAE", "cdvae-baseline-janus")):  # each sampler
        sampling = read_manifest(ROOT / "artifacts" / name).sampling
        assert (f"{label}: noise × {sampling.noise_scale:g}, sites typed by `{sampling.site_types}`, free compositions "
                f"by `{sampling.compositions}`") in text


def test_generation_figures_are_those_of_the_stored_samples(report: Path) -> None:
    metrics = json.loads((report / "metrics.json").read_text())
    for label in ("model", "baseline"):
        structures = _poscars(report / "_cache" / f"samples_{label}.json")
        assert len(structures) == metrics["samples"]["count"]
        validity = metrics["generation"][label]["validity"]
        assert validity["structural"] == pytest.approx(np.mean([structurally_valid(s) for s in structures]))
        assert validity["compositional"] == pytest.approx(
            np.mean([compositionally_valid(s.composition) for s in structures]))
        coverage = metrics["generation"][label]["coverage"]
        assert 0.0 <= coverage["cov_p"] <= 1.0 and coverage["generated"] == len(structures)
    # the model's crystals are not the baseline's
    model, base = (_poscars(report / "_cache" / f"samples_{k}.json") for k in ("model", "baseline"))
    assert any(not np.allclose(a.lattice.matrix, b.lattice.matrix) for a, b in zip(model, base))


def test_oracle_figures_come_from_relaxed_crystals(report: Path) -> None:
    metrics = json.loads((report / "metrics.json").read_text())
    checks = json.loads((report / "_cache" / "oracle_target_p10.json").read_text())["checks"]
    energies = [c["formation_energy"] for c in checks]
    row = metrics["energy_targets"]["p10"]
    assert row["relaxed"] == len(checks) and row["median"] == pytest.approx(np.median(energies))
    assert -3.0 < row["median"] < 1.0  # a physical formation energy, eV/atom
    relaxed = Structure.from_str(checks[0]["relaxed_poscar"], fmt="poscar")
    assert relaxed.composition.num_atoms == 8
    relaxation = metrics["relaxation"]["model"]
    assert relaxation["count"] >= 1 and relaxation["mean_steps"] >= 1
    flags = json.loads((report / "_cache" / "novelty_model.json").read_text())["flags"]
    assert relaxation["examined"] == len(flags)
    assert relaxation["count"] == min(3, sum(f is True for f in flags))  # --quick relaxes 3 novel crystals
    formula = metrics["formulas"]["GaInSSe"]
    assert formula["cell"] == "Ga2In2S2Se2" and formula["in_training_part"] > 0 and "data_best" in formula


def test_new_and_right_counts_the_relaxed_crystals_near_the_best_known_stacking(report: Path) -> None:
    import pandas as pd

    from scoring.layers import motif_problem

    metrics = json.loads((report / "metrics.json").read_text())
    row = metrics["new_and_right"]["targets"]
    cache = report / "_cache"
    checks = [c for q in (10, 50, 90) for c in json.loads((cache / f"oracle_target_p{q}.json").read_text())["checks"]]
    generated = sum(len(json.loads((cache / f"target_p{q}.json").read_text())["poscars"]) for q in (10, 50, 90))
    assert row["generated"] == generated and row["oracle_checked"] == len(checks)
    table = pd.read_parquet(ROOT / "data" / "janus_iii_vi" / "bilayers.parquet")
    best = table.groupby("reduced_formula")["formation_energy_per_atom"].min()
    relaxed = [Structure.from_str(c["relaxed_poscar"], fmt="poscar") for c in checks]
    close = sum(c["formation_energy"] <= best.get(s.composition.reduced_formula, -np.inf) + 0.05
                for c, s in zip(checks, relaxed))
    assert row["within_0.05_of_best_known"] == close and row["new_and_right"] <= close
    assert row["motif_share_relaxed"] == pytest.approx(np.mean([motif_problem(s) is None for s in relaxed]))
    overall = metrics["new_and_right"]["overall"]
    assert overall["generated"] == sum(metrics["new_and_right"][g]["generated"] for g in ("targets", "formulas",
                                                                                          "samples"))
    assert 0.0 <= metrics["energy_targets"]["p50"]["motif_share"] <= 1.0


def test_a_second_run_keeps_every_finished_stage(report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (report / "metrics.json").read_text()
    assert main(["evaluate", str(ROOT / "artifacts" / "cdvae-plus-janus"), "--quick", "--out", str(report),
                 "--steps-per-level", "1", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert all(f"{stage}: kept" in out for stage in STAGES)
    assert json.loads((report / "metrics.json").read_text()) == json.loads(before)


def test_a_report_of_other_artifacts_is_refused_not_mixed(report: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = str(ROOT / "models" / "cdvae-plus-janus" / "model.pt")
    baseline = str(ROOT / "artifacts" / "cdvae-baseline-janus")  # the one the report found beside the model
    restamped = tmp_path / "restamped"  # the same model files re-exported: a new date and the card's figures
    shutil.copytree(ROOT / "artifacts" / "cdvae-plus-janus", restamped)
    manifest = json.loads((restamped / "manifest.json").read_text())
    (restamped / "manifest.json").write_text(json.dumps({**manifest, "created": "2030-01-01T00:00:00+00:00",
                                                         "metrics": {"reconstruction": {"match_rate": 0.5}}}))
    before = (report / "metrics.json").read_text()
    assert main(["evaluate", str(restamped), "--quick", "--out", str(report), "--steps-per-level", "1",
                 "--workers", "1", "--checkpoint", checkpoint, "--baseline", baseline]) == 0
    out = capsys.readouterr().out
    assert all(f"{stage}: kept" in out for stage in STAGES)
    (report / "metrics.json").write_text(before)

    other = tmp_path / "resampled"  # other served crystals: here another default number of Langevin steps
    shutil.copytree(restamped, other)
    manifest["sampling"]["steps_per_level"] += 2
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert main(["evaluate", str(other), "--quick", "--out", str(report), "--workers", "1",
                 "--checkpoint", checkpoint, "--baseline", baseline]) == 2
    assert "measured other artifacts" in capsys.readouterr().err
    assert (report / "metrics.json").read_text() == before  # the finished stages stay those of their model


def test_bad_arguments_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifacts = str(ROOT / "artifacts" / "cdvae-plus-janus")
    assert main(["evaluate", artifacts, "--quick", "--out", str(tmp_path), "--stage", "tables"]) == 2
    assert "unknown stage" in capsys.readouterr().err
    assert main(["evaluate", artifacts, "--quick", "--out", str(tmp_path), "--split", "train"]) == 2
    assert "'val' or 'test'" in capsys.readouterr().err
    assert main(["evaluate", artifacts, "--quick", "--out", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "lacks train.csv, val.csv, test.csv" in capsys.readouterr().err


def test_novelty_scan_is_the_same_with_two_workers_and_resumes(tmp_path: Path) -> None:
    import pandas as pd

    from training.evaluation.novelty_scan import novel_indices

    table = ROOT / "data" / "janus_iii_vi" / "bilayers.parquet"
    frame = pd.read_parquet(table)
    train = frame[frame["split_random"] == "train"]
    sizes = train.groupby("reduced_formula").size()
    rare = train[train["reduced_formula"].isin(sizes[sizes <= 3].index)].head(2)  # few stackings: fast to match
    known = [Structure(np.reshape(r.lattice, (3, 3)), list(r.species), np.reshape(r.frac_coords, (-1, 3)))
             for r in rare.itertuples()]
    overlapping = known[0].copy()
    overlapping.translate_sites([1], overlapping[0].coords - overlapping[1].coords + 0.1, frac_coords=False)
    shifted = known[1].copy()  # one layer slid by half a cell (the loose stol 0.5 may still match it)
    top = [i for i, site in enumerate(shifted) if site.frac_coords[2] > np.mean(shifted.frac_coords[:, 2])]
    shifted.translate_sites(top, [0.5, 0.0, 0.0])
    poscars = [s.to(fmt="poscar") for s in (known[0], overlapping, known[1], shifted)]

    one = novel_indices(poscars, 5, tmp_path / "one.json", "novelty", table, "random", workers=1)
    flags = json.loads((tmp_path / "one.json").read_text())["flags"]
    assert flags[:3] == [False, None, False]  # training crystals are not novel; overlapping atoms are invalid
    assert one == [i for i, f in enumerate(flags) if f]
    two = novel_indices(poscars, 5, tmp_path / "two.json", "novelty", table, "random", workers=2)
    assert two == one and json.loads((tmp_path / "two.json").read_text())["flags"] == flags
    # against every row of the table (part=None), a crystal of the test part is known
    test_row = frame[frame["split_random"] == "test"].iloc[0]
    held_out = Structure(np.reshape(test_row.lattice, (3, 3)), list(test_row.species),
                         np.reshape(test_row.frac_coords, (-1, 3))).to(fmt="poscar")
    from training.evaluation.novelty_scan import novelty_flag, training_part

    assert novelty_flag(str(table), "random", held_out, part=None) is False
    training_part.cache_clear()
    # a rerun reads the verdicts instead of recomputing them (a wrong cached verdict shows through)
    (tmp_path / "one.json").write_text(json.dumps({"flags": [True, None, False, flags[3]]}))
    assert novel_indices(poscars, 5, tmp_path / "one.json", "novelty", table, "random", workers=1)[0] == 0
