"""Exporting a checkpoint: the manifest's hashed files and recorded parity, and the parity of every
exported part (ONNX graphs, TorchScript Langevin decoder) with the eager model, on a tiny model
exported here and on the shipped default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.manifest import DEFAULT_NOISE_SCALE, read_manifest
from export.build import ExportError, export_artifact
from serving.engine import Engine
from training.model.langevin import AnnealedLangevin, CrystalDecoder, LangevinSettings
from training.sample import Sampler, served_langevin
from training.train.weights import load_trained

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def artifacts(tiny_artifacts: dict[str, Path]) -> dict[str, Path]:
    return tiny_artifacts


def test_manifest_lists_hashed_files_and_parity(artifacts: dict[str, Path]) -> None:
    manifest = read_manifest(artifacts["model"])
    assert set(manifest.files) == {"condition.onnx", "generator.onnx", "fusion_heads.onnx", "decoder.pt",
                                   "compositions.json"}
    assert manifest.sampling.compositions == "known"  # the Janus table's default: the nearest training composition
    assert manifest.sampling.site_types == "counts"  # the default: counts kept, sites chosen by the decoder
    assert manifest.sampling.noise_scale == DEFAULT_NOISE_SCALE < 1.0  # the colder sampler, recorded
    served = served_langevin(manifest.sampling.steps_per_level)  # the model card's and training monitor's sampler
    assert (served.step_lr, served.site_types, served.noise_scale) == (
        manifest.sampling.step_lr, manifest.sampling.site_types, manifest.sampling.noise_scale)
    assert manifest.vocabulary == ("Al", "S", "Ga", "Se", "In", "Te") and manifest.cell_sizes == {8: 6}
    parity = manifest.parity
    assert all(parity[f] <= 1e-5 for f in ("condition.onnx", "generator.onnx", "fusion_heads.onnx"))
    assert parity["decoder.pt"] <= 1e-4
    low, high = manifest.property_range
    assert -1.1 < low < high < -0.4
    assert manifest.training_data.id == "janus_iii_vi:random:train"
    assert set(read_manifest(artifacts["baseline"]).files) == {"fusion_heads.onnx", "decoder.pt", "compositions.json"}


def test_free_compositions_are_training_compositions_and_the_eager_sampler_agrees(artifacts: dict[str, Path]) -> None:
    """Crystals made for a target carry element counts some training crystal of that size has, nearest to the
    composition head's; the eager sampler given the artifact's compositions gives them the same counts."""
    from core.compositions import KnownCompositions
    from serving.request import GenerationRequest
    from training.data.janus import load_janus_dataset

    engine = Engine.load(artifacts["model"])
    known = KnownCompositions.from_species([c.species for c in load_janus_dataset(split="random", part="train")],
                                           engine.vocabulary)
    assert {n: r.tolist() for n, r in engine.known.by_size.items()} == {n: r.tolist() for n, r in known.by_size.items()}
    rows = {n: {tuple(r) for r in rows} for n, rows in known.by_size.items()}
    vocab = engine.vocabulary

    def counts(species) -> tuple[int, ...]:
        return tuple(sum(1 for s in species if s == v) for v in vocab)

    served = engine.generate(GenerationRequest("formation_energy", count=6, target=-0.7, seed=4)).crystals
    assert all(counts([str(x) for x in c.structure.species]) in rows[len(c.structure)] for c in served)
    z = np.random.default_rng(0).normal(size=(40, engine.manifest.latent_dim)).astype(np.float32)
    heads = engine.heads(z, engine.condition(40, -0.7, None), np.zeros(40, dtype=np.int64))
    snapped = known.nearest(heads.composition, heads.num_atoms) * heads.num_atoms[:, None]
    assert np.allclose(snapped, np.rint(snapped), atol=1e-5)
    assert all(tuple(np.rint(r).astype(int)) in rows[int(n)] for r, n in zip(snapped, heads.num_atoms))

    trained = load_trained(artifacts["weights"])
    sampler = Sampler(trained, LangevinSettings(2, site_types=engine.manifest.sampling.site_types,
                                                noise_scale=engine.manifest.sampling.noise_scale), known=engine.known)
    zs, cond, _ = engine.latents(engine.check(GenerationRequest("formation_energy", count=6, target=-0.7, seed=4)))
    eager = sampler.decode(torch.from_numpy(zs), torch.from_numpy(cond), seed=4)
    # the same counts (the sites they land on may differ: eager heads and ONNX heads agree to 1e-5 only, and the
    # Langevin steps of a tiny model amplify that)
    assert [counts(c.species) for c in eager] == [counts([str(x) for x in c.structure.species]) for c in served]


def test_a_dataset_with_compositions_outside_training_keeps_the_heads(perovskite_artifact: Path,
                                                                    tmp_path: Path) -> None:
    """The default rule follows the data: the 30 perovskites of the fixture have six compositions, all in its
    training part, so snapping loses none (``known``); give one held-out crystal a composition no training
    crystal has (as the pair split of the Janus bilayers does) and the export keeps the head's counts."""
    import shutil

    import pandas as pd

    from training.data.sources import SPLIT, TABLE_NAME

    manifest = read_manifest(perovskite_artifact)
    assert manifest.sampling.compositions == "known" and "compositions.json" in manifest.files
    folder = tmp_path / "perov"
    shutil.copytree(perovskite_artifact.parent.parent / "models" / "perov", folder)
    frame = pd.read_parquet(folder / TABLE_NAME)
    held_out = frame.index[frame[f"split_{SPLIT}"] != "train"][0]
    species = list(frame.at[held_out, "species"])
    species[species.index("O")] = "Ti"
    frame.at[held_out, "species"] = species
    frame.to_parquet(folder / TABLE_NAME)
    export_artifact(folder / "model.pt", tmp_path / "art", steps_per_level=1)
    manifest = read_manifest(tmp_path / "art")
    assert manifest.sampling.compositions == "head" and "compositions.json" not in manifest.files
    assert Engine.load(tmp_path / "art").known is None


