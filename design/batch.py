"""A batch of design candidates as tensors: what is learnt, what is fixed, and how a candidate is read.

Each candidate comes from one template and holds

- fractional coordinates, kept within ``bounds`` of the template's (projected after every step);
- a lattice scale: for a slab one factor on the two in-plane vectors (c, the vacuum, stays); for a bulk
  crystal one factor per lattice vector; kept within ``1 +- scale_bound``;
- per-site logits over the vocabulary and per-candidate weights over its oxidation-number patterns
  (:mod:`design.masks`): the site distribution is ``sum_k softmax(w / T)_k softmax(logits + log mask_k) / T``.

:func:`design_values` reads a candidate's labels: the predictor's, except that for a two-layer slab the
``interlayer_gap`` and ``a_common`` labels of the bilayer table are measured on the geometry itself
(the gap between the top of the lower layer and the bottom of the upper one along the normal; the length
of the first in-plane vector), exactly and with gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from design.masks import SitePatterns
from design.templates import Template

GEOMETRIC_LABELS = ("interlayer_gap", "a_common")
"""Labels of the bilayer table that a two-layer slab's geometry defines; read from it, not predicted."""
IN_PLANE_BOUND = 0.05
"""Largest in-plane move of a fractional coordinate from its template (the issue's +-0.05)."""
HEIGHT_BOUND_A = 0.5
"""Largest move along c, in Å (enough for a 3.0-3.3 Å gap from any dataset gap of 2.8-4.2 Å)."""
SCALE_BOUND = 0.15
"""Largest relative change of the lattice vectors (the data's a spans 3.49-4.34 Å: +-11 % about its middle)."""

Predictor = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


@dataclass
class CandidateBatch:
    """Fixed tensors of B candidates with N sites in all, T elements and at most K patterns.

    Attributes:
        template_index: (B,) which template each candidate started from.
        frac0: (N, 3) the template's fractional coordinates; ``bounds`` (N, 3) the largest move.
        lattice0: (B, 3, 3) the template's lattice; ``slab`` (B,) bool.
        num_atoms: (B,) long; ``batch`` (N,) long; ``layers`` (N,) long (-1 when not a two-layer slab).
        allowed: (N, K, T) bool; ``pattern_ok`` (B, K) bool; ``oxidation`` (N, K) long.
        bonds: (B, E, 2) the template's bonded site pairs (indices within the candidate), ``images`` (B, E, 3),
            ``stretch`` (B, E) length over radii sum, ``bond_ok`` (B, E) which rows are bonds (padding).
    """

    template_index: Tensor
    frac0: Tensor
    bounds: Tensor
    lattice0: Tensor
    slab: Tensor
    num_atoms: Tensor
    batch: Tensor
    layers: Tensor
    allowed: Tensor
    pattern_ok: Tensor
    oxidation: Tensor
    bonds: Tensor
    images: Tensor
    stretch: Tensor
    bond_ok: Tensor

    @property
    def size(self) -> int:
        return int(self.num_atoms.numel())

    def atoms_of(self, candidate: int) -> Tensor:
        start = int(self.num_atoms[:candidate].sum())
        return torch.arange(start, start + int(self.num_atoms[candidate]))


