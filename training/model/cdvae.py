"""ConditionCDVAE+ stage 1: encoder, condition embedding + LMF, heads and score decoder, with its losses.

Paper: ConditionCDVAE+ (Sci. Rep. 15, 23023 (2025)), built on CDVAE (Xie et al., ICLR 2022).
Where this implementation departs from the public reference code (and why) is said at each
place below and in the README's model section.

One training step on a batch (:meth:`ConditionCDVAEPlus.forward`):

1. encode the crystals -> ``mu``, ``logvar``; ``z = mu + exp(logvar / 2) * eps``;
2. embed the condition (formation energy through a Gaussian basis, formula through its
   element counts) and fuse with LMF -> ``z_c``; a model with ``condition="none"`` (the
   CDVAE baseline) uses ``z_c = z``;
3. heads on ``z_c``: number of atoms, lattice, composition; property head on ``z_c``
   (the paper's figure; ``property_from="z"`` gives the reference's choice);
4. one noise level per crystal; coordinates get Cartesian Gaussian noise, types are
   resampled from ``one_hot + sigma_t * predicted composition``;
5. the decoder sees the noisy crystal on the true lattice (teacher forcing) or on the
   predicted one (clamped to a valid cell, no gradient back into the lattice head), and predicts the displacement
   back to the clean coordinates in units of sigma (denoising score matching) and the clean types (cross entropy
   scaled by 1/sigma_t).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.data.featurize import lattice_from_params
from training.model.conditions import ElementVocabulary, FormulaEmbedding, PropertyEmbedding
from training.model.equiformer import EquiformerConfig, EquiformerDecoder, EquiformerEncoder
from training.model.heads import (
    LOSS_WEIGHTS,
    CompositionHead,
    HeadConfig,
    LatticeHead,
    LatticeScaler,
    NumAtomsHead,
    PropertyHead,
    composition_loss,
    kl_loss,
    lattice_loss,
    natoms_loss,
    property_loss,
)
from training.model.lmf import LowRankFusion
from training.model.noise import COORD_NOISE, TYPE_NOISE, NoiseSchedule

Condition = Literal["none", "formation_energy", "formula", "both"]
CONDITIONS: tuple[str, ...] = ("none", "formation_energy", "formula", "both")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the stage-1 model.

    Attributes:
        condition: what ``z`` is fused with: ``"formation_energy"``, ``"formula"``, ``"both"``
            (one model serving both kinds of request) or ``"none"`` (the CDVAE baseline,
            ``z_c = z``).
        condition_dropout: for ``"both"``: during training each modality of each crystal is
            replaced by a learned "not given" embedding with this probability, so that the
            model can be asked for a formation energy alone, a formula alone, or both.
        property_from: the property head reads ``z`` (so a latent's predicted property does
            not echo the condition it is fused with, which 100:1 screening and the
            encoder + head re-prediction need) or ``z_c`` (the paper's figure).
        type_noise_coupled: draw each crystal's type-noise level as its coordinate-noise level
            (``True``) instead of independently (``False``, the reference). Coupled, the decoder
            sees nearly clean types only where the coordinates are nearly clean too, as in
            annealed sampling, and must read the element of a site from the geometry and ``z_c``
            wherever the coordinates are noisy, rather than copy the types it is given.
        type_loss_weighting: ``"inverse_sigma"`` divides each atom's type cross entropy by its
            type-noise level (the reference: the nearly clean levels, where copying the input
            type is the answer, then dominate the term ~100:1); ``"uniform"`` weights all levels
            alike.
    """

    encoder: EquiformerConfig = field(default_factory=EquiformerConfig)
    decoder: EquiformerConfig = field(default_factory=EquiformerConfig)
    latent_dim: int = 256
    cond_dim: int = 128
    fusion_rank: int = 4
    condition: Condition = "both"
    condition_dropout: float = 0.0
    property_from: Literal["z_c", "z"] = "z"
    max_atoms: int = 20
    heads: HeadConfig = field(default_factory=HeadConfig)
    coord_noise: NoiseSchedule = COORD_NOISE
    type_noise: NoiseSchedule = TYPE_NOISE
    type_noise_coupled: bool = False
    type_loss_weighting: Literal["inverse_sigma", "uniform"] = "inverse_sigma"

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown condition {self.condition!r}; choose one of {', '.join(CONDITIONS)}")
        if not 0.0 <= self.condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {self.condition_dropout}")
        if self.condition_dropout > 0 and self.condition != "both":
            raise ValueError("condition_dropout needs condition='both' (a single condition cannot be left out)")
        if self.property_from not in ("z_c", "z"):
            raise ValueError(f"property_from must be 'z_c' or 'z', got {self.property_from!r}")
        if self.type_loss_weighting not in ("inverse_sigma", "uniform"):
            raise ValueError("type_loss_weighting must be 'inverse_sigma' or 'uniform', "
                             f"got {self.type_loss_weighting!r}")


