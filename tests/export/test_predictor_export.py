"""The exported predictor: TorchScript with autograd, equal to the eager model in values and gradients, refused
when tampered with, and loaded for design from the artifact alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from core.manifest import ArtifactError
from core.predictor_manifest import PREDICTOR_FILE, PREDICTOR_MANIFEST, find_predictors, read_predictor_manifest
from serving.predictor import load_predictor_artifact
from training.train.predictor import JANUS_LABELS, collate, janus_parts, load_predictor


def test_manifest_names_every_label_with_its_unit_span_and_spread(tiny_predictor_artifact: Path) -> None:
    manifest = read_predictor_manifest(tiny_predictor_artifact)
    assert tuple(manifest.labels) == tuple(JANUS_LABELS)
    gap = manifest.labels["interlayer_gap"]
    assert gap.unit == "Å" and 2.8 < gap.min < gap.max < 4.3 and gap.std > 0
    assert manifest.labels["binding_energy_per_area"].unit == "meV/Å²"
    assert manifest.vocabulary == ("Al", "S", "Ga", "Se", "In", "Te")
    assert manifest.training["id"] == "janus_iii_vi:random:train"
    assert manifest.parity["values"] <= manifest.parity["tolerance"]["values_scaled"]
    assert find_predictors(tiny_predictor_artifact.parent) == [tiny_predictor_artifact]


def test_loaded_predictor_matches_the_eager_one_with_gradients(tiny_predictor_artifact: Path) -> None:
    weights = tiny_predictor_artifact.parent.parent / "weights" / "predictor.pt"
    eager, _ = load_predictor(weights)
    loaded = load_predictor_artifact(tiny_predictor_artifact)
    crystals = [janus_parts(tuple(JANUS_LABELS))["test"][i] for i in (0, 5, 9)]
    batch = collate(crystals, eager.vocabulary, eager.labels)
    soft = 0.6 * batch.type_weights + 0.4 / batch.type_weights.size(1)
    grads = []
    for module in (eager, loaded):
        frac = batch.frac_coords.clone().requires_grad_(True)
        lattice = batch.lattice.clone().requires_grad_(True)
        types = soft.clone().requires_grad_(True)
        out = module(frac, types, lattice, batch.num_atoms)
        out[:, 0].sum().backward()
        grads.append((out.detach(), frac.grad, lattice.grad, types.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert float(grads[0][1].abs().sum()) > 0


def test_a_changed_file_or_manifest_is_refused_in_one_line(tiny_predictor_artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_predictor_artifact, copy)
    with (copy / PREDICTOR_FILE).open("ab") as fh:
        fh.write(b"x")
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        load_predictor_artifact(copy)
    (copy / PREDICTOR_MANIFEST).write_text(json.dumps({"format": 99}))
    with pytest.raises(ArtifactError, match="not a predictor manifest"):
        read_predictor_manifest(copy)
    with pytest.raises(ArtifactError, match="no predictor.json"):
        read_predictor_manifest(tmp_path)
