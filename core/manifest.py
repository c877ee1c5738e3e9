"""The artifact manifest: the contract between training and serving.

An artifact is a folder ``artifacts/<name>/`` holding the exported networks and a
``manifest.json`` that describes them. Anything that writes a valid manifest can be
served; the runtime refuses a folder whose manifest is missing, of another format,
names a file that is missing, or whose file hashes differ (a tampered or half-copied
artifact), and says which file.

Manifest fields (format 1):

- ``format``: :data:`FORMAT_VERSION`; ``name``; ``created``;
- ``model``: condition type (``both`` / ``formation_energy`` / ``formula`` / ``none``),
  latent, condition and noise widths, ``vocabulary`` (element symbols in type-index
  order), ``cell_sizes`` (atom counts seen in training), ``property`` (name, unit, the
  training labels' min / max / mean / std), default sampling settings;
- ``files``: file name -> ``{"sha256": ..., "bytes": ...}``;
- ``training``: the resolved training config, data id and the sha256 of the data table;
- ``packages``: versions of torch, onnxruntime, onnx, pymatgen at export time;
- ``parity``: the largest export-vs-eager differences measured at export;
- ``metrics``: figures known at export time (the model card's).

Nothing here imports ``training``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import VdwgenError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONDITIONS = ("both", "formation_energy", "formula", "none")
MODES: tuple[str, ...] = ("formation_energy", "formula", "unconditional")
SUPPORTED: dict[str, tuple[str, ...]] = {
    "both": ("formation_energy", "formula"),
    "formation_energy": ("formation_energy",),
    "formula": ("formula",),
    "none": ("unconditional",),
}
"""Request modes each kind of model (its ``condition``) serves."""


class ArtifactError(VdwgenError):
    """An artifact folder cannot be served; the message names the file and the problem."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest entry of one file: its hash and size."""
    return {"sha256": sha256(path), "bytes": Path(path).stat().st_size}


