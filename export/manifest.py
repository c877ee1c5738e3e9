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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdwgen.errors import VdwgenError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONDITIONS = ("both", "formation_energy", "formula", "none")


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


@dataclass(frozen=True)
class Manifest:
    """A parsed, checked manifest (the raw mapping stays available as ``data``)."""

    folder: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def condition(self) -> str:
        return str(self.data["model"]["condition"])

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return tuple(self.data["model"]["vocabulary"])

    @property
    def cell_sizes(self) -> dict[int, int]:
        """Atom count -> number of training crystals of that size."""
        return {int(k): int(v) for k, v in self.data["model"]["cell_sizes"].items()}

    @property
    def property_range(self) -> tuple[float, float]:
        prop = self.data["model"]["property"]
        return float(prop["min"]), float(prop["max"])

    def path(self, name: str) -> Path:
        return self.folder / name


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
    condition = data["model"].get("condition")
    if condition not in CONDITIONS:
        raise ArtifactError(f"{path}: unknown condition {condition!r}; expected one of {', '.join(CONDITIONS)}")
    for name, entry in data["files"].items():
        file = folder / name
        if not file.is_file():
            raise ArtifactError(f"artifact {folder.name}: file {name} is missing")
        if verify and sha256(file) != entry.get("sha256"):
            raise ArtifactError(f"artifact {folder.name}: file {name} does not match its sha256 in {MANIFEST} "
                                "(changed or damaged since export); re-export or restore it")
    return Manifest(folder, data)
