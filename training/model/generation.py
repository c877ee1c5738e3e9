"""What generation reads off a latent: fusion, atom count, cell, composition and property.

:class:`GenerationHeads` is the "fusion + heads" step of ConditionCDVAE+ sampling as one
module (the export writes it as ``fusion_heads.onnx``; the eager sampler calls it too, so
both follow the same arithmetic):

- ``z_c = LMF(z, c)`` (or ``z`` for the unconditional baseline);
- number of atoms: arg-max of the atom-count head over the cell sizes seen in training,
  unless the request fixes it (a formula request: ``num_atoms_override`` > 0);
- cell: lattice head -> (a, b, c) * N^(1/3) and angles -> clamped to a valid cell -> matrix;
- composition: softmax of the composition head;
- property: formation energy (eV/atom) the property head gives ``z`` (or ``z_c``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.data.featurize import lattice_from_params
from training.model.cdvae import ConditionCDVAEPlus, physical_lattice_params


class GenerationHeads(nn.Module):
    """Fusion and heads of a trained model, for sampling.

    Shapes:
        z (B, D), cond (B, C) (ignored by an unconditional model), num_atoms_override (B,)
        long (0 = predict) -> z_c (B, D), num_atoms (B,) long, lattice (B, 3, 3),
        composition (B, T) probabilities, property (B,) eV/atom.
    """

    def __init__(self, model: ConditionCDVAEPlus) -> None:
        super().__init__()
        self.model = model
        self.conditional = model.fusion is not None
        self.register_buffer("size_mask", model.cell_size_counts[1:] == 0)

    def forward(
        self, z: Tensor, cond: Tensor, num_atoms_override: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        m = self.model
        z_c = m.fusion(z, cond) if self.conditional and m.fusion is not None else z
        logits = m.natoms_head(z_c).masked_fill(self.size_mask, float("-inf"))
        predicted = logits.argmax(dim=-1) + 1
        num_atoms = torch.where(num_atoms_override > 0, num_atoms_override, predicted)
        lengths, angles = m.lattice_scaler.inverse(m.lattice_head(z_c), num_atoms)
        lengths, angles = physical_lattice_params(lengths, angles)
        lattice = lattice_from_params(lengths, angles)
        composition = torch.softmax(m.composition_head(z_c), dim=-1)
        reads = z if m.config.property_from == "z" else z_c
        prop = m.property_embedding.unstandardise(m.property_head(reads))
        return z_c, num_atoms, lattice, composition, prop
