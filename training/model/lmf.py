"""Low-rank Multimodal Fusion of the latent ``z`` with the condition ``c``.

Implements ConditionCDVAE+ Eq. 5-6 (after Liu et al., "Efficient Low-rank
Multimodal Fusion With Modality-Specific Factors", ACL 2018).  The full tensor
fusion would form the outer product ``Z = [z, 1] (x) [c, 1]`` and contract it with
a weight tensor ``W`` of shape (dz+1, dc+1, out).  LMF writes ``W`` as a sum of R
rank-one terms, each the product of one factor per modality, so

    z_c = sum_r lambda_r * ([z, 1] @ Fz_r) * ([c, 1] @ Fc_r) + bias

without ever forming the outer product.  There is no nonlinearity: for fixed ``c``
the map is affine in ``z`` (and vice versa).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _append_one(x: Tensor) -> Tensor:
    """(B, d) -> (B, d + 1) with a constant 1 in the last column."""
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=-1)


def full_tensor_fusion(z: Tensor, c: Tensor, weight: Tensor) -> Tensor:
    """Explicit full-rank tensor fusion (the reference for LMF).

    Args:
        z: latent vectors, shape (B, dz).
        c: condition embeddings, shape (B, dc).
        weight: fusion weight tensor, shape (dz + 1, dc + 1, out); the 1 is appended
            last to each modality, so ``weight[-1, -1]`` acts as a bias.

    Returns:
        (B, out): ``sum_ij [z,1]_i [c,1]_j W_ijo``.
    """
    if weight.shape[:2] != (z.shape[-1] + 1, c.shape[-1] + 1):
        raise ValueError(
            f"weight must have shape ({z.shape[-1] + 1}, {c.shape[-1] + 1}, out), "
            f"got {tuple(weight.shape)}"
        )
    outer = torch.einsum("bi,bj->bij", _append_one(z), _append_one(c))
    return torch.einsum("bij,ijo->bo", outer, weight)


class LowRankFusion(nn.Module):
    """Low-rank Multimodal Fusion (paper Eq. 5-6) of a latent and a condition.

    Args:
        latent_dim: dz, width of ``z``.
        cond_dim: dc, width of the condition embedding ``c``.
        out_dim: width of the fused ``z_c`` (reference 256).
        rank: R, number of rank-one terms (reference 4).

    Parameters:
        latent_factor: (R, dz + 1, out), the modality factors of ``[z, 1]``.
        cond_factor: (R, dc + 1, out), the modality factors of ``[c, 1]``.
        fusion_weights: (1, R), the weights of the sum over ranks.
        fusion_bias: (1, out).

    Shapes:
        forward: z (B, dz), c (B, dc) -> z_c (B, out)
    """

    def __init__(self, latent_dim: int, cond_dim: int, out_dim: int = 256, rank: int = 4):
        super().__init__()
        sizes = {"latent_dim": latent_dim, "cond_dim": cond_dim, "out_dim": out_dim, "rank": rank}
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.latent_dim = latent_dim
        self.cond_dim = cond_dim
        self.out_dim = out_dim
        self.rank = rank
        self.latent_factor = nn.Parameter(torch.empty(rank, latent_dim + 1, out_dim))
        self.cond_factor = nn.Parameter(torch.empty(rank, cond_dim + 1, out_dim))
        self.fusion_weights = nn.Parameter(torch.empty(1, rank))
        self.fusion_bias = nn.Parameter(torch.empty(1, out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal factors and rank weights, zero bias (as Liu et al.)."""
        nn.init.xavier_normal_(self.latent_factor)
        nn.init.xavier_normal_(self.cond_factor)
        nn.init.xavier_normal_(self.fusion_weights)
        nn.init.zeros_(self.fusion_bias)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        """Fuse ``z`` (B, dz) with ``c`` (B, dc) into ``z_c`` (B, out)."""
        if z.dim() != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        if c.dim() != 2 or c.shape[-1] != self.cond_dim or c.shape[0] != z.shape[0]:
            raise ValueError(
                f"c must have shape ({z.shape[0]}, {self.cond_dim}), got {tuple(c.shape)}"
            )
        proj_z = torch.einsum("bi,rio->rbo", _append_one(z), self.latent_factor)
        proj_c = torch.einsum("bj,rjo->rbo", _append_one(c), self.cond_factor)
        fused = torch.einsum("r,rbo->bo", self.fusion_weights[0], proj_z * proj_c)
        return fused + self.fusion_bias

    def equivalent_full_weight(self) -> Tensor:
        """The full-rank weight tensor these low-rank factors stand for.

        ``W_ijo = sum_r lambda_r Fz[r, i, o] Fc[r, j, o]``; the bias is folded into
        ``W[-1, -1, :]``, the entry multiplying the two appended 1s, so that
        ``full_tensor_fusion(z, c, W) == self(z, c)``.

        Returns:
            (dz + 1, dc + 1, out)
        """
        weight = torch.einsum(
            "r,rio,rjo->ijo", self.fusion_weights[0], self.latent_factor, self.cond_factor
        )
        corner = torch.zeros_like(weight)
        corner[-1, -1] = self.fusion_bias[0]
        return weight + corner
