"""The modules that become artifact files (this side of export imports ``training``).

- :class:`ConditionGraph` -> ``condition.onnx``: formation energy and/or element counts
  (with "given" flags for a ``both`` model) -> condition vector;
- the stage-2 generator -> ``generator.onnx``: noise + condition vector -> latent;
- :class:`FusionHeadsGraph` -> ``fusion_heads.onnx``: LMF and every head
  (:class:`training.model.generation.GenerationHeads`);
- :class:`training.model.langevin.CrystalDecoder` -> ``decoder.pt`` (TorchScript).

:class:`HalfStored` keeps a module's parameters as float16 buffers and computes in float32
(``torch.func.functional_call``), so an ONNX file holds float16 initializers followed by
casts: half the bytes, and exactly the float16-rounded weights the shipped model was
measured with.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from training.model.cdvae import ConditionCDVAEPlus
from training.model.generation import GenerationHeads


class HalfStored(nn.Module):
    """``inner`` with its parameters stored as float16 buffers; forward runs in float32."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.names = [name for name, _ in inner.named_parameters()]
        for i, (_, parameter) in enumerate(inner.named_parameters()):
            self.register_buffer(f"half_{i}", parameter.detach().half())
        for parameter in inner.parameters():
            parameter.requires_grad_(False)

    def forward(self, *args: Tensor) -> Tensor | tuple[Tensor, ...]:
        params = {name: getattr(self, f"half_{i}").float() for i, name in enumerate(self.names)}
        return functional_call(self.inner, params, args)


class ConditionGraph(nn.Module):
    """Condition vector of a request.

    Inputs (all of them for a ``both`` model; the one it needs for a single-condition model):
    ``property`` (B,) eV/atom, ``counts`` (B, V) atoms per element in the cell,
    ``keep_property`` / ``keep_formula`` (B,) 1.0 when that condition is given, 0.0 when not.
    Output: ``cond`` (B, C).
    """

    def __init__(self, model: ConditionCDVAEPlus) -> None:
        super().__init__()
        if model.config.condition == "none":
            raise ValueError("an unconditional model has no condition graph")
        self.model = model
        self.condition = model.config.condition

    def forward(self, property: Tensor, counts: Tensor, keep_property: Tensor, keep_formula: Tensor) -> Tensor:
        if self.condition == "formation_energy":
            return self.model.condition_embedding(property, None)
        if self.condition == "formula":
            return self.model.condition_embedding(None, counts)
        return self.model.condition_embedding(property, counts, keep_property > 0.5, keep_formula > 0.5)


class FusionHeadsGraph(nn.Module):
    """:class:`GenerationHeads` with named inputs; an unconditional model takes no ``cond``."""

    def __init__(self, model: ConditionCDVAEPlus) -> None:
        super().__init__()
        self.heads = GenerationHeads(model)
        self.cond_width = max(model.cond_in, 1)

    def forward(
        self, z: Tensor, cond: Tensor, num_atoms_override: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.heads(z, cond, num_atoms_override)


class UnconditionalHeadsGraph(nn.Module):
    """Fusion-free heads of the CDVAE baseline: ``z``, ``num_atoms_override`` only."""

    def __init__(self, model: ConditionCDVAEPlus) -> None:
        super().__init__()
        self.heads = GenerationHeads(model)

    def forward(self, z: Tensor, num_atoms_override: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.heads(z, torch.zeros(z.shape[0], 1, dtype=z.dtype), num_atoms_override)
