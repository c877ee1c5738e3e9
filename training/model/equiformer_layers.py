"""Edge-level layers of the EquiformerV2-style network: radial basis, SO(2) convolution,
equivariant graph attention, feed-forward block, edge-degree embedding.

All modules compile with ``torch.jit.script``. Edge-frame tensors use the ``m``-major
layout of :func:`training.model.so3.m_major_indices` (only ``|m| <= mmax`` kept).

References: eSCN (Passaro & Zitnick, ICML 2023), EquiformerV2 (Liao et al., ICLR 2024).
"""

import math

import torch
from torch import Tensor, nn

from training.model.so3 import SeparableS2Activation, SO3Linear, degree_order, m_major_indices


class GaussianRadialBasis(nn.Module):
    """Gaussians with centres evenly spaced on ``[0, cutoff]``, width = centre spacing.

    Shapes:
        distances (E,) -> (E, num_basis).
    """

    def __init__(self, num_basis: int, cutoff: float) -> None:
        super().__init__()
        centres = torch.linspace(0.0, cutoff, num_basis)
        width = cutoff / max(num_basis - 1, 1)
        self.register_buffer("centres", centres)
        self.coefficient = -0.5 / (width * width)

    def forward(self, distances: Tensor) -> Tensor:
        diff = distances.unsqueeze(-1) - self.centres.to(distances.dtype)
        return torch.exp(self.coefficient * diff * diff)


def cosine_envelope(distances: Tensor, cutoff: float) -> Tensor:
    """Smooth cutoff ``0.5 (cos(pi d / cutoff) + 1)`` for ``d < cutoff``, else 0; (E,) -> (E,)."""
    inside = (distances < cutoff).to(distances.dtype)
    return 0.5 * (torch.cos(math.pi * distances / cutoff) + 1.0) * inside


