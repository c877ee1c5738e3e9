"""SO(3) building blocks for EquiformerV2-style networks, in plain torch ops (TorchScript).

Features are real spherical-harmonic coefficients in e3nn's basis and order: for degree
``l`` and order ``m`` (``-l <= m <= l``) the coefficient sits at index ``l * l + l + m``,
so a feature tensor has shape ``(N, (lmax + 1) ** 2, C)``. In e3nn 0.6 the ``l = 1``
block is ordered (x, y, z), i.e. ``wigner_D(1, R) == R``; the y axis is e3nn's special
axis (``R(alpha, beta, gamma) = Ry(alpha) Rx(beta) Ry(gamma)``), so "the order m" of a
coefficient is its order under rotations about y, and edges are rotated onto +y.

Everything tabulated (rotation generators, the matrix ``J`` turning x rotations into y
rotations, S2 grid matrices) is taken from e3nn once at construction and kept as buffers;
the forward passes use only torch ops and compile with ``torch.jit.script``.

References: Passaro & Zitnick, "Reducing SO(3) convolutions to SO(2) for efficient
equivariant GNNs" (eSCN, ICML 2023); Liao et al., "EquiformerV2" (ICLR 2024).
"""

import math

import torch
from e3nn import o3
from e3nn.o3._wigner import so3_generators
from torch import Tensor, nn


def num_coefficients(lmax: int) -> int:
    """Number of real SH coefficients up to degree ``lmax``: ``(lmax + 1) ** 2``."""
    return (lmax + 1) * (lmax + 1)


def degree_order(lmax: int) -> tuple[Tensor, Tensor]:
    """Degree ``l`` and order ``m`` of every coefficient index, each (L,) long."""
    degrees = [l for l in range(lmax + 1) for _ in range(2 * l + 1)]
    orders = [m for l in range(lmax + 1) for m in range(-l, l + 1)]
    return torch.tensor(degrees, dtype=torch.long), torch.tensor(orders, dtype=torch.long)


def m_major_indices(lmax: int, mmax: int) -> list[int]:
    """Coefficient indices with ``|m| <= mmax``, grouped by order.

    Order: all ``m = 0`` (l = 0..lmax), then for m = 1..mmax first ``+m`` (l = m..lmax),
    then ``-m`` (l = m..lmax). This is the layout the SO(2) convolution works in.
    """
    indices = [l * l + l for l in range(lmax + 1)]
    for m in range(1, mmax + 1):
        indices += [l * l + l + m for l in range(m, lmax + 1)]
        indices += [l * l + l - m for l in range(m, lmax + 1)]
    return indices


def _block_diagonal(blocks: list[Tensor]) -> Tensor:
    return torch.block_diag(*blocks)


