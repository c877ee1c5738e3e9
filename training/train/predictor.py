"""`vdwgen train-predictor`: the multi-property predictor SMOACS designs with, resumable at any moment.

Learns every label column at once (standardised, mean squared error, equal weights) on the training part of
the random split; the validation part picks nothing but is logged per epoch (MAE per label, physical units);
the test part is measured once, at the end, on the weights that ship.

The labels are properties of the *relaxed* bilayer, and a designed candidate is never relaxed while it is
optimised: a predictor that learnt only relaxed inputs reads the gap and the lattice constant off the input
geometry and lets the optimiser meet a gap target by moving layers that the oracle's relaxation then moves back
(measured: 12 of 32 candidates kept every target after relaxation, gaps off by 0.23 Å). So, as in the
initial-structure-to-relaxed-energy task of OC20, the inputs are perturbed (:class:`Perturbation`: the in-plane
cell stretched, the upper layer shifted along the normal, every atom displaced a little) while the labels stay
those of the relaxed crystal; the predictor learns each property from approximate geometry. MAE is logged on the
clean and on the perturbed validation part (a fixed seed).

Output folder:

- ``checkpoint.pt``: model, optimiser, epoch and batch (atomic; at least every ``checkpoint_minutes`` and at
  every epoch's end); a resumed run continues at the next batch with the same shuffling;
- ``metrics.csv``: one row per epoch (train loss, validation MAE per label, learning rate, seconds);
- ``predictor.pt``: the finished weights (config, vocabulary, labels, units, state dict; float32);
- ``metrics.json``: test MAE per label, with each label's standard deviation for scale.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from training.data.crystal import CrystalDataset
from training.data.janus import load_janus_dataset
from training.model.equiformer import EquiformerConfig
from training.model.predictor import PredictorConfig, PropertyPredictor
from training.train.runfiles import TrainingError, append_row, save_atomic, truncate_rows

JANUS_LABELS: dict[str, str] = {
    "formation_energy_per_atom": "eV/atom",
    "interlayer_energy_per_atom": "eV/atom",
    "binding_energy_per_area": "meV/Å²",
    "interlayer_gap": "Å",
    "a_common": "Å",
}
"""The labels of the committed bilayer table a predictor learns, with their units."""
WEIGHTS_FILE = "predictor.pt"
FORMAT = 1


@dataclass(frozen=True)
class Perturbation:
    """How far a training input is moved from its relaxed geometry (the labels stay the relaxed ones).

    Attributes:
        share: crystals of a batch perturbed (the rest are given as relaxed).
        in_plane_strain: the in-plane cell is scaled by ``1 + U(-x, x)`` (fractional coordinates kept).
        layer_shift: the upper layer of a two-layer slab moves ``U(-x, x)`` Å along the normal.
        atom_noise: every atom moves by a Gaussian of this standard deviation (Å) per Cartesian axis.
    """

    share: float = 0.75
    in_plane_strain: float = 0.05
    layer_shift: float = 0.5
    atom_noise: float = 0.05


NO_PERTURBATION = Perturbation(share=0.0)


def perturbed(batch: Batch, layers: torch.Tensor, rule: Perturbation, generator: torch.Generator) -> Batch:
    """``batch`` with its inputs moved by ``rule`` (``layers`` (N,): 1 for the upper layer's atoms, else 0)."""
    if rule.share <= 0:
        return batch
    b = batch.num_atoms.numel()
    crystal = torch.repeat_interleave(torch.arange(b), batch.num_atoms)
    chosen = (torch.rand(b, generator=generator) < rule.share).float()
    scale = 1 + chosen * rule.in_plane_strain * (2 * torch.rand(b, generator=generator) - 1)
    lattice = batch.lattice.clone()
    lattice[:, :2] = lattice[:, :2] * scale.view(b, 1, 1)
    normal = torch.linalg.cross(lattice[:, 0], lattice[:, 1])
    normal = normal / torch.linalg.vector_norm(normal, dim=1, keepdim=True)
    shift = chosen * rule.layer_shift * (2 * torch.rand(b, generator=generator) - 1)
    moves = (layers.float() * shift[crystal]).unsqueeze(1) * normal[crystal]
    moves = moves + rule.atom_noise * chosen[crystal].unsqueeze(1) * torch.randn(moves.shape, generator=generator)
    inverse = torch.linalg.inv(lattice)[crystal]
    frac = batch.frac_coords + torch.bmm(moves.unsqueeze(1), inverse).squeeze(1)
    return Batch(frac, batch.type_weights, lattice, batch.num_atoms, batch.labels)


def upper_layer(crystals: CrystalDataset) -> list[np.ndarray]:
    """Per crystal, 1 for the atoms of the upper layer of a two-layer slab (all 0 for anything else)."""
    from scoring.layers import analyse_layers, site_layers

    out = []
    for c in crystals:
        s = c.to_structure()
        info = analyse_layers(s)
        out.append(site_layers(s).astype(np.int64) if info.slab and info.n_layers == 2 else np.zeros(len(s), np.int64))
    return out


@dataclass(frozen=True)
class PredictorTraining:
    """Optimisation settings of the predictor.

    Attributes:
        epochs: passes over the training part.
        batch_size: crystals per step.
        lr: peak Adam learning rate, decayed by a cosine to ``min_lr``.
        min_lr: the last learning rate.
        grad_clip: largest gradient norm.
        seed: shuffling and initial weights.
        checkpoint_minutes: save at least this often.
        limit_train: use only this many training crystals, spread over the part (0 = all; smoke tests).
        config: the network's size.
        perturbation: how training inputs are moved from their relaxed geometry (:class:`Perturbation`).
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    min_lr: float = 1e-5
    grad_clip: float = 10.0
    seed: int = 0
    checkpoint_minutes: float = 10.0
    limit_train: int = 0
    config: PredictorConfig = field(default_factory=PredictorConfig)
    perturbation: Perturbation = field(default_factory=Perturbation)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {self.epochs}, "
                             f"{self.batch_size}, {self.lr}")


@dataclass(frozen=True)
class Batch:
    frac_coords: torch.Tensor
    type_weights: torch.Tensor
    lattice: torch.Tensor
    num_atoms: torch.Tensor
    labels: torch.Tensor


def collate(crystals: list, vocabulary: tuple[str, ...], labels: tuple[str, ...]) -> Batch:
    """One-hot types over ``vocabulary`` and the label matrix (B, L) of ``crystals``."""
    index = {el: i for i, el in enumerate(vocabulary)}
    frac = np.concatenate([c.frac_coords for c in crystals])
    types = torch.tensor([index[el] for c in crystals for el in c.species])
    return Batch(torch.as_tensor(frac, dtype=torch.float32),
                 torch.nn.functional.one_hot(types, len(vocabulary)).float(),
                 torch.as_tensor(np.stack([c.lattice for c in crystals]), dtype=torch.float32),
                 torch.tensor([c.num_atoms for c in crystals]),
                 torch.tensor([[float(c.properties[k]) for k in labels] for c in crystals], dtype=torch.float32))


def janus_parts(labels: tuple[str, ...]) -> dict[str, CrystalDataset]:
    """The committed bilayers' random split with ``labels`` as properties."""
    return {part: load_janus_dataset(split="random", part=part, properties=labels)  # type: ignore[arg-type]
            for part in ("train", "val", "test")}


def mean_absolute_errors(model: PropertyPredictor, data: CrystalDataset, batch_size: int = 256,
                         rule: Perturbation = NO_PERTURBATION, layers: list[np.ndarray] | None = None,
                         seed: int = 1) -> np.ndarray:
    """MAE per label in physical units over ``data`` (inputs moved by ``rule``, seeded, when it is given)."""
    model.eval()
    errors = np.zeros(len(model.labels))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            rows = range(start, min(start + batch_size, len(data)))
            batch = collate([data[i] for i in rows], model.vocabulary, model.labels)
            if rule.share > 0 and layers is not None:
                batch = perturbed(batch, torch.as_tensor(np.concatenate([layers[i] for i in rows])), rule, generator)
            got = model(batch.frac_coords, batch.type_weights, batch.lattice, batch.num_atoms)
            errors += (got - batch.labels).abs().sum(0).numpy()
    return errors / len(data)


def _spread(data: CrystalDataset, n: int) -> CrystalDataset:
    if n <= 0 or n >= len(data):
        return data
    return data.subset(sorted({int(round(i * (len(data) - 1) / max(n - 1, 1))) for i in range(n)}))


def build_predictor(settings: PredictorTraining, train: CrystalDataset, labels: tuple[str, ...]) -> PropertyPredictor:
    from training.model.conditions import ElementVocabulary

    vocabulary = ElementVocabulary.from_symbols({el for c in train for el in c.species}).symbols
    values = np.array([[c.properties[k] for k in labels] for c in train], dtype=np.float64)
    torch.manual_seed(settings.seed)
    return PropertyPredictor(settings.config, vocabulary, labels, torch.tensor(values.mean(0)),
                             torch.tensor(values.std(0)))


def save_predictor(model: PropertyPredictor, units: dict[str, str], path: Path, extra: dict | None = None) -> Path:
    """The weights file: everything :func:`load_predictor` needs to rebuild the module."""
    cfg = model.config
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_atomic(Path(path), {"format": FORMAT, "backbone": asdict(cfg.backbone), "hidden_dim": cfg.hidden_dim,
                             "vocabulary": list(model.vocabulary), "labels": list(model.labels),
                             "units": {k: units.get(k, "") for k in model.labels},
                             "state": model.state_dict(), **(extra or {})})
    return Path(path)


def load_predictor(path: Path) -> tuple[PropertyPredictor, dict]:
    """The module (float32, eval mode) and the whole saved record of a weights file."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no predictor weights at {path}; train one with `vdwgen train-predictor`")
    record = torch.load(path, map_location="cpu", weights_only=False)
    if record.get("format") != FORMAT:
        raise TrainingError(f"{path} is not a predictor weights file of format {FORMAT}")
    config = PredictorConfig(EquiformerConfig(**record["backbone"]), record["hidden_dim"])
    n = len(record["labels"])
    model = PropertyPredictor(config, tuple(record["vocabulary"]), tuple(record["labels"]), torch.zeros(n),
                              torch.ones(n))
    model.load_state_dict(record["state"])
    return model.eval(), record


def data_parts(names: tuple[str, ...], data: str, out: Path) -> dict[str, CrystalDataset]:
    """The train / val / test parts with every label in ``names``: the committed bilayers' random split when
    ``data`` is empty, else any dataset the training code reads (:func:`training.data.sources.load_parts`), split
    once and kept as ``out/data.parquet``."""
    if not data:
        return janus_parts(names)
    from training.data.sources import DataConfig, load_parts

    parts = load_parts(DataConfig(path=data, property=names[0], unit="", extra_properties=names[1:]), out=out)
    for line in parts.skipped[:10]:
        tqdm.write(f"data: skipped {line}")
    known = {el for c in parts.train for el in c.species}  # the vocabulary: a crystal beyond it cannot be read
    inside = {part: [i for i, c in enumerate(getattr(parts, part)) if set(c.species) <= known]
              for part in ("val", "test")}
    return {"train": parts.train, **{part: getattr(parts, part).subset(rows) for part, rows in inside.items()}}


def train_predictor(out: Path, settings: PredictorTraining = PredictorTraining(), resume: bool = False,
                    labels: dict[str, str] | None = None, data: str = "") -> Path:
    """Train (or continue) the predictor in ``out`` on ``labels`` (name -> unit; default the bilayers' five) of
    ``data`` (default: the committed bilayers); returns the finished weights file."""
    labels = dict(labels or JANUS_LABELS)
    names = tuple(labels)
    out = Path(out)
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise TrainingError(f"{out} already holds a run; add --resume to continue it or choose another --out")
    if resume and not ckpt.exists():
        raise TrainingError(f"nothing to resume in {out} (no checkpoint.pt)")
    parts = data_parts(names, data, out)
    train = _spread(parts["train"], settings.limit_train)
    model = build_predictor(settings, parts["train"], names)  # vocabulary and scales of the whole training part
    tqdm.write("predictor: finding the layers of every crystal (for the perturbed inputs)")
    train_layers, val_layers = upper_layer(train), upper_layer(parts["val"])
    moved = replace(settings.perturbation, share=1.0)  # validation: every crystal moved
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    epoch, start, step = 0, 0, 0
    if resume:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, start, step = state["epoch"], state["batch"], state["step"]
    out.mkdir(parents=True, exist_ok=True)
    truncate_rows(out / "metrics.csv", epoch)
    n_batches = math.ceil(len(train) / settings.batch_size)
    total = settings.epochs * n_batches
    loss_sum = 0.0 if not resume else float(torch.load(ckpt, weights_only=False).get("loss_sum", 0.0))

    def checkpoint(e: int, b: int) -> None:
        save_atomic(ckpt, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": e,
                           "batch": b, "step": step, "loss_sum": loss_sum})

    last = time.time()
    bar = tqdm(total=total, initial=epoch * n_batches + start, desc="predictor", unit="batch", dynamic_ncols=True)
    try:
        while epoch < settings.epochs:
            t0 = time.time()
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(settings.seed * 100003 + epoch))
            model.train()
            for b in range(start, n_batches):
                idx = order[b * settings.batch_size:(b + 1) * settings.batch_size].tolist()
                batch = collate([train[i] for i in idx], model.vocabulary, names)
                noise = torch.Generator().manual_seed(settings.seed * 7919 + step)
                batch = perturbed(batch, torch.as_tensor(np.concatenate([train_layers[i] for i in idx])),
                                  settings.perturbation, noise)
                progress = step / max(total - 1, 1)
                for group in optimizer.param_groups:
                    cosine = 0.5 * (1 + math.cos(math.pi * progress))
                    group["lr"] = settings.min_lr + (settings.lr - settings.min_lr) * cosine
                scaled = model.standardized(batch.frac_coords, batch.type_weights, batch.lattice, batch.num_atoms)
                target = (batch.labels - model.mean) / model.std
                loss = ((scaled - target) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                optimizer.step()
                step += 1
                loss_sum += float(loss.detach())
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.4f}")
                bar.update(1)
                if time.time() - last > settings.checkpoint_minutes * 60:
                    checkpoint(epoch, b + 1)
                    last = time.time()
            mae = mean_absolute_errors(model, parts["val"])
            mae_moved = mean_absolute_errors(model, parts["val"], rule=moved, layers=val_layers)
            append_row(out / "metrics.csv", {"epoch": epoch + 1, "train_loss": loss_sum / n_batches,
                                             **{f"val_mae_{k}": float(v) for k, v in zip(names, mae)},
                                             **{f"val_moved_mae_{k}": float(v) for k, v in zip(names, mae_moved)},
                                             "lr": optimizer.param_groups[0]["lr"], "seconds": time.time() - t0})
            epoch, start, loss_sum = epoch + 1, 0, 0.0
            checkpoint(epoch, 0)
            last = time.time()
    finally:
        bar.close()
    test = mean_absolute_errors(model, parts["test"])
    test_moved = mean_absolute_errors(model, parts["test"], rule=moved, layers=upper_layer(parts["test"]))
    std = model.std.numpy()
    report = {"split": "data" if data else "random", "data": data, "test_crystals": len(parts["test"]),
              "train_crystals": len(train),
              "epochs": settings.epochs, "perturbation": asdict(settings.perturbation),
              "test_mae": {k: float(v) for k, v in zip(names, test)},
              "test_mae_moved_inputs": {k: float(v) for k, v in zip(names, test_moved)},
              "label_std": {k: float(v) for k, v in zip(names, std)},
              "units": {k: labels[k] for k in names}}
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    return save_predictor(model, labels, out / WEIGHTS_FILE, {"metrics": report})


__all__ = ["JANUS_LABELS", "PredictorTraining", "load_predictor", "save_predictor", "train_predictor"]
