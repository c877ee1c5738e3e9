"""ConditionCDVAE+ networks: equivariant encoder/decoder, conditions, LMF, heads, CWGAN-GP, sampler."""

from training.model.cdvae import ConditionCDVAEPlus, ModelConfig, TrainingBatch, minimum_image_displacement
from training.model.conditions import (
    ElementVocabulary,
    FormulaEmbedding,
    GaussianBasis,
    PropertyEmbedding,
    parse_formula,
)
from training.model.equiformer import (
    EquiformerBackbone,
    EquiformerConfig,
    EquiformerDecoder,
    EquiformerEncoder,
)
from training.model.gan import (
    GP_LAMBDA,
    Critic,
    GanTrainConfig,
    Generator,
    critic_loss,
    generator_loss,
    gradient_penalty,
    make_optimizers,
    make_schedulers,
)
from training.model.heads import (
    LOSS_WEIGHTS,
    CompositionHead,
    HeadConfig,
    LatticeHead,
    LatticeScaler,
    NumAtomsHead,
    PropertyHead,
)
from training.model.langevin import AnnealedLangevin, LangevinSettings
from training.model.lmf import LowRankFusion, full_tensor_fusion
from training.model.noise import COORD_NOISE, TYPE_NOISE, NoiseSchedule
from training.model.so3 import EquivariantLayerNorm, SeparableS2Activation, SO3Linear, WignerD

__all__ = [
    "AnnealedLangevin",
    "COORD_NOISE",
    "CompositionHead",
    "ConditionCDVAEPlus",
    "Critic",
    "ElementVocabulary",
    "EquiformerBackbone",
    "EquiformerConfig",
    "EquiformerDecoder",
    "EquiformerEncoder",
    "EquivariantLayerNorm",
    "FormulaEmbedding",
    "GP_LAMBDA",
    "GanTrainConfig",
    "GaussianBasis",
    "Generator",
    "HeadConfig",
    "LOSS_WEIGHTS",
    "LangevinSettings",
    "LatticeHead",
    "LatticeScaler",
    "LowRankFusion",
    "ModelConfig",
    "NoiseSchedule",
    "NumAtomsHead",
    "PropertyEmbedding",
    "PropertyHead",
    "SO3Linear",
    "SeparableS2Activation",
    "TYPE_NOISE",
    "TrainingBatch",
    "WignerD",
    "critic_loss",
    "full_tensor_fusion",
    "generator_loss",
    "gradient_penalty",
    "make_optimizers",
    "make_schedulers",
    "minimum_image_displacement",
    "parse_formula",
]
