"""Generate-score-store: the novelty reference is the table the manifest names, checked by its sha256; its
training part judges novelty, all its rows judge known vs new."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from core.manifest import read_manifest
from services.generation import novelty_reference

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "artifacts" / "cdvae-plus-janus"


def test_the_shipped_model_finds_its_training_part_by_hash() -> None:
    manifest = read_manifest(SHIPPED, verify=False)
    reference, why_not = novelty_reference(manifest)
    assert why_not is None and reference is not None
    assert reference.training_rows == manifest.training_data.rows == 11961  # novelty: the training part
    assert len(reference) == 19926  # known vs new: every bilayer of the table


def test_a_table_that_differs_from_the_trained_one_is_not_used(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = read_manifest(SHIPPED, verify=False)
    changed = dataclasses.replace(manifest.training_data, sha256="0" * 64)
    reference, why_not = novelty_reference(dataclasses.replace(manifest, training_data=changed))
    assert reference is None and "sha256 mismatch" in why_not

    elsewhere = tmp_path / "dataset"
    elsewhere.mkdir()
    monkeypatch.setenv("VDWGEN_DATASET_DIR", str(elsewhere))
    missing = dataclasses.replace(manifest.training_data, table="no/such/bilayers.parquet")
    reference, why_not = novelty_reference(dataclasses.replace(manifest, training_data=missing))
    assert reference is None and "is not here" in why_not

    # the same table found through the dataset folder instead of the manifest's path is accepted
    shutil.copy(ROOT / manifest.training_data.table, elsewhere / "bilayers.parquet")
    reference, why_not = novelty_reference(dataclasses.replace(manifest, training_data=missing))
    assert why_not is None and reference.training_rows == 11961
