"""The ``known`` composition rule: a free-composition crystal takes the nearest training composition."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.compositions import CompositionsError, KnownCompositions, default_rule, served_compositions
from core.manifest import ArtifactError, read_manifest

ROOT = Path(__file__).resolve().parents[2]
VOCAB = ("Al", "S", "Ga", "Se", "In", "Te")
METALS = np.array([v in ("Al", "Ga", "In") for v in VOCAB])


def _layers() -> KnownCompositions:
    """Every composition of two X-M-M-X layers: 4 metals and 4 chalcogens."""
    crystals = []
    for m1 in ("Al", "Ga", "In"):
        for m2 in ("Al", "Ga", "In"):
            for x1 in ("S", "Se", "Te"):
                for x2 in ("S", "Se", "Te"):
                    crystals.append([x1, m1, m1, x1, x2, m2, m2, x2])
                    crystals.append([x1, m1, m2, x2, x2, m2, m1, x1])
    crystals.append(["S", "Ga", "Se"])  # another atom count
    return KnownCompositions.from_species(crystals, VOCAB)


def test_known_compositions_are_distinct_and_by_atom_count() -> None:
    known = _layers()
    assert sorted(known.by_size) == [3, 8]
    eight = known.by_size[8]
    assert len(np.unique(eight, axis=0)) == len(eight)
    assert (eight.sum(axis=1) == 8).all() and (eight[:, METALS].sum(axis=1) == 4).all()
    assert len(known) == len(eight) + 1


def test_an_exact_composition_stays_and_a_blurred_one_keeps_layer_counts() -> None:
    known = _layers()
    exact = np.array([[2, 2, 2, 0, 0, 2]]) / 8  # Al2 S2 Ga2 Te2: a known composition
    assert np.allclose(known.nearest(exact, np.array([8])), exact)
    # the composition head's blur of the shipped model: rounded by largest remainders this is Al2 S2 Ga1 In2 Te1,
    # five metals and three chalcogens, which no placement of the sites puts into two X-M-M-X layers
    blurred = np.array([[1.47, 2.41, 0.62, 0.28, 2.02, 1.21]]) / 8
    snapped = known.nearest(blurred, np.array([8])) * 8
    counts = np.rint(snapped).astype(int)
    assert np.allclose(snapped, counts) and counts.sum() == 8
    assert counts[0, METALS].sum() == 4 and counts[0, ~METALS].sum() == 4
    assert np.abs(counts - blurred * 8).sum() < 3  # it stays near what the head said


def test_an_atom_count_without_known_compositions_keeps_the_heads() -> None:
    known = _layers()
    comp = np.full((2, 6), 1 / 6)
    out = known.nearest(comp, np.array([12, 3]))
    assert np.allclose(out[0], comp[0])  # no training crystal has 12 atoms
    assert np.allclose(out[1] * 3, [0, 1, 1, 1, 0, 0])  # the only 3-atom composition
    with pytest.raises(ValueError, match=r"\(B, 6\)"):
        known.nearest(np.ones((2, 5)), np.array([8, 8]))


def test_round_trip_and_refusals(tmp_path: Path) -> None:
    known = _layers()
    path = known.write(tmp_path / "compositions.json")
    again = KnownCompositions.read(path, VOCAB)
    assert again.vocabulary == VOCAB and sorted(again.by_size) == sorted(known.by_size)
    assert all((again.by_size[n] == known.by_size[n]).all() for n in known.by_size)
    with pytest.raises(CompositionsError, match="not the model's"):
        KnownCompositions.read(path, ("Ga", "S"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CompositionsError, match="cannot read"):
        KnownCompositions.read(tmp_path / "bad.json")
    with pytest.raises(CompositionsError, match="Mo is not in the model's vocabulary"):
        KnownCompositions.from_species([["Mo", "S"]], VOCAB)
    for rows in ([], [[1, 1, 1, 1, 1, 2]], [[9, -1, 0, 0, 0, 0]]):  # none, seven atoms, a negative count
        (tmp_path / "rows.json").write_text(json.dumps({"vocabulary": list(VOCAB), "by_size": {"8": rows}}))
        with pytest.raises(CompositionsError, match="must be at least one row of non-negative counts summing to 8"):
            KnownCompositions.read(tmp_path / "rows.json")


def test_the_rule_is_known_only_where_training_holds_every_composition_of_its_dataset() -> None:
    """Snapping loses nothing only if no crystal of the dataset has a composition the training part lacks:
    the random split of the Janus bilayers (every composition in training) takes ``known``; a split that
    holds a composition out (the pair split) or a sample of a wider space keeps the head's counts."""
    train = [["S", "Ga", "Ga", "S", "Se", "In", "In", "Se"], ["S", "Ga", "Ga", "S", "S", "Ga", "Ga", "S"]]
    same_compositions_other_order = [["Se", "In", "In", "Se", "S", "Ga", "Ga", "S"]]
    assert default_rule(train, train + same_compositions_other_order) == "known"
    held_out = [["Te", "Al", "Al", "Te", "S", "Ga", "Ga", "S"]]
    assert default_rule(train, train + held_out) == "head"


def test_an_artifact_without_its_compositions_file_is_refused(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "a"
    shutil.copytree(ROOT / "artifacts" / "cdvae-plus-janus", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sampling"]["compositions"] = "known"
    manifest["files"].pop("compositions.json", None)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="needs compositions.json"):
        served_compositions(read_manifest(folder, verify=False))
    manifest["sampling"]["compositions"] = "sharpest"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="unknown compositions rule 'sharpest'"):
        served_compositions(read_manifest(folder, verify=False))
