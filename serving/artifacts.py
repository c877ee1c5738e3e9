"""Finding the exported models: every folder under the artifacts root that holds a manifest.

The app's model picker, the Model page and ``vdwgen generate`` (when no ``--artifacts`` is given)
all discover models here, so they agree on which folders are models and in which order.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import VdwgenError
from core.manifest import MANIFEST, ArtifactError, Manifest, read_manifest
from core.paths import artifacts_dir
from serving.request import SUPPORTED


def find_models(root: Path | None = None) -> list[Path]:
    """Model folders under ``root`` (default :func:`core.paths.artifacts_dir`), sorted by name."""
    root = Path(root) if root is not None else artifacts_dir()
    if not root.is_dir():
        return []
    return sorted(path.parent for path in root.glob(f"*/{MANIFEST}"))


def all_by_mode(folders: list[Path]) -> tuple[dict[str, list[Manifest]], list[str]]:
    """Every readable model serving each request mode (in the order of ``folders``), and one message per
    unreadable manifest."""
    served: dict[str, list[Manifest]] = {}
    problems: list[str] = []
    for folder in folders:
        try:
            manifest = read_manifest(folder, verify=False)
        except ArtifactError as exc:
            problems.append(str(exc))
            continue
        for mode in SUPPORTED.get(manifest.condition, ()):
            served.setdefault(mode, []).append(manifest)
    return served, problems


def describe(manifest: Manifest) -> str:
    """One line on what a model serves: name, conditions, property and unit, training data, elements, cells."""
    prop = manifest.property
    unit = f" ({prop.unit})" if prop.unit else ""
    cells = ", ".join(str(n) for n in manifest.cell_sizes)
    return (f"{manifest.name}: {manifest.condition}-conditioned; property {prop.name}{unit}; trained on "
            f"{manifest.training_data.id} ({manifest.training_data.rows:,} crystals); {len(manifest.vocabulary)} "
            f"elements; cells of {cells} atoms")


def find_artifact(mode: str, root: Path | None = None) -> Path:
    """The first model folder (by name) under ``root`` that serves ``mode`` requests."""
    root = Path(root) if root is not None else artifacts_dir()
    served, _problems = all_by_mode(find_models(root))
    if mode not in served:
        raise VdwgenError(f"no model under {root} serves {mode} requests; export one with `vdwgen export`")
    return served[mode][0].folder