def build_batch(templates: Sequence[Template], patterns: Sequence[SitePatterns], choice: Sequence[int],
                vocabulary_size: int, dtype: torch.dtype = torch.float32) -> CandidateBatch:
    """The candidates ``choice`` (indices into ``templates`` / ``patterns``), one per entry."""
    k_max = max(patterns[i].count for i in choice)
    frac, bounds, lattices, slabs, sizes, layers, allowed, ok, oxidation = [], [], [], [], [], [], [], [], []
    for i in choice:
        t, p = templates[i], patterns[i]
        frac.append(t.frac_coords)
        c_height = abs(float(np.linalg.det(t.lattice))) / float(np.linalg.norm(np.cross(t.lattice[0], t.lattice[1])))
        z_bound = HEIGHT_BOUND_A / c_height if t.slab else IN_PLANE_BOUND
        bounds.append(np.tile([IN_PLANE_BOUND, IN_PLANE_BOUND, z_bound], (t.num_atoms, 1)))
        lattices.append(t.lattice)
        slabs.append(t.slab)
        sizes.append(t.num_atoms)
        layers.append(t.layers if t.slab and t.n_layers == 2 else np.full(t.num_atoms, -1))
        pad = k_max - p.count
        allowed.append(np.concatenate([p.allowed, np.ones((pad, t.num_atoms, vocabulary_size), dtype=bool)])
                       .transpose(1, 0, 2))
        ok.append([True] * p.count + [False] * pad)
        oxidation.append(np.concatenate([p.oxidation, np.zeros((pad, t.num_atoms), dtype=np.int64)]).T)
    e_max = max(max(len(templates[i].bonds) for i in choice), 1)
    bonds = np.zeros((len(choice), e_max, 2), dtype=np.int64)
    images = np.zeros((len(choice), e_max, 3))
    stretch = np.ones((len(choice), e_max))
    bond_ok = np.zeros((len(choice), e_max), dtype=bool)
    for b, i in enumerate(choice):
        e = len(templates[i].bonds)
        bonds[b, :e], images[b, :e], stretch[b, :e], bond_ok[b, :e] = (templates[i].bonds, templates[i].images,
                                                                        templates[i].stretch, True)
    num_atoms = torch.tensor(sizes)
    return CandidateBatch(
        torch.tensor(list(choice)), torch.tensor(np.concatenate(frac), dtype=dtype),
        torch.tensor(np.concatenate(bounds), dtype=dtype), torch.tensor(np.stack(lattices), dtype=dtype),
        torch.tensor(slabs), num_atoms, torch.repeat_interleave(torch.arange(len(sizes)), num_atoms),
        torch.tensor(np.concatenate(layers)), torch.tensor(np.concatenate(allowed)), torch.tensor(ok),
        torch.tensor(np.concatenate(oxidation)), torch.tensor(bonds), torch.tensor(images, dtype=dtype),
        torch.tensor(stretch, dtype=dtype), torch.tensor(bond_ok))


def lattice_of(batch: CandidateBatch, scale: Tensor) -> Tensor:
    """The lattices for scale factors ``scale`` (B, 3): a slab uses ``scale[:, 0]`` on a and b, keeps c."""
    ones = torch.ones_like(scale[:, 0])
    slab_factor = torch.stack([scale[:, 0], scale[:, 0], ones], dim=1)
    factor = torch.where(batch.slab.unsqueeze(1), slab_factor, scale)
    return batch.lattice0 * factor.unsqueeze(-1)


def site_distribution(batch: CandidateBatch, logits: Tensor, weights: Tensor, temperature: float) -> Tensor:
    """Per-site element probabilities (N, T): the pattern mixture of masked, temperature-scaled softmaxes."""
    masked = logits.unsqueeze(1).masked_fill(~batch.allowed, float("-inf"))  # (N, K, T)
    per_pattern = torch.softmax(masked / temperature, dim=-1)
    mix = torch.softmax(weights.masked_fill(~batch.pattern_ok, float("-inf")) / temperature, dim=-1)  # (B, K)
    return (mix.index_select(0, batch.batch).unsqueeze(-1) * per_pattern).sum(1)


