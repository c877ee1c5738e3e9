"""Offline training of ConditionCDVAE+: configs and the stage-1 loop (`vdwgen train`)."""

from training.train.config import TrainConfig, load_config
from training.train.stage1 import train_stage1

__all__ = ["TrainConfig", "load_config", "train_stage1"]
