"""`vdwgen export-predictor`: predictor weights -> an artifact folder (TorchScript + predictor.json).

Before the manifest is written the reloaded TorchScript module is checked against the eager one on
``PARITY_BATCH`` validation crystals whose sites hold random element mixtures (the soft types SMOACS feeds
it): values within ``VALUE_TOLERANCE`` (scaled by ``max(1, |value|)``) and the gradients of the summed
standardised outputs with respect to the coordinates, the lattice and the type weights within
``GRADIENT_TOLERANCE`` (scaled by the largest gradient). A failed check leaves no manifest.
"""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from core.manifest import sha256
from core.paths import dataset_dir
from core.predictor_manifest import PREDICTOR_FILE, PREDICTOR_MANIFEST, write_predictor_manifest
from export.build import TRAINING_TABLE, ExportError, _versions
from training.data.sources import SPLIT as DATA_SPLIT
from training.data.sources import TABLE_NAME as DATA_TABLE
from training.model.predictor import PropertyPredictor
from training.train.predictor import collate, data_parts, janus_parts, load_predictor

VALUE_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-4
PARITY_BATCH = 7


def _parity(eager: PropertyPredictor, scripted: torch.jit.ScriptModule, crystals: list) -> dict[str, float]:
    batch = collate(crystals, eager.vocabulary, eager.labels)
    rng = torch.Generator().manual_seed(0)
    soft = 0.7 * batch.type_weights + 0.3 * torch.softmax(torch.randn(batch.type_weights.shape, generator=rng), 1)
    results = []
    for module in (eager, scripted):
        frac = batch.frac_coords.clone().requires_grad_(True)
        lattice = batch.lattice.clone().requires_grad_(True)
        types = soft.clone().requires_grad_(True)
        out = module(frac, types, lattice, batch.num_atoms)
        ((out - eager.mean) / eager.std).sum().backward()
        results.append((out.detach(), frac.grad, lattice.grad, types.grad))
    worst = {"values": float(((results[1][0] - results[0][0]).abs() / results[0][0].abs().clamp(min=1.0)).max())}
    for name, k in (("grad_frac", 1), ("grad_lattice", 2), ("grad_types", 3)):
        ref = results[0][k]
        worst[name] = float((results[1][k] - ref).abs().max() / ref.abs().max().clamp(min=1e-12))
    if worst["values"] > VALUE_TOLERANCE:
        raise ExportError(f"{PREDICTOR_FILE} differs from the eager predictor by {worst['values']:.2e} "
                          f"(> {VALUE_TOLERANCE:.0e})")
    for name in ("grad_frac", "grad_lattice", "grad_types"):
        if worst[name] > GRADIENT_TOLERANCE:
            raise ExportError(f"{PREDICTOR_FILE}: {name} differs from the eager predictor by {worst[name]:.2e} "
                              f"(> {GRADIENT_TOLERANCE:.0e})")
    return worst


def export_predictor(weights: Path, out: Path, name: str | None = None) -> Path:
    """Export the predictor in ``weights`` to the folder ``out`` (replaced); returns the manifest path."""
    weights, out = Path(weights), Path(out)
    if out.exists() and any(out.iterdir()) and not (out / PREDICTOR_MANIFEST).is_file():
        raise ExportError(f"{out} holds files but no {PREDICTOR_MANIFEST}: export into a new or empty folder")
    model, record = load_predictor(weights)
    metrics = record.get("metrics", {})
    data = str(metrics.get("data") or "")
    source = weights.parent / DATA_TABLE
    if data and not source.is_file():
        raise ExportError(f"{weights} was trained on {data}, but {source} (the crystals it learned from) is missing; "
                          "export from the run folder that holds it")
    parts = data_parts(model.labels, data, weights.parent) if data else janus_parts(model.labels)
    final, out = out, out.with_name(f".{out.name}.exporting")  # built aside: a failed check leaves the old one
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(out / PREDICTOR_FILE))
        scripted = torch.jit.load(str(out / PREDICTOR_FILE))
    val = parts["val"]
    picks = [val[int(i)] for i in np.linspace(0, len(val) - 1, PARITY_BATCH).round().astype(int)]
    try:
        parity = _parity(model, scripted, picks)
    except ExportError:
        shutil.rmtree(out)
        raise
    train = parts["train"]
    values = np.array([[c.properties[k] for k in model.labels] for c in train], dtype=np.float64)
    labels = {k: {"unit": record["units"].get(k, ""), "min": float(values[:, j].min()),
                  "max": float(values[:, j].max()),
                  "mean": float(model.mean[j]), "std": float(model.std[j]),
                  "test_mae": float(metrics.get("test_mae", {}).get(k, float("nan")))}
              for j, k in enumerate(model.labels)}
    if data:
        shutil.copyfile(source, out / TRAINING_TABLE)
        name_of = Path(data).stem if Path(data).suffix else Path(data).name
        training = {"id": f"{name_of}:{DATA_SPLIT}:train", "table": TRAINING_TABLE,
                    "sha256": sha256(out / TRAINING_TABLE), "split": DATA_SPLIT, "source": data}
        files = [PREDICTOR_FILE, TRAINING_TABLE]
    else:
        training = {"id": "janus_iii_vi:random:train", "table": "data/janus_iii_vi/bilayers.parquet",
                    "sha256": sha256(dataset_dir() / "bilayers.parquet"), "split": "random"}
        files = [PREDICTOR_FILE]
    manifest = {
        "name": name or final.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "vocabulary": list(model.vocabulary),
        "labels": labels,
        "training": {**training, "rows": len(train), "test_crystals": metrics.get("test_crystals"),
                     "epochs": metrics.get("epochs"), "weights": weights.name},
        "parameters": sum(p.numel() for p in model.parameters()),
        "files": files,
        "packages": _versions(),
        "parity": {"tolerance": {"values_scaled": VALUE_TOLERANCE, "gradients_scaled": GRADIENT_TOLERANCE},
                   **parity},
    }
    write_predictor_manifest(out, manifest)
    if final.exists():
        shutil.rmtree(final)
    out.rename(final)
    return final / PREDICTOR_MANIFEST


__all__ = ["export_predictor"]