def decoded_types(batch: CandidateBatch, logits: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Each site's element (vocabulary index) under its candidate's heaviest pattern, and that pattern (B,)."""
    pattern = weights.masked_fill(~batch.pattern_ok, float("-inf")).argmax(dim=1)  # (B,)
    site_pattern = pattern.index_select(0, batch.batch)
    rows = torch.arange(logits.size(0))
    allowed = batch.allowed[rows, site_pattern]  # (N, T)
    return logits.masked_fill(~allowed, float("-inf")).argmax(dim=1), pattern


BOND_SCALE_A = 0.05
"""Å: a bond this much longer or shorter than its target costs as much as one standard deviation of a target."""


def bond_penalty(batch: CandidateBatch, frac: Tensor, lattice: Tensor, types: Tensor, radii: Tensor) -> Tensor:
    """(B,) the geometry prior: mean over each candidate's template bonds of ``((d - s (r_i + r_j)) / 0.05 Å)^2``.

    ``s`` is the bond's stretch in the template (its length over the two covalent radii) and ``r`` the covalent
    radius expected under each site's element distribution (``types @ radii``), so a site that turns from S into
    Te asks for longer bonds, and the layers keep their bonds and their X-M-M-X order while the elements change.
    """
    starts = torch.cumsum(batch.num_atoms, 0) - batch.num_atoms
    first = batch.bonds[..., 0] + starts.unsqueeze(1)
    second = batch.bonds[..., 1] + starts.unsqueeze(1)
    vectors = torch.bmm(frac[second] + batch.images - frac[first], lattice)  # (B, E, 3)
    length = torch.linalg.vector_norm(vectors, dim=-1)
    expected = types @ radii
    target = batch.stretch * (expected[first] + expected[second])
    squared = ((length - target) / BOND_SCALE_A) ** 2 * batch.bond_ok
    return squared.sum(1) / batch.bond_ok.sum(1).clamp(min=1)


def _padded(values: Tensor, batch: CandidateBatch, fill: float) -> Tensor:
    n_max = int(batch.num_atoms.max())
    starts = torch.cumsum(batch.num_atoms, 0) - batch.num_atoms
    position = torch.arange(values.numel()) - starts.index_select(0, batch.batch)
    out = torch.full((batch.size, n_max), fill, dtype=values.dtype)
    return out.index_put((batch.batch, position), values)


def interlayer_gap(batch: CandidateBatch, frac: Tensor, lattice: Tensor) -> Tensor:
    """(B,) the gap between the two layers along the normal of the ab plane (NaN for other candidates)."""
    normal = torch.linalg.cross(lattice[:, 0], lattice[:, 1])
    normal = normal / torch.linalg.vector_norm(normal, dim=1, keepdim=True)
    cart = torch.bmm(frac.unsqueeze(1), lattice.index_select(0, batch.batch)).squeeze(1)
    heights = (cart * normal.index_select(0, batch.batch)).sum(1)
    lower = _padded(torch.where(batch.layers == 0, heights, torch.full_like(heights, -1e9)), batch, -1e9).amax(1)
    upper = _padded(torch.where(batch.layers == 1, heights, torch.full_like(heights, 1e9)), batch, 1e9).amin(1)
    two_layers = (_padded(batch.layers.float(), batch, -1.0) == 1).any(1)
    return torch.where(two_layers, upper - lower, torch.full_like(upper, float("nan")))


def with_gaps(batch: CandidateBatch, frac: Tensor, lattice: Tensor, gap: Tensor) -> Tensor:
    """``frac`` with the upper layer of every two-layer slab moved rigidly along the normal so that its gap is
    ``gap`` (B,) Å; other candidates (NaN gap) unchanged. The geometry of :func:`scoring.gap_scan.with_gap`."""
    normal = torch.linalg.cross(lattice[:, 0], lattice[:, 1])
    normal = normal / torch.linalg.vector_norm(normal, dim=1, keepdim=True)
    shift = torch.nan_to_num(gap - interlayer_gap(batch, frac, lattice), nan=0.0)
    move = (shift.unsqueeze(1) * normal).unsqueeze(1)  # (B, 1, 3) Cartesian
    frac_move = torch.bmm(move, torch.linalg.inv(lattice)).squeeze(1)  # (B, 3)
    upper = (batch.layers == 1).to(frac.dtype).unsqueeze(1)
    return frac + upper * frac_move.index_select(0, batch.batch)


def design_values(predictor: Predictor, labels: Sequence[str], batch: CandidateBatch, frac: Tensor,
                  lattice: Tensor, types: Tensor, geometric: bool = False) -> tuple[Tensor, Tensor]:
    """(B, L) the labels the design judges, and (B, L) the predictor's own values.

    With ``geometric``, a two-layer slab's geometric labels (:data:`GEOMETRIC_LABELS`) replace the prediction.
    """
    predicted = predictor(frac, types, lattice, batch.num_atoms)
    if not geometric:
        return predicted, predicted
    columns = []
    gap = None
    for j, name in enumerate(labels):
        column = predicted[:, j]
        if name == "interlayer_gap":
            gap = interlayer_gap(batch, frac, lattice) if gap is None else gap
            column = torch.where(torch.isnan(gap), column, gap)
        elif name == "a_common":
            column = torch.where(batch.slab, torch.linalg.vector_norm(lattice[:, 0], dim=1), column)
        columns.append(column)
    return torch.stack(columns, dim=1), predicted


__all__ = ["GEOMETRIC_LABELS", "CandidateBatch", "bond_penalty", "build_batch", "decoded_types", "design_values",
           "interlayer_gap", "lattice_of", "site_distribution", "with_gaps"]
