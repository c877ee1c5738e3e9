"""What the evaluations keep on disk, so that an interrupted run resumes where it stopped.

- :class:`StageRecord`: the JSON file of finished stages (``metrics.json`` of ``vdwgen evaluate``,
  the model card's file); a finished stage is kept, not recomputed;
- :func:`cached_decode` and the sampling requests built on it: crystals decoded through the
  served artifacts in chunks of :data:`serving.engine.DECODE_BATCH`, each finished chunk kept;
- :func:`oracle_checks`: CHGNet + D3 checks in chunks of :data:`ORACLE_CHUNK`, each finished chunk kept;
- :func:`cached_fingerprints`: structure fingerprints of a set, kept whole.

Crystals are kept as POSCAR text; JSON files are replaced atomically (written beside, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from serving.engine import DECODE_BATCH, Engine
from serving.request import GenerationRequest
from training.evaluation import coverage as cov
from training.evaluation.progress import progress_bar

ORACLE_CHUNK = 50
"""Oracle checks kept per write."""


# -- JSON files and POSCAR lists --------------------------------------------------------------------------
def read_json(path: Path) -> dict:
    """The JSON object in ``path``, or an empty dict when there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else {}


def write_json(path: Path, data: dict | list, indent: int = 1) -> None:
    """Write ``data`` (numpy scalars and arrays allowed) to ``path``, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=indent, default=_plain))
    tmp.replace(path)


def _plain(value: object) -> object:
    """JSON for numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def to_poscar(structure: Structure) -> str:
    return structure.to(fmt="poscar")


def from_poscars(poscars: list[str]) -> list[Structure]:
    return [Structure.from_str(p, fmt="poscar") for p in poscars]


# -- finished stages ------------------------------------------------------------------------------------
class StageRecord:
    """A JSON file of finished stages: each stage's result under its name, its wall-clock seconds under
    ``seconds``, plus whatever else the caller puts in :attr:`results` (written with the next stage)."""

    def __init__(self, path: Path, indent: int = 1) -> None:
        self.path = Path(path)
        self.indent = indent
        self.results: dict = read_json(self.path)

    def __contains__(self, name: str) -> bool:
        return name in self.results

    def run(self, name: str, compute: Callable[[], object]) -> object:
        """Compute stage ``name``, keep its result and seconds, and write the file."""
        t0 = time.perf_counter()
        self.results[name] = compute()
        self.results.setdefault("seconds", {})[name] = round(time.perf_counter() - t0, 1)
        write_json(self.path, self.results, self.indent)
        return self.results[name]


# -- generation through the served artifacts, chunked -----------------------------------------------------
def cached_decode(engine: Engine, z: np.ndarray, cond: np.ndarray | None, template: GenerationRequest,
                  path: Path, desc: str) -> list[Structure]:
    """Decode latents in chunks; finished chunks are kept in ``path`` (JSON list of POSCARs).

    Chunk ``k`` is decoded with seed ``template.seed * 10_000 + k``, so a resumed run decodes
    what an uninterrupted one would have.
    """
    done: list[str] = read_json(path).get("poscars", [])
    total = z.shape[0]
    bar = progress_bar(desc, total)
    bar.update(len(done))
    try:
        for start in range(len(done), total, DECODE_BATCH):  # finished chunks are whole chunks
            chunk = start // DECODE_BATCH
            request = GenerationRequest(template.mode, min(DECODE_BATCH, total - start), template.target,
                                        template.formula, template.seed * 10_000 + chunk, template.steps_per_level,
                                        template.screening_ratio)
            checked = engine.check(request)
            part = engine.decode(z[start:start + DECODE_BATCH],
                                 None if cond is None else cond[start:start + DECODE_BATCH], checked)
            done += [to_poscar(s) for s in part]
            write_json(path, {"poscars": done})
            bar.update(len(part))
    finally:
        bar.close()
    return from_poscars(done[:total])


def conditioned_samples(engine: Engine, targets: np.ndarray, seed: int, steps: int | None, path: Path
                        ) -> tuple[list[Structure], np.ndarray]:
    """One screened crystal per formation-energy target (the app's 100:1 screening each), decoded together."""
    ratio = engine.manifest.sampling.screening_ratio
    z, cond, predicted = engine.screened_latents(targets, ratio, seed)
    template = GenerationRequest("formation_energy", 1, float(targets[0]), seed=seed, steps_per_level=steps)
    structures = cached_decode(engine, z, cond, template, path, "conditioned samples")
    return structures, predicted


