"""Prediction heads reading the fused latent ``z_c`` and their losses.

ConditionCDVAE+ (paper Fig. 1; method.md stage 1 step 4) predicts from ``z_c`` the
number of atoms, the lattice, the composition and the property with small MLPs,
as CDVAE does.  The lattice target is the 6-vector (a, b, c) / N^(1/3) and
(alpha, beta, gamma), standardised with a scaler fitted on the training set.

Loss weights of the reference (method.md stage 1 step 7) are in ``LOSS_WEIGHTS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSS_WEIGHTS: dict[str, float] = {
    "natoms": 1.0,
    "lattice": 10.0,
    "coord": 10.0,
    "type": 1.0,
    "kl": 0.01,
    "composition": 1.0,
    "property": 1.0,
}
"""Reference weights of the stage-1 loss terms."""


@dataclass(frozen=True)
class HeadConfig:
    """Width and depth of the MLP heads.

    Attributes:
        hidden_dim: width of each hidden layer (reference 256).
        num_layers: number of hidden layers (reference ``fc_num_layers`` 1).
    """

    hidden_dim: int = 256
    num_layers: int = 1

    def __post_init__(self) -> None:
        if self.hidden_dim < 1 or self.num_layers < 1:
            raise ValueError(
                "hidden_dim and num_layers must be >= 1, "
                f"got {self.hidden_dim}, {self.num_layers}"
            )


def build_mlp(in_dim: int, out_dim: int, config: HeadConfig) -> nn.Sequential:
    """Linear-ReLU hidden layers then a linear output layer."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(config.num_layers):
        layers += [nn.Linear(width, config.hidden_dim), nn.ReLU()]
        width = config.hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class NumAtomsHead(nn.Module):
    """Logits over the number of atoms 1..max_atoms; class k means k + 1 atoms.

    Shapes:
        forward: z_c (B, D) -> logits (B, max_atoms)
    """

    def __init__(self, in_dim: int, max_atoms: int, config: HeadConfig = HeadConfig()):
        super().__init__()
        if max_atoms < 1:
            raise ValueError(f"max_atoms must be >= 1, got {max_atoms}")
        self.max_atoms = max_atoms
        self.mlp = build_mlp(in_dim, max_atoms, config)

    def forward(self, z_c: Tensor) -> Tensor:
        return self.mlp(z_c)

    @staticmethod
    def predict(logits: Tensor) -> Tensor:
        """Most likely number of atoms (B,) long from logits (B, max_atoms)."""
        return logits.argmax(dim=-1) + 1


class LatticeHead(nn.Module):
    """Standardised lattice 6-vector: scaled lengths then angles.

    Shapes:
        forward: z_c (B, D) -> (B, 6)
    """

    def __init__(self, in_dim: int, config: HeadConfig = HeadConfig()):
        super().__init__()
        self.mlp = build_mlp(in_dim, 6, config)

    def forward(self, z_c: Tensor) -> Tensor:
        return self.mlp(z_c)


class CompositionHead(nn.Module):
    """Per-element logits of the composition over the vocabulary.

    Shapes:
        forward: z_c (B, D) -> logits (B, V)
    """

    def __init__(self, in_dim: int, vocab_size: int, config: HeadConfig = HeadConfig()):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.mlp = build_mlp(in_dim, vocab_size, config)

    def forward(self, z_c: Tensor) -> Tensor:
        return self.mlp(z_c)


class PropertyHead(nn.Module):
    """Scalar property in standardised units.

    Shapes:
        forward: z (B, D) -> (B,)
    """

    def __init__(self, in_dim: int, config: HeadConfig = HeadConfig()):
        super().__init__()
        self.mlp = build_mlp(in_dim, 1, config)

    def forward(self, z: Tensor) -> Tensor:
        return self.mlp(z).squeeze(-1)


