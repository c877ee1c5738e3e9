"""Where the engine runs: the CPU by default, a GPU whenever torch sees one (onnxruntime's CUDA provider first when
it is installed, large decoding chunks), and a one-line refusal of a GPU that is not there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from pymatgen.core import Composition

from serving.engine import DECODE_CHUNK, GPU_DECODE_CHUNK, Engine, choose_device, onnx_providers
from serving.request import GenerationRequest

SHIPPED = Path(__file__).resolve().parents[2] / "artifacts" / "cdvae-plus-janus"
HAS_CUDA = torch.cuda.is_available()


def test_the_device_is_the_gpu_when_torch_sees_one_else_the_cpu() -> None:
    assert choose_device() == ("cuda" if HAS_CUDA else "cpu")
    assert choose_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="'cpu' or 'cuda', got 'tpu'"):
        choose_device("tpu")
    if not HAS_CUDA:
        with pytest.raises(ValueError, match="torch sees no GPU"):
            choose_device("cuda")


def test_onnxruntime_puts_cuda_first_only_on_the_gpu_and_keeps_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])  # onnxruntime without CUDA
    assert onnx_providers("cuda") == ["CPUExecutionProvider"]


def test_the_cpu_engine_decodes_in_small_chunks() -> None:
    engine = Engine.load(SHIPPED, device="cpu")
    assert engine.decode_chunk == DECODE_CHUNK
    assert all(s.get_providers() == ["CPUExecutionProvider"] for s in engine.sessions.values())


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device on this machine: this test runs wherever torch sees one")
def test_on_a_gpu_the_shipped_model_predicts_as_on_the_cpu_and_makes_crystals_of_the_formula() -> None:
    cpu, gpu = Engine.load(SHIPPED, device="cpu"), Engine.load(SHIPPED, device="cuda")
    assert gpu.decode_chunk == GPU_DECODE_CHUNK
    assert {p.device.type for p in gpu.decoder.parameters()} == {"cuda"}
    if "CUDAExecutionProvider" in ort.get_available_providers():  # onnxruntime-gpu (requirements-gpu.txt)
        assert all(s.get_providers()[0] == "CUDAExecutionProvider" for s in gpu.sessions.values())
    request = GenerationRequest("formation_energy", 16, target=-0.8, seed=3, steps_per_level=1)
    z, cond, _ = cpu.latents(cpu.check(request))
    override = np.zeros(len(z), dtype=np.int64)
    np.testing.assert_allclose(gpu.heads(z, cond, override).property, cpu.heads(z, cond, override).property,
                               atol=2e-3)
    result = gpu.generate(GenerationRequest("formula", 8, formula="GaInSSe", seed=1, steps_per_level=1))
    assert len(result.crystals) == 8
    for crystal in result.crystals:
        assert crystal.structure.composition.reduced_composition == Composition("GaInSSe")
        assert np.isfinite(crystal.structure.frac_coords).all()
