"""The artifact manifest as a typed contract: named fields, and a clear refusal of malformed ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.manifest import ArtifactError, read_manifest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "artifacts" / "cdvae-plus-janus"


def test_the_shipped_manifest_reads_into_named_fields() -> None:
    m = read_manifest(SHIPPED)
    assert m.condition == "both" and m.modes == ("formation_energy", "formula")
    assert m.vocabulary == ("Al", "S", "Ga", "Se", "In", "Te") and m.cell_sizes == {8: 11961}
    assert m.property.name == "formation_energy_per_atom" and m.property.unit == "eV/atom"
    assert m.property.min < m.property.percentile("10") < m.property.percentile("50") < m.property.max
    assert m.sampling.steps_per_level == 5 and m.sampling.screening_ratio == 100 and m.sampling.max_count == 1000
    assert m.training_data.split == "random" and m.training_data.part == "train" and len(m.training_data.sha256) == 64
    stage1 = sum(v for k, v in m.parameters.items() if k not in ("generator", "total"))
    assert stage1 + m.parameters["generator"] == m.parameters["total"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["model"].pop("vocabulary"), "model.'vocabulary'"),
    (lambda d: d["training"]["data"].pop("id"), "training.data.'id'"),
    (lambda d: d.pop("sampling"), "'sampling'"),
    (lambda d: d["model"].update(cell_sizes={"eight": 3}), "malformed manifest"),
])
def test_a_missing_or_malformed_field_is_named(tmp_path: Path, edit, message: str) -> None:  # noqa: ANN001
    copy = tmp_path / "model"
    shutil.copytree(SHIPPED, copy)
    data = json.loads((copy / "manifest.json").read_text())
    edit(data)
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_manifest(copy, verify=False)


def test_an_artifact_from_before_the_noise_scale_reads_as_the_reference_sampler(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(SHIPPED, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["sampling"].pop("noise_scale", None)
    (copy / "manifest.json").write_text(json.dumps(data))
    assert read_manifest(copy, verify=False).sampling.noise_scale == 1.0
