"""The exported multi-property predictor, loaded for design (reads the artifact only, never ``training``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from core.errors import VdwgenError
from core.paths import artifacts_dir
from core.predictor_manifest import PredictorManifest, find_predictors, read_predictor_manifest
from design.targets import LabelInfo


@dataclass
class LoadedPredictor:
    """A predictor artifact: its manifest and its TorchScript module (gradients kept)."""

    manifest: PredictorManifest
    module: torch.jit.ScriptModule

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest.labels)

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.manifest.vocabulary

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.manifest.labels[k].std for k in self.labels)

    def label_infos(self) -> dict[str, LabelInfo]:
        """What targets are checked against: each label's unit, training span and spread."""
        return {k: LabelInfo(k, v.unit, v.min, v.max, v.std) for k, v in self.manifest.labels.items()}

    def __call__(self, frac_coords: Tensor, type_weights: Tensor, lattice: Tensor, num_atoms: Tensor) -> Tensor:
        return self.module(frac_coords, type_weights, lattice, num_atoms)


def load_predictor_artifact(folder: Path | None = None) -> LoadedPredictor:
    """The predictor in ``folder`` (default: the first predictor artifact under the artifacts root).

    Raises:
        VdwgenError: no predictor artifact, or one that fails its manifest check (the message says which file).
    """
    if folder is None:
        found = find_predictors(artifacts_dir())
        if not found:
            raise VdwgenError(f"no predictor artifact under {artifacts_dir()}; export one with "
                              "`vdwgen export-predictor`")
        folder = found[0]
    manifest = read_predictor_manifest(Path(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(manifest.path), map_location="cpu")
    for parameter in module.parameters():  # design differentiates the inputs only: no weight gradients to build
        parameter.requires_grad_(False)
    return LoadedPredictor(manifest, module.eval())


__all__ = ["LoadedPredictor", "load_predictor_artifact"]
