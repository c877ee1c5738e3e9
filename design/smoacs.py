"""SMOACS: gradient descent on the crystals themselves, through a differentiable predictor.

The paper's loop (Sakai et al.; method.md section 5; appendix B.2 for the settings):

- three Adam optimisers (coordinates, lattice, types; the pattern weights share the types' rate) with a
  cosine decay to 0 over ``steps`` (200);
- the softmax temperature falls linearly from 1e-2 to 1e-4, so each site ends one-hot;
- the site distributions and the pattern weights start uniform (a hair of noise breaks ties: with logits drawn
  from U(0, 1) at T = 1e-2 every site is already one-hot and Adam, whose epsilon dwarfs the vanishing
  gradient, would never move it);
- at the mutation steps (100 and 150) the candidates are sorted by loss: (A) those that meet every target,
  (B) the best ``top_rate`` of the rest, (C) the others; each of C survives with probability ``survive``,
  else becomes a noisy copy of a random A/B member of the same size, with uniform site distributions again
  and its Adam moments cleared;
- coordinates and lattice scales are projected back inside their bounds after every step.

The Adam update is written out (not ``torch.optim.Adam``) so a mutated candidate's moments can be cleared
row by row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from design.batch import (
    SCALE_BOUND,
    CandidateBatch,
    Predictor,
    bond_penalty,
    decoded_types,
    design_values,
    lattice_of,
    site_distribution,
    with_gaps,
)
from design.targets import Target

TIE_NOISE = 1e-3
"""Spread of the initial logits (uniform distributions, ties broken): 0.1 of the first temperature."""


@dataclass(frozen=True)
class DesignSettings:
    """The optimisation's settings (defaults: the paper's Crystalformer settings, Table B.1 / B.2).

    Attributes:
        steps: optimisation steps.
        lr_coords, lr_lattice, lr_types: peak Adam learning rates (cosine decay to 0).
        temperature: first and last softmax temperature (linear in between).
        mutation_steps: steps after which the mutation runs (empty: no mutation).
        top_rate: share of the candidates not yet meeting every target kept as group B.
        noise: Gaussian noise of a mutated copy, as a share of each coordinate's bound (and, times
            ``SCALE_BOUND``, of the lattice scale).
        survive: probability that a group-C candidate is kept as it is.
        minimise: a label to push down besides the targets (weight ``minimise_weight`` per standard deviation).
        bond_weight: weight of the geometry prior (:func:`design.batch.bond_penalty`; 0: none).
        geometric_labels: judge a two-layer slab's gap and lattice constant on its geometry instead of the
            predictor (measured worse: the labels are those of the relaxed crystal, which the predictor learnt).
        place_gap: after every step, move each bilayer's upper layer (and its bounds) rigidly to the gap the
            predictor gave it in that step, and once more before the last prediction (when the predictor has
            ``interlayer_gap``). The optimiser's moves along c otherwise left the first evaluation's layers a median
            0.46 Å farther apart than the predicted gap, which the oracle's relaxation alone did not undo; placing
            them only at the end moved the predictions (the predictor is not blind to the geometry's gap) and 19 %
            of the candidates left the gap target.
    """

    steps: int = 200
    lr_coords: float = 5e-3
    lr_lattice: float = 2e-3
    lr_types: float = 7e-3
    temperature: tuple[float, float] = (1e-2, 1e-4)
    mutation_steps: tuple[int, ...] = (100, 150)
    top_rate: float = 0.1
    noise: float = 0.5
    survive: float = 0.1
    minimise: str | None = None
    minimise_weight: float = 0.1
    bond_weight: float = 1.0
    geometric_labels: bool = False
    place_gap: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if not 0 < self.temperature[1] <= self.temperature[0]:
            raise ValueError(f"temperature must fall from a positive value, got {self.temperature}")


def temperature_at(settings: DesignSettings, step: int) -> float:
    """The softmax temperature of step ``step`` (0-based): linear from the first value to the last."""
    first, last = settings.temperature
    if settings.steps == 1:
        return last
    return first + (last - first) * step / (settings.steps - 1)


def cosine_rate(peak: float, step: int, steps: int) -> float:
    """Learning rate of step ``step`` (0-based): cosine from ``peak`` to 0 over ``steps``."""
    return peak * 0.5 * (1.0 + math.cos(math.pi * step / steps))


def objective(values: Tensor, targets: Sequence[Target], labels: Sequence[str], std: Sequence[float],
              minimise: str | None = None, minimise_weight: float = 0.1) -> Tensor:
    """(B,) the summed hinge losses of every target (plus the optional minimisation term)."""
    total = torch.zeros(values.size(0), dtype=values.dtype)
    for t in targets:
        j = list(labels).index(t.label)
        total = total + t.loss(values[:, j], std[j])
    if minimise is not None:
        j = list(labels).index(minimise)
        total = total + minimise_weight * values[:, j] / std[j]
    return total


def all_met(values: Tensor, targets: Sequence[Target], labels: Sequence[str]) -> Tensor:
    """(B,) whether every target holds (evaluation margins)."""
    met = torch.ones(values.size(0), dtype=torch.bool)
    for t in targets:
        met &= t.met(values[:, list(labels).index(t.label)])
    return met


class _Adam:
    """Adam on one tensor whose moments can be cleared row by row."""

    def __init__(self, param: Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.param, self.betas, self.eps = param, betas, eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = torch.zeros(param.size(0), dtype=param.dtype)  # steps taken, per row

    def step(self, lr: float) -> None:
        grad = self.param.grad
        if grad is None:
            return
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        b1, b2 = self.betas
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.t += 1
        shape = (-1,) + (1,) * (self.param.dim() - 1)
        m_hat = self.m / (1 - b1 ** self.t).view(shape)
        v_hat = self.v / (1 - b2 ** self.t).view(shape)
        with torch.no_grad():
            self.param -= lr * m_hat / (v_hat.sqrt() + self.eps)
        self.param.grad = None

    def clear(self, rows: Tensor) -> None:
        self.m[rows] = 0
        self.v[rows] = 0
        self.t[rows] = 0


@dataclass
class DesignState:
    """The learnt tensors of a batch."""

    frac: Tensor
    scale: Tensor
    logits: Tensor
    weights: Tensor


@dataclass(frozen=True)
class DesignOutcome:
    """What the optimisation ends with (one-hot types, predicted again).

    Attributes:
        frac, lattice: the final geometry; ``types`` (N,) vocabulary indices; ``pattern`` (B,) the pattern used.
        values: (B, L) the judged labels (geometry where it defines them); ``predicted`` (B, L) the predictor's.
        loss: (B,) the final objective; ``met`` (B,) every target holds.
        template_index: (B,) the template each candidate descends from (a mutated copy: its source's).
        history: per step, the mean loss and the share of candidates meeting every target.
        predictor_calls: forward passes of the predictor over single candidates.
    """

    frac: Tensor
    lattice: Tensor
    types: Tensor
    pattern: Tensor
    values: Tensor
    predicted: Tensor
    loss: Tensor
    met: Tensor
    template_index: Tensor
    history: list[tuple[float, float]]
    predictor_calls: int


def covalent_radii(vocabulary: Sequence[str], dtype: torch.dtype = torch.float32) -> Tensor:
    """(T,) covalent radii (Å) of the vocabulary, for the geometry prior."""
    from scoring.validity import covalent_radius

    return torch.tensor([covalent_radius(el) for el in vocabulary], dtype=dtype)


def initial_state(batch: CandidateBatch, vocabulary_size: int, generator: torch.Generator) -> DesignState:
    n = batch.frac0.size(0)
    k = batch.allowed.size(1)
    return DesignState(batch.frac0.clone(), torch.ones(batch.size, 3, dtype=batch.frac0.dtype),
                       TIE_NOISE * torch.rand(n, vocabulary_size, generator=generator, dtype=batch.frac0.dtype),
                       TIE_NOISE * torch.rand(batch.size, k, generator=generator, dtype=batch.frac0.dtype))


def project(batch: CandidateBatch, state: DesignState) -> None:
    """Coordinates and scales back inside their bounds."""
    with torch.no_grad():
        low, high = batch.frac0 - batch.bounds, batch.frac0 + batch.bounds
        state.frac.copy_(torch.minimum(torch.maximum(state.frac, low), high))
        state.scale.clamp_(1 - SCALE_BOUND, 1 + SCALE_BOUND)


def gap_column(labels: Sequence[str], settings: DesignSettings) -> int | None:
    """The column of ``interlayer_gap`` when the design places gaps (``settings.place_gap``), else None."""
    if not settings.place_gap or settings.geometric_labels or "interlayer_gap" not in labels:
        return None
    return list(labels).index("interlayer_gap")


def follow_gaps(batch: CandidateBatch, state: DesignState, gap: Tensor) -> None:
    """Move each bilayer's upper layer rigidly to ``gap`` (B,) Å, with its template, so the bounds move along."""
    with torch.no_grad():
        moved = with_gaps(batch, state.frac, lattice_of(batch, state.scale), gap) - state.frac
        state.frac.add_(moved)
        batch.frac0.add_(moved)


def placed_gaps(predictor: Predictor, labels: Sequence[str], batch: CandidateBatch, frac: Tensor, lattice: Tensor,
                one_hot: Tensor, settings: DesignSettings) -> tuple[Tensor, int]:
    """``frac`` with each bilayer's gap placed where the predictor puts it (``settings.place_gap``), and the
    predictor calls that took (0 when nothing is placed)."""
    column = gap_column(labels, settings)
    if column is None:
        return frac, 0
    with torch.no_grad():
        gap = predictor(frac, one_hot, lattice, batch.num_atoms)[:, column]
        return with_gaps(batch, frac, lattice, gap), batch.size


def final_outcome(predictor: Predictor, labels: Sequence[str], std: Sequence[float], targets: Sequence[Target],
                  batch: CandidateBatch, state: DesignState, radii: Tensor,
                  settings: DesignSettings, history: list[tuple[float, float]], calls: int) -> DesignOutcome:
    """Decode one-hot types under each candidate's heaviest pattern, place the gap (``settings.place_gap``) and
    judge the result."""
    with torch.no_grad():
        types, pattern = decoded_types(batch, state.logits, state.weights)
        lattice = lattice_of(batch, state.scale)
        one_hot = torch.nn.functional.one_hot(types, radii.numel()).to(state.frac.dtype)
        frac, placing = placed_gaps(predictor, labels, batch, state.frac, lattice, one_hot, settings)
        calls += placing
        values, predicted = design_values(predictor, labels, batch, frac, lattice, one_hot,
                                          settings.geometric_labels)
        loss = objective(values, targets, labels, std, settings.minimise, settings.minimise_weight)
        loss = loss + settings.bond_weight * bond_penalty(batch, frac, lattice, one_hot, radii)
    return DesignOutcome(frac.detach().clone(), lattice, types, pattern, values, predicted, loss,
                         all_met(values, targets, labels), batch.template_index.clone(), history,
                         calls + batch.size)


def _mutate(batch: CandidateBatch, state: DesignState, optimisers: Sequence[_Adam], loss: Tensor, met: Tensor,
            settings: DesignSettings, generator: torch.Generator) -> None:
    order = torch.argsort(loss)
    rest = [int(i) for i in order if not bool(met[int(i)])]
    keep_b = set(rest[: int(math.ceil(settings.top_rate * len(rest)))])
    good = [i for i in range(batch.size) if bool(met[i]) or i in keep_b]
    group_c = [i for i in rest if i not in keep_b]
    by_size: dict[int, list[int]] = {}
    for i in good:
        by_size.setdefault(int(batch.num_atoms[i]), []).append(i)
    with torch.no_grad():
        for j in group_c:
            sources = by_size.get(int(batch.num_atoms[j]), [])
            if not sources or float(torch.rand(1, generator=generator)) < settings.survive:
                continue
            i = sources[int(torch.randint(len(sources), (1,), generator=generator))]
            src, dst = batch.atoms_of(i), batch.atoms_of(j)
            for name in ("frac0", "bounds", "allowed", "oxidation", "layers"):
                getattr(batch, name)[dst] = getattr(batch, name)[src]
            for name in ("lattice0", "slab", "pattern_ok", "template_index", "bonds", "images", "stretch", "bond_ok"):
                getattr(batch, name)[j] = getattr(batch, name)[i]
            noise = torch.randn(len(dst), 3, generator=generator, dtype=state.frac.dtype)
            state.frac[dst] = state.frac[src] + settings.noise * batch.bounds[dst] * noise
            state.scale[j] = state.scale[i] + settings.noise * SCALE_BOUND * torch.randn(
                3, generator=generator, dtype=state.scale.dtype)
            state.logits[dst] = TIE_NOISE * torch.rand(len(dst), state.logits.size(1), generator=generator,
                                                       dtype=state.logits.dtype)
            state.weights[j] = state.weights[i]
            optimisers[0].clear(dst)
            optimisers[2].clear(dst)
            optimisers[1].clear(torch.tensor([j]))
            optimisers[3].clear(torch.tensor([j]))
    project(batch, state)


def optimise(predictor: Predictor, labels: Sequence[str], std: Sequence[float], targets: Sequence[Target],
             batch: CandidateBatch, vocabulary: Sequence[str], settings: DesignSettings = DesignSettings(),
             seed: int = 0, progress: Callable[[int], None] | None = None,
             state: DesignState | None = None) -> DesignOutcome:
    """Run SMOACS on ``batch`` (changed in place by the mutation); ``progress(step)`` after every step."""
    generator = torch.Generator().manual_seed(seed)
    radii = covalent_radii(vocabulary, batch.frac0.dtype)
    state = state or initial_state(batch, len(vocabulary), generator)
    params = (state.frac, state.scale, state.logits, state.weights)
    for p in params:
        p.requires_grad_(True)
    optimisers = [_Adam(p) for p in params]
    rates = (settings.lr_coords, settings.lr_lattice, settings.lr_types, settings.lr_types)
    history: list[tuple[float, float]] = []
    calls = 0
    placing = gap_column(labels, settings)
    for step in range(settings.steps):
        temperature = temperature_at(settings, step)
        types = site_distribution(batch, state.logits, state.weights, temperature)
        lattice = lattice_of(batch, state.scale)
        values, _ = design_values(predictor, labels, batch, state.frac, lattice, types, settings.geometric_labels)
        loss = objective(values, targets, labels, std, settings.minimise, settings.minimise_weight)
        if settings.bond_weight > 0:
            loss = loss + settings.bond_weight * bond_penalty(batch, state.frac, lattice, types, radii)
        loss.sum().backward()
        calls += batch.size
        for opt, rate in zip(optimisers, rates):
            opt.step(cosine_rate(rate, step, settings.steps))
        project(batch, state)
        if placing is not None:
            follow_gaps(batch, state, values.detach()[:, placing])
        met = all_met(values.detach(), targets, labels)
        history.append((float(loss.detach().mean()), float(met.float().mean())))
        if step + 1 in settings.mutation_steps and step + 1 < settings.steps:
            _mutate(batch, state, optimisers, loss.detach(), met, settings, generator)
        if progress is not None:
            progress(step + 1)
    for p in params:
        p.requires_grad_(False)
    return final_outcome(predictor, labels, std, targets, batch, state, radii, settings, history, calls)


__all__ = ["DesignOutcome", "DesignSettings", "DesignState", "all_met", "cosine_rate", "objective", "optimise",
           "temperature_at"]
