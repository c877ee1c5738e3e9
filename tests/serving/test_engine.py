"""The serving engine on exported artifacts: a fresh-process load with ``training`` made unimportable,
refusal of tampered or missing files, the message of every bad request, warnings, formula requests,
seeding, and the 100:1 screening of many targets at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.manifest import ArtifactError
from serving.engine import Engine
from serving.request import GenerationRequest, RequestError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "artifacts" / "cdvae-plus-janus"


@pytest.fixture(scope="module")
def artifacts(tiny_artifacts: dict[str, Path]) -> dict[str, Path]:
    return tiny_artifacts


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


def test_screened_latents_for_many_targets_equal_one_request_per_target() -> None:
    engine = Engine.load(SHIPPED)
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


_DIGEST = """
import hashlib, sys
from serving.engine import Engine
from serving.request import GenerationRequest
engine = Engine.load(sys.argv[1])
request = GenerationRequest("formation_energy", 34, target=-0.75, seed=3, steps_per_level=1)
digests = []
for _ in range(2):  # and a re-run in the same process
    crystals = engine.generate(request).crystals
    digest = hashlib.sha256()
    for c in crystals:
        digest.update(c.structure.frac_coords.tobytes() + " ".join(map(str, c.structure.species)).encode())
    digests.append(digest.hexdigest())
assert digests[0] == digests[1], "a re-run gave other crystals"
print(digests[0])
"""


def test_a_seed_gives_the_same_crystals_on_one_or_two_threads() -> None:
    """The shipped model, two chunks (32 + 2 crystals): one intra-op thread per chunk makes the crystals
    independent of OMP_NUM_THREADS (one large chunk on 2 threads gives other crystals from the first step on)."""
    digests = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", _DIGEST, str(SHIPPED)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        digests.append(done.stdout.split()[-1])
    assert digests[0] == digests[1]