class LatticeScaler(nn.Module):
    """Maps lengths/angles to the standardised 6-vector the lattice head predicts.

    ``y = ((a, b, c) / N^(1/3), alpha, beta, gamma)``, then ``(y - mean) / std``.
    A column with (near) zero spread in the data keeps std 1.

    Args:
        mean: (6,) mean of the unstandardised 6-vector.
        std: (6,) standard deviation of the unstandardised 6-vector.
    """

    def __init__(self, mean: Tensor, std: Tensor):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
        if mean.shape != (6,) or std.shape != (6,):
            raise ValueError(
                f"mean and std must have 6 entries, got {tuple(mean.shape)}, {tuple(std.shape)}"
            )
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    @staticmethod
    def raw_vector(lengths: Tensor, angles: Tensor, num_atoms: Tensor) -> Tensor:
        """(B, 3) lengths, (B, 3) angles, (B,) atom counts -> (B, 6) unstandardised."""
        scale = num_atoms.to(lengths.dtype).unsqueeze(-1) ** (1.0 / 3.0)
        return torch.cat([lengths / scale, angles], dim=-1)

    @classmethod
    def fit(cls, lengths: Tensor, angles: Tensor, num_atoms: Tensor) -> LatticeScaler:
        """Fit on training data: lengths (B, 3), angles (B, 3) in degrees, num_atoms (B,)."""
        raw = cls.raw_vector(lengths.double(), angles.double(), num_atoms)
        std = raw.std(dim=0, unbiased=False) if raw.shape[0] > 1 else torch.ones(6, dtype=raw.dtype)
        return cls(raw.mean(dim=0), std)

    def transform(self, lengths: Tensor, angles: Tensor, num_atoms: Tensor) -> Tensor:
        """Lengths (B, 3), angles (B, 3), num_atoms (B,) -> standardised (B, 6)."""
        raw = self.raw_vector(lengths, angles, num_atoms)
        return (raw - self.mean.to(raw.dtype)) / self.std.to(raw.dtype)

    def inverse(self, y: Tensor, num_atoms: Tensor) -> tuple[Tensor, Tensor]:
        """Standardised (B, 6) and num_atoms (B,) -> lengths (B, 3), angles (B, 3)."""
        raw = y * self.std.to(y.dtype) + self.mean.to(y.dtype)
        scale = num_atoms.to(y.dtype).unsqueeze(-1) ** (1.0 / 3.0)
        return raw[:, :3] * scale, raw[:, 3:]


def natoms_loss(logits: Tensor, num_atoms: Tensor) -> Tensor:
    """Cross entropy of the atom-count class.

    Args:
        logits: (B, max_atoms), class k = k + 1 atoms.
        num_atoms: (B,) true atom counts in 1..max_atoms.
    """
    max_atoms = logits.shape[-1]
    if bool(((num_atoms < 1) | (num_atoms > max_atoms)).any()):
        raise ValueError(f"num_atoms must lie in 1..{max_atoms}, got {num_atoms.tolist()}")
    return F.cross_entropy(logits, num_atoms.long() - 1)


def lattice_loss(pred: Tensor, target: Tensor) -> Tensor:
    """MSE between predicted and true standardised lattice 6-vectors (B, 6)."""
    return F.mse_loss(pred, target)


def composition_loss(logits: Tensor, atom_types: Tensor, num_atoms: Tensor) -> Tensor:
    """Per-atom type cross entropy against the crystal's predicted composition (CDVAE).

    Each atom's true type is scored against its crystal's composition logits; the
    loss is averaged over the atoms of each crystal, then over crystals.

    Args:
        logits: (B, V) composition logits per crystal.
        atom_types: (N,) vocabulary index of every atom, crystals concatenated.
        num_atoms: (B,) atoms per crystal, summing to N.
    """
    if int(num_atoms.sum()) != atom_types.shape[0]:
        raise ValueError(
            f"num_atoms sums to {int(num_atoms.sum())} but there are {atom_types.shape[0]} atoms"
        )
    per_atom_logits = logits.repeat_interleave(num_atoms, dim=0)
    per_atom = F.cross_entropy(per_atom_logits, atom_types.long(), reduction="none")
    crystal = torch.arange(logits.shape[0], device=logits.device).repeat_interleave(num_atoms)
    per_crystal = torch.zeros(logits.shape[0], dtype=per_atom.dtype, device=logits.device)
    per_crystal = per_crystal.index_add(0, crystal, per_atom) / num_atoms.to(per_atom.dtype)
    return per_crystal.mean()


def property_loss(pred: Tensor, target: Tensor) -> Tensor:
    """MSE in standardised units: pred (B,), target (B,)."""
    return F.mse_loss(pred, target)


def kl_loss(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dims, mean over the batch (B, D)."""
    return torch.mean(-0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1))