def _field(data: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise ArtifactError(f"the manifest lacks the field {where}{key!r}")
    return data[key]


@dataclass(frozen=True)
class PropertyInfo:
    """The predicted property: its column name, unit and the training labels' statistics."""

    name: str
    unit: str
    min: float
    max: float
    mean: float
    std: float
    percentiles: dict[str, float]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> PropertyInfo:
        return cls(name=str(_field(data, "name", "model.property.")), unit=str(data.get("unit", "")),
                   min=float(_field(data, "min", "model.property.")), max=float(_field(data, "max", "model.property.")),
                   mean=float(data.get("mean", float("nan"))), std=float(data.get("std", float("nan"))),
                   percentiles={str(k): float(v) for k, v in data.get("percentiles", {}).items()})

    @property
    def label(self) -> str:
        """A short column label: ``E_f (eV/atom)`` for the formation energy per atom, else ``name (unit)``."""
        name = "E_f" if self.name == "formation_energy_per_atom" else self.name
        return f"{name} ({self.unit})" if self.unit else name

    def percentile(self, key: str) -> float:
        """The training labels' percentile ``key`` ("10", "50", "90"); the range's middle when not recorded."""
        return self.percentiles.get(key, (self.min + self.max) / 2)


SITE_TYPES = ("argmax", "counts")
"""How a decoder may type the sites (``training.model.langevin`` says what each does)."""
DEFAULT_SITE_TYPES = "counts"
"""What an export uses unless told otherwise, and what the training loop's validation monitor measures."""
DEFAULT_NOISE_SCALE = 0.5
"""The Langevin noise factor an export uses unless told otherwise, and the training loop's validation monitor
(``training.model.langevin.LangevinSettings.noise_scale``; 1 is the reference sampler). Chosen on the
validation part of the Janus bilayers (bench/results/noise_scale.json)."""


@dataclass(frozen=True)
class SamplingDefaults:
    """How the exported decoder samples unless a request says otherwise."""

    steps_per_level: int
    step_lr: float
    noise_levels: int
    sigma_max: float
    sigma_min: float
    screening_ratio: int
    max_count: int
    site_types: str = "argmax"
    """How the decoder types the sites (``training.model.langevin.LangevinSettings.site_types``); artifacts
    exported before the choice existed used ``"argmax"``."""
    noise_scale: float = 1.0
    """The Langevin noise factor baked into the decoder; artifacts exported before it existed used 1."""
    compositions: str = "head"
    """The element counts of a free-composition crystal (``core.compositions``): ``known`` reads the artifact's
    ``compositions.json``; artifacts exported before the choice existed used ``head``."""

    @classmethod
    def parse(cls, data: dict[str, Any]) -> SamplingDefaults:
        return cls(steps_per_level=int(_field(data, "steps_per_level", "sampling.")),
                   step_lr=float(data.get("step_lr", 1e-4)), noise_levels=int(data.get("noise_levels", 50)),
                   sigma_max=float(data.get("sigma_max", 10.0)), sigma_min=float(data.get("sigma_min", 0.01)),
                   screening_ratio=int(data.get("screening_ratio", 100)), max_count=int(data.get("max_count", 1000)),
                   site_types=str(data.get("site_types", "argmax")),
                   noise_scale=float(data.get("noise_scale", 1.0)),
                   compositions=str(data.get("compositions", "head")))


@dataclass(frozen=True)
class TrainingData:
    """The data a model was trained on: ``id`` is ``<dataset>:<split>:<part>``, ``table`` a path relative
    to the checkout, ``sha256`` the table file's hash (checked before the table serves as a novelty
    reference)."""

    id: str
    table: str
    sha256: str
    rows: int

    @property
    def split(self) -> str:
        """The split column's suffix (``random`` for ``split_random``)."""
        parts = self.id.split(":")
        return parts[1] if len(parts) == 3 else "random"

    @property
    def part(self) -> str:
        parts = self.id.split(":")
        return parts[2] if len(parts) == 3 else "train"

    @classmethod
    def parse(cls, data: dict[str, Any]) -> TrainingData:
        return cls(id=str(_field(data, "id", "training.data.")), table=str(data.get("table", "")),
                   sha256=str(data.get("sha256", "")), rows=int(data.get("rows", 0)))


@dataclass(frozen=True)
class Manifest:
    """A parsed, checked manifest: every field a reader needs, by name.

    ``parameters``, ``training_config``, ``packages``, ``parity`` and ``metrics`` are free-form
    records of how the artifact was made and measured (shown, never used to serve).
    """

    folder: Path
    name: str
    created: str
    condition: str
    latent_dim: int
    cond_dim: int
    noise_dim: int
    vocabulary: tuple[str, ...]
    cell_sizes: dict[int, int]
    """Atom count -> number of training crystals of that size."""
    property: PropertyInfo
    weights_dtype: str
    sampling: SamplingDefaults
    files: dict[str, dict[str, Any]]
    training_data: TrainingData
    training_config: dict[str, Any]
    weights: str | None
    parameters: dict[str, int]
    packages: dict[str, str]
    parity: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def property_range(self) -> tuple[float, float]:
        return self.property.min, self.property.max

    @property
    def modes(self) -> tuple[str, ...]:
        """The request modes this model serves."""
        return SUPPORTED[self.condition]

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def carried_training_table(self) -> Path | None:
        """The training table inside the artifact folder (a model trained with ``vdwgen train --data``
        carries its dataset and split), or None (the Janus model names the committed table instead)."""
        table = self.training_data.table
        return self.folder / table if table and (self.folder / table).is_file() else None

    @classmethod
    def parse(cls, folder: Path, data: dict[str, Any]) -> Manifest:
        """Typed view of a manifest mapping; a missing or malformed field raises :class:`ArtifactError`."""
        model = _field(data, "model", "")
        training = data.get("training", {})
        try:
            return cls(
                folder=Path(folder), name=str(_field(data, "name", "")), created=str(data.get("created", "")),
                condition=str(_field(model, "condition", "model.")),
                latent_dim=int(_field(model, "latent_dim", "model.")), cond_dim=int(model.get("cond_dim", 0)),
                noise_dim=int(model.get("noise_dim", 0)),
                vocabulary=tuple(str(v) for v in _field(model, "vocabulary", "model.")),
                cell_sizes={int(k): int(v) for k, v in _field(model, "cell_sizes", "model.").items()},
                property=PropertyInfo.parse(_field(model, "property", "model.")),
                weights_dtype=str(model.get("weights_dtype", "float32")),
                sampling=SamplingDefaults.parse(_field(data, "sampling", "")),
                files=dict(_field(data, "files", "")),
                training_data=TrainingData.parse(_field(training, "data", "training.")),
                training_config=dict(training.get("config", {})),
                weights=None if training.get("weights") is None else str(training["weights"]),
                parameters={str(k): int(v) for k, v in model.get("parameters", {}).items()},
                packages={str(k): str(v) for k, v in data.get("packages", {}).items()},
                parity=dict(data.get("parity", {})), metrics=dict(data.get("metrics", {})),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"artifact {Path(folder).name}: malformed manifest ({exc})") from None


def served_fingerprint(manifest: Manifest) -> str:
    """Hex sha256 of what decides every crystal an artifact serves: its model files' hashes and its sampling
    defaults. Re-exporting the same weights with the same settings keeps it; the manifest's records of how
    the artifact was made (creation time, the model card's figures) do not enter it."""
    files = {name: entry.get("sha256") for name, entry in sorted(manifest.files.items())}
    sampling = asdict(manifest.sampling)
    if sampling["compositions"] == "head":  # the rule of every artifact before it was a choice: their prints stay
        del sampling["compositions"]
    text = json.dumps({"files": files, "sampling": sampling}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(folder: Path, data: dict[str, Any]) -> Path:
    """Add the hashes of every file in ``data["files"]`` and write ``manifest.json``."""
    folder = Path(folder)
    data = dict(data)
    data["format"] = FORMAT_VERSION
    data["files"] = {name: file_entry(folder / name) for name in sorted(data["files"])}
    path = folder / MANIFEST
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: Path, verify: bool = True) -> Manifest:
    """Read and check an artifact folder's manifest.

    Args:
        folder: the artifact folder.
        verify: also recompute every file's sha256 (the runtime always does).

    Raises:
        ArtifactError: missing or unreadable manifest, unknown format or condition,
            a listed file missing, or a hash mismatch; the message names the file.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder} is not a model artifact: it has no {MANIFEST}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} does not hold a JSON object")
    if data.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"{path} has format {data.get('format')!r}; this vdwgen reads format {FORMAT_VERSION} "
                            "(re-export the model with this version)")
    for key in ("name", "model", "files"):
        if key not in data:
            raise ArtifactError(f"{path} lacks the field {key!r}")
    condition = data["model"].get("condition") if isinstance(data["model"], dict) else None
    if condition not in CONDITIONS:
        raise ArtifactError(f"{path}: unknown condition {condition!r}; expected one of {', '.join(CONDITIONS)}")
    for name, entry in data["files"].items():
        file = folder / name
        if not file.is_file():
            raise ArtifactError(f"artifact {folder.name}: file {name} is missing")
        if verify and sha256(file) != entry.get("sha256"):
            raise ArtifactError(f"artifact {folder.name}: file {name} does not match its sha256 in {MANIFEST} "
                                "(changed or damaged since export); re-export or restore it")
    return Manifest.parse(folder, data)
