"""Collate crystals into the :class:`TrainingBatch` the stage-1 model trains on."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from training.data.crystal import Crystal
from training.data.featurize import featurize
from training.model.cdvae import TrainingBatch
from training.model.conditions import ElementVocabulary


def training_batch(crystals: Sequence[Crystal], vocab: ElementVocabulary,
                   property_name: str = "formation_energy_per_atom",
                   dtype: torch.dtype = torch.float32) -> TrainingBatch:
    """Tensors of a batch; every element must be in ``vocab`` (the error lists it)."""
    tensors = featurize(crystals, dtype=dtype)
    type_index = torch.tensor([vocab.index(el) for c in crystals for el in c.species], dtype=torch.long)
    counts = torch.zeros(len(crystals), vocab.size, dtype=dtype)
    for i, c in enumerate(crystals):
        for el in c.species:
            counts[i, vocab.index(el)] += 1
    prop = torch.tensor([float(c.properties[property_name]) for c in crystals], dtype=dtype)
    return TrainingBatch(tensors.frac_coords, tensors.atom_types, type_index, tensors.lattice,
                         tensors.lengths, tensors.angles, tensors.num_atoms, prop, counts)
