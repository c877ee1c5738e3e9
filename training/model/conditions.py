"""Condition embeddings: a scalar property or a chemical formula -> vector ``c``.

ConditionCDVAE+ (paper, "Low-rank multimodal fusion", Eq. 4) expands a continuous
property on Gaussian basis functions before fusion.  We standardise the property
with the training-set mean and standard deviation and use 50 fixed centres on
[-2, 2] (standardised units) with width equal to their spacing, as the reference.

For a formula the reference mean-pools element embeddings, which loses the atom
counts (method.md, stage 1 step 2).  Ours reads the element-count vector of the
cell together with fractions and the total atom count, so "GaInSSe" (4 atoms) and
"Ga2In2S2Se2" (8 atoms) give different embeddings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core import chemistry


@dataclass(frozen=True)
class ElementVocabulary:
    """The ordered set of elements a model can place.

    Attributes:
        symbols: element symbols, e.g. ``("Al", "Ga", "In", "S", "Se", "Te")``.
    """

    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.symbols) == 0:
            raise ValueError("an ElementVocabulary needs at least one element")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"duplicate element symbols in vocabulary: {self.symbols}")

    @classmethod
    def from_symbols(cls, symbols: Iterable[str]) -> ElementVocabulary:
        """Vocabulary of the distinct symbols, sorted by atomic number."""
        from pymatgen.core import Element

        unique = {str(s) for s in symbols}
        return cls(tuple(sorted(unique, key=lambda s: Element(s).Z)))

    @property
    def size(self) -> int:
        """Number of elements."""
        return len(self.symbols)

    def index(self, symbol: str) -> int:
        """Position of ``symbol`` in the vocabulary.

        Raises:
            ValueError: if the element is not in the vocabulary; the message lists it.
        """
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise ValueError(
                f"element {symbol!r} is not in the vocabulary; "
                f"allowed elements: {', '.join(self.symbols)}"
            ) from None


def _mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> nn.Sequential:
    """Linear-ReLU stack with ``num_layers`` hidden layers and a linear output."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class GaussianBasis(nn.Module):
    """Fixed Gaussian basis expansion of a scalar (paper Eq. 4).

    ``phi_j(x) = exp(-(x - mu_j)^2 / (2 width^2))`` with ``num_basis`` centres evenly
    spaced on ``[low, high]`` and ``width`` equal to the spacing.

    Shapes:
        input (B,) -> output (B, num_basis)
    """

    def __init__(self, num_basis: int = 50, low: float = -2.0, high: float = 2.0):
        super().__init__()
        if num_basis < 2:
            raise ValueError(f"num_basis must be >= 2, got {num_basis}")
        if not high > low:
            raise ValueError(f"high ({high}) must exceed low ({low})")
        self.register_buffer("centres", torch.linspace(low, high, num_basis))
        self.width = (high - low) / (num_basis - 1)

    def forward(self, x: Tensor) -> Tensor:
        """Expand ``x`` of shape (B,) to (B, num_basis)."""
        diff = x.unsqueeze(-1) - self.centres.to(x.dtype)
        return torch.exp(-0.5 * (diff / self.width) ** 2)


class PropertyEmbedding(nn.Module):
    """Scalar property -> condition vector ``c``.

    Standardise with the training-set scaler, expand on a fixed Gaussian basis,
    then an MLP.

    Args:
        mean: training-set mean of the property (physical units).
        std: training-set standard deviation (physical units), > 0.
        cond_dim: output width.
        hidden_dim: MLP hidden width.
        num_layers: MLP hidden layers.
        num_basis: number of Gaussian centres (reference 50) on [-2, 2].

    Shapes:
        forward: value (B,) in physical units -> (B, cond_dim)
    """

    def __init__(
        self,
        mean: float,
        std: float,
        cond_dim: int = 128,
        hidden_dim: int = 128,
        num_layers: int = 1,
        num_basis: int = 50,
    ):
        super().__init__()
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.basis = GaussianBasis(num_basis, -2.0, 2.0)
        self.mlp = _mlp(num_basis, hidden_dim, cond_dim, num_layers)
        self.cond_dim = cond_dim

    def standardise(self, value: Tensor) -> Tensor:
        """Physical units (B,) -> standardised units (B,)."""
        return (value - self.mean) / self.std

    def unstandardise(self, value: Tensor) -> Tensor:
        """Standardised units (B,) -> physical units (B,)."""
        return value * self.std + self.mean

    def embed_standardised(self, x: Tensor) -> Tensor:
        """Embed an already standardised property (B,) -> (B, cond_dim)."""
        return self.mlp(self.basis(x))

    def forward(self, value: Tensor) -> Tensor:
        """Embed a property given in physical units (B,) -> (B, cond_dim)."""
        return self.embed_standardised(self.standardise(value))


def parse_formula(text: str, vocab: ElementVocabulary, cell_size: int | None = None) -> Tensor:
    """Element-count vector of a formula, optionally scaled to a cell size.

    Args:
        text: a formula pymatgen can read, e.g. ``"GaInSSe"`` or ``"Ga2In2S2Se2"``.
        vocab: the element vocabulary fixing the order of the counts.
        cell_size: number of atoms of the cell to build; the formula is multiplied
            by ``cell_size / atoms_in_formula``, which must be a whole number.
            ``None`` keeps the formula as written.

    Returns:
        Long tensor (vocab.size,) of atom counts.

    Raises:
        ValueError: on an unreadable formula, an element outside the vocabulary
            (the message lists the vocabulary), fractional amounts, or a cell size
            the formula does not divide.
    """
    counts = chemistry.parse_formula(text, vocab.symbols)
    if cell_size is not None:
        if cell_size < 1:
            raise ValueError(f"cell_size must be a positive number of atoms, got {cell_size}")
        counts = chemistry.scale_to_cell(text, counts, {cell_size: 1})
    return torch.tensor(counts, dtype=torch.long)


class FormulaEmbedding(nn.Module):
    """Element-count vector -> condition vector ``c``.

    Features are the raw counts, the fractions ``counts / total`` and the total atom
    count, so both stoichiometry and cell size are visible to the MLP.

    Args:
        vocab_size: number of elements in the vocabulary.
        cond_dim: output width.
        hidden_dim: MLP hidden width.
        num_layers: MLP hidden layers.

    Shapes:
        forward: counts (B, vocab_size) integer or float -> (B, cond_dim)
    """

    def __init__(
        self, vocab_size: int, cond_dim: int = 128, hidden_dim: int = 128, num_layers: int = 1
    ):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.vocab_size = vocab_size
        self.cond_dim = cond_dim
        self.mlp = _mlp(2 * vocab_size + 1, hidden_dim, cond_dim, num_layers)

    def features(self, counts: Tensor) -> Tensor:
        """Counts (B, V) -> features (B, 2V + 1): counts, fractions, total atoms."""
        if counts.dim() != 2 or counts.shape[-1] != self.vocab_size:
            raise ValueError(
                f"counts must have shape (B, {self.vocab_size}), got {tuple(counts.shape)}"
            )
        dtype = self.mlp[0].weight.dtype
        counts = counts.to(dtype)
        total = counts.sum(dim=-1, keepdim=True)
        if not torch.compiler.is_compiling() and bool((total <= 0).any()):  # (export traces past it)
            raise ValueError("every formula needs at least one atom")
        return torch.cat([counts, counts / total, total], dim=-1)

    def forward(self, counts: Tensor) -> Tensor:
        """Embed element counts (B, V) -> (B, cond_dim)."""
        return self.mlp(self.features(counts))
