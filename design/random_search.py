"""Random search, the baseline SMOACS must beat at the same number of predictor calls.

Each candidate slot keeps its template and oxidation-number patterns and draws ``steps + 1`` random
decorations: a pattern, an allowed element for every site, coordinates uniform within the bounds around the
template and a lattice scale uniform within its bound. Every draw is judged by the same objective as SMOACS
(targets' hinges, the geometry prior, the optional minimisation) and the slot keeps its best draw, so
``steps x count`` predictor calls buy the same as the gradient loop's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from design.batch import (
    SCALE_BOUND,
    CandidateBatch,
    Predictor,
    bond_penalty,
    design_values,
    lattice_of,
)
from design.smoacs import DesignOutcome, DesignSettings, all_met, covalent_radii, objective, placed_gaps
from design.targets import Target


def _draw(batch: CandidateBatch, vocabulary_size: int, generator: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random decoration of every slot: coordinates, scales, element indices, patterns."""
    n = batch.frac0.size(0)
    frac = batch.frac0 + batch.bounds * (2 * torch.rand(n, 3, generator=generator, dtype=batch.frac0.dtype) - 1)
    scale = 1 + SCALE_BOUND * (2 * torch.rand(batch.size, 1, generator=generator, dtype=batch.frac0.dtype) - 1)
    scale = scale.expand(batch.size, 3).clone()
    weights = torch.rand(batch.size, batch.allowed.size(1), generator=generator).masked_fill(~batch.pattern_ok, -1.0)
    pattern = weights.argmax(dim=1)
    allowed = batch.allowed[torch.arange(n), pattern.index_select(0, batch.batch)]  # (N, T)
    scores = torch.rand(n, vocabulary_size, generator=generator).masked_fill(~allowed, -1.0)
    return frac, scale, scores.argmax(dim=1), pattern


def random_search(predictor: Predictor, labels: Sequence[str], std: Sequence[float], targets: Sequence[Target],
                  batch: CandidateBatch, vocabulary: Sequence[str], settings: DesignSettings | None = None,
                  seed: int = 0, progress: Callable[[int], None] | None = None) -> DesignOutcome:
    """The best of ``settings.steps + 1`` random decorations per slot (see the module docstring)."""
    settings = settings or DesignSettings()
    generator = torch.Generator().manual_seed(seed)
    radii = covalent_radii(vocabulary, batch.frac0.dtype)
    best_loss = torch.full((batch.size,), float("inf"))
    best: dict[str, torch.Tensor] = {}
    history: list[tuple[float, float]] = []
    with torch.no_grad():
        for step in range(settings.steps + 1):
            frac, scale, types, pattern = _draw(batch, len(vocabulary), generator)
            lattice = lattice_of(batch, scale)
            one_hot = torch.nn.functional.one_hot(types, len(vocabulary)).to(frac.dtype)
            values, predicted = design_values(predictor, labels, batch, frac, lattice, one_hot,
                                              settings.geometric_labels)
            loss = objective(values, targets, labels, std, settings.minimise, settings.minimise_weight)
            loss = loss + settings.bond_weight * bond_penalty(batch, frac, lattice, one_hot, radii)
            better = loss < best_loss
            atoms = better.index_select(0, batch.batch)
            if not best:
                best = {"frac": frac, "lattice": lattice, "types": types, "pattern": pattern, "values": values,
                        "predicted": predicted}
            else:
                best = {"frac": torch.where(atoms.unsqueeze(1), frac, best["frac"]),
                        "lattice": torch.where(better.view(-1, 1, 1), lattice, best["lattice"]),
                        "types": torch.where(atoms, types, best["types"]),
                        "pattern": torch.where(better, pattern, best["pattern"]),
                        "values": torch.where(better.unsqueeze(1), values, best["values"]),
                        "predicted": torch.where(better.unsqueeze(1), predicted, best["predicted"])}
            best_loss = torch.minimum(best_loss, loss)
            history.append((float(best_loss.mean()), float(all_met(best["values"], targets, labels).float().mean())))
            if progress is not None and step < settings.steps:
                progress(step + 1)
        calls = (settings.steps + 1) * batch.size
        one_hot = torch.nn.functional.one_hot(best["types"], len(vocabulary)).to(best["frac"].dtype)
        frac, placing = placed_gaps(predictor, labels, batch, best["frac"], best["lattice"], one_hot, settings)
        if placing:  # the kept draws judged again with their gaps placed, as SMOACS's final candidates are
            calls += placing
            best["frac"] = frac
            best["values"], best["predicted"] = design_values(predictor, labels, batch, frac, best["lattice"],
                                                              one_hot, settings.geometric_labels)
            best_loss = objective(best["values"], targets, labels, std, settings.minimise, settings.minimise_weight)
            best_loss = best_loss + settings.bond_weight * bond_penalty(batch, frac, best["lattice"], one_hot, radii)
    return DesignOutcome(best["frac"], best["lattice"], best["types"], best["pattern"], best["values"],
                         best["predicted"], best_loss, all_met(best["values"], targets, labels),
                         batch.template_index.clone(), history, calls)


__all__ = ["random_search"]
