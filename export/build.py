"""`vdwgen export`: a trained model (weights file) -> a self-contained artifact folder.

Writes ``condition.onnx``, ``generator.onnx`` (conditional models), ``fusion_heads.onnx``,
``decoder.pt`` (TorchScript of the whole annealed Langevin decoding) and ``manifest.json``.
Before the manifest is written, every part is checked against the eager model:

- each ONNX graph on random inputs (batch 7): outputs within ``1e-5 * max(1, |value|)``
  (float32 rounding of lattice lengths around 30 Å is ~2e-6), integer outputs equal;
- the TorchScript decoder, reloaded from disk, against the eager loop with the same seed
  and settings: largest minimum-image displacement between the two runs <= 1e-4 Å, types equal.

A failed check raises and leaves no manifest, so a half-made folder is never served.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import json
import logging
import platform
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.compositions import COMPOSITION_RULES, COMPOSITIONS_FILE, KnownCompositions, default_rule
from core.errors import VdwgenError
from core.manifest import DEFAULT_NOISE_SCALE, DEFAULT_SITE_TYPES, MANIFEST, write_manifest
from export.graphs import ConditionGraph, FusionHeadsGraph, HalfStored, UnconditionalHeadsGraph
from export.script_decoder import eager_decoder, script_decoder
from training.data.janus import janus_species, load_janus_dataset
from training.data.sources import SPLIT as DATA_SPLIT
from training.data.sources import TABLE_NAME as DATA_TABLE
from training.model.langevin import CrystalDecoder, LangevinSettings
from training.train.weights import TrainedModel, load_trained

ONNX_TOLERANCE = 1e-5
DECODER_TOLERANCE_A = 1e-4
DEFAULT_STEPS_PER_LEVEL = 5
MAX_COUNT = 1000
PARITY_BATCH = 7
TRAINING_TABLE = "training_data.parquet"
"""The training crystals inside an artifact trained on a dataset other than the committed one."""


class ExportError(VdwgenError):
    """The export could not produce a faithful artifact (a parity check failed, bad input)."""


def _quiet_export(module: torch.nn.Module, args: tuple, names: list[str], outputs: list[str], path: Path) -> None:
    """``torch.onnx.export`` with a dynamic batch axis on every input, weights inside the file."""
    batch = torch.export.Dim("batch", min=1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamic_shapes={"args": tuple({0: batch} for _ in args)},
                                    input_names=names, output_names=outputs, external_data=False)
        program.save(str(path))


def _onnx_parity(path: Path, module: torch.nn.Module, args: tuple, names: list[str]) -> float:
    """Largest scaled difference between onnxruntime and eager outputs (integers must be equal)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    feeds = {n: a.numpy() for n, a in zip(names, args) if n in wanted}
    got = session.run(None, feeds)
    with torch.no_grad():
        ref = module(*args)
    ref = ref if isinstance(ref, tuple) else (ref,)
    worst = 0.0
    for a, b in zip(got, ref):
        b = b.numpy()
        if np.issubdtype(b.dtype, np.integer):
            if not np.array_equal(a, b):
                raise ExportError(f"{path.name}: integer output differs from the eager model")
            continue
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))))
    if worst > ONNX_TOLERANCE:
        raise ExportError(f"{path.name} differs from the eager model by {worst:.2e} (> {ONNX_TOLERANCE:.0e})")
    return worst


def _random_requests(trained: TrainedModel, rng: torch.Generator) -> dict[str, torch.Tensor]:
    model = trained.model
    b, v = PARITY_BATCH, model.vocab.size
    mean, std = float(model.property_embedding.mean), float(model.property_embedding.std)
    counts = torch.zeros(b, v)
    for row in range(b):
        for _ in range(8):
            counts[row, int(torch.randint(0, v, (1,), generator=rng))] += 1
    return {"property": mean + std * torch.randn(b, generator=rng), "counts": counts,
            "keep_property": (torch.rand(b, generator=rng) > 0.3).float(),
            "keep_formula": (torch.rand(b, generator=rng) > 0.3).float()}


