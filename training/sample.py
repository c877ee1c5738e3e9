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

from training.data.crystal import Crystal, CrystalDataset
from training.data.featurize import lattice_from_params
from training.model.batching import training_batch
from training.model.cdvae import physical_lattice_params
from training.model.conditions import parse_formula
from training.model.langevin import AnnealedLangevin, LangevinSettings
from training.train.weights import TrainedModel

DEFAULT_RATIO = 100


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
    bilayers. Among the multiples of the formula that fit, the cell size most common in
    the training data wins.

    Raises:
        ValueError: unreadable formula, element outside the vocabulary (lists it), or no
            multiple of the formula that matches a training cell size (names the sizes).
    """
    counts = parse_formula(text, trained.vocab)
    atoms = int(counts.sum())
    seen = trained.model.cell_size_counts
    sizes = [k for k in range(atoms, seen.shape[0], atoms) if int(seen[k]) > 0]
    trained_sizes = [k for k in range(seen.shape[0]) if int(seen[k]) > 0]
    if not sizes:
        raise ValueError(f"formula {text!r} has {atoms} atoms, and no whole multiple of it fills a cell of "
                         f"the sizes this model was trained on ({', '.join(map(str, trained_sizes))} atoms)")
    best = max(sizes, key=lambda k: int(seen[k]))
    return counts * (best // atoms)


class Sampler:
    """Eager generation with a trained model.

    Args:
        trained: the model (and generator) from :func:`training.train.weights.load_trained`.
        settings: Langevin steps per level and step size.
        batch_size: crystals decoded together (memory bound, not a result-changing knob
            for a fixed seed as long as it stays the same).
    """

    def __init__(self, trained: TrainedModel, settings: LangevinSettings = LangevinSettings(),
                 batch_size: int = 256) -> None:
        self.trained = trained
        self.model = trained.model.eval()
        self.generator = trained.generator.eval() if trained.generator is not None else None
        self.settings = settings
        self.batch_size = batch_size
        self.langevin = AnnealedLangevin(self.model.decoder, self.model.coord_sigmas, settings).eval()

    # -- latents -----------------------------------------------------------------------------
    def _need_generator(self) -> None:
        if self.generator is None:
            raise ValueError("this model has no stage-2 generator (an unconditional baseline samples its prior)")

    @torch.no_grad()
    def energy_latents(self, target: float, n: int, seed: int, ratio: int = DEFAULT_RATIO) -> tuple[Tensor, Tensor, Tensor]:
        """Screened latents for a formation-energy target (eV/atom).

        Returns:
            z_c (n, D), z' (n, D) and the predicted formation energy (n,) in eV/atom, closest first.
        """
        self._need_generator()
        if ratio < 1:
            raise ValueError(f"the screening ratio must be at least 1, got {ratio}")
        rng = torch.Generator().manual_seed(seed)
        pool = n * ratio
        cond = self.model.condition_embedding(torch.full((pool,), float(target)), None)
        z = self.generator(self.generator.sample_noise(pool, rng), cond)  # type: ignore[union-attr]
        predicted = self.model.property_embedding.unstandardise(self.model.predict_property(z, cond))
        keep = torch.argsort((predicted - target).abs(), stable=True)[:n]
        return self.model.fuse_embedding(z[keep], cond[keep]), z[keep], predicted[keep]

    @torch.no_grad()
    def formula_latents(self, counts: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
        """Latents for a formula given as element counts (V,) of the cell: z_c (n, D), z' (n, D)."""
        self._need_generator()
        rng = torch.Generator().manual_seed(seed)
        counts_b = counts.to(torch.float32).unsqueeze(0).expand(n, -1)
        cond = self.model.condition_embedding(None, counts_b)
        z = self.generator(self.generator.sample_noise(n, rng), cond)  # type: ignore[union-attr]
        return self.model.fuse_embedding(z, cond), z

    @torch.no_grad()
    def prior_latents(self, n: int, seed: int) -> Tensor:
        """z ~ N(0, I) (n, D) of the unconditional baseline (its z_c is z)."""
        if self.model.fusion is not None:
            raise ValueError("unconditional sampling needs a model trained without fusion (condition 'none')")
        rng = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.model.config.latent_dim, generator=rng)

    @torch.no_grad()
    def encode(self, crystals: list[Crystal]) -> tuple[Tensor, Tensor, Tensor]:
        """Posterior means ``mu`` (B, D), formation energies (B,) and element counts (B, V)."""
        mus, props, counts = [], [], []
        for start in range(0, len(crystals), self.batch_size):
            batch = training_batch(crystals[start:start + self.batch_size], self.model.vocab)
            mu, _ = self.model.encoder(batch.frac_coords, batch.atomic_numbers, batch.lattice, batch.num_atoms)
            mus.append(mu)
            props.append(batch.property)
            counts.append(batch.counts)
        return torch.cat(mus), torch.cat(props), torch.cat(counts)

    @torch.no_grad()
    def predict_property(self, crystals: list[Crystal]) -> np.ndarray:
        """Formation energy (eV/atom) the trained encoder + property head give each crystal (z = mu)."""
        mus = []
        for start in range(0, len(crystals), self.batch_size):
            chunk = crystals[start:start + self.batch_size]
            batch = training_batch([_with_property(c) for c in chunk], self.model.vocab)
            mu, _ = self.model.encoder(batch.frac_coords, batch.atomic_numbers, batch.lattice, batch.num_atoms)
            mus.append(mu)
        if self.model.config.property_from != "z":
            raise ValueError("re-predicting a crystal's property needs a property head that reads z")
        mu = torch.cat(mus)
        return self.model.property_embedding.unstandardise(self.model.predict_property(mu)).numpy()

    # -- decoding ------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z_c: Tensor, seed: int, fixed_counts: Tensor | None = None,
               progress: Callable[[int], None] | None = None) -> list[Crystal]:
        """Crystals from fused latents ``z_c`` (B, D) by annealed Langevin dynamics.

        Args:
            z_c: fused latents.
            seed: seeds the starting coordinates, starting types and the Langevin noise.
            fixed_counts: element counts (V,) every crystal must have (a formula request);
                types then stay fixed and the atom count is their sum.
            progress: called with the number of crystals decoded so far.
        """
        out: list[Crystal] = []
        for chunk, start in enumerate(range(0, z_c.shape[0], self.batch_size)):
            out += self._decode_chunk(z_c[start:start + self.batch_size], seed * 1_000 + chunk, fixed_counts)
            if progress is not None:
                progress(len(out))
        return out

    def _decode_chunk(self, z_c: Tensor, seed: int, fixed_counts: Tensor | None) -> list[Crystal]:
        model = self.model
        rng = torch.Generator().manual_seed(seed)
        b = z_c.shape[0]
        vocab_size = model.vocab.size
        if fixed_counts is not None:
            per_crystal = torch.repeat_interleave(torch.arange(vocab_size), fixed_counts.long())
            num_atoms = torch.full((b,), per_crystal.shape[0], dtype=torch.long)
            types = per_crystal.repeat(b)
        else:
            # only cell sizes the model was trained on (a trained head rarely strays; never emit one)
            logits = model.natoms_head(z_c).masked_fill(model.cell_size_counts[1:] == 0, float("-inf"))
            num_atoms = logits.argmax(dim=-1) + 1
            composition = torch.softmax(model.composition_head(z_c), dim=-1)
            per_atom = composition.repeat_interleave(num_atoms, dim=0)
            types = torch.multinomial(per_atom, 1, generator=rng).squeeze(-1)
        lengths, angles = model.lattice_scaler.inverse(model.lattice_head(z_c), num_atoms)
        lattice = lattice_from_params(*physical_lattice_params(lengths, angles))
        frac = torch.rand(int(num_atoms.sum()), 3, generator=rng)
        probs = torch.nn.functional.one_hot(types, vocab_size).to(frac.dtype)
        frac, types = self.langevin(z_c, lattice, num_atoms, frac, probs, fixed_counts is not None,
                                    int(torch.randint(0, 2**62, (1,), generator=rng)))
        crystals = []
        stops = torch.cumsum(num_atoms, 0).tolist()
        starts = [0] + stops[:-1]
        symbols = model.vocab.symbols
        for k, (lo, hi) in enumerate(zip(starts, stops)):
            crystals.append(Crystal(id=f"gen-{seed}-{k}", lattice=lattice[k].double().numpy(),
                                    species=tuple(symbols[int(t)] for t in types[lo:hi]),
                                    frac_coords=frac[lo:hi].double().numpy()))
        return crystals

    # -- requests -----------------------------------------------------------------------------
    def generate_energy(self, target: float, n: int, seed: int, ratio: int = DEFAULT_RATIO) -> Decoded:
        """``n`` crystals for a formation-energy target (eV/atom) with ``ratio``:1 screening."""
        z_c, _, predicted = self.energy_latents(target, n, seed, ratio)
        return Decoded(self.decode(z_c, seed), predicted.numpy())

    def generate_formula(self, formula: str, n: int, seed: int) -> Decoded:
        """``n`` crystals of exactly this formula (scaled to the model's cell)."""
        counts = formula_counts(formula, self.trained)
        z_c, z = self.formula_latents(counts, n, seed)
        return Decoded(self.decode(z_c, seed, fixed_counts=counts), self._property_of(z))

    def generate_free_formula(self, formula: str, n: int, seed: int) -> Decoded:
        """Formula-conditioned latents decoded with free types (the paper's formula hit-rate test)."""
        counts = formula_counts(formula, self.trained)
        z_c, z = self.formula_latents(counts, n, seed)
        return Decoded(self.decode(z_c, seed), self._property_of(z))

    def generate_unconditional(self, n: int, seed: int) -> Decoded:
        """``n`` crystals from the prior of an unconditional (CDVAE baseline) model."""
        z = self.prior_latents(n, seed)
        return Decoded(self.decode(z, seed), self._property_of(z))

    def reconstruct(self, crystals: list[Crystal], seed: int) -> list[Crystal]:
        """Decode each crystal's ``z_c = LMF(mu, its own conditions)`` with predicted atoms, lattice, types."""
        mu, props, counts = self.encode(crystals)
        with torch.no_grad():
            z_c = self.model.fuse(mu, props, counts) if self.model.fusion is not None else mu
        return self.decode(z_c, seed)

    @torch.no_grad()
    def _property_of(self, z: Tensor) -> np.ndarray:
        if self.model.config.property_from != "z":
            return np.full(z.shape[0], np.nan)
        return self.model.property_embedding.unstandardise(self.model.predict_property(z)).numpy()


def _with_property(crystal: Crystal) -> Crystal:
    """Generated crystals carry no label; batching wants one (ignored by the encoder)."""
    if "formation_energy_per_atom" in crystal.properties:
        return crystal
    return Crystal(crystal.id, crystal.lattice, crystal.species, crystal.frac_coords,
                   {"formation_energy_per_atom": 0.0})


def as_dataset(crystals: list[Crystal], name: str) -> CrystalDataset:
    """Generated crystals as a dataset (ids made unique by position)."""
    renamed = [Crystal(f"{name}-{i}", c.lattice, c.species, c.frac_coords, c.properties) for i, c in enumerate(crystals)]
    return CrystalDataset(renamed, name=name, property_names=())
