"""Offline training of ConditionCDVAE+: configs, stage 1, stage 2 and the weights they produce."""

from training.train.config import RunConfig, TrainConfig, load_config
from training.train.run import run_training
from training.train.stage1 import train_stage1
from training.train.stage2 import train_stage2
from training.train.weights import TrainedModel, load_trained, save_weights

__all__ = ["RunConfig", "TrainConfig", "TrainedModel", "load_config", "load_trained", "run_training",
           "save_weights", "train_stage1", "train_stage2"]
