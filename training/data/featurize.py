"""Crystals as batched tensors (the CDVAE layout) and back.

A batch of B crystals with N atoms in all is a :class:`CrystalTensors`: per-atom tensors
concatenated along the first axis, per-crystal tensors stacked, ``batch`` mapping atoms to
crystals. The lattice matrix is authoritative; ``lengths`` and ``angles`` are derived from
it. :func:`lattice_from_params` rebuilds a matrix from lengths and angles in pymatgen's
``Lattice.from_parameters`` orientation (c along z), for decoders that predict parameters.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from training.data.crystal import Crystal, atomic_numbers, element_symbols


class CrystalTensors(NamedTuple):
    """A batch of crystals as tensors.

    Attributes:
        frac_coords: (N, 3) float fractional coordinates.
        atom_types: (N,) long atomic numbers.
        lattice: (B, 3, 3) float lattice matrices, rows are lattice vectors (Å).
        lengths: (B, 3) float a, b, c (Å).
        angles: (B, 3) float alpha, beta, gamma (degrees).
        num_atoms: (B,) long atoms per crystal.
        batch: (N,) long crystal index of every atom.
    """

    frac_coords: Tensor
    atom_types: Tensor
    lattice: Tensor
    lengths: Tensor
    angles: Tensor
    num_atoms: Tensor
    batch: Tensor


def params_from_lattice(lattice: Tensor) -> tuple[Tensor, Tensor]:
    """Lattice lengths and angles of lattice matrices.

    Args:
        lattice: (B, 3, 3), rows are lattice vectors.

    Returns:
        lengths (B, 3) in Å and angles (B, 3) alpha, beta, gamma in degrees (alpha
        between b and c, beta between a and c, gamma between a and b).
    """
    lengths = torch.linalg.vector_norm(lattice, dim=2)
    a, b, c = lattice[:, 0], lattice[:, 1], lattice[:, 2]
    la, lb, lc = lengths[:, 0], lengths[:, 1], lengths[:, 2]
    cosines = torch.stack([(b * c).sum(1) / (lb * lc), (a * c).sum(1) / (la * lc), (a * b).sum(1) / (la * lb)], dim=1)
    return lengths, torch.rad2deg(torch.arccos(torch.clamp(cosines, -1.0, 1.0)))


def lattice_from_params(lengths: Tensor, angles: Tensor) -> Tensor:
    """Lattice matrices from lengths and angles, oriented like ``Lattice.from_parameters``.

    c lies along z, a in the xz plane: ``a = (a sin(beta), 0, a cos(beta))``,
    ``b = (-b sin(alpha) cos(gamma*), b sin(alpha) sin(gamma*), b cos(alpha))``,
    ``c = (0, 0, c)`` with ``cos(gamma*) = (cos(alpha) cos(beta) - cos(gamma)) / (sin(alpha) sin(beta))``.

    Args:
        lengths: (B, 3) a, b, c in Å.
        angles: (B, 3) alpha, beta, gamma in degrees.

    Returns:
        (B, 3, 3), rows are lattice vectors.
    """
    radians = torch.deg2rad(angles)
    cos = torch.cos(radians)
    sin = torch.sin(radians)
    cos_gamma_star = torch.clamp((cos[:, 0] * cos[:, 1] - cos[:, 2]) / (sin[:, 0] * sin[:, 1]), -1.0, 1.0)
    gamma_star = torch.arccos(cos_gamma_star)
    zero = torch.zeros_like(lengths[:, 0])
    vector_a = torch.stack([lengths[:, 0] * sin[:, 1], zero, lengths[:, 0] * cos[:, 1]], dim=1)
    vector_b = torch.stack([
        -lengths[:, 1] * sin[:, 0] * torch.cos(gamma_star),
        lengths[:, 1] * sin[:, 0] * torch.sin(gamma_star),
        lengths[:, 1] * cos[:, 0],
    ], dim=1)
    vector_c = torch.stack([zero, zero, lengths[:, 2]], dim=1)
    return torch.stack([vector_a, vector_b, vector_c], dim=1)


def featurize(crystals: Sequence[Crystal], dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> CrystalTensors:
    """Collate crystals into one batch.

    Lengths and angles are computed in float64 from the lattice matrices, then cast.

    Args:
        crystals: B >= 1 crystals.
        dtype: floating dtype of coordinates and lattice tensors.
        device: where the tensors live (default: CPU).

    Raises:
        ValueError: for an empty sequence or a non-floating ``dtype``.
    """
    if len(crystals) == 0:
        raise ValueError("featurize needs at least 1 crystal")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype (e.g. torch.float32), got {dtype}")
    frac = np.concatenate([c.frac_coords for c in crystals], axis=0)
    types = np.concatenate([atomic_numbers(c.species) for c in crystals])
    lattices = np.stack([c.lattice for c in crystals])
    params = np.array([c.lattice_params() for c in crystals], dtype=np.float64)
    counts = torch.tensor([c.num_atoms for c in crystals], dtype=torch.long, device=device)
    return CrystalTensors(
        frac_coords=torch.as_tensor(frac, dtype=dtype, device=device),
        atom_types=torch.as_tensor(types, dtype=torch.long, device=device),
        lattice=torch.as_tensor(lattices, dtype=dtype, device=device),
        lengths=torch.as_tensor(params[:, :3], dtype=dtype, device=device),
        angles=torch.as_tensor(params[:, 3:], dtype=dtype, device=device),
        num_atoms=counts,
        batch=torch.repeat_interleave(torch.arange(len(crystals), device=device), counts),
    )


def crystal_from_tensors(tensors: CrystalTensors, index: int = 0, id: str | None = None,
                         properties: dict[str, float] | None = None) -> Crystal:
    """One crystal of a batch (uses ``lattice``, ``frac_coords``, ``atom_types``).

    Args:
        tensors: the batch.
        index: which crystal, 0 <= index < B.
        id: its id (default ``"crystal-{index}"``).
        properties: labels to attach.

    Raises:
        IndexError: for an index outside ``[0, B)``.
        ValueError: for atomic numbers outside 1..118.
    """
    num_crystals = int(tensors.num_atoms.size(0))
    if not 0 <= index < num_crystals:
        raise IndexError(f"crystal index {index} out of range for a batch of {num_crystals}")
    counts = tensors.num_atoms.detach().cpu().long()
    start = int(counts[:index].sum())
    stop = start + int(counts[index])
    frac = tensors.frac_coords[start:stop].detach().cpu().double().numpy()
    types = tensors.atom_types[start:stop].detach().cpu().tolist()
    lattice = tensors.lattice[index].detach().cpu().double().numpy()
    return Crystal(id=id if id is not None else f"crystal-{index}", lattice=lattice,
                   species=element_symbols(types), frac_coords=frac, properties=properties or {})


def crystals_from_tensors(tensors: CrystalTensors, ids: Sequence[str] | None = None) -> list[Crystal]:
    """All crystals of a batch, in order (inverse of :func:`featurize` up to dtype).

    Args:
        tensors: the batch.
        ids: one id per crystal (default ``"crystal-{index}"``).

    Raises:
        ValueError: when ``ids`` has the wrong length.
    """
    num_crystals = int(tensors.num_atoms.size(0))
    if ids is not None and len(ids) != num_crystals:
        raise ValueError(f"got {len(ids)} ids for a batch of {num_crystals} crystals")
    return [crystal_from_tensors(tensors, k, None if ids is None else ids[k]) for k in range(num_crystals)]