SHIPPED = {
    "model": ROOT / "artifacts" / "cdvae-plus-janus",
    "weights": ROOT / "models" / "cdvae-plus-janus" / "model.pt",
}


@pytest.fixture(params=["tiny", "shipped"])
def exported(request: pytest.FixtureRequest) -> dict[str, Path]:
    """A tiny model exported here, and the shipped default (artifacts/ + models/)."""
    if request.param == "tiny":
        return request.getfixturevalue("artifacts")
    assert (SHIPPED["model"] / "manifest.json").is_file() and SHIPPED["weights"].is_file(), "default not shipped"
    return SHIPPED


def test_onnx_parts_match_eager_on_fresh_inputs(exported: dict[str, Path]) -> None:
    artifacts = exported
    trained = load_trained(artifacts["weights"])
    engine = Engine.load(artifacts["model"])
    sampler = Sampler(trained, LangevinSettings(steps_per_level=2))
    model = trained.model
    with torch.no_grad():
        for target, counts in ((-0.75, None), (None, (0, 2, 2, 2, 2, 0))):
            cond_onnx = engine.condition(5, target, counts)
            prop = None if target is None else torch.full((5,), target)
            cnt = None if counts is None else torch.tensor(counts, dtype=torch.float32).expand(5, -1)
            cond = model.condition_embedding(prop, cnt)
            np.testing.assert_allclose(cond_onnx, cond.numpy(), atol=1e-5)
        noise = torch.randn(5, trained.config.gan.noise_dim)
        z_onnx = engine._run("generator", noise=noise.numpy(), cond=cond.numpy())[0]
        z = trained.generator(noise, cond)
        np.testing.assert_allclose(z_onnx, z.numpy(), atol=1e-5)
        override = np.array([0, 8, 0, 0, 8])
        got = engine.heads(z.numpy(), cond.numpy(), override)
        ref = sampler.heads(z, cond, torch.from_numpy(override))
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b.numpy(), atol=1e-5 * max(1.0, float(b.abs().max())))


def test_torchscript_decoder_matches_eager_loop(exported: dict[str, Path]) -> None:
    artifacts = exported
    trained = load_trained(artifacts["weights"])
    model = trained.model
    engine = Engine.load(artifacts["model"])
    site_types = engine.manifest.sampling.site_types  # the tiny export's default "counts"; "argmax" before it
    settings = LangevinSettings(2, site_types=site_types, noise_scale=engine.manifest.sampling.noise_scale)
    eager = CrystalDecoder(AnnealedLangevin(model.decoder, model.coord_sigmas, settings), model.vocab.size)
    z = np.random.default_rng(3).normal(size=(3, model.config.latent_dim)).astype(np.float32)
    cond = engine.condition(3, -0.7, None)
    z_c, num_atoms, lattice, composition, _ = engine.heads(z, cond, np.zeros(3, dtype=np.int64))
    args = [torch.from_numpy(a) for a in (z_c, lattice, num_atoms, composition)]
    with torch.no_grad():
        a = engine.decoder(*args, torch.empty(0, dtype=torch.long), 5, 3)
        b = eager.eval()(*args, torch.empty(0, dtype=torch.long), 5, 3)
    d = (a[0] - b[0]) - torch.round(a[0] - b[0])
    shift = torch.bmm(d.unsqueeze(1), torch.from_numpy(lattice).repeat_interleave(torch.from_numpy(num_atoms), 0))
    assert float(shift.norm(dim=-1).max()) < 1e-4  # angstrom
    assert torch.equal(a[1], b[1])


def test_export_replaces_an_artifact_but_never_another_folder(artifacts: dict[str, Path], tmp_path: Path) -> None:
    keep = tmp_path / "models"
    keep.mkdir()
    (keep / "precious.txt").write_text("not an artifact")
    with pytest.raises(ExportError, match="not an artifact folder"):
        export_artifact(artifacts["weights"], keep)
    assert (keep / "precious.txt").read_text() == "not an artifact"


_SCRIPT = """
import sys
from pathlib import Path
from export.script_decoder import script_decoder
script_decoder(Path(sys.argv[1]), Path(sys.argv[2]), {"steps_per_level": 2, "site_types": "counts", "noise_scale": 0.5})
"""


def test_the_decoder_is_scripted_to_the_same_bytes_whatever_the_hash_seed(artifacts: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    """TorchScript orders a module's constants by Python's string hashing; exporting from processes with
    different hash seeds must still give one decoder.pt (seed 11 is the in-process path)."""
    import hashlib
    import os
    import subprocess
    import sys

    digests = set()
    for seed in ("0", "1", "2", "11"):
        folder = tmp_path / seed
        folder.mkdir()
        done = subprocess.run([sys.executable, "-c", _SCRIPT, str(artifacts["weights"]), str(folder / "decoder.pt")],
                              cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        digests.add(hashlib.sha256((folder / "decoder.pt").read_bytes()).hexdigest())
    assert len(digests) == 1