class TrainingBatch(NamedTuple):
    """A batch of B crystals with N atoms.

    Attributes:
        frac_coords: (N, 3); atomic_numbers: (N,) long; type_index: (N,) long vocabulary
        index; lattice: (B, 3, 3); lengths, angles: (B, 3); num_atoms: (B,) long;
        property: (B,) formation energy (eV/atom, physical units); counts: (B, V) element
        counts over the vocabulary.
    """

    frac_coords: Tensor
    atomic_numbers: Tensor
    type_index: Tensor
    lattice: Tensor
    lengths: Tensor
    angles: Tensor
    num_atoms: Tensor
    property: Tensor
    counts: Tensor


@dataclass(frozen=True)
class BatchRows:
    """Where a batch sits inside a larger batch whose random draws it shares.

    Data-parallel training gives each process a slice of every global batch. So that a
    crystal gets the noise a one-process run gives it, every random tensor of
    :meth:`ConditionCDVAEPlus.forward` is then drawn for the whole global batch (same
    generator, shapes and order as the one-process step) and cut to this batch's rows.

    Attributes:
        crystals, atoms: size of the global batch.
        first_crystal, first_atom: where this batch's crystals and atoms start in it.
    """

    crystals: int
    atoms: int
    first_crystal: int = 0
    first_atom: int = 0


def _per_crystal(rows: BatchRows | None, n: int, draw: Callable[[int], Tensor]) -> Tensor:
    """``draw(n)`` for ``n`` crystals, or the global batch's ``draw`` cut to ``rows``."""
    return draw(n) if rows is None else draw(rows.crystals).narrow(0, rows.first_crystal, n)


def _per_atom(rows: BatchRows | None, n: int, draw: Callable[[int], Tensor]) -> Tensor:
    """``draw(n)`` for ``n`` atoms, or the global batch's ``draw`` cut to ``rows``."""
    return draw(n) if rows is None else draw(rows.atoms).narrow(0, rows.first_atom, n)


