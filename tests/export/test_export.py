"""Exported artifacts and the serving engine, on tiny trained models.

Parity of every exported part with the eager model, a fresh-process load with ``training``
made unimportable, refusal of tampered or missing files, the message of every bad request,
formula requests, seeding, and the command line's POSCAR files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Composition, Structure

from export.build import export_artifact
from core.manifest import ArtifactError, read_manifest
from serving.request import GenerationRequest, RequestError
from serving.engine import Engine
from tests.test_train_cli import _argv
from training.model.langevin import AnnealedLangevin, CrystalDecoder, LangevinSettings
from training.sample import Sampler
from training.train.ship import ship
from training.train.weights import load_trained
from vdwgen.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    assert main(_argv(root / "runs" / "model", 1)) == 0
    assert main(_argv(root / "runs" / "baseline", 1, "--set", "model.condition=none",
                      "--set", "model.condition_dropout=0")) == 0
    out = {}
    for name in ("model", "baseline"):  # as shipped: float16 weights under models/, then exported
        weights = ship(root / "runs" / name, root / "models" / name)
        export_artifact(weights, root / "artifacts" / name, steps_per_level=2)
        out[name], out[f"{name}_weights"] = root / "artifacts" / name, weights
    out["weights"] = out["model_weights"]
    return out


def test_manifest_lists_hashed_files_and_parity(artifacts: dict[str, Path]) -> None:
    manifest = read_manifest(artifacts["model"])
    assert set(manifest.files) == {"condition.onnx", "generator.onnx", "fusion_heads.onnx", "decoder.pt"}
    assert manifest.vocabulary == ("Al", "S", "Ga", "Se", "In", "Te") and manifest.cell_sizes == {8: 6}
    parity = manifest.parity
    assert all(parity[f] <= 1e-5 for f in ("condition.onnx", "generator.onnx", "fusion_heads.onnx"))
    assert parity["decoder.pt"] <= 1e-4
    low, high = manifest.property_range
    assert -1.1 < low < high < -0.4
    assert manifest.training_data.id == "janus_iii_vi:random:train"
    assert set(read_manifest(artifacts["baseline"]).files) == {"fusion_heads.onnx", "decoder.pt"}


SHIPPED = {"model": ROOT / "artifacts" / "cdvae-plus-janus", "weights": ROOT / "models" / "cdvae-plus-janus" / "model.pt"}


@pytest.fixture(params=["tiny", "shipped"])
def exported(request: pytest.FixtureRequest) -> dict[str, Path]:
    """A tiny model exported here, and the shipped default (artifacts/ + models/)."""
    if request.param == "tiny":
        return request.getfixturevalue("artifacts")
    assert (SHIPPED["model"] / "manifest.json").is_file() and SHIPPED["weights"].is_file(), "default not shipped"
    return SHIPPED


def test_onnx_parts_match_eager_on_fresh_inputs(exported: dict[str, Path]) -> None:
    artifacts = exported
    trained = load_trained(artifacts["weights"])
    engine = Engine.load(artifacts["model"])
    sampler = Sampler(trained, LangevinSettings(steps_per_level=2))
    model = trained.model
    with torch.no_grad():
        for target, counts in ((-0.75, None), (None, (0, 2, 2, 2, 2, 0))):
            cond_onnx = engine.condition(5, target, counts)
            prop = None if target is None else torch.full((5,), target)
            cnt = None if counts is None else torch.tensor(counts, dtype=torch.float32).expand(5, -1)
            cond = model.condition_embedding(prop, cnt)
            np.testing.assert_allclose(cond_onnx, cond.numpy(), atol=1e-5)
        noise = torch.randn(5, trained.config.gan.noise_dim)
        z_onnx = engine._run("generator", noise=noise.numpy(), cond=cond.numpy())[0]
        z = trained.generator(noise, cond)
        np.testing.assert_allclose(z_onnx, z.numpy(), atol=1e-5)
        override = np.array([0, 8, 0, 0, 8])
        got = engine.heads(z.numpy(), cond.numpy(), override)
        ref = sampler.heads(z, cond, torch.from_numpy(override))
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b.numpy(), atol=1e-5 * max(1.0, float(b.abs().max())))


def test_torchscript_decoder_matches_eager_loop(exported: dict[str, Path]) -> None:
    artifacts = exported
    trained = load_trained(artifacts["weights"])
    model = trained.model
    engine = Engine.load(artifacts["model"])
    eager = CrystalDecoder(AnnealedLangevin(model.decoder, model.coord_sigmas, LangevinSettings(2)), model.vocab.size)
    z = np.random.default_rng(3).normal(size=(3, model.config.latent_dim)).astype(np.float32)
    cond = engine.condition(3, -0.7, None)
    z_c, num_atoms, lattice, composition, _ = engine.heads(z, cond, np.zeros(3, dtype=np.int64))
    args = [torch.from_numpy(a) for a in (z_c, lattice, num_atoms, composition)]
    with torch.no_grad():
        a = engine.decoder(*args, torch.empty(0, dtype=torch.long), 5, 3)
        b = eager.eval()(*args, torch.empty(0, dtype=torch.long), 5, 3)
    d = (a[0] - b[0]) - torch.round(a[0] - b[0])
    shift = torch.bmm(d.unsqueeze(1), torch.from_numpy(lattice).repeat_interleave(torch.from_numpy(num_atoms), 0))
    assert float(shift.norm(dim=-1).max()) < 1e-4  # angstrom
    assert torch.equal(a[1], b[1])


def test_runtime_loads_in_a_fresh_process_without_training(artifacts: dict[str, Path]) -> None:
    script = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "training" or name.startswith("training."):
            raise ImportError("training is not importable here")
sys.meta_path.insert(0, Block())
from serving.engine import Engine
from serving.request import GenerationRequest
engine = Engine.load({str(artifacts["model"])!r})
result = engine.generate(GenerationRequest("formula", 2, formula="GaInSSe", seed=1))
print(sorted(c.formula for c in result.crystals))
assert not any(m == "training" or m.startswith("training.") for m in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "['Ga2In2S2Se2', 'Ga2In2S2Se2']" in done.stdout


def test_tampered_or_missing_files_are_refused(artifacts: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(artifacts["model"], copy)
    data = bytearray((copy / "generator.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "generator.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="generator.onnx does not match its sha256"):
        Engine.load(copy)
    (copy / "decoder.pt").unlink()
    with pytest.raises(ArtifactError, match="decoder.pt is missing"):
        Engine.load(copy)
    manifest = json.loads((artifacts["model"] / "manifest.json").read_text())
    shutil.rmtree(copy)
    shutil.copytree(artifacts["model"], copy)
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(ArtifactError, match="format 99"):
        Engine.load(copy)
    with pytest.raises(ArtifactError, match="no manifest.json"):
        Engine.load(tmp_path)


@pytest.mark.parametrize(("request_", "message"), [
    (GenerationRequest("formula", 2, formula="FeS"), "allowed elements: Al, S, Ga, Se, In, Te"),
    (GenerationRequest("formula", 2, formula="GaS2"), r"3 atoms.*\(8 atoms\)"),
    (GenerationRequest("formula", 2, formula="Ga0.5S"), "fractional"),
    (GenerationRequest("formula", 2, formula="Xx"), "cannot read formula"),
    (GenerationRequest("formation_energy", 0, target=-0.7), "from 1 to 1000"),
    (GenerationRequest("formation_energy", 1001, target=-0.7), "from 1 to 1000"),
    (GenerationRequest("formation_energy", 2), "needs a target"),
    (GenerationRequest("unconditional", 2), "serves: formation_energy, formula"),
    (GenerationRequest("formation_energy", 2, target=-0.7, steps_per_level=0), "steps per level must be from 1"),
    (GenerationRequest("formation_energy", 2, target=-0.7, screening_ratio=0), "screening ratio must be from 1"),
    (GenerationRequest("bandgap", 2), "choose one of formation_energy, formula, unconditional"),  # type: ignore[arg-type]
])
def test_bad_requests_get_clear_messages(artifacts: dict[str, Path], request_: GenerationRequest, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        Engine.load(artifacts["model"]).check(request_)


def test_target_outside_training_range_is_allowed_but_warned(artifacts: dict[str, Path]) -> None:
    engine = Engine.load(artifacts["model"])
    low, high = engine.manifest.property_range
    result = engine.generate(GenerationRequest("formation_energy", 2, target=high + 0.5, screening_ratio=3))
    assert len(result.crystals) == 2
    assert len(result.warnings) == 1 and f"{low:+.3f} .. {high:+.3f}" in result.warnings[0]
    inside = engine.check(GenerationRequest("formation_energy", 2, target=(low + high) / 2))
    assert inside.warnings == ()


def test_formula_request_composition_and_seeding(artifacts: dict[str, Path]) -> None:
    engine = Engine.load(artifacts["model"])
    calls = []
    a = engine.generate(GenerationRequest("formula", 3, formula="InSe", seed=4), lambda d, t: calls.append((d, t)))
    b = engine.generate(GenerationRequest("formula", 3, formula="InSe", seed=4))
    c = engine.generate(GenerationRequest("formula", 3, formula="InSe", seed=5))
    assert calls[-1] == (3, 3)
    for cand in a.crystals:
        assert Counter(str(s.specie) for s in cand.structure) == {"In": 4, "Se": 4}
    coords = lambda r: np.concatenate([c.structure.frac_coords for c in r.crystals])  # noqa: E731
    assert np.array_equal(coords(a), coords(b)) and not np.array_equal(coords(a), coords(c))
    base = Engine.load(artifacts["baseline"])
    free = base.generate(GenerationRequest("unconditional", 2, seed=0))
    assert len(free.crystals) == 2 and all(len(c.structure) == 8 for c in free.crystals)


def test_cli_writes_poscars_that_pymatgen_reads(artifacts: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "poscars"
    argv = ["generate", "--formula", "GaInSSe", "--n", "2", "--artifacts", str(artifacts["model"]),
            "--out", str(out), "--steps-per-level", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "valid:" in printed and "Ga2In2S2Se2" in printed
    files = sorted(out.glob("*.vasp"))
    assert [f.name for f in files] == ["0000_Ga2In2S2Se2.vasp", "0001_Ga2In2S2Se2.vasp"]
    for f in files:
        structure = Structure.from_str(f.read_text(), fmt="poscar")
        assert structure.composition == Composition("Ga2In2S2Se2")
        cif = Structure.from_str(f.with_suffix(".cif").read_text(), fmt="cif")
        assert len(cif) == 8
    assert main(["generate", "--formula", "FeS", "--artifacts", str(artifacts["model"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "allowed elements" in err[0]
    assert main(["generate", "--unconditional", "--n", "0", "--artifacts", str(artifacts["baseline"])]) == 2
    assert "from 1 to" in capsys.readouterr().err


def test_screened_latents_for_many_targets_equal_one_request_per_target() -> None:
    engine = Engine.load(SHIPPED["model"])
    targets = np.array([-0.83, -0.69, -0.57])
    z, cond, predicted = engine.screened_latents(targets, 100, seed=7, chunk=1)
    for k, target in enumerate(targets):
        # one target per chunk draws exactly the noise a one-crystal request with that seed draws ...
        one = engine.screened_latents(targets[k:k + 1], 100, seed=7)
        request = engine.check(GenerationRequest("formation_energy", 1, float(target), seed=7))
        z1, cond1, pred1 = engine.latents(request)
        assert np.allclose(one[0], z1, atol=1e-6) and np.allclose(one[2], pred1, atol=1e-6)
    # ... and the screening keeps, per target, the draw closest to it
    assert np.all(np.abs(predicted - targets) < 0.05)
    assert z.shape == (3, 256) and cond.shape[0] == 3
    with pytest.raises(ValueError, match="at least 1"):
        engine.screened_latents(targets, 0, seed=0)