def _decoder_parity(path: Path, decoder: CrystalDecoder, heads: torch.nn.Module, trained: TrainedModel,
                    cond: torch.Tensor | None, steps: int) -> float:
    """Largest minimum-image displacement (Å) between eager and reloaded TorchScript decoding."""
    model = trained.model
    b = 4
    z = torch.randn(b, model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        args = (z, cond[:b]) if cond is not None else (z,)
        z_c, num_atoms, lattice, composition, _ = heads(*args, torch.zeros(b, dtype=torch.long))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = torch.jit.load(str(path))
        fixed = torch.empty(0, dtype=torch.long)
        eager = decoder(z_c, lattice, num_atoms, composition, fixed, 7, steps)
        script = loaded(z_c, lattice, num_atoms, composition, fixed, 7, steps)
    if not torch.equal(eager[1], script[1]):
        raise ExportError("decoder.pt: atom types differ from the eager decoding")
    d = script[0] - eager[0]
    d = d - torch.round(d)
    atom_lattice = lattice.repeat_interleave(num_atoms, dim=0)
    worst = float(torch.bmm(d.unsqueeze(1), atom_lattice).squeeze(1).norm(dim=-1).max())
    if worst > DECODER_TOLERANCE_A:
        raise ExportError(
            f"decoder.pt moves atoms {worst:.2e} Å away from the eager decoding (> {DECODER_TOLERANCE_A} Å)"
        )
    return worst


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import pymatgen.core

    return {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "pymatgen": getattr(pymatgen.core, "__version__", "?")}


def _training_data(trained: TrainedModel, weights: Path, out: Path) -> tuple[dict, dict, list[str], list, list]:
    """The manifest's ``training.data`` and ``model.property``, the files to add to the artifact, and the
    element symbols (one sequence per crystal) of the training crystals and of every crystal of the dataset.

    The committed Janus table stays where it is (the manifest names it relative to the checkout);
    any other dataset's table (``data.parquet`` beside the weights, written by ``vdwgen train``) is
    copied into the artifact as :data:`TRAINING_TABLE`, so the artifact carries its novelty reference.
    """
    from core.manifest import sha256
    from core.paths import dataset_dir

    cfg = trained.config.data
    if not cfg.path:
        split = trained.config.train.split
        table = dataset_dir() / "bilayers.parquet"
        train = load_janus_dataset(split=split, part="train", properties=(cfg.property,))  # type: ignore[arg-type]
        labels = train.property_array(cfg.property)
        species = [c.species for c in train]
        every = janus_species()
        data = {"id": f"janus_iii_vi:{split}:train", "table": "data/janus_iii_vi/bilayers.parquet",
                "sha256": sha256(table), "rows": int(labels.size)}
        extra: list[str] = []
    else:
        source = Path(weights).parent / DATA_TABLE
        if not source.is_file():
            raise ExportError(f"{weights} was trained on {cfg.path}, but {source} (the crystals it learned from) "
                              "is missing; ship or export from the run folder that holds it")
        shutil.copyfile(source, out / TRAINING_TABLE)
        frame = pd.read_parquet(out / TRAINING_TABLE)
        in_train = frame[f"split_{DATA_SPLIT}"] == "train"
        labels = frame.loc[in_train, cfg.property].to_numpy(dtype=float)
        species = list(frame.loc[in_train, "species"])
        every = list(frame["species"])
        name = Path(cfg.path).stem if Path(cfg.path).suffix else Path(cfg.path).name
        data = {"id": f"{name}:{DATA_SPLIT}:train", "table": TRAINING_TABLE, "sha256": sha256(out / TRAINING_TABLE),
                "rows": int(labels.size), "source": cfg.path}
        extra = [TRAINING_TABLE]
    prop = {"name": cfg.property, "unit": cfg.unit, "min": float(labels.min()),
            "max": float(labels.max()), "mean": float(trained.model.property_embedding.mean),
            "std": float(trained.model.property_embedding.std),
            "percentiles": {str(q): float(np.quantile(labels, q / 100)) for q in (10, 50, 90)}}
    return data, prop, extra, species, every


def export_artifact(weights: Path, out: Path, name: str | None = None,
                    steps_per_level: int = DEFAULT_STEPS_PER_LEVEL, step_lr: float = 1e-4,
                    site_types: str = DEFAULT_SITE_TYPES, noise_scale: float = DEFAULT_NOISE_SCALE,
                    compositions: str | None = None) -> Path:
    """Export the model in ``weights`` to the folder ``out``; returns the manifest path.

    ``compositions`` (:mod:`core.compositions`): ``known`` writes the training crystals' distinct element
    counts to :data:`core.compositions.COMPOSITIONS_FILE`, and free-composition crystals take the nearest;
    ``head`` keeps the composition head's counts. None: :func:`core.compositions.default_rule` (``known`` where the
    training part holds every composition of its dataset, as the Janus bilayers' random split does, else ``head``).
    """
    weights, out = Path(weights), Path(out)
    if compositions is not None and compositions not in COMPOSITION_RULES:
        raise ExportError(f"unknown compositions rule {compositions!r}; choose one of {', '.join(COMPOSITION_RULES)}")
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(f"{out} holds files but no {MANIFEST}: it is not an artifact folder; export into a new "
                          "or empty folder (an existing artifact folder is replaced)")
    trained = load_trained(weights)
    model = trained.model.eval()
    conditional = model.config.condition != "none"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = torch.Generator().manual_seed(0)
    files, parity = [], {}
    cond = None
    if conditional:
        requests = _random_requests(trained, rng)
        names = list(requests)
        graph = HalfStored(ConditionGraph(model)).eval()
        _quiet_export(graph, tuple(requests.values()), names, ["cond"], out / "condition.onnx")
        parity["condition.onnx"] = _onnx_parity(out / "condition.onnx", graph, tuple(requests.values()), names)
        with torch.no_grad():
            cond = graph(*requests.values())
        generator = HalfStored(trained.generator).eval()  # type: ignore[arg-type]
        noise = torch.randn(PARITY_BATCH, trained.config.gan.noise_dim, generator=rng)
        _quiet_export(generator, (noise, cond), ["noise", "cond"], ["z"], out / "generator.onnx")
        parity["generator.onnx"] = _onnx_parity(out / "generator.onnx", generator, (noise, cond), ["noise", "cond"])
        files += ["condition.onnx", "generator.onnx"]
    z = torch.randn(PARITY_BATCH, model.config.latent_dim, generator=rng)
    override = torch.tensor([0, 8, 0, 4, 0, 0, 8][:PARITY_BATCH])
    if conditional:
        heads = HalfStored(FusionHeadsGraph(model)).eval()
        head_args, head_names = (z, cond, override), ["z", "cond", "num_atoms_override"]
    else:
        heads = HalfStored(UnconditionalHeadsGraph(model)).eval()
        head_args, head_names = (z, override), ["z", "num_atoms_override"]
    outputs = ["z_c", "num_atoms", "lattice", "composition", "property"]
    _quiet_export(heads, head_args, head_names, outputs, out / "fusion_heads.onnx")
    parity["fusion_heads.onnx"] = _onnx_parity(out / "fusion_heads.onnx", heads, head_args, head_names)
    files.append("fusion_heads.onnx")

    # The decoder is scripted from a freshly loaded copy: the model object that went through the
    # ONNX exports above no longer decodes bit-identically to a freshly loaded one (measured:
    # atoms ~1 Å apart after the Langevin steps), and the artifact must match a fresh load.
    # It is scripted under a fixed hash seed (export.script_decoder), so the same weights, settings and code
    # give the same bytes.
    settings = dataclasses.asdict(LangevinSettings(steps_per_level=steps_per_level, step_lr=step_lr,
                                                   site_types=site_types, noise_scale=noise_scale))
    decoder = eager_decoder(weights, settings)
    try:
        script_decoder(weights, out / "decoder.pt", settings)
    except RuntimeError as exc:
        raise ExportError(str(exc)) from None
    parity["decoder.pt"] = _decoder_parity(out / "decoder.pt", decoder, heads, trained, cond, steps_per_level)
    files.append("decoder.pt")

    data, prop, extra, species, every = _training_data(trained, weights, out)
    files += extra
    if compositions is None:
        compositions = default_rule(species, every)
    if compositions == "known":
        KnownCompositions.from_species(species, model.vocab.symbols).write(out / COMPOSITIONS_FILE)
        files.append(COMPOSITIONS_FILE)
    metrics_file = weights.parent / "metrics.json"
    sigmas = model.coord_sigmas
    manifest = {
        "name": name or out.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {
            "condition": model.config.condition, "latent_dim": model.config.latent_dim,
            "cond_dim": max(model.cond_in, 1), "noise_dim": trained.config.gan.noise_dim if conditional else 0,
            "vocabulary": list(model.vocab.symbols),
            "cell_sizes": {str(k): int(v) for k, v in enumerate(model.cell_size_counts.tolist()) if v},
            "property": prop, "parameters": trained.parameter_counts(), "weights_dtype": "float16",
        },
        "sampling": {"steps_per_level": steps_per_level, "step_lr": step_lr, "site_types": site_types,
                     "noise_scale": noise_scale, "compositions": compositions, "noise_levels": int(sigmas.numel()),
                     "sigma_max": float(sigmas[0]), "sigma_min": float(sigmas[-1]), "screening_ratio": 100,
                     "max_count": MAX_COUNT},
        "files": files,
        "training": {"config": trained.config.as_dict(), "data": data, "weights": weights.name},
        "packages": _versions(),
        "parity": {"tolerance": {"onnx_scaled": ONNX_TOLERANCE, "decoder_angstrom": DECODER_TOLERANCE_A}, **parity},
        "metrics": json.loads(metrics_file.read_text()) if metrics_file.exists() else {},
    }
    return write_manifest(out, manifest)


__all__ = ["ExportError", "MANIFEST", "export_artifact"]