def unconditional_samples(engine: Engine, n: int, seed: int, steps: int | None, path: Path) -> list[Structure]:
    """``n`` crystals from the baseline's prior."""
    request = GenerationRequest("unconditional", n, seed=seed, steps_per_level=steps)
    z, cond, _ = engine.latents(engine.check(request))
    return cached_decode(engine, z, cond, request, path, "unconditional samples")


def request_samples(engine: Engine, request: GenerationRequest, path: Path, desc: str
                    ) -> tuple[list[Structure], np.ndarray]:
    """A plain app request (formula or one target), cached."""
    checked = engine.check(request)
    z, cond, predicted = engine.latents(checked)
    return cached_decode(engine, z, cond, request, path, desc), predicted


# -- oracle checks, chunked -------------------------------------------------------------------------------
def oracle_checks(structures: list[Structure], path: Path, desc: str, dataset: Path) -> list[dict]:
    """Oracle check of every structure (see :func:`scoring.oracle_check.check_with_oracle`), cached per chunk.

    Returns one dict per structure: the :class:`OracleCheck` figures plus the relaxed POSCAR; ``path`` then holds
    the same list. Each kept check names its input (:func:`input_key`), so a cache reused for other crystals
    (another model, another decoding) gives them their own checks: only checks of these very structures are taken
    from ``path``, whatever their order, and an interrupted run resumes with the checks it finished.
    """
    from oracle.convention import load_references
    from oracle.shared import get_oracle
    from scoring.oracle_check import check_with_oracle

    keys = [input_key(s) for s in structures]
    on_file = read_json(path).get("checks", [])
    kept = {d["input"]: d for d in on_file
            if "input" in d and d.get("cell") == "in_plane" and "scan_gap" in d}  # older protocols: checked again
    first = {k: i for i, k in reversed(list(enumerate(keys)))}  # a repeated crystal is checked once
    todo = sorted(i for k, i in first.items() if k not in kept)
    bar = progress_bar(desc, len(structures))
    bar.update(len(structures) - len(todo))
    try:
        if todo:
            oracle, references = get_oracle(), load_references(dataset)
        for start in range(0, len(todo), ORACLE_CHUNK):
            part = todo[start:start + ORACLE_CHUNK]
            base = bar.n

            def progress(finished: int, _total: int, base: int = base) -> None:
                bar.update(base + finished - bar.n)

            for i, c in zip(part, check_with_oracle([structures[i] for i in part], references, oracle,
                                                    progress=progress)):
                row = {f.name: getattr(c, f.name) for f in fields(c) if f.name != "relaxed"}
                row["relaxed_poscar"] = to_poscar(c.relaxed)
                row["input"] = keys[i]
                kept[keys[i]] = row
            write_json(path, {"checks": list(kept.values())})
            bar.update(base + len(part) - bar.n)
    finally:
        bar.close()
    checks = [kept[k] for k in keys]
    if todo or [d.get("input") for d in on_file] != keys:  # the file holds these structures' checks, in order
        write_json(path, {"checks": checks})
    return checks


def input_key(structure: Structure) -> str:
    """What a cached oracle check was made of: the SHA-256 of the structure's POSCAR."""
    return hashlib.sha256(to_poscar(structure).encode()).hexdigest()


class CheckView:
    """Attribute view of a cached oracle-check dict (what :mod:`training.evaluation.oracle_stats` reads)."""

    def __init__(self, row: dict) -> None:
        self.__dict__.update(row)


# -- structure fingerprints -------------------------------------------------------------------------------
def cached_fingerprints(structures: list[Structure], path: Path, desc: str, workers: int) -> np.ndarray:
    """CrystalNN fingerprints of ``structures`` (:func:`coverage.structure_fingerprints`), kept in ``path``."""
    if path.is_file():
        stored = np.load(path)["fp"]
        if len(stored) == len(structures):
            return stored
    bar = progress_bar(desc, len(structures))
    try:
        fp = cov.structure_fingerprints(structures, workers, progress=bar.update)
    finally:
        bar.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, fp=fp)
    return fp
