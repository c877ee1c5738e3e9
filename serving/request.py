"""A generation request and its one check against the model that serves it.

The app and the command line build a :class:`GenerationRequest`; the engine checks it
against the model it serves (:func:`check_request`) and answers bad input with a
:class:`RequestError` whose message names the limit or the valid options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from core import chemistry
from core.errors import VdwgenError
from core.manifest import MODES, SUPPORTED, Manifest

Mode = Literal["formation_energy", "formula", "unconditional"]


class RequestError(VdwgenError):
    """A request the model cannot serve; the message says why and what is allowed."""


@dataclass(frozen=True)
class GenerationRequest:
    """What the user asks for.

    Attributes:
        mode: ``formation_energy`` (a target in eV/atom), ``formula`` (e.g. ``GaInSSe``) or
            ``unconditional`` (the CDVAE baseline's prior).
        count: crystals wanted.
        target: formation energy per atom (eV/atom) for ``formation_energy``.
        formula: chemical formula for ``formula``.
        seed: the same seed (and settings) gives the same crystals on the same device and number
            of CPU threads (the Langevin steps amplify rounding differences between thread counts).
        steps_per_level: Langevin steps at each of the noise levels (None: the model's default).
        screening_ratio: latents drawn per crystal kept, for ``formation_energy`` (None: 100).
    """

    mode: Mode
    count: int
    target: float | None = None
    formula: str | None = None
    seed: int = 0
    steps_per_level: int | None = None
    screening_ratio: int | None = None


@dataclass(frozen=True)
class CheckedRequest:
    """A request the model can serve, with defaults filled in and the formula resolved."""

    request: GenerationRequest
    steps_per_level: int
    screening_ratio: int
    counts: tuple[int, ...] | None
    warnings: tuple[str, ...]


MAX_STEPS_PER_LEVEL = 100
MAX_SCREENING_RATIO = 1000


def check_request(request: GenerationRequest, manifest: Manifest, max_count: int | None = None) -> CheckedRequest:
    """Validate ``request`` for the model of ``manifest``.

    Raises:
        RequestError: unknown or unsupported mode, missing target or formula, count <= 0 or
            above the cap, bad settings, unknown element (lists the allowed ones), a formula
            that cannot fill the model's cell (says why).
    """
    if request.mode not in MODES:
        raise RequestError(f"unknown mode {request.mode!r}; choose one of {', '.join(MODES)}")
    served = SUPPORTED[manifest.condition]
    if request.mode not in served:
        raise RequestError(f"model {manifest.name} ({manifest.condition}-conditioned) does not serve "
                           f"{request.mode} requests; it serves: {', '.join(served)}")
    cap = max_count if max_count is not None else manifest.sampling.max_count
    if isinstance(request.count, bool) or not isinstance(request.count, int) or not 1 <= request.count <= cap:
        raise RequestError(f"count must be a whole number from 1 to {cap}, got {request.count!r}")
    if not isinstance(request.seed, int) or request.seed < 0:
        raise RequestError(f"seed must be a whole number >= 0, got {request.seed!r}")
    sampling = manifest.sampling
    steps = request.steps_per_level if request.steps_per_level is not None else sampling.steps_per_level
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS_PER_LEVEL:
        raise RequestError(f"steps per level must be from 1 to {MAX_STEPS_PER_LEVEL}, got {steps}")
    ratio = request.screening_ratio if request.screening_ratio is not None else sampling.screening_ratio
    if isinstance(ratio, bool) or not isinstance(ratio, int) or not 1 <= ratio <= MAX_SCREENING_RATIO:
        raise RequestError(f"screening ratio must be from 1 to {MAX_SCREENING_RATIO} (a whole number), got {ratio}")
    warnings: list[str] = []
    if request.screening_ratio is not None and request.mode != "formation_energy":
        warnings.append(f"the screening ratio applies to formation-energy requests only; ignored for a "
                        f"{request.mode} request")
    counts = None
    unit = f" {manifest.property.unit}" if manifest.property.unit else ""
    if request.mode == "formation_energy":
        if request.target is None or isinstance(request.target, bool) or not isinstance(request.target, (int, float)):
            raise RequestError(f"a {manifest.property.name} request needs a target{unit}, e.g. "
                               f"{manifest.property.percentile('50'):.2f}")
        if not math.isfinite(request.target):
            raise RequestError(f"the target must be a finite number{unit}, got {request.target}")
        low, high = manifest.property_range
        if not low <= request.target <= high:
            warnings.append(f"target {request.target:+.3f}{unit} lies outside the training range "
                            f"{low:+.3f} .. {high:+.3f}{unit}; the model extrapolates and the screened "
                            "crystals will sit near the edge of that range")
    elif request.mode == "formula":
        try:
            raw = chemistry.parse_formula(request.formula or "", manifest.vocabulary)
            counts = tuple(chemistry.scale_to_cell(request.formula or "", raw, manifest.cell_sizes))
        except ValueError as exc:
            raise RequestError(str(exc)) from None
    return CheckedRequest(replace(request), steps, ratio, counts, tuple(warnings))
