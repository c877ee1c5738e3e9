"""Annealed Langevin dynamics over the noise levels: the sampler of the score decoder.

Follows the CDVAE/ConditionCDVAE+ sampler (method.md, "Generation" step 4), fixed where
the reference is broken: the decoder is used as given (callers put it in eval mode),
noise comes from a seeded ``torch.Generator`` so the same seed gives the same crystals,
and a formula request keeps its atom types fixed. The generator is the CPU's on every device
(TorchScript cannot make a CUDA one: "Unsupported device for at::make_generator_for_device"), made
from a tensor's device at run time: TorchScript folds ``torch.Generator(device=torch.device("cpu"))``
into one constant generator, which chunks decoded side by side would share. Draws move to the decoder's
device, so a seed draws the same noise on a CPU and a GPU.

For each noise level sigma (largest first) the step size is
``eta * (sigma / sigma_min) ** 2``; for ``steps_per_level`` steps the Cartesian
coordinates move by ``step * score + sqrt(2 * step) * noise`` with
``score = decoder_output / sigma`` (the decoder predicts the displacement back to the
clean structure in units of sigma, its denoising target), then are wrapped back into
the cell.  The lattice and the number of atoms stay fixed.  The atom types follow one of
two rules (``LangevinSettings.site_types``):

- ``"argmax"`` (the reference): each step takes the arg-max of the decoder's type logits, so the
  composition can drift from the composition head's; a formula request keeps the types it
  started with on the sites they were drawn on.
- ``"counts"``: each crystal keeps exactly its element counts -- the formula of a formula request,
  else the composition head's probabilities times the atom count, rounded by largest remainders --
  and each step hands them out to the sites by the decoder's type logits
  (:func:`assign_by_counts`). The decoder decides which site holds which element; the counts
  decide how many of each there are.

The module is TorchScript-compatible (the export issue scripts the whole loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.manifest import SITE_TYPES


@dataclass(frozen=True)
class LangevinSettings:
    """Sampler settings.

    Attributes:
        steps_per_level: Langevin steps at each noise level (reference: 5 conditional, 100 free).
        step_lr: eta, the step size at the smallest noise level.
        min_sigma: skip levels below this sigma (0 = use all).
        site_types: how the sites get their elements (see the module docstring).
        noise_scale: the Langevin noise times this factor (1 = the reference's sampler; below 1 a
            colder sampler that follows the score more closely).
    """

    steps_per_level: int = 5
    step_lr: float = 1e-4
    min_sigma: float = 0.0
    site_types: str = "argmax"
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise_scale <= 1.0:
            raise ValueError(f"noise_scale must lie in [0, 1] (got {self.noise_scale})")
        if self.site_types not in SITE_TYPES:
            raise ValueError(f"unknown site_types {self.site_types!r}; choose one of {', '.join(SITE_TYPES)}")



def counts_from_composition(composition: Tensor, num_atoms: Tensor) -> Tensor:
    """Element counts (B, T) long, each row summing to its ``num_atoms`` (B,): ``composition`` (B, T)
    probabilities times the atom count, floored, then one more for the largest remainders."""
    expected = composition * num_atoms.unsqueeze(1).to(composition.dtype)
    base = torch.floor(expected)
    short = num_atoms - base.sum(dim=1).long()
    rank = torch.argsort(torch.argsort(base - expected, dim=1), dim=1)  # 0 = largest remainder
    return base.long() + (rank < short.unsqueeze(1)).long()


def assign_by_counts(logits: Tensor, crystal: Tensor, counts: Tensor) -> Tensor:
    """Type indices (N,) giving each crystal exactly ``counts`` (B, T): greedily, per crystal, the
    (site, type) pair of highest log-probability among the sites still open and the types with
    places left, until every site has a type (ties: the lower flat index).

    Args:
        logits: (N, T) per-site type logits; crystal: (N,) each site's crystal; counts: (B, T),
            each row summing to the crystal's number of sites.
    """
    n, t = logits.shape[0], logits.shape[1]
    b = counts.shape[0]
    scores = torch.log_softmax(logits, dim=1)
    left = counts.clone()
    labels = torch.full((n,), -1, dtype=torch.long, device=logits.device)
    if n == 0:
        return labels
    flat_crystal = crystal.repeat_interleave(t)
    flat_index = torch.arange(n * t, device=logits.device)
    sizes = torch.bincount(crystal, minlength=b)
    for _ in range(int(sizes.max())):
        open_pair = (labels < 0).unsqueeze(1) & (left.index_select(0, crystal) > 0)
        score = torch.where(open_pair, scores, torch.full_like(scores, -float("inf"))).reshape(-1)
        best = torch.full((b,), -float("inf"), dtype=score.dtype, device=logits.device).scatter_reduce(
            0, flat_crystal, score, reduce="amax", include_self=True)
        hit = (score == best.index_select(0, flat_crystal)) & (score > -float("inf"))
        first = torch.full((b,), n * t, dtype=torch.long, device=logits.device).scatter_reduce(
            0, flat_crystal[hit], flat_index[hit], reduce="amin", include_self=True)
        pick = first[first < n * t]
        site, kind = torch.div(pick, t, rounding_mode="floor"), torch.remainder(pick, t)
        labels[site] = kind
        left.index_put_((crystal[site], kind), torch.full_like(kind, -1), accumulate=True)
    return labels


class AnnealedLangevin(nn.Module):
    """Annealed Langevin sampler around a score decoder.

    Args:
        decoder: module with ``forward(frac (N,3), type_probs (N,T), lattice (B,3,3),
            num_atoms (B,), z_c (B,D)) -> (coord_out (N,3) Cartesian, type_logits (N,T))``.
        sigmas: (L,) coordinate noise levels, largest first.
        settings: steps per level, step size, lowest level.

    Shapes:
        forward inputs: ``z_c`` (B, D), ``lattice`` (B, 3, 3) row vectors in angstrom,
        ``num_atoms`` (B,) long, ``frac`` (N, 3) starting fractional coordinates,
        ``type_probs`` (N, T) starting types (one-hot or soft).  Outputs: final
        fractional coordinates (N, 3) in [0, 1) and type indices (N,) long.
    """

    def __init__(self, decoder: nn.Module, sigmas: Tensor, settings: LangevinSettings = LangevinSettings()):
        super().__init__()
        if settings.steps_per_level < 1:
            raise ValueError(f"steps_per_level must be at least 1 (got {settings.steps_per_level})")
        if settings.step_lr <= 0:
            raise ValueError(f"step_lr must be positive (got {settings.step_lr})")
        self.decoder = decoder
        self.register_buffer("sigmas", sigmas.detach().clone().to(torch.float32))
        self.steps_per_level = settings.steps_per_level
        self.step_lr = settings.step_lr
        self.min_sigma = settings.min_sigma
        self.count_types = settings.site_types == "counts"
        self.noise_scale = settings.noise_scale

    def forward(
        self, z_c: Tensor, lattice: Tensor, num_atoms: Tensor, frac: Tensor, type_probs: Tensor,
        fix_types: bool, seed: int, steps_per_level: int = 0, counts: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One annealed run; ``steps_per_level`` > 0 overrides the module's setting. ``counts``
        (B, T): element counts every step's types keep (:func:`assign_by_counts`); None or empty:
        the types follow the arg-max, or stay as given when ``fix_types``."""
        steps = steps_per_level if steps_per_level > 0 else self.steps_per_level
        gen = torch.Generator(device=num_atoms.cpu().device)  # a new CPU one per call (docstring)
        gen.manual_seed(seed)
        batch = torch.repeat_interleave(torch.arange(num_atoms.shape[0], device=frac.device), num_atoms)
        atom_lattice = lattice[batch]  # (N, 3, 3)
        inv_lattice = torch.linalg.inv(lattice)[batch]
        sigma_min = self.sigmas[-1]
        frac = torch.remainder(frac, 1.0)
        probs = type_probs
        num_types = type_probs.shape[1]
        with torch.no_grad():
            for level in range(self.sigmas.shape[0]):
                sigma = self.sigmas[level]
                if float(sigma) < self.min_sigma:
                    break
                step = self.step_lr * (sigma / sigma_min) ** 2
                for _ in range(steps):
                    noise = torch.randn(frac.shape, generator=gen, dtype=frac.dtype).to(frac.device)
                    coord_out, type_logits = self.decoder(frac, probs, lattice, num_atoms, z_c)
                    cart = torch.bmm(frac.unsqueeze(1), atom_lattice).squeeze(1)
                    cart = cart + step * coord_out / sigma + self.noise_scale * torch.sqrt(2.0 * step) * noise
                    frac = torch.remainder(torch.bmm(cart.unsqueeze(1), inv_lattice).squeeze(1), 1.0)
                    if counts is not None and counts.numel() > 0:
                        probs = nn.functional.one_hot(assign_by_counts(type_logits, batch, counts),
                                                      num_types).to(frac.dtype)
                    elif not fix_types:
                        probs = nn.functional.one_hot(type_logits.argmax(dim=1), num_types).to(frac.dtype)
        return frac, probs.argmax(dim=1)


