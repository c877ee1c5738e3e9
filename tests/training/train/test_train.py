"""`vdwgen train`: a tiny stage-1 run through the real command line, resumed, and refused reruns."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from training.train.config import load_config
from training.train.weights import load_trained
from vdwgen.cli import main


def test_tiny_run_resumes_and_refuses_to_overwrite(
    tiny_train_argv: Callable[..., list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(tiny_train_argv(out, 1)) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1 and state["batch"] == 0 and state["step"] == 2
    gan_rows = list(csv.DictReader((out / "gan_metrics.csv").open()))
    assert [r["epoch"] for r in gan_rows] == ["1", "2"]
    assert all(float(r["gradient_penalty"]) >= 0 and float(r["lr_generator"]) > 0 for r in gan_rows)
    trained = load_trained(out / "model.pt")
    assert trained.generator is not None and not trained.generator.training and not trained.model.training
    assert torch.equal(trained.model.encoder.mu.weight, state["model"]["encoder.mu.weight"])
    assert main(tiny_train_argv(out, 1)) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(tiny_train_argv(out, 2, "--resume")) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(float(r["train_loss"]) > 0 and float(r["val_loss"]) > 0 for r in rows)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 4
    # stage 1 moved on, so the CWGAN-GP was refitted on the new latents, not resumed
    assert torch.load(out / "gan.pt", weights_only=False)["stage1_step"] == 4
    assert [r["epoch"] for r in csv.DictReader((out / "gan_metrics.csv").open())] == ["1", "2"]
    assert "model:" in (out / "config.yaml").read_text()


def test_config_errors_name_the_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path), "--config", "huge"]) == 2
    assert "cpu-small" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--set", "train.epochz=3"]) == 2
    assert "epochs" in capsys.readouterr().err
    with pytest.raises(ValueError, match="condition"):
        load_config("cpu-small", ["model.condition=bandgap"])


def test_paper_config_is_the_paper_size() -> None:
    from training.model.equiformer import EquiformerConfig

    config = load_config("paper")
    assert config.model.encoder == EquiformerConfig.paper() == config.model.decoder


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tiny_train_argv: Callable[..., list[str]],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill the run during its second epoch's validation (after every batch was checkpointed:
    checkpoint_minutes=0), resume, and get bit-identical weights."""
    import training.train.stage1 as stage1

    straight, split = tmp_path / "straight", tmp_path / "split"
    every_batch = ("--set", "train.checkpoint_minutes=0")
    assert main(tiny_train_argv(straight, 2, *every_batch)) == 0
    real = stage1.validation_loss
    calls = {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(stage1, "validation_loss", interrupting)
    assert main(tiny_train_argv(split, 2, *every_batch)) == 130
    state = torch.load(split / "checkpoint.pt", weights_only=False)
    assert (state["epoch"], state["batch"]) == (1, 2)  # both batches of epoch 2 done, epoch not closed
    monkeypatch.setattr(stage1, "validation_loss", real)
    assert main(tiny_train_argv(split, 2, "--resume", *every_batch)) == 0
    a = torch.load(straight / "checkpoint.pt", weights_only=False)
    b = torch.load(split / "checkpoint.pt", weights_only=False)
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == (2, 4)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows_a = list(csv.DictReader((straight / "metrics.csv").open()))
    rows_b = list(csv.DictReader((split / "metrics.csv").open()))
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]
    assert [r["val_loss"] for r in rows_a] == [r["val_loss"] for r in rows_b]


