"""Which element counts a crystal of free composition gets: the composition head's, or the nearest known.

A crystal whose composition nobody fixed (a formation-energy target, an unconditional sample, a
reconstruction) gets its element counts from the composition head: fractions times the atom count,
rounded by largest remainders (:func:`training.model.langevin.counts_from_composition`). The head is
sharp on the encoder's latents (exact for 99-100 % of validation crystals) but not on the generator's:
there it spreads over three elements per crystal with fractional counts between 0.2 and 0.8, and the
rounding can give counts no crystal of the family has. In the Janus bilayers every cell holds as many
metals as chalcogens (two X-M-M-X layers); 6 % of the shipped model's screened latents rounded to other
counts, which no placement of the sites can put in layer order (issue 14).

The ``known`` rule hands the decoder the element counts, among those of the training crystals with the
same number of atoms, nearest to the head's expected counts (least squares); the decoder's site typing
then places them. The head's counts stay where no training crystal has that many atoms. The rule is the
export's default only where the training part holds every composition of its dataset
(:func:`default_rule`): the Janus bilayers' random split, whose 225 training compositions of 8 atoms are
every composition two X-M-M-X layers can have, so the rule loses none. Where the training part leaves
compositions out (the pair split holds 198 of the 225) or the dataset's compositions are a sample of a
wider space (MP-20, perovskites), the rule would stop compositions the model should reach, and ``head`` is
the default.

Nothing here imports ``training``: the export writes :data:`COMPOSITIONS_FILE` into the artifact, and
the serving engine and the eager sampler read it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import VdwgenError
from core.manifest import ArtifactError, Manifest

COMPOSITION_RULES = ("head", "known")
"""``head``: the composition head's counts (the reference sampler); ``known``: the nearest training composition."""
RULE_WORDS = {"head": "the composition head's counts, rounded", "known": "the nearest training composition"}
"""Each rule in a few words, for pages and reports."""
DEFAULT_COMPOSITIONS = "known"
"""What an export uses unless told otherwise where its training part holds every composition of its dataset
(chosen on the validation part of the Janus bilayers, ``bench/composition_rule.py``); elsewhere ``head``
(:func:`default_rule`)."""
COMPOSITIONS_FILE = "compositions.json"


def _compositions(species: Iterable[Sequence[str]]) -> set[tuple[tuple[str, int], ...]]:
    return {tuple(sorted(Counter(sites).items())) for sites in species}


def default_rule(train_species: Iterable[Sequence[str]], dataset_species: Iterable[Sequence[str]]) -> str:
    """The rule an export uses unless told otherwise.

    Args:
        train_species: the training crystals' element symbols, one sequence per crystal.
        dataset_species: every crystal of the same dataset (all parts of its split).

    Returns:
        :data:`DEFAULT_COMPOSITIONS` where every composition of the dataset is one of the training part's
        (nothing is lost by snapping to them), else ``head``.
    """
    return DEFAULT_COMPOSITIONS if _compositions(dataset_species) <= _compositions(train_species) else "head"


class CompositionsError(VdwgenError):
    """A compositions file that cannot be read, or one of another vocabulary."""