class ConditionCDVAEPlus(nn.Module):
    """The stage-1 model.

    Args:
        config: architecture.
        vocab: element vocabulary of the decoder's types and the formula condition.
        property_mean, property_std: scaler of the formation-energy label (training part).
        lattice_scaler: scaler of the 6-vector (lengths / N^(1/3), angles), fitted on training data.
    """

    def __init__(self, config: ModelConfig, vocab: ElementVocabulary, property_mean: float,
                 property_std: float, lattice_scaler: LatticeScaler) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        d = config.latent_dim
        self.encoder = EquiformerEncoder(config.encoder, latent_dim=d)
        self.decoder = EquiformerDecoder(config.decoder, latent_dim=d, num_types=vocab.size)
        self.property_embedding = PropertyEmbedding(property_mean, property_std, cond_dim=config.cond_dim)
        self.formula_embedding = FormulaEmbedding(vocab.size, cond_dim=config.cond_dim)
        cond_in = 2 * config.cond_dim if config.condition == "both" else config.cond_dim
        self.fusion = (LowRankFusion(d, cond_in, out_dim=d, rank=config.fusion_rank)
                       if config.condition != "none" else None)
        if config.condition == "both":  # learned embeddings of "this condition is not given"
            self.null_property = nn.Parameter(torch.zeros(config.cond_dim))
            self.null_formula = nn.Parameter(torch.zeros(config.cond_dim))
        self.natoms_head = NumAtomsHead(d, config.max_atoms, config.heads)
        self.lattice_head = LatticeHead(d, config.heads)
        self.composition_head = CompositionHead(d, vocab.size, config.heads)
        self.property_head = PropertyHead(d, config.heads)
        self.lattice_scaler = lattice_scaler
        self.register_buffer("coord_sigmas", config.coord_noise.sigmas())
        self.register_buffer("type_sigmas", config.type_noise.sigmas())
        # how many training crystals had k atoms (index k); formula requests pick a cell size from it
        self.register_buffer("cell_size_counts", torch.zeros(config.max_atoms + 1, dtype=torch.long))

    # -- pieces shared with generation -----------------------------------------------------
    @property
    def cond_in(self) -> int:
        """Width of the condition vector fed to LMF and to the stage-2 networks."""
        return {"none": 0, "both": 2 * self.config.cond_dim}.get(self.config.condition, self.config.cond_dim)

    def condition_embedding(self, property_value: Tensor | None, counts: Tensor | None,
                            keep_property: Tensor | None = None, keep_formula: Tensor | None = None) -> Tensor:
        """Condition vector (B, cond_in) from a formation energy (B,) and/or element counts (B, V).

        A ``"both"`` model takes either or both: a condition given as ``None`` (or masked out
        row by row with ``keep_property`` / ``keep_formula``, (B,) bool) becomes the learned
        "not given" embedding. Single-condition models need their condition.
        """
        condition = self.config.condition
        if condition == "none":
            raise ValueError("an unconditional model (condition='none') takes no condition")
        if condition == "formation_energy":
            if property_value is None:
                raise ValueError("this model is conditioned on formation energy: give a value")
            return self.property_embedding(property_value)
        if condition == "formula":
            if counts is None:
                raise ValueError("this model is conditioned on a formula: give element counts")
            return self.formula_embedding(counts)
        if property_value is None and counts is None:
            raise ValueError("give a formation energy, a formula or both")
        # a size, not an int: exporters keep the batch axis symbolic
        batch = property_value.shape[0] if property_value is not None else counts.shape[0]  # type: ignore[union-attr]
        return torch.cat([
            _masked(self.property_embedding, property_value, self.null_property, keep_property, batch),
            _masked(self.formula_embedding, counts, self.null_formula, keep_formula, batch),
        ], dim=-1)

    def fuse_embedding(self, z: Tensor, cond: Tensor) -> Tensor:
        """z_c (B, D) from a latent (B, D) and a ready condition vector (B, cond_in)."""
        if self.fusion is None:
            return z
        return self.fusion(z, cond)

    def fuse(self, z: Tensor, property_value: Tensor | None, counts: Tensor | None,
             keep_property: Tensor | None = None, keep_formula: Tensor | None = None) -> Tensor:
        """z_c (B, D): LMF of z with the condition, or z itself for the baseline."""
        if self.fusion is None:
            return z
        return self.fusion(z, self.condition_embedding(property_value, counts, keep_property, keep_formula))

    def predict_property(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """Standardised property (B,) of latents ``z`` (B, D).

        Reads ``z`` itself, or ``z_c = LMF(z, cond)`` when ``property_from == "z_c"`` (then
        ``cond`` (B, cond_in) is required).
        """
        if self.config.property_from == "z" or self.fusion is None:
            return self.property_head(z)
        if cond is None:
            raise ValueError("this model's property head reads z_c: give the condition vector")
        return self.property_head(self.fusion(z, cond))

    def condition_masks(self, batch: int, generator: torch.Generator | None, device: torch.device,
                        rows: BatchRows | None = None) -> tuple[Tensor | None, Tensor | None]:
        """Training-time modality dropout of a ``"both"`` model: which rows keep each condition
        (``rows``: drawn for the global batch, see :class:`BatchRows`)."""
        p = self.config.condition_dropout
        if self.config.condition != "both" or p <= 0:
            return None, None
        draws = torch.rand(2, batch if rows is None else rows.crystals, generator=generator, device=device)
        if rows is not None:
            draws = draws.narrow(1, rows.first_crystal, batch)
        return draws[0] >= p, draws[1] >= p

    # -- training ----------------------------------------------------------------------------
    def forward(self, batch: TrainingBatch, teacher_forcing: bool,
                generator: torch.Generator | None = None, rows: BatchRows | None = None) -> dict[str, Tensor]:
        """Weighted loss terms of one batch; ``"loss"`` is their sum. ``rows``: the batch is a slice
        of a global batch and draws its noise as that batch's rows (:class:`BatchRows`)."""
        mu, logvar = self.encoder(batch.frac_coords, batch.atomic_numbers, batch.lattice, batch.num_atoms)
        eps = _per_crystal(rows, mu.shape[0], lambda n: torch.randn(
            (n, mu.shape[1]), generator=generator, dtype=mu.dtype, device=mu.device))
        z = mu + torch.exp(0.5 * logvar) * eps
        keep_property, keep_formula = (self.condition_masks(mu.shape[0], generator, mu.device, rows)
                                       if self.training else (None, None))
        z_c = self.fuse(z, batch.property, batch.counts, keep_property, keep_formula)

        natoms_logits = self.natoms_head(z_c)
        lattice_pred = self.lattice_head(z_c)
        composition_logits = self.composition_head(z_c)
        property_pred = self.property_head(z_c if self.config.property_from == "z_c" else z)

        lattice_target = self.lattice_scaler.transform(batch.lengths, batch.angles, batch.num_atoms)
        if teacher_forcing:
            lattice = batch.lattice
        else:
            lengths, angles = self.lattice_scaler.inverse(lattice_pred, batch.num_atoms)
            # detached: the lattice head learns from its own loss; gradients through the
            # decoder's edge frames are singular for edges along the frame axis (NaN)
            lattice = lattice_from_params(*physical_lattice_params(lengths, angles)).detach()

        coord, types = self._denoising_losses(batch, z_c, composition_logits, lattice, generator, rows)
        terms = {
            "natoms": natoms_loss(natoms_logits, batch.num_atoms),
            "lattice": lattice_loss(lattice_pred, lattice_target),
            "coord": coord,
            "type": types,
            "kl": kl_loss(mu, logvar),
            "composition": composition_loss(composition_logits, batch.type_index, batch.num_atoms),
            "property": property_loss(property_pred, self.property_embedding.standardise(batch.property)),
        }
        out = {k: LOSS_WEIGHTS[k] * v for k, v in terms.items()}
        out["loss"] = torch.stack(list(out.values())).sum()
        return out

    def coupled_type_level(self, level: Tensor) -> Tensor:
        """The type-noise level at the same place in its schedule as coordinate level ``level``
        (both largest first; equal-length schedules map a level to itself)."""
        return torch.round(level.to(torch.float64) * (self.type_sigmas.shape[0] - 1)
                           / max(self.coord_sigmas.shape[0] - 1, 1)).long()

    def _denoising_losses(self, batch: TrainingBatch, z_c: Tensor, composition_logits: Tensor,
                          lattice: Tensor, generator: torch.Generator | None,
                          rows: BatchRows | None = None) -> tuple[Tensor, Tensor]:
        num_atoms = batch.num_atoms
        b, n_atoms = num_atoms.shape[0], batch.frac_coords.shape[0]
        device = z_c.device
        crystal = torch.repeat_interleave(torch.arange(b, device=device), num_atoms)
        level = _per_crystal(rows, b, lambda n: torch.randint(
            0, self.coord_sigmas.shape[0], (n,), generator=generator, device=device))
        sigma = self.coord_sigmas[level][crystal].unsqueeze(-1)  # (N, 1)
        atom_lattice = lattice[crystal]
        noise = _per_atom(rows, n_atoms, lambda n: torch.randn(
            (n, 3), generator=generator, dtype=z_c.dtype, device=device))
        noisy_cart = torch.bmm(batch.frac_coords.unsqueeze(1), atom_lattice).squeeze(1) + sigma * noise
        noisy_frac = torch.remainder(
            torch.bmm(noisy_cart.unsqueeze(1), torch.linalg.inv(atom_lattice)).squeeze(1), 1.0)

        if self.config.type_noise_coupled:
            t_level = self.coupled_type_level(level)
        else:
            t_level = _per_crystal(rows, b, lambda n: torch.randint(
                0, self.type_sigmas.shape[0], (n,), generator=generator, device=device))
        t_sigma = self.type_sigmas[t_level][crystal]  # (N,)
        mix = F.one_hot(batch.type_index, self.vocab.size).to(z_c.dtype) + \
            t_sigma.unsqueeze(-1) * F.softmax(composition_logits, dim=-1)[crystal].detach()
        probs = mix / mix.sum(-1, keepdim=True)
        if rows is not None:  # the other atoms of the global batch draw too (uniform stand-ins)
            probs = F.pad(probs, (0, 0, rows.first_atom, rows.atoms - rows.first_atom - n_atoms),
                          value=1.0 / self.vocab.size)
        noisy_types = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        if rows is not None:
            noisy_types = noisy_types.narrow(0, rows.first_atom, n_atoms)
        type_probs = F.one_hot(noisy_types, self.vocab.size).to(z_c.dtype)

        pred_coord, type_logits = self.decoder(noisy_frac, type_probs, lattice, num_atoms, z_c)
        target = minimum_image_displacement(noisy_frac, batch.frac_coords, atom_lattice) / sigma
        coord = 0.5 * ((pred_coord - target) ** 2).sum(-1).mean()
        types = F.cross_entropy(type_logits, batch.type_index, reduction="none")
        types = (types / t_sigma if self.config.type_loss_weighting == "inverse_sigma" else types).mean()
        return coord, types


def _masked(
    embed: nn.Module, value: Tensor | None, null: Tensor, keep: Tensor | None, batch: int | torch.SymInt
) -> Tensor:
    """``embed(value)`` row by row where ``keep`` (all rows when None), the null vector elsewhere."""
    empty = null.unsqueeze(0).expand(batch, -1)
    if value is None:
        return empty
    embedded = embed(value)
    if keep is None:
        return embedded
    return torch.where(keep.unsqueeze(-1), embedded, empty)


def minimum_image_displacement(frac_from: Tensor, frac_to: Tensor, lattice: Tensor) -> Tensor:
    """Shortest Cartesian vector (N, 3) from ``frac_from`` to a periodic image of ``frac_to``.

    Args:
        frac_from, frac_to: (N, 3) fractional coordinates.
        lattice: (N, 3, 3) each atom's lattice (rows are lattice vectors).
    """
    d = frac_to - frac_from
    d = d - torch.round(d)
    shifts = torch.tensor([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)],
                          dtype=d.dtype, device=d.device)  # (27, 3)
    candidates = torch.einsum("nsk,nkl->nsl", d.unsqueeze(1) + shifts.unsqueeze(0), lattice)
    best = candidates.norm(dim=-1).argmin(dim=1)
    return candidates[torch.arange(d.shape[0], device=d.device), best]


#: Bounds that keep a predicted cell a valid crystal cell for the decoder's graph.
MIN_LENGTH, MAX_LENGTH = 2.0, 100.0  # angstrom
MIN_ANGLE, MAX_ANGLE = 30.0, 150.0  # degrees


def physical_lattice_params(lengths: Tensor, angles: Tensor) -> tuple[Tensor, Tensor]:
    """Clamp predicted lengths (B, 3) and angles (B, 3) to a valid, graph-friendly range.

    An untrained lattice head can predict negative lengths or impossible angles; decoding
    on such a cell gives NaN (and a 0.1 A cell would need thousands of periodic images).
    Training labels lie far inside these bounds, so clamping only touches bad predictions.
    """
    return lengths.clamp(MIN_LENGTH, MAX_LENGTH), angles.clamp(MIN_ANGLE, MAX_ANGLE)

