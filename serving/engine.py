"""The serving engine: an artifact folder -> candidate crystals (no ``training`` import).

One typed call serves the app and the command line::

    engine = Engine.load(artifacts_dir() / "cdvae-plus-janus")
    result = engine.generate(GenerationRequest("formula", count=20, formula="GaInSSe"), progress)

The steps are those of :mod:`training.sample`, on the exported files: condition vector
(``condition.onnx``) -> latents (``generator.onnx``; the 100:1 screening keeps the latents
whose predicted formation energy is closest to the target) or the prior (baseline) ->
fusion and heads (``fusion_heads.onnx``) -> the element counts of a free-composition crystal
(the head's, or the nearest known composition: ``core.compositions``) -> annealed Langevin (``decoder.pt``) ->
pymatgen Structures. onnxruntime uses CUDA when torch sees a GPU and the CUDA provider is
installed, else the CPU; the TorchScript decoder runs on the same device.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

from core.compositions import KnownCompositions, served_compositions
from core.manifest import ArtifactError, Manifest, read_manifest
from core.threads import chunks_side_by_side
from serving.request import CheckedRequest, GenerationRequest, check_request

DECODE_BATCH = 128
"""Crystals per unit of work of a caller that keeps finished work (the evaluation's cache, bulk chunks)."""

DECODE_CHUNK = 32
"""Crystals decoded together on the CPU, on one thread, chunk ``k`` of a request seeded ``seed * 1000 + k``:
chunks run side by side, so the crystals of a seed do not depend on the thread count (:mod:`core.threads`).
The eager sampler (``training.sample``) decodes in the same chunks with the same seeds."""

GPU_DECODE_CHUNK = 1024
"""Crystals decoded together on a GPU (one chunk at a time; a GPU needs large batches to be busy)."""

Progress = Callable[[int, int], None]
"""Called with (crystals decoded so far, crystals requested)."""


@dataclass(frozen=True)
class GeneratedCrystal:
    """One generated crystal and what the model predicted for it."""

    index: int
    structure: Structure
    predicted_formation_energy: float

    @property
    def formula(self) -> str:
        return self.structure.composition.alphabetical_formula.replace(" ", "")

    @property
    def reduced_formula(self) -> str:
        return self.structure.composition.reduced_formula


class HeadOutputs(NamedTuple):
    """What ``fusion_heads.onnx`` returns for B latents."""

    z_c: np.ndarray
    """(B, D) fused latent the decoder is conditioned on."""
    num_atoms: np.ndarray
    """(B,) atoms per crystal."""
    lattice: np.ndarray
    """(B, 3, 3) lattice matrices, rows are vectors (Å)."""
    composition: np.ndarray
    """(B, V) element fractions over the vocabulary."""
    property: np.ndarray
    """(B,) predicted property (the manifest's ``property``, e.g. formation energy in eV/atom)."""


class GenerationInterrupted(KeyboardInterrupt):
    """Raised instead of KeyboardInterrupt during decoding; ``result`` holds the crystals finished so far."""

    def __init__(self, result: GenerationResult) -> None:
        super().__init__(f"interrupted after {len(result.crystals)} of {result.request.count} crystals")
        self.result = result


@dataclass
class GenerationResult:
    """The answer to a request."""

    request: GenerationRequest
    model: str
    steps_per_level: int
    screening_ratio: int
    crystals: list[GeneratedCrystal]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def choose_device(device: str | None = None) -> str:
    """``cuda`` when asked for or when torch sees a GPU, else ``cpu``."""
    if device is not None:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but torch sees no GPU")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def onnx_providers(device: str) -> list[str]:
    """onnxruntime providers for ``device``: CUDA first when it is present, the CPU always."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _check_versions(manifest: Manifest) -> None:
    exported = manifest.packages.get("torch", "")
    ours = torch.__version__
    if exported and exported.split(".")[0] != ours.split(".")[0]:
        raise ArtifactError(f"artifact {manifest.name}: decoder.pt was written by torch {exported}; this torch "
                            f"({ours}) cannot be trusted to load it: re-export with this version")


class Engine:
    """A loaded artifact, ready to generate. Use :meth:`load`."""

    def __init__(self, manifest: Manifest, sessions: dict, decoder: torch.jit.ScriptModule, device: str,
                 known: KnownCompositions | None = None) -> None:
        self.manifest = manifest
        self.known = known
        """The compositions free-composition crystals snap to (``core.compositions``); None: the head's counts."""
        self.sessions = sessions
        self.decoder = decoder
        self.device = device
        self.decode_chunk = DECODE_CHUNK if device == "cpu" else GPU_DECODE_CHUNK
        """Crystals decoded together (seeds are per chunk: another size gives other crystals)."""

    @classmethod
    def load(cls, folder: Path, device: str | None = None) -> Engine:
        """Read an artifact folder, verifying every file's sha256 and the versions.

        Raises:
            ArtifactError: missing, tampered or incompatible files (the message names the file).
        """
        import onnxruntime as ort

        manifest = read_manifest(Path(folder), verify=True)
        _check_versions(manifest)
        device = choose_device(device)
        providers = onnx_providers(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        sessions = {}
        for name in ("condition", "generator", "fusion_heads"):
            path = manifest.path(f"{name}.onnx")
            if f"{name}.onnx" in manifest.files:
                try:
                    sessions[name] = ort.InferenceSession(str(path), options, providers=providers)
                except Exception as exc:
                    raise ArtifactError(f"artifact {manifest.name}: {name}.onnx cannot be loaded ({exc})") from None
        required = ("fusion_heads",) if manifest.condition == "none" else ("condition", "generator", "fusion_heads")
        for name in required:
            if name not in sessions:
                raise ArtifactError(f"artifact {manifest.name}: {name}.onnx is not listed in its manifest")
        if "decoder.pt" not in manifest.files:
            raise ArtifactError(f"artifact {manifest.name}: decoder.pt is not listed in its manifest")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                decoder = torch.jit.load(str(manifest.path("decoder.pt")), map_location=device)
            except Exception as exc:
                raise ArtifactError(f"artifact {manifest.name}: decoder.pt cannot be loaded ({exc})") from None
        return cls(manifest, sessions, decoder.eval(), device, served_compositions(manifest))

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.manifest.vocabulary

    def check(self, request: GenerationRequest) -> CheckedRequest:
        """Validate a request (raises :class:`serving.request.RequestError`)."""
        return check_request(request, self.manifest)

    # -- steps ---------------------------------------------------------------------------------
    def _run(self, name: str, **feeds: np.ndarray) -> list[np.ndarray]:
        session = self.sessions[name]
        wanted = {i.name for i in session.get_inputs()}
        return session.run(None, {k: v for k, v in feeds.items() if k in wanted})

    def condition(self, n: int, target: float | np.ndarray | None, counts: tuple[int, ...] | None) -> np.ndarray:
        """Condition vectors (n, C) for a formation-energy target (one, or one per row) or a cell's element counts."""
        v = len(self.vocabulary)
        return self._run(
            "condition",
            property=np.broadcast_to(np.asarray(0.0 if target is None else target, dtype=np.float32), (n,)).copy(),
            counts=np.tile(np.asarray(counts if counts is not None else [0] * v, dtype=np.float32), (n, 1)),
            keep_property=np.full(n, 0.0 if target is None else 1.0, dtype=np.float32),
            keep_formula=np.full(n, 0.0 if counts is None else 1.0, dtype=np.float32),
        )[0]

    def latents(self, checked: CheckedRequest) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Latents (n, D), their condition vectors (or None) and predicted formation energies (n,)."""
        request = checked.request
        n = request.count
        rng = torch.Generator().manual_seed(request.seed)
        if request.mode == "unconditional":
            z = torch.randn(n, self.manifest.latent_dim, generator=rng).numpy()
            return z, None, self.heads(z, None, np.zeros(n, dtype=np.int64)).property
        if request.mode == "formation_energy":
            cond = self.condition(n * checked.screening_ratio, float(request.target), None)  # type: ignore[arg-type]
            z, predicted = self._draw(cond, rng)
            keep = np.argsort(np.abs(predicted - float(request.target)), kind="stable")[:n]
            return z[keep], cond[keep], predicted[keep]
        cond = self.condition(n, None, checked.counts)
        z, predicted = self._draw(cond, rng)
        return z, cond, predicted

    def _draw(self, cond: np.ndarray, rng: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Generator latents z' for the condition rows ``cond`` (noise from ``rng``) and their
        predicted formation energies."""
        noise_dim = self.manifest.noise_dim
        z = self._run("generator", noise=torch.randn(len(cond), noise_dim, generator=rng).numpy(), cond=cond)[0]
        return z, self.heads(z, cond, np.zeros(len(cond), dtype=np.int64)).property

    def screened_latents(self, targets: np.ndarray, ratio: int, seed: int, chunk: int = 64
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One latent per formation-energy target, each the best of ``ratio`` draws (the 100:1 screening).

        What a one-crystal formation-energy request does, for many different targets at once
        (evaluation draws one crystal per target); ``chunk`` targets share one pass.

        Returns:
            z' (n, D), condition vectors (n, C) and predicted formation energies (n,).
        """
        if ratio < 1:
            raise ValueError(f"the screening ratio must be at least 1 (got {ratio})")
        rng = torch.Generator().manual_seed(seed)
        targets = np.asarray(targets, dtype=np.float32).reshape(-1)
        zs, conds, preds = [], [], []
        for start in range(0, targets.size, chunk):
            pool = np.repeat(targets[start:start + chunk], ratio)
            cond = self.condition(pool.size, pool, None)
            z, predicted = self._draw(cond, rng)
            best = np.abs(predicted - pool).reshape(-1, ratio).argmin(axis=1) + np.arange(0, pool.size, ratio)
            zs.append(z[best])
            conds.append(cond[best])
            preds.append(predicted[best])
        return np.concatenate(zs), np.concatenate(conds), np.concatenate(preds)

    def heads(self, z: np.ndarray, cond: np.ndarray | None, override: np.ndarray) -> HeadOutputs:
        """The fusion and head outputs for latents ``z`` (``override`` > 0 fixes a crystal's atom count)."""
        feeds = {"z": z.astype(np.float32), "num_atoms_override": override.astype(np.int64)}
        if cond is not None:
            feeds["cond"] = cond.astype(np.float32)
        return HeadOutputs(*self._run("fusion_heads", **feeds))

    def decode(self, z: np.ndarray, cond: np.ndarray | None, checked: CheckedRequest,
               progress: Progress | None = None, structures: list[Structure] | None = None) -> list[Structure]:
        """Structures from latents by the exported annealed Langevin loop, in chunks of :attr:`decode_chunk`.

        On the CPU the chunks run side by side on as many threads as torch may use, each chunk on one
        thread (:data:`DECODE_CHUNK`), so the crystals do not depend on the thread count. Finished chunks
        are appended to ``structures`` (a new list when None) in order as they come, so a caller that is
        interrupted keeps what was done.
        """
        structures = [] if structures is None else structures
        total = z.shape[0]

        def run(k: int, start: int, stop: int) -> list[Structure]:
            return self._decode_chunk(z[start:stop], None if cond is None else cond[start:stop], checked.counts,
                                      checked.request.seed * 1_000 + k, checked.steps_per_level)

        for part in chunks_side_by_side(run, total, self.decode_chunk, self.device == "cpu"):
            structures += part
            if progress is not None:
                progress(len(structures), total)
        return structures

    def _decode_chunk(self, z: np.ndarray, cond: np.ndarray | None, counts: tuple[int, ...] | None, seed: int,
                      steps_per_level: int) -> list[Structure]:
        """One chunk: heads, then the decoder with ``seed`` (fixed types when ``counts`` is a formula's)."""
        vocab = self.vocabulary
        b = z.shape[0]
        override = np.zeros(b, dtype=np.int64)
        fixed = torch.empty(0, dtype=torch.long)
        if counts is not None:
            per_crystal = np.repeat(np.arange(len(vocab)), counts)
            override[:] = per_crystal.size
            fixed = torch.from_numpy(np.tile(per_crystal, b)).long()
        z_c, num_atoms, lattice, composition, _ = self.heads(z, cond, override)
        if counts is None and self.known is not None:
            composition = self.known.nearest(composition, num_atoms)
        device = self.device
        with torch.no_grad():
            frac, types = self.decoder(torch.from_numpy(z_c).to(device), torch.from_numpy(lattice).to(device),
                                       torch.from_numpy(num_atoms).to(device),
                                       torch.from_numpy(composition).to(device), fixed.to(device), seed,
                                       steps_per_level)
        frac, types = frac.cpu().double().numpy(), types.cpu().numpy()
        stops = np.cumsum(num_atoms)
        return [Structure(Lattice(lattice[k].astype(np.float64)), [vocab[int(t)] for t in types[lo:hi]], frac[lo:hi])
                for k, (lo, hi) in enumerate(zip(np.concatenate([[0], stops[:-1]]), stops))]

    def generate(self, request: GenerationRequest | CheckedRequest, progress: Progress | None = None
                 ) -> GenerationResult:
        """Answer a request: checked (unless it already was, by :meth:`check`), sampled, decoded.

        Raises:
            RequestError: bad input (a :class:`GenerationRequest` is checked here, once).
            GenerationInterrupted: Ctrl-C during decoding, carrying the crystals finished so far.
        """
        t0 = time.perf_counter()
        checked = request if isinstance(request, CheckedRequest) else self.check(request)
        request = checked.request
        z, cond, predicted = self.latents(checked)
        structures: list[Structure] = []

        def result() -> GenerationResult:
            crystals = [GeneratedCrystal(i, s, float(p)) for i, (s, p) in enumerate(zip(structures, predicted))]
            return GenerationResult(request, self.name, checked.steps_per_level, checked.screening_ratio,
                                    crystals, list(checked.warnings), time.perf_counter() - t0)

        try:
            self.decode(z, cond, checked, progress, structures)
        except KeyboardInterrupt:
            raise GenerationInterrupted(result()) from None
        return result()
