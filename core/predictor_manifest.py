"""The predictor artifact's manifest: what `vdwgen design` may optimise for, and with what accuracy.

A predictor artifact is a folder ``artifacts/<name>/`` holding ``predictor.pt`` (TorchScript: crystal with
per-site element weights -> every label, autograd kept) and ``predictor.json``:

- ``format``, ``kind`` (``"predictor"``), ``name``, ``created``;
- ``vocabulary``: element symbols in the order of the type weights;
- ``labels``: name -> unit, min / max (the span of the training values), mean, std, test MAE;
- ``training``: data id, table, its sha256, rows, split;
- ``files``: file name -> sha256 and bytes (checked at every load);
- ``parity``: scripted-vs-eager differences of values and gradients measured at export;
- ``packages``: versions at export time.

Its manifest is not ``manifest.json``, so the generator models' discovery never mistakes it for one.
Nothing here imports ``training``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.manifest import ArtifactError, file_entry, sha256

PREDICTOR_MANIFEST = "predictor.json"
PREDICTOR_FORMAT = 1
PREDICTOR_FILE = "predictor.pt"


@dataclass(frozen=True)
class LabelStats:
    """One label the predictor gives: unit, training span and spread, test MAE (NaN when unmeasured)."""

    name: str
    unit: str
    min: float
    max: float
    mean: float
    std: float
    test_mae: float


@dataclass(frozen=True)
class PredictorManifest:
    folder: Path
    name: str
    created: str
    vocabulary: tuple[str, ...]
    labels: dict[str, LabelStats]
    training: dict[str, Any]
    parity: dict[str, Any]
    packages: dict[str, str]

    @property
    def path(self) -> Path:
        return self.folder / PREDICTOR_FILE

    @property
    def data_id(self) -> str:
        return str(self.training.get("id", ""))


def write_predictor_manifest(folder: Path, data: dict[str, Any]) -> Path:
    """Add the format, kind and file hashes to ``data`` and write ``predictor.json``."""
    folder = Path(folder)
    data = {"format": PREDICTOR_FORMAT, "kind": "predictor", **data,
            "files": {name: file_entry(folder / name) for name in sorted(data["files"])}}
    path = folder / PREDICTOR_MANIFEST
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def read_predictor_manifest(folder: Path, verify: bool = True) -> PredictorManifest:
    """Read and check a predictor artifact (every file's sha256 when ``verify``).

    Raises:
        ArtifactError: no or unreadable manifest, another format, a missing or changed file.
    """
    folder = Path(folder)
    path = folder / PREDICTOR_MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder} is not a predictor artifact: it has no {PREDICTOR_MANIFEST} "
                            "(export one with `vdwgen export-predictor`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != PREDICTOR_FORMAT or data.get("kind") != "predictor":
        raise ArtifactError(f"{path} is not a predictor manifest of format {PREDICTOR_FORMAT}; re-export it")
    for name, entry in data.get("files", {}).items():
        file = folder / name
        if not file.is_file():
            raise ArtifactError(f"predictor {folder.name}: file {name} is missing")
        if verify and sha256(file) != entry.get("sha256"):
            raise ArtifactError(f"predictor {folder.name}: file {name} does not match its sha256 in "
                                f"{PREDICTOR_MANIFEST}; re-export or restore it")
    if PREDICTOR_FILE not in data.get("files", {}):
        raise ArtifactError(f"predictor {folder.name}: {PREDICTOR_MANIFEST} does not list {PREDICTOR_FILE}")
    try:
        labels = {name: LabelStats(name, str(v.get("unit", "")), float(v["min"]), float(v["max"]), float(v["mean"]),
                                   float(v["std"]), float(v.get("test_mae", float("nan"))))
                  for name, v in data["labels"].items()}
        return PredictorManifest(folder, str(data["name"]), str(data.get("created", "")),
                                 tuple(str(s) for s in data["vocabulary"]), labels, dict(data.get("training", {})),
                                 dict(data.get("parity", {})),
                                 {str(k): str(v) for k, v in data.get("packages", {}).items()})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArtifactError(f"predictor {folder.name}: malformed {PREDICTOR_MANIFEST} ({exc})") from None


def find_predictors(root: Path) -> list[Path]:
    """Predictor artifact folders under ``root``, sorted by name."""
    root = Path(root)
    return sorted(p.parent for p in root.glob(f"*/{PREDICTOR_MANIFEST}")) if root.is_dir() else []


__all__ = ["PREDICTOR_FILE", "PREDICTOR_MANIFEST", "LabelStats", "PredictorManifest", "find_predictors",
           "read_predictor_manifest", "write_predictor_manifest"]