def test_interrupted_stage2_resumes_exactly(
    tiny_train_argv: Callable[..., list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut stage 2 off after its second epoch is stored, resume, and get the same generator."""
    import training.train.runfiles as runfiles
    import training.train.stage2 as stage2

    monkeypatch.setattr(stage2, "SAVE_SECONDS", 0.0)  # store every epoch
    straight, split = tmp_path / "straight", tmp_path / "split"
    extra = ("--set", "gan.epochs=3")
    assert main(tiny_train_argv(straight, 1, *extra)) == 0
    real = runfiles.append_row
    calls = {"n": 0}

    def interrupting(path, row):
        real(path, row)
        if path.name == "gan_metrics.csv":
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(stage2, "append_row", interrupting)
    assert main(tiny_train_argv(split, 1, *extra)) == 130
    assert torch.load(split / "gan.pt", weights_only=False)["epoch"] == 1  # epoch 2 logged, not yet stored
    monkeypatch.setattr(stage2, "append_row", real)
    assert main(tiny_train_argv(split, 1, "--resume", *extra)) == 0
    a = torch.load(straight / "gan.pt", weights_only=False)
    b = torch.load(split / "gan.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])
    rows_a = list(csv.DictReader((straight / "gan_metrics.csv").open()))
    rows_b = list(csv.DictReader((split / "gan_metrics.csv").open()))
    assert [r["critic_loss"] for r in rows_a] == [r["critic_loss"] for r in rows_b]  # epoch 2 not repeated


def test_gan_plateau_scheduler_really_steps(tiny_train_argv: Callable[..., list[str]], tmp_path: Path) -> None:
    """With patience 0 every epoch whose Wasserstein estimate does not improve cuts both rates by 0.6."""
    out = tmp_path / "run"
    assert main(tiny_train_argv(out, 1, "--set", "gan.epochs=6", "--set", "gan.plateau_patience=0")) == 0
    rows = list(csv.DictReader((out / "gan_metrics.csv").open()))
    w = [float(r["wasserstein"]) for r in rows]
    lr = [float(r["lr_generator"]) for r in rows]
    best, expected, rate = float("inf"), [], 2e-4
    for value in w:  # a row logs the rate its epoch ran with; the step after it may cut it
        expected.append(rate)
        if value < best * (1 - 1e-4):  # torch's "rel" threshold in mode "min"
            best = value
        else:
            rate = max(rate * 0.6, 1e-5)
    assert lr == pytest.approx(expected)
    assert min(lr) < 2e-4  # the test only means something if at least one epoch did not improve
    assert [float(r["lr_critic"]) for r in rows] == lr


def test_shipped_weights_are_small_half_precision_and_equal_the_run(
    tiny_train_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    from training.train.ship import ship

    run = tmp_path / "run"
    assert main(tiny_train_argv(run, 1)) == 0
    card = tmp_path / "models" / "tiny" / "metrics.json"  # the model card of the weights being replaced
    card.parent.mkdir(parents=True)
    card.write_text("{}")
    weights = ship(run, tmp_path / "models" / "tiny")
    assert not card.exists()  # else `vdwgen model-card` would keep its stages for the new weights
    shipped, original = load_trained(weights), load_trained(run / "model.pt")
    payload = torch.load(weights, weights_only=True)
    assert payload["model"]["encoder.mu.weight"].dtype == torch.float16
    assert shipped.model.encoder.mu.weight.dtype == torch.float32  # loaded back as float32
    parameters = {name for name, _ in original.model.named_parameters()}
    for key, value in original.model.state_dict().items():
        got = shipped.model.state_dict()[key]
        assert got.dtype == value.dtype, key  # float64 tables (Wigner-D) stay float64
        if key in parameters:
            assert torch.equal(got, value.half().to(value.dtype))  # exactly the float16-rounded weights
        else:
            assert torch.equal(got, value)
    assert weights.stat().st_size < (run / "model.pt").stat().st_size * 0.6
    record = json.loads((weights.parent / "training.json").read_text())
    assert record["stage1"]["epochs"] == 1 and record["stage2"]["epochs"] == 2
    assert (weights.parent / "metrics.csv").exists() and (weights.parent / "config.yaml").exists()


def test_cosine_learning_rate_schedule() -> None:
    from training.train.config import TrainConfig
    from training.train.stage1 import learning_rate

    cfg = TrainConfig(lr=1e-3, min_lr=1e-5)
    rates = [learning_rate(cfg, s, 101) for s in range(101)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-5)
    assert rates[50] == pytest.approx((1e-3 + 1e-5) / 2)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert learning_rate(TrainConfig(lr_schedule="constant"), 70, 101) == 1e-3
    with pytest.raises(ValueError, match="cosine, constant"):
        TrainConfig(lr_schedule="linear")


def test_training_logs_validation_reconstruction_and_trains_in_bfloat16(
    tiny_train_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = tiny_train_argv(out, 2, "--set", "train.recon_every=2", "--set", "train.recon_crystals=2",
                           "--set", "train.precision=bfloat16", "--set", "model.type_noise_coupled=true",
                           "--set", "model.type_loss_weighting=uniform")
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["val_match_rate"] for r in rows][0] == ""  # only every recon_every epochs
    last = rows[-1]
    assert 0.0 <= float(last["val_match_rate"]) <= 1.0 and 0.0 <= float(last["val_motif_share"]) <= 1.0
    assert float(last["recon_seconds"]) > 0 and all(float(r["train_loss"]) > 0 for r in rows)
    trained = load_trained(out / "model.pt")
    assert trained.config.model.type_noise_coupled and trained.config.train.precision == "bfloat16"
    assert all(p.dtype == torch.float32 for p in trained.model.parameters())  # autocast: weights stay float32


def test_a_resumed_run_keeps_its_own_configuration(tiny_train_argv: Callable[..., list[str]], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(tiny_train_argv(out, 1)) == 0
    # no --config and none of the tiny overrides: the run's config.yaml (the tiny model) is used
    assert main(["train", "--out", str(out), "--resume", "--set", "train.epochs=2"]) == 0
    assert [r["epoch"] for r in csv.DictReader((out / "metrics.csv").open())] == ["1", "2"]
    saved = load_config(str(out / "config.yaml"))
    assert saved.name == "cpu-small" and saved.train.epochs == 2 and saved.model.encoder.sphere_channels == 8


def test_the_cpu_medium_config_is_the_recipe_of_the_shipped_model() -> None:
    """`vdwgen train --config cpu-medium` retrains the shipped default: its resolved config equals the one the
    shipped weights were trained with, key for key (only the name differs)."""
    import yaml

    shipped = yaml.safe_load((Path(__file__).resolve().parents[3] / "models" / "cdvae-plus-janus" / "config.yaml")
                             .read_text())
    recipe = json.loads(json.dumps(load_config("cpu-medium").as_dict()))  # tuples as lists, as YAML reads them
    shipped.pop("name"), recipe.pop("name")
    assert recipe == shipped
