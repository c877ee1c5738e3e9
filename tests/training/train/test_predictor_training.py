"""Training the design predictor: a run that can be cut and resumed, its report, and the perturbed inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.model.equiformer import EquiformerConfig
from training.model.predictor import PredictorConfig
from training.train.predictor import (
    JANUS_LABELS,
    Perturbation,
    PredictorTraining,
    collate,
    janus_parts,
    load_predictor,
    perturbed,
    train_predictor,
    upper_layer,
)
from training.train.runfiles import TrainingError

TINY = {"num_layers": 1, "sphere_channels": 8, "lmax": 1, "mmax": 1, "num_heads": 2, "attn_alpha_channels": 4,
        "attn_value_channels": 4, "attn_hidden_channels": 8, "ffn_hidden_channels": 8, "edge_channels": 8,
        "num_distance_basis": 8, "grid_resolution": 4}


def _settings(epochs: int) -> PredictorTraining:
    return PredictorTraining(epochs=epochs, batch_size=4, limit_train=8,
                             config=PredictorConfig(EquiformerConfig(**TINY), hidden_dim=8))


def test_a_run_resumes_and_reports_test_errors_per_label(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_predictor(out, _settings(1))
    with pytest.raises(TrainingError, match="--resume"):
        train_predictor(out, _settings(1))
    weights = train_predictor(out, _settings(2), resume=True)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {f"val_mae_{k}" for k in JANUS_LABELS} | {f"val_moved_mae_{k}" for k in JANUS_LABELS} <= set(rows[0])
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["test_mae"]) == set(JANUS_LABELS) and report["test_crystals"] == 3982
    model, record = load_predictor(weights)
    assert model.labels == tuple(JANUS_LABELS) and record["units"]["interlayer_gap"] == "Å"


def test_perturbed_inputs_move_the_upper_layer_rigidly_and_keep_the_labels() -> None:
    crystals = janus_parts(tuple(JANUS_LABELS))["val"].subset(range(3))
    layers = upper_layer(crystals)
    assert [layer.tolist() for layer in layers] == [[0, 0, 0, 0, 1, 1, 1, 1]] * 3
    batch = collate(list(crystals), ("Al", "S", "Ga", "Se", "In", "Te"), tuple(JANUS_LABELS))
    rule = Perturbation(share=1.0, in_plane_strain=0.0, layer_shift=0.5, atom_noise=0.0)
    moved = perturbed(batch, torch.as_tensor(np.concatenate(layers)), rule, torch.Generator().manual_seed(3))
    cart = lambda b: torch.bmm(b.frac_coords.unsqueeze(1), b.lattice.repeat_interleave(8, 0)).squeeze(1)  # noqa: E731
    shift = (cart(moved) - cart(batch)).view(3, 8, 3)
    torch.testing.assert_close(shift[:, :4], torch.zeros(3, 4, 3), atol=1e-5, rtol=0)
    assert float(shift[:, 4:, :2].abs().max()) < 1e-5  # along the normal (z) only
    per_crystal = shift[:, 4:, 2]
    torch.testing.assert_close(per_crystal, per_crystal[:, :1].expand(3, 4), atol=1e-5, rtol=0)
    assert 0 < float(per_crystal.abs().max()) <= 0.5
    torch.testing.assert_close(moved.labels, batch.labels)
    strained = perturbed(batch, torch.as_tensor(np.concatenate(layers)), Perturbation(1.0, 0.05, 0.0, 0.0),
                         torch.Generator().manual_seed(3))
    ratio = strained.lattice[:, :2].norm(dim=-1) / batch.lattice[:, :2].norm(dim=-1)
    assert bool(((ratio - 1).abs() <= 0.05 + 1e-6).all()) and float((ratio - 1).abs().max()) > 0
    torch.testing.assert_close(strained.lattice[:, 2], batch.lattice[:, 2])
