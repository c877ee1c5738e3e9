"""Generation and reconstruction with a trained ConditionCDVAE+ (eager PyTorch, eval mode).

The steps (method.md, "Generation"; paper, Methods), each a method here so the export
issue can turn them into artifacts one by one:

1. latents: ``z' = G(noise, c)`` from the stage-2 generator for a condition, ``z ~ N(0, I)``
   for the unconditional baseline, or the encoder's ``mu`` for reconstruction;
2. formation-energy requests draw ``ratio`` times the requested count and keep the
   latents whose predicted property (property head on ``z'``) is closest to the target:
   the paper's 100:1 screening;
3. ``z_c = LMF(z', c)``; the heads give the number of atoms, the lattice and the
   composition; a formula request fixes the atom types to the formula instead;
4. annealed Langevin dynamics over the 50 coordinate noise levels moves random starting
   coordinates (and, unless fixed, types) to a crystal; lattice and atom count stay fixed.

Everything runs in eval mode (BatchNorm statistics, no dropout) and draws from
generators seeded by the request's seed, so the same seed gives the same crystals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from core import chemistry
from core.compositions import KnownCompositions, default_rule
from core.manifest import DEFAULT_NOISE_SCALE, DEFAULT_SITE_TYPES
from core.threads import chunks_side_by_side
from serving.engine import DECODE_CHUNK
from training.data.crystal import Crystal, CrystalDataset
from training.model.batching import training_batch
from training.model.gan import Generator
from training.model.generation import GenerationHeads
from training.model.langevin import AnnealedLangevin, CrystalDecoder, LangevinSettings
from training.train.weights import TrainedModel

DEFAULT_RATIO = 100
DEFAULT_LANGEVIN = LangevinSettings()  # frozen dataclass: safe to share as an argument default


def served_langevin(steps_per_level: int = DEFAULT_LANGEVIN.steps_per_level) -> LangevinSettings:
    """The sampler an export serves by default (site typing and noise scale of :mod:`core.manifest`),
    for figures that describe the shipped model: the training monitor and the model card."""
    return LangevinSettings(steps_per_level=steps_per_level, site_types=DEFAULT_SITE_TYPES,
                            noise_scale=DEFAULT_NOISE_SCALE)


def served_known(trained: TrainedModel, train_species: list, dataset_species: list) -> KnownCompositions | None:
    """The compositions an export of ``trained`` serves by default (:func:`core.compositions.default_rule`),
    from the element symbols of its training crystals and of every crystal of its dataset; None where the
    default is the head's counts."""
    if default_rule(train_species, dataset_species) != "known":
        return None
    return KnownCompositions.from_species(train_species, trained.model.vocab.symbols)


@dataclass
class Decoded:
    """Crystals decoded from fused latents, with what the model predicted for them.

    Attributes:
        crystals: the generated crystals.
        predicted_property: (B,) formation energy (eV/atom) the property head gives their
            latents (NaN where the latent has no meaningful prediction).
    """

    crystals: list[Crystal]
    predicted_property: np.ndarray = field(default_factory=lambda: np.zeros(0))


def formula_counts(text: str, trained: TrainedModel) -> Tensor:
    """Element counts (V,) of a formula, scaled to a cell size the model was trained on.

    "GaInSSe" (4 atoms) becomes the 8-atom cell Ga2In2S2Se2 for a model trained on 8-atom
    bilayers (:func:`core.chemistry.scale_to_cell`).

    Raises:
        ValueError: unreadable formula, element outside the vocabulary (lists it), or no
            multiple of the formula that matches a training cell size (names the sizes).
    """
    counts = chemistry.parse_formula(text, trained.vocab.symbols)
    sizes = {k: int(v) for k, v in enumerate(trained.model.cell_size_counts.tolist()) if v}
    return torch.tensor(chemistry.scale_to_cell(text, counts, sizes), dtype=torch.long)