def _float64_tables(lmax: int) -> tuple[list[Tensor], list[Tensor]]:
    """e3nn's y generators and ``J`` blocks, computed in float64 (e3nn builds its SU(2)
    generators in the default dtype, so the default is raised to float64 meanwhile)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        generators = [so3_generators(l)[1].to(torch.float64) for l in range(lmax + 1)]
        quarter_turn_z = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        alpha, beta, gamma = o3.matrix_to_angles(quarter_turn_z)
        j_blocks = [o3.wigner_D(l, alpha, beta, gamma).to(torch.float64) for l in range(lmax + 1)]
    finally:
        torch.set_default_dtype(previous)
    return generators, j_blocks


class WignerD(nn.Module):
    """Block-diagonal Wigner-D matrices for all degrees ``0..lmax`` in plain torch.

    Uses ``D(alpha, beta, gamma) = Y(alpha) J^T Y(beta) J Y(gamma)`` where ``Y(a)`` is a
    rotation by ``a`` about y (closed form: cosines on the diagonal plus the y generator
    scaled by ``sin(|m| a) / |m|``) and ``J = D(R0)`` for the rotation ``R0`` by +90 deg
    about z, which maps x onto y, so ``D(Rx(b)) = J^T Y(b) J``. Matches
    ``e3nn.o3.wigner_D`` (tested for l = 0..4).

    Shapes:
        angles (E,) each -> (E, L, L) with L = (lmax + 1) ** 2.
    """

    def __init__(self, lmax: int) -> None:
        super().__init__()
        self.lmax = lmax
        generators, j_blocks = _float64_tables(lmax)
        _, orders = degree_order(lmax)
        abs_m = orders.abs().to(torch.float64)
        # kept in float64 (cast per call) so a model run in float64 gets exact tables
        self.register_buffer("generator_y", _block_diagonal(generators))
        self.register_buffer("j_matrix", _block_diagonal(j_blocks))
        self.register_buffer("abs_m", abs_m)
        self.register_buffer("inv_abs_m", 1.0 / abs_m.clamp(min=1.0))

    def rotation_y(self, angle: Tensor) -> Tensor:
        """(E,) angles -> (E, L, L) Wigner-D of rotations about y."""
        phase = angle.unsqueeze(-1) * self.abs_m.to(angle.dtype)  # (E, L)
        diagonal = torch.diag_embed(torch.cos(phase))
        scale = torch.sin(phase) * self.inv_abs_m.to(angle.dtype)
        return diagonal + self.generator_y.to(angle.dtype).unsqueeze(0) * scale.unsqueeze(-1)

    def forward(self, alpha: Tensor, beta: Tensor, gamma: Tensor) -> Tensor:
        """Wigner-D of ``Ry(alpha) Rx(beta) Ry(gamma)``, shape (E, L, L)."""
        j = self.j_matrix.to(alpha.dtype)
        return self.rotation_y(alpha) @ j.t() @ self.rotation_y(beta) @ j @ self.rotation_y(gamma)

    def to_edge_frame(self, edge_vec: Tensor) -> Tensor:
        """Wigner-D of the rotation taking each edge direction onto +y, shape (E, L, L).

        With ``alpha, beta`` such that ``Ry(alpha) Rx(beta) e_y = edge direction``, this is
        ``D(Ry(alpha) Rx(beta))^T = J^T Y(-beta) J Y(-alpha)``. Zero vectors give a finite
        (arbitrary) frame.
        """
        length = torch.linalg.vector_norm(edge_vec, dim=-1).clamp(min=1e-12)
        unit = (edge_vec / length.unsqueeze(-1)).clamp(-1.0, 1.0)
        beta = torch.acos(unit[:, 1])
        alpha = torch.atan2(unit[:, 0], unit[:, 2])
        j = self.j_matrix.to(edge_vec.dtype)
        return j.t() @ self.rotation_y(-beta) @ j @ self.rotation_y(-alpha)


class SO3Linear(nn.Module):
    """Channel mixing with one weight matrix per degree; bias on ``l = 0`` only.

    Shapes:
        x (N, L, C_in) -> (N, L, C_out).
    """

    def __init__(self, in_channels: int, out_channels: int, lmax: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(lmax + 1, in_channels, out_channels) / math.sqrt(in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        degrees, _ = degree_order(lmax)
        self.register_buffer("degrees", degrees)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.index_select(0, self.degrees)  # (L, C_in, C_out)
        out = torch.einsum("nli,lio->nlo", x, weight)
        return torch.cat([out[:, :1] + self.bias, out[:, 1:]], dim=1)


class EquivariantLayerNorm(nn.Module):
    """EquiformerV2's layer norm for SH features ("EquivariantLayerNormArraySphericalHarmonics").

    ``l = 0``: ordinary layer norm over channels (affine). ``l > 0``: divided by the root
    mean square over channels of the per-coefficient squared values, each degree
    weighted ``1 / (2l + 1) / lmax`` so every degree counts equally, then scaled by a
    learnable weight per degree and channel. Rotations leave the norm unchanged.

    Shapes:
        x (N, L, C) -> (N, L, C).
    """

    def __init__(self, lmax: int, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.lmax = lmax
        self.eps = eps
        self.scalar_norm = nn.LayerNorm(channels, eps=eps)
        self.weight = nn.Parameter(torch.ones(max(lmax, 1), channels))
        degrees, _ = degree_order(lmax)
        balance = torch.zeros(num_coefficients(lmax))
        if lmax > 0:
            balance[1:] = 1.0 / ((2 * degrees[1:] + 1).to(balance.dtype) * lmax)
        self.register_buffer("balance", balance[1:])
        self.register_buffer("degree_index", (degrees[1:] - 1).clamp(min=0))

    def forward(self, x: Tensor) -> Tensor:
        scalars = self.scalar_norm(x[:, 0])
        if self.lmax == 0:
            return scalars.unsqueeze(1)
        rest = x[:, 1:]
        power = (rest * rest * self.balance.to(x.dtype).view(1, -1, 1)).sum(dim=1).mean(dim=1)  # (N,)
        rest = rest * torch.rsqrt(power + self.eps).view(-1, 1, 1)
        rest = rest * self.weight.index_select(0, self.degree_index).unsqueeze(0)
        return torch.cat([scalars.unsqueeze(1), rest], dim=1)


class SeparableS2Activation(nn.Module):
    """EquiformerV2's separable S2 activation.

    ``l = 0`` goes through SiLU; the whole signal is sampled on an S2 grid (e3nn's
    ``ToS2Grid``), SiLU is applied pointwise, and the ``l > 0`` coefficients are read back
    with ``FromS2Grid``. Equivariant up to the grid's aliasing error, which shrinks as
    ``resolution`` grows.

    Shapes:
        x (N, L, C) -> (N, L, C).
    """

    def __init__(self, lmax: int, resolution: int) -> None:
        super().__init__()
        size = num_coefficients(lmax)
        to_grid = o3.ToS2Grid(lmax, (resolution, resolution), normalization="integral")
        from_grid = o3.FromS2Grid((resolution, resolution), lmax, normalization="integral")
        with torch.no_grad():
            eye = torch.eye(size)
            to_matrix = to_grid(eye).reshape(size, -1)  # (L, G)
            points = to_matrix.size(1)
            from_matrix = from_grid(torch.eye(points).reshape(points, resolution, resolution))  # (G, L)
        self.register_buffer("to_grid", to_matrix.t().contiguous())  # (G, L)
        self.register_buffer("from_grid", from_matrix.t().contiguous())  # (L, G)

    def forward(self, x: Tensor) -> Tensor:
        scalars = torch.nn.functional.silu(x[:, :1])
        grid = torch.einsum("gl,nlc->ngc", self.to_grid.to(x.dtype), x)
        grid = torch.nn.functional.silu(grid)
        out = torch.einsum("lg,ngc->nlc", self.from_grid.to(x.dtype), grid)
        return torch.cat([scalars, out[:, 1:]], dim=1)
