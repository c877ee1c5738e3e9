"""Training configuration: frozen dataclasses read from small YAML files, with overrides.

A YAML file has the sections ``model`` (with ``encoder`` / ``decoder`` holding
:class:`EquiformerConfig` fields), ``train`` (stage 1) and ``gan`` (stage 2,
:class:`GanTrainConfig`); unknown keys are refused with the list of valid ones.  ``--set section.key=value``
overrides on the command line use the same names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from training.data.sources import DataConfig
from training.model.cdvae import ModelConfig
from training.model.equiformer import EquiformerConfig
from training.model.gan import GanTrainConfig
from training.model.heads import HeadConfig
from training.model.noise import NoiseSchedule

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
LR_SCHEDULES = ("cosine", "constant")
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Stage-1 optimisation settings.

    Attributes:
        epochs: passes over the training part.
        batch_size: crystals per step.
        lr: Adam learning rate (the peak, with a cosine schedule).
        lr_schedule: ``"cosine"`` (decay from ``lr`` to ``min_lr`` over all steps: the most a
            fixed 2-hour budget gets out of the model) or ``"constant"``.
        min_lr: final learning rate of the cosine schedule.
        grad_clip: largest gradient norm (0 = no clipping); steps with a non-finite loss are
            skipped and counted.
        teacher_forcing_fraction: share of epochs that decode on the true lattice (reference: 1/3).
        split: which dataset split to train on (``random`` = the paper's 6:2:2).
        limit_train, limit_val: use only N crystals of a part, spread evenly over it (0 = all;
            smoke tests, and a cheaper per-epoch validation loss).
        checkpoint_minutes: save at least this often.
        seed: everything random is drawn from it.
        recon_every: every this many epochs (and after the last), reconstruct ``recon_crystals``
            validation crystals as the evaluation does and log match rate, RMSE and the share with
            the right layer motif (0 = never; costs about a minute per 100 crystals on 2 cores).
        recon_crystals: how many validation crystals, spread evenly over the part.
        precision: ``"float32"``, or ``"bfloat16"``: the training forward pass runs under autocast
            (matrix products in bfloat16, reductions and the loss in float32; measured in
            bench/results/train_step.json). Validation and everything shipped stay float32.
        compile: run the training forward pass through ``torch.compile`` (dynamic shapes; the
            first steps of each process compile for a few minutes).
    """

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    min_lr: float = 1e-5
    grad_clip: float = 10.0
    teacher_forcing_fraction: float = 1 / 3
    split: str = "random"
    limit_train: int = 0
    limit_val: int = 0
    checkpoint_minutes: float = 10.0
    seed: int = 0
    recon_every: int = 0
    recon_crystals: int = 100
    precision: str = "float32"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.recon_every < 0 or self.recon_crystals < 1:
            raise ValueError("need recon_every >= 0 and recon_crystals >= 1")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.min_lr < 0 or self.grad_clip < 0:
            raise ValueError("need epochs >= 1, batch_size >= 1, lr > 0, min_lr >= 0 and grad_clip >= 0")


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs: data, model, stage-1 and stage-2 optimisation."""

    name: str = "cpu-small"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gan: GanTrainConfig = field(default_factory=GanTrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    valid = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; valid: {', '.join(valid)}")
    return cls(**values)


def config_from_dict(data: dict[str, Any], name: str) -> RunConfig:
    """A :class:`RunConfig` from nested plain values (YAML)."""
    unknown = sorted(set(data) - {"name", "model", "train", "gan", "data"})
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; valid: model, train, gan, data")
    name = str(data.get("name", name))  # a run's saved config.yaml keeps the name of the config it came from
    model = dict(data.get("model", {}))
    enc = _build(EquiformerConfig, model.pop("encoder", {}) or {}, "model.encoder")
    dec = _build(EquiformerConfig, model.pop("decoder", {}) or {}, "model.decoder")
    heads = _build(HeadConfig, model.pop("heads", {}) or {}, "model.heads")
    for key in ("coord_noise", "type_noise"):  # saved configs carry the schedules as mappings
        if isinstance(model.get(key), dict):
            model[key] = _build(NoiseSchedule, model[key], f"model.{key}")
    model_cfg = _build(ModelConfig, {**model, "encoder": enc, "decoder": dec, "heads": heads}, "model")
    train_cfg = _build(TrainConfig, data.get("train", {}) or {}, "train")
    gan = dict(data.get("gan", {}) or {})
    if "betas" in gan:
        gan["betas"] = tuple(float(b) for b in gan["betas"])
    gan_cfg = _build(GanTrainConfig, gan, "gan")
    source = dict(data.get("data", {}) or {})
    if "ratio" in source:
        source["ratio"] = tuple(float(r) for r in source["ratio"])
    data_cfg = _build(DataConfig, source, "data")
    return RunConfig(name=name, model=model_cfg, train=train_cfg, gan=gan_cfg, data=data_cfg)


def load_config(name_or_path: str, overrides: list[str] | None = None) -> RunConfig:
    """Read ``training/configs/<name>.yaml`` (or a path) and apply ``section.key=value`` overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise ValueError(f"no config {name_or_path!r}; shipped configs: {shipped}")
    data = yaml.safe_load(path.read_text()) or {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.key=value, e.g. train.epochs=2")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return config_from_dict(data, path.stem)


def with_train(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy with some training settings changed."""
    return replace(config, train=replace(config.train, **changes))