class Sampler:
    """Eager generation with a trained model.

    Args:
        trained: the model (and generator) from :func:`training.train.weights.load_trained`.
        settings: Langevin steps per level and step size.
        known: compositions a free-composition crystal snaps to (:mod:`core.compositions`, the ``known`` rule of
            an export); None keeps the composition head's counts.
        batch_size: crystals encoded together (reconstruction, property prediction). Decoding runs in chunks
            of :data:`serving.engine.DECODE_CHUNK` with the served engine's seeds, side by side on one thread
            each, so a seed gives the same crystals on any thread count.
    """

    def __init__(self, trained: TrainedModel, settings: LangevinSettings = DEFAULT_LANGEVIN,
                 batch_size: int = 128, known: KnownCompositions | None = None) -> None:
        self.trained = trained
        self.known = known
        self.model = trained.model.eval()
        self.generator = trained.generator.eval() if trained.generator is not None else None
        self.settings = settings
        self.batch_size = batch_size
        self.property_name = trained.config.data.property
        """The crystals' property column the model was trained on (and conditions on)."""
        self.heads = GenerationHeads(self.model).eval()
        langevin = AnnealedLangevin(self.model.decoder, self.model.coord_sigmas, settings)
        self.decoder = CrystalDecoder(langevin, self.model.vocab.size).eval()

    # -- latents: (z, condition vector) pairs --------------------------------------------------
    def _need_generator(self) -> Generator:
        if self.generator is None:
            raise ValueError("this model has no stage-2 generator (an unconditional baseline samples its prior)")
        return self.generator

    def no_condition(self, n: int) -> Tensor:
        """The placeholder condition (n, 1) of an unconditional model (ignored by its heads)."""
        return torch.zeros(n, max(self.model.cond_in, 1))

    @torch.no_grad()
    def energy_latents(
        self, target: float, n: int, seed: int, ratio: int = DEFAULT_RATIO
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Screened latents for a formation-energy target (eV/atom).

        Draws ``n * ratio`` latents from the generator and keeps the ``n`` whose predicted
        formation energy is closest to the target.

        Returns:
            z' (n, D), condition vectors (n, C) and predicted formation energies (n,), closest first.
        """
        generator = self._need_generator()
        if ratio < 1:
            raise ValueError(f"the screening ratio must be at least 1, got {ratio}")
        rng = torch.Generator().manual_seed(seed)
        pool = n * ratio
        cond = self.model.condition_embedding(torch.full((pool,), float(target)), None)
        z = generator(generator.sample_noise(pool, rng), cond)
        predicted = self.heads(z, cond, torch.zeros(pool, dtype=torch.long))[4]
        keep = torch.argsort((predicted - target).abs(), stable=True)[:n]
        return z[keep], cond[keep], predicted[keep]

    @torch.no_grad()
    def formula_latents(self, counts: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
        """Latents for a formula given as element counts (V,) of the cell: z' (n, D), conditions (n, C)."""
        generator = self._need_generator()
        rng = torch.Generator().manual_seed(seed)
        cond = self.model.condition_embedding(None, counts.to(torch.float32).unsqueeze(0).expand(n, -1))
        return generator(generator.sample_noise(n, rng), cond), cond

    @torch.no_grad()
    def prior_latents(self, n: int, seed: int) -> Tensor:
        """z ~ N(0, I) (n, D) of the unconditional baseline (its z_c is z)."""
        if self.model.fusion is not None:
            raise ValueError("unconditional sampling needs a model trained without fusion (condition 'none')")
        rng = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.model.config.latent_dim, generator=rng)

    @torch.no_grad()
    def encode(self, crystals: list[Crystal]) -> tuple[Tensor, Tensor]:
        """Posterior means ``mu`` (B, D) and each crystal's own condition vector (B, C)."""
        mus, conds = [], []
        for start in range(0, len(crystals), self.batch_size):
            batch = training_batch(crystals[start:start + self.batch_size], self.model.vocab, self.property_name)
            mu, _ = self.model.encoder(batch.frac_coords, batch.atomic_numbers, batch.lattice, batch.num_atoms)
            mus.append(mu)
            conds.append(self.model.condition_embedding(batch.property, batch.counts)
                         if self.model.fusion is not None else self.no_condition(len(mu)))
        return torch.cat(mus), torch.cat(conds)

    @torch.no_grad()
    def predict_property(self, crystals: list[Crystal]) -> np.ndarray:
        """The property (e.g. formation energy, eV/atom) the trained encoder + property head give each crystal
        (z = mu)."""
        if self.model.config.property_from != "z":
            raise ValueError("re-predicting a crystal's property needs a property head that reads z")
        mus = []
        for start in range(0, len(crystals), self.batch_size):
            batch = training_batch(
                [_with_property(c, self.property_name) for c in crystals[start:start + self.batch_size]],
                self.model.vocab, self.property_name,
            )
            mus.append(self.model.encoder(batch.frac_coords, batch.atomic_numbers, batch.lattice, batch.num_atoms)[0])
        mu = torch.cat(mus)
        return self.model.property_embedding.unstandardise(self.model.predict_property(mu)).numpy()

    # -- decoding ------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z: Tensor, cond: Tensor, seed: int, fixed_counts: Tensor | None = None,
               progress: Callable[[int], None] | None = None, steps_per_level: int = 0) -> list[Crystal]:
        """Crystals from latents ``z`` (B, D) and their conditions (B, C) by annealed Langevin dynamics.

        Args:
            z, cond: latents and condition vectors (fused inside).
            seed: seeds the starting coordinates, starting types and the Langevin noise.
            fixed_counts: element counts (V,) every crystal must have (a formula request);
                types then stay fixed and the atom count is their sum.
            progress: called with the number of crystals decoded so far.
            steps_per_level: overrides the sampler's setting when > 0.
        """
        out: list[Crystal] = []

        def run(k: int, start: int, stop: int) -> list[Crystal]:
            return self._decode_chunk(z[start:stop], cond[start:stop], seed * 1_000 + k, fixed_counts,
                                      steps_per_level)

        for part in chunks_side_by_side(run, z.shape[0], DECODE_CHUNK, z.device.type == "cpu"):
            out += part
            if progress is not None:
                progress(len(out))
        return out

    def _decode_chunk(self, z: Tensor, cond: Tensor, seed: int, fixed_counts: Tensor | None,
                      steps_per_level: int) -> list[Crystal]:
        b = z.shape[0]
        override = torch.zeros(b, dtype=torch.long)
        fixed = torch.empty(0, dtype=torch.long)
        if fixed_counts is not None:
            per_crystal = torch.repeat_interleave(torch.arange(self.model.vocab.size), fixed_counts.long())
            override = torch.full((b,), per_crystal.shape[0], dtype=torch.long)
            fixed = per_crystal.repeat(b)
        z_c, num_atoms, lattice, composition, _ = self.heads(z, cond, override)
        if fixed_counts is None and self.known is not None:
            composition = torch.from_numpy(self.known.nearest(composition.cpu().numpy(), num_atoms.cpu().numpy())
                                           ).to(composition.device)
        frac, types = self.decoder(z_c, lattice, num_atoms, composition, fixed, seed, steps_per_level)
        crystals = []
        stops = torch.cumsum(num_atoms, 0).tolist()
        symbols = self.model.vocab.symbols
        for k, (lo, hi) in enumerate(zip([0] + stops[:-1], stops)):
            crystals.append(Crystal(id=f"gen-{seed}-{k}", lattice=lattice[k].double().numpy(),
                                    species=tuple(symbols[int(t)] for t in types[lo:hi]),
                                    frac_coords=frac[lo:hi].double().numpy()))
        return crystals

    # -- requests -----------------------------------------------------------------------------
    def generate_energy(self, target: float, n: int, seed: int, ratio: int = DEFAULT_RATIO) -> Decoded:
        """``n`` crystals for a formation-energy target (eV/atom) with ``ratio``:1 screening."""
        z, cond, predicted = self.energy_latents(target, n, seed, ratio)
        return Decoded(self.decode(z, cond, seed), predicted.numpy())

    def generate_formula(self, formula: str, n: int, seed: int) -> Decoded:
        """``n`` crystals of exactly this formula (scaled to the model's cell)."""
        counts = formula_counts(formula, self.trained)
        z, cond = self.formula_latents(counts, n, seed)
        return Decoded(self.decode(z, cond, seed, fixed_counts=counts), self._property_of(z, cond))

    def generate_free_formula(self, formula: str, n: int, seed: int) -> Decoded:
        """Formula-conditioned latents decoded with free types (the paper's formula hit-rate test)."""
        z, cond = self.formula_latents(formula_counts(formula, self.trained), n, seed)
        return Decoded(self.decode(z, cond, seed), self._property_of(z, cond))

    def generate_unconditional(self, n: int, seed: int) -> Decoded:
        """``n`` crystals from the prior of an unconditional (CDVAE baseline) model."""
        z = self.prior_latents(n, seed)
        cond = self.no_condition(n)
        return Decoded(self.decode(z, cond, seed), self._property_of(z, cond))

    def reconstruct(self, crystals: list[Crystal], seed: int) -> list[Crystal]:
        """Decode each crystal's ``z_c = LMF(mu, its own conditions)`` with predicted atoms, lattice, types."""
        mu, cond = self.encode(crystals)
        return self.decode(mu, cond, seed)

    @torch.no_grad()
    def _property_of(self, z: Tensor, cond: Tensor) -> np.ndarray:
        return self.heads(z, cond, torch.zeros(z.shape[0], dtype=torch.long))[4].numpy()


def _with_property(crystal: Crystal, name: str) -> Crystal:
    """Generated crystals carry no label; batching wants one (ignored by the encoder)."""
    if name in crystal.properties:
        return crystal
    return Crystal(crystal.id, crystal.lattice, crystal.species, crystal.frac_coords, {name: 0.0})


def as_dataset(crystals: list[Crystal], name: str) -> CrystalDataset:
    """Generated crystals as a dataset (ids made unique by position)."""
    renamed = [
        Crystal(f"{name}-{i}", c.lattice, c.species, c.frac_coords, c.properties) for i, c in enumerate(crystals)
    ]
    return CrystalDataset(renamed, name=name, property_names=())