@dataclass(frozen=True, eq=False)
class KnownCompositions:
    """The distinct element counts of a set of crystals, by atom count.

    Attributes:
        vocabulary: element symbols in type-index order (the model's).
        by_size: atom count -> (K, V) integer counts, one row per distinct composition.
    """

    vocabulary: tuple[str, ...]
    by_size: dict[int, np.ndarray]

    @classmethod
    def from_species(cls, species: Iterable[Sequence[str]], vocabulary: Sequence[str]) -> KnownCompositions:
        """Known compositions of crystals given as their sites' element symbols.

        Raises:
            CompositionsError: an element outside ``vocabulary`` (named), or no crystal at all.
        """
        index = {s: i for i, s in enumerate(vocabulary)}
        rows: dict[int, set[tuple[int, ...]]] = {}
        for sites in species:
            counts = [0] * len(index)
            for symbol in sites:
                if symbol not in index:
                    raise CompositionsError(f"element {symbol} is not in the model's vocabulary "
                                            f"({', '.join(vocabulary)})")
                counts[index[symbol]] += 1
            rows.setdefault(len(sites), set()).add(tuple(counts))
        if not rows:
            raise CompositionsError("no crystals to take known compositions from")
        return cls(tuple(vocabulary), {n: np.array(sorted(r), dtype=np.int64) for n, r in sorted(rows.items())})

    def __len__(self) -> int:
        return sum(len(r) for r in self.by_size.values())

    def nearest(self, composition: np.ndarray, num_atoms: np.ndarray) -> np.ndarray:
        """Fractions (B, V) whose counts are the known composition nearest to each row's expected counts.

        Args:
            composition: (B, V) element fractions (the composition head's).
            num_atoms: (B,) atom counts.

        Returns:
            (B, V) fractions ``counts / num_atoms`` of the nearest known counts (ties: the first in sorted
            order); a row whose atom count has no known composition is returned as given.
        """
        composition = np.asarray(composition)
        num_atoms = np.asarray(num_atoms).astype(np.int64).reshape(-1)
        if composition.ndim != 2 or composition.shape != (num_atoms.size, len(self.vocabulary)):
            raise ValueError(f"composition must be (B, {len(self.vocabulary)}) for {num_atoms.size} atom counts, "
                             f"got {composition.shape}")
        out = composition.astype(np.float64, copy=True)
        for n in np.unique(num_atoms):
            known = self.by_size.get(int(n))
            if known is None or n <= 0:
                continue
            rows = np.flatnonzero(num_atoms == n)
            expected = out[rows] * n
            distance = ((expected[:, None, :] - known[None, :, :]) ** 2).sum(axis=2)
            out[rows] = known[distance.argmin(axis=1)] / float(n)
        return out.astype(composition.dtype, copy=False)

    def write(self, path: Path) -> Path:
        """Write as JSON: the vocabulary and, per atom count, the count rows."""
        data = {"vocabulary": list(self.vocabulary),
                "by_size": {str(n): rows.tolist() for n, rows in self.by_size.items()}}
        Path(path).write_text(json.dumps(data) + "\n")
        return Path(path)

    @classmethod
    def read(cls, path: Path, vocabulary: Sequence[str] | None = None) -> KnownCompositions:
        """Read a file :meth:`write` wrote; with ``vocabulary``, refuse one of another vocabulary.

        Raises:
            CompositionsError: missing or malformed file, or another vocabulary.
        """
        try:
            data = json.loads(Path(path).read_text())
            known = cls(tuple(str(s) for s in data["vocabulary"]),
                        {int(n): np.array(rows, dtype=np.int64).reshape(len(rows), len(data["vocabulary"]))
                         for n, rows in data["by_size"].items()})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CompositionsError(f"cannot read the known compositions {path}: {exc}") from None
        for n, rows in known.by_size.items():
            if len(rows) == 0 or (rows < 0).any() or (rows.sum(axis=1) != n).any():
                raise CompositionsError(f"{path}: the compositions of {n} atoms must be at least one row of "
                                        f"non-negative counts summing to {n}")
        if vocabulary is not None and tuple(vocabulary) != known.vocabulary:
            raise CompositionsError(f"{path} lists compositions over {', '.join(known.vocabulary)}, "
                                    f"not the model's {', '.join(vocabulary)}")
        return known


def served_compositions(manifest: Manifest) -> KnownCompositions | None:
    """The known compositions an artifact's free-composition crystals take, or None under the ``head`` rule.

    Raises:
        ArtifactError: an unknown rule, or a ``known`` artifact without a readable compositions file.
    """
    rule = manifest.sampling.compositions
    if rule not in COMPOSITION_RULES:
        raise ArtifactError(f"artifact {manifest.name}: unknown compositions rule {rule!r} "
                            f"(this version knows {', '.join(COMPOSITION_RULES)})")
    if rule == "head":
        return None
    if COMPOSITIONS_FILE not in manifest.files:
        raise ArtifactError(f"artifact {manifest.name}: its rule 'known' needs {COMPOSITIONS_FILE}, "
                            "which its manifest does not list")
    try:
        return KnownCompositions.read(manifest.path(COMPOSITIONS_FILE), manifest.vocabulary)
    except CompositionsError as exc:
        raise ArtifactError(f"artifact {manifest.name}: {exc}") from None


__all__ = ["COMPOSITIONS_FILE", "COMPOSITION_RULES", "DEFAULT_COMPOSITIONS", "RULE_WORDS", "CompositionsError",
           "KnownCompositions", "default_rule", "served_compositions"]
