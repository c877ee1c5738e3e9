"""The multi-property predictor SMOACS optimises through: crystal (soft types) -> every label at once.

SMOACS (Sakai et al.; method.md section 5) needs one differentiable model that maps a crystal whose
sites hold *distributions* over elements to its properties, with gradients reaching the fractional
coordinates, the lattice and the site distributions. Ours is the EquiformerV2-style backbone of the
ConditionCDVAE+ encoder read out by mean pooling of the ``l = 0`` features and a small MLP:

- the backbone takes the node types as weights over the vocabulary (one-hot for a real crystal, the
  softmax ``p`` of a candidate), so the element embedding is ``p @ W_emb`` as the paper prescribes;
- edge vectors are differentiable in the fractional coordinates and the lattice (the neighbour list
  itself is piecewise constant and built without gradients);
- labels are learnt standardised (training-part mean and standard deviation, kept as buffers), so
  every label weighs alike in the loss; :meth:`PropertyPredictor.forward` returns physical units.

It compiles with ``torch.jit.script`` and keeps autograd there (the exported ``predictor.pt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from training.model.equiformer import EquiformerBackbone, EquiformerConfig


def _small_backbone() -> EquiformerConfig:
    return EquiformerConfig(num_layers=2, sphere_channels=32, lmax=2, mmax=1, num_heads=4, grid_resolution=12)


@dataclass(frozen=True)
class PredictorConfig:
    """Size of the predictor.

    Attributes:
        backbone: the equivariant network (default: the small CPU encoder's size).
        hidden_dim: width of the readout MLP's two hidden layers.
    """

    backbone: EquiformerConfig = field(default_factory=_small_backbone)
    hidden_dim: int = 64

    def __post_init__(self) -> None:
        if self.hidden_dim < 1:
            raise ValueError(f"hidden_dim must be >= 1, got {self.hidden_dim}")


class PropertyPredictor(nn.Module):
    """Crystal with per-site element weights over ``vocabulary`` -> ``len(labels)`` properties.

    Shapes:
        frac_coords (N, 3), type_weights (N, T) with T = len(vocabulary) (rows sum to 1),
        lattice (B, 3, 3) (rows are lattice vectors, Å), num_atoms (B,) -> (B, L) in the labels' units.
    """

    def __init__(self, config: PredictorConfig, vocabulary: tuple[str, ...], labels: tuple[str, ...],
                 mean: Tensor, std: Tensor) -> None:
        super().__init__()
        if len(vocabulary) == 0 or len(labels) == 0:
            raise ValueError("a predictor needs at least one element and one label")
        if mean.shape != (len(labels),) or std.shape != (len(labels),):
            raise ValueError(f"mean and std must have shape ({len(labels)},), got {tuple(mean.shape)}, "
                             f"{tuple(std.shape)}")
        if not bool((std > 0).all()):
            raise ValueError(f"every label needs a positive standard deviation, got {std.tolist()}")
        self.config = config
        self.vocabulary = tuple(vocabulary)
        self.labels = tuple(labels)
        self.num_types = len(vocabulary)
        self.channels = config.backbone.sphere_channels
        self.backbone = EquiformerBackbone(config.backbone, len(vocabulary), 0)
        self.readout = nn.Sequential(
            nn.Linear(self.channels, config.hidden_dim), nn.SiLU(),
            nn.Linear(config.hidden_dim, config.hidden_dim), nn.SiLU(),
            nn.Linear(config.hidden_dim, len(labels)),
        )
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("std", std.detach().clone().float())

    def standardized(self, frac_coords: Tensor, type_weights: Tensor, lattice: Tensor, num_atoms: Tensor) -> Tensor:
        """The labels in standard units ``(y - mean) / std``, shape (B, L)."""
        if type_weights.dim() != 2 or type_weights.size(1) != self.num_types:
            raise ValueError(f"type_weights must have shape (N, {self.num_types}), got {type_weights.shape}")
        dtype = lattice.dtype
        zeros = torch.zeros(frac_coords.size(0), self.channels, dtype=dtype, device=lattice.device)
        no_condition = torch.zeros(lattice.size(0), 0, dtype=dtype, device=lattice.device)
        x, batch = self.backbone(frac_coords.to(dtype), type_weights.to(dtype), zeros, lattice, num_atoms,
                                 no_condition)
        sums = torch.zeros(lattice.size(0), self.channels, dtype=dtype, device=lattice.device).index_add(
            0, batch, x[:, 0])
        pooled = sums / num_atoms.to(dtype).clamp(min=1.0).unsqueeze(-1)
        return self.readout(pooled)

    def forward(self, frac_coords: Tensor, type_weights: Tensor, lattice: Tensor, num_atoms: Tensor) -> Tensor:
        scaled = self.standardized(frac_coords, type_weights, lattice, num_atoms)
        return scaled * self.std.to(scaled.dtype) + self.mean.to(scaled.dtype)


__all__ = ["PredictorConfig", "PropertyPredictor"]