class CrystalDecoder(nn.Module):
    """Starting point + annealed Langevin: fused latents and predicted cells -> crystals.

    The whole decoding of a generation request after the heads, as one module that
    ``torch.jit.script`` compiles (the export ships it as ``decoder.pt``): uniform random
    starting fractional coordinates, starting types drawn per atom from the predicted
    composition (or the fixed types of a formula request), then the annealed Langevin loop.
    Everything random comes from ``seed``.

    Shapes:
        z_c (B, D); lattice (B, 3, 3) rows in Å; num_atoms (B,) long; composition (B, T)
        probabilities; fixed_types (N,) long type indices, or an empty tensor for free
        types -> frac (N, 3) in [0, 1), types (N,) long, N = num_atoms.sum().
    """

    def __init__(self, langevin: AnnealedLangevin, num_types: int) -> None:
        super().__init__()
        self.langevin = langevin
        self.num_types = num_types

    def forward(self, z_c: Tensor, lattice: Tensor, num_atoms: Tensor, composition: Tensor,
                fixed_types: Tensor, seed: int, steps_per_level: int) -> tuple[Tensor, Tensor]:
        total = int(num_atoms.sum())
        gen = torch.Generator(device=num_atoms.cpu().device)  # a new CPU one per call (docstring)
        gen.manual_seed(seed)
        frac = torch.rand(total, 3, generator=gen, dtype=lattice.dtype).to(z_c.device)
        fix = fixed_types.numel() > 0
        if fix:
            if fixed_types.shape[0] != total:
                raise ValueError(f"fixed_types has {fixed_types.shape[0]} entries for {total} atoms")
            types = fixed_types
        else:
            per_atom = composition.repeat_interleave(num_atoms, dim=0)
            types = torch.multinomial(per_atom.cpu(), 1, generator=gen).squeeze(-1).to(z_c.device)
        counts = torch.empty(0, 0, dtype=torch.long, device=z_c.device)
        if self.langevin.count_types:
            crystal = torch.repeat_interleave(torch.arange(num_atoms.shape[0], device=z_c.device), num_atoms)
            if fix:
                counts = torch.zeros(num_atoms.shape[0], self.num_types, dtype=torch.long, device=z_c.device)
                counts.index_put_((crystal, types), torch.ones_like(types), accumulate=True)
            else:
                counts = counts_from_composition(composition, num_atoms)
            noise = torch.rand(total, self.num_types, generator=gen, dtype=lattice.dtype).to(z_c.device)
            types = assign_by_counts(noise, crystal, counts)  # a random placement of the counts
        probs = nn.functional.one_hot(types, self.num_types).to(lattice.dtype)
        return self.langevin(z_c, lattice, num_atoms, frac, probs, fix, seed + 1, steps_per_level, counts)