class RadialMLP(nn.Module):
    """Invariant edge features -> per-edge weights: (Linear, LayerNorm, SiLU) x 2, Linear.

    Shapes:
        x (E, in) -> (E, out).
    """

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.LayerNorm(hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.SiLU(),
            nn.Linear(hidden, out_features),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SO2Convolution(nn.Module):
    """eSCN SO(2) convolution on edge-frame features.

    ``m = 0`` coefficients of all degrees are mixed by one linear map (with bias); for each
    ``0 < m <= mmax`` the (+m, -m) pair is mixed like a complex number,
    ``out+ = Wr x+ - Wi x-``, ``out- = Wr x- + Wi x+``, which commutes with rotations about
    the edge axis. If ``radial_features > 0`` the inputs of every order are first scaled
    elementwise by a radial MLP of the edge's invariant features. ``extra_scalars``
    additional invariant outputs are produced by the ``m = 0`` map.

    Shapes:
        x (E, K, C_in) in m-major layout, radial (E, radial_features) ->
        (E, K, C_out), extra (E, extra_scalars).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        lmax: int,
        mmax: int,
        radial_features: int,
        radial_hidden: int,
        extra_scalars: int = 0,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lmax = lmax
        self.mmax = mmax
        self.extra_scalars = extra_scalars
        self.use_radial = radial_features > 0
        n0 = lmax + 1
        self.linear_m0 = nn.Linear(n0 * in_channels, n0 * out_channels + extra_scalars)
        self.linears_m = nn.ModuleList(
            [
                nn.Linear((lmax + 1 - m) * in_channels, 2 * (lmax + 1 - m) * out_channels, bias=False)
                for m in range(1, mmax + 1)
            ]
        )
        self.coefficient_sizes = [n0] + [2 * (lmax + 1 - m) for m in range(1, mmax + 1)]
        self.radial_sizes = [(lmax + 1 - m) * in_channels for m in range(mmax + 1)]
        radial_size = sum(self.radial_sizes)
        self.radial = (
            RadialMLP(max(radial_features, 1), radial_hidden, radial_size) if self.use_radial else nn.Identity()
        )

    def forward(self, x: Tensor, radial: Tensor) -> tuple[Tensor, Tensor]:
        # One torch.split per tensor, not a slice per order: the backward of a slice fills a zero tensor the size
        # of its whole input, so slicing cost (2 + 2 mmax) full-size fills per call; split's backward concatenates
        # once. Same values; 25-30 % less time forward + backward (bench/so2_split.py).
        num_edges = x.size(0)
        cin = self.in_channels
        cout = self.out_channels
        n0 = self.lmax + 1
        blocks = torch.split(x, self.coefficient_sizes, dim=1)
        weights = self.radial(radial) if self.use_radial else radial
        scales = torch.split(weights, self.radial_sizes, dim=1) if self.use_radial else blocks
        x0 = blocks[0].reshape(num_edges, n0 * cin)
        if self.use_radial:
            x0 = x0 * scales[0]
        y0 = self.linear_m0(x0)
        main, extra = torch.split(y0, [n0 * cout, self.extra_scalars], dim=1)
        outputs = [main.reshape(num_edges, n0, cout)]
        for i, linear in enumerate(self.linears_m):
            n = self.lmax - i  # lmax + 1 - m for m = i + 1
            pair = blocks[i + 1].reshape(num_edges, 2, n * cin)
            if self.use_radial:
                pair = pair * scales[i + 1].unsqueeze(1)
            y = linear(pair).reshape(num_edges, 2, 2, n * cout)  # [sign, real/imag, ...]
            sign_plus, sign_minus = y.unbind(1)
            real_plus, imag_plus = sign_plus.unbind(1)
            real_minus, imag_minus = sign_minus.unbind(1)
            outputs.append((real_plus - imag_minus).reshape(num_edges, n, cout))
            outputs.append((real_minus + imag_plus).reshape(num_edges, n, cout))
        return torch.cat(outputs, dim=1), extra


def scatter_softmax(logits: Tensor, index: Tensor, num_targets: int) -> Tensor:
    """Softmax of ``logits`` (E, H) over the edges sharing a target ``index`` (E,)."""
    expanded = index.unsqueeze(-1).expand_as(logits)
    maxima = torch.full((num_targets, logits.size(1)), -1e30, dtype=logits.dtype, device=logits.device)
    maxima = maxima.scatter_reduce(0, expanded, logits.detach(), reduce="amax", include_self=True)
    exp = torch.exp(logits - maxima.index_select(0, index))
    sums = torch.zeros_like(maxima).index_add(0, index, exp)
    return exp / sums.index_select(0, index).clamp(min=1e-30)


class EdgeDegreeEmbedding(nn.Module):
    """EquiformerV2's edge-degree embedding (paper Eq. 3, second line).

    A radial MLP of each edge's invariant features gives ``m = 0`` coefficients of every
    degree in the edge frame; they are rotated back and summed over each target's
    incoming edges, divided by ``rescale``.

    Shapes:
        edge_features (E, F), rotation_back (E, L, K), target (E,) -> (N, L, C).
    """

    def __init__(self, lmax: int, channels: int, edge_features: int, radial_hidden: int, rescale: float) -> None:
        super().__init__()
        self.lmax = lmax
        self.channels = channels
        self.rescale = rescale
        self.radial = RadialMLP(edge_features, radial_hidden, (lmax + 1) * channels)

    def forward(
        self, edge_features: Tensor, rotation_back: Tensor, envelope: Tensor, target: Tensor, num_nodes: int
    ) -> Tensor:
        n0 = self.lmax + 1
        m0 = self.radial(edge_features).reshape(-1, n0, self.channels) * envelope.view(-1, 1, 1)
        messages = torch.bmm(rotation_back[:, :, :n0], m0)  # (E, L, C)
        out = torch.zeros(num_nodes, messages.size(1), self.channels, dtype=messages.dtype, device=messages.device)
        return out.index_add(0, target, messages) / self.rescale


class EquivariantGraphAttention(nn.Module):
    """EquiformerV2 equivariant graph attention with attention re-normalisation.

    Message of edge j -> i: ``[x_j, x_i]`` rotated into the edge frame, SO(2) convolution
    (radial-modulated) producing hidden features plus invariant attention features and
    gates; attention features go through LayerNorm (the re-normalisation), LeakyReLU and
    a per-head dot product to give logits, softmaxed over each target's edges; hidden
    features go through a gate activation (SiLU on ``l = 0``, sigmoid gates per degree,
    exactly equivariant), a second SO(2) convolution gives per-head values; weighted
    values are rotated back, summed on the target and projected per degree.

    Shapes:
        x (N, L, C), edge_features (E, F), rotation_in (E, K, L), rotation_back (E, L, K),
        envelope (E,), edge_index (2, E) -> (N, L, C).
    """

    def __init__(
        self,
        channels: int,
        lmax: int,
        mmax: int,
        num_heads: int,
        alpha_channels: int,
        value_channels: int,
        hidden_channels: int,
        edge_features: int,
        radial_hidden: int,
    ) -> None:
        super().__init__()
        self.lmax = lmax
        self.num_heads = num_heads
        self.alpha_channels = alpha_channels
        self.value_channels = value_channels
        self.hidden_channels = hidden_channels
        extra = num_heads * alpha_channels + lmax * hidden_channels
        self.conv1 = SO2Convolution(2 * channels, hidden_channels, lmax, mmax, edge_features, radial_hidden, extra)
        self.conv2 = SO2Convolution(hidden_channels, num_heads * value_channels, lmax, mmax, 0, radial_hidden)
        self.alpha_norm = nn.LayerNorm(alpha_channels)
        self.alpha_dot = nn.Parameter(torch.randn(num_heads, alpha_channels) / math.sqrt(alpha_channels))
        self.projection = SO3Linear(num_heads * value_channels, channels, lmax)
        degrees = torch.tensor([int(d) for d in degree_order(lmax)[0][m_major_indices(lmax, mmax)]])
        self.register_buffer("gate_index", (degrees[1:] - 1).clamp(min=0))

    def forward(
        self,
        x: Tensor,
        edge_features: Tensor,
        rotation_in: Tensor,
        rotation_back: Tensor,
        envelope: Tensor,
        edge_index: Tensor,
    ) -> Tensor:
        source = edge_index[0]
        target = edge_index[1]
        num_edges = source.size(0)
        pair = torch.cat([x.index_select(0, source), x.index_select(0, target)], dim=2)  # (E, L, 2C)
        hidden, extra = self.conv1(torch.bmm(rotation_in, pair), edge_features)
        split = self.num_heads * self.alpha_channels
        alpha = extra[:, :split].reshape(num_edges, self.num_heads, self.alpha_channels)
        alpha = torch.nn.functional.leaky_relu(self.alpha_norm(alpha), 0.2)
        logits = (alpha * self.alpha_dot).sum(dim=-1)  # (E, H)
        attention = scatter_softmax(logits, target, x.size(0))
        if self.lmax > 0:
            gates = torch.sigmoid(extra[:, split:].reshape(num_edges, self.lmax, self.hidden_channels))
            rest = hidden[:, 1:] * gates.index_select(1, self.gate_index)
            hidden = torch.cat([torch.nn.functional.silu(hidden[:, :1]), rest], dim=1)
        else:
            hidden = torch.nn.functional.silu(hidden)
        values, _ = self.conv2(hidden, edge_features)
        k = values.size(1)
        values = values.reshape(num_edges, k, self.num_heads, self.value_channels)
        values = values * (attention * envelope.unsqueeze(-1)).view(num_edges, 1, self.num_heads, 1)
        # (E, L, H*V)
        messages = torch.bmm(rotation_back, values.reshape(num_edges, k, self.num_heads * self.value_channels))
        out = torch.zeros(x.size(0), messages.size(1), messages.size(2), dtype=messages.dtype, device=messages.device)
        return self.projection(out.index_add(0, target, messages))


class FeedForward(nn.Module):
    """Per-degree linear -> separable S2 activation -> per-degree linear.

    Shapes:
        x (N, L, C) -> (N, L, C).
    """

    def __init__(self, channels: int, hidden_channels: int, lmax: int, grid_resolution: int) -> None:
        super().__init__()
        self.linear1 = SO3Linear(channels, hidden_channels, lmax)
        self.activation = SeparableS2Activation(lmax, grid_resolution)
        self.linear2 = SO3Linear(hidden_channels, channels, lmax)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.activation(self.linear1(x)))
