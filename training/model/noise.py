"""Geometric noise schedules for the coordinate and atom-type diffusion.

ConditionCDVAE+ (after CDVAE / NCSN) perturbs each crystal at one noise level drawn
from a geometric sequence: coordinates from sigma 10 down to 0.01 and atom types
from 5 down to 0.01, 50 levels each (method.md, stage 1 step 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class NoiseSchedule:
    """A geometric sequence of noise levels, largest first.

    Attributes:
        sigma_begin: the largest noise level (first entry).
        sigma_end: the smallest noise level (last entry).
        num_levels: how many levels, at least 1.
    """

    sigma_begin: float
    sigma_end: float
    num_levels: int = 50

    def __post_init__(self) -> None:
        if self.num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {self.num_levels}")
        if not (self.sigma_begin > 0 and self.sigma_end > 0):
            raise ValueError(
                "sigma_begin and sigma_end must be positive, "
                f"got {self.sigma_begin}, {self.sigma_end}"
            )
        if self.sigma_end > self.sigma_begin:
            raise ValueError(
                f"sigma_begin ({self.sigma_begin}) must be >= sigma_end ({self.sigma_end})"
            )

    def sigmas(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The noise levels.

        Args:
            dtype: floating dtype of the result.

        Returns:
            Tensor of shape (L,): ``sigma_begin * (sigma_end / sigma_begin) ** (i / (L - 1))``
            for i = 0..L-1, i.e. geometric from ``sigma_begin`` to ``sigma_end``.
        """
        levels = torch.linspace(
            math.log(self.sigma_begin),
            math.log(self.sigma_end),
            self.num_levels,
            dtype=torch.float64,
        )
        return torch.exp(levels).to(dtype)


COORD_NOISE = NoiseSchedule(sigma_begin=10.0, sigma_end=0.01, num_levels=50)
"""Coordinate noise levels of the reference: 10 -> 0.01 angstrom, 50 levels."""

TYPE_NOISE = NoiseSchedule(sigma_begin=5.0, sigma_end=0.01, num_levels=50)
"""Atom-type noise levels of the reference: 5 -> 0.01, 50 levels."""
