"""Design targets: a label with a range or a bound, parsed from text, checked against what the data spans.

A target is written ``label<=value``, ``label>=value`` or ``label=low:high`` (e.g.
``formation_energy_per_atom<=-0.8``, ``binding_energy_per_area=-22:-18``, ``interlayer_gap=3.0:3.3``).
Each is checked once, against the labels the predictor knows and the span of their values in its
training data; a bad one is refused in one line that names the valid labels and their ranges.

The optimisation loss of a target is the SMOACS hinge (method.md section 5), scaled by the label's
standard deviation so that every label weighs alike:

- a range ``[low, high]`` is met when ``|y - t| <= m`` with centre ``t`` and half-width ``m``; the
  loss uses a smaller training margin, ``TRAIN_MARGIN_RATIO * m`` (the paper's 0.04 eV against its
  0.2 eV evaluation margin for band gaps: a ratio of 0.2), so candidates aim at the middle;
- a bound (``<=``, ``>=``) is a one-sided hinge moved inward by ``TRAIN_BOUND_SHIFT`` standard
  deviations (the same intent: aim inside, not at the edge).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from core.errors import VdwgenError

TRAIN_MARGIN_RATIO = 0.2
"""Training half-width of a range target as a share of its evaluation half-width (the paper's 0.04 / 0.2)."""
TRAIN_BOUND_SHIFT = 0.25
"""How far inside a bound the training hinge starts, in standard deviations of the label."""
_PATTERN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|=)\s*(.+?)\s*$")


class TargetError(VdwgenError):
    """A target that cannot be designed for; the message names the valid labels and ranges."""


@dataclass(frozen=True)
class LabelInfo:
    """What the predictor knows of one label: unit, the span of its training values, their spread."""

    name: str
    unit: str
    min: float
    max: float
    std: float

    def span(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.name} ({_num(self.min)} to {_num(self.max)}{unit})"


def _num(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class Target:
    """``low <= label <= high`` (``low = -inf`` for an upper bound, ``high = +inf`` for a lower one)."""

    label: str
    low: float
    high: float

    @property
    def kind(self) -> str:
        if math.isinf(self.low):
            return "at_most"
        if math.isinf(self.high):
            return "at_least"
        return "range"

    def text(self) -> str:
        """The target as it is written on the command line."""
        if self.kind == "at_most":
            return f"{self.label}<={_num(self.high)}"
        if self.kind == "at_least":
            return f"{self.label}>={_num(self.low)}"
        return f"{self.label}={_num(self.low)}:{_num(self.high)}"

    def met(self, values: Tensor) -> Tensor:
        """Whether each value meets the target (evaluation margin)."""
        return (values >= self.low) & (values <= self.high)

    def loss(self, values: Tensor, std: float) -> Tensor:
        """The training hinge of each value, in standard deviations (0 inside the training margin)."""
        if self.kind == "range":
            centre, half = (self.low + self.high) / 2, (self.high - self.low) / 2
            return torch.relu((values - centre).abs() - TRAIN_MARGIN_RATIO * half) / std
        if self.kind == "at_most":
            return torch.relu(values - (self.high - TRAIN_BOUND_SHIFT * std)) / std
        return torch.relu((self.low + TRAIN_BOUND_SHIFT * std) - values) / std


def _valid(labels: Mapping[str, LabelInfo]) -> str:
    return "; ".join(info.span() for info in labels.values())


def _number(text: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TargetError(f"target {whole!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TargetError(f"target {whole!r}: {text!r} is not a finite number")
    return value


def parse_target(text: str, labels: Mapping[str, LabelInfo]) -> Target:
    """One target from ``label<=v``, ``label>=v`` or ``label=low:high``.

    Raises:
        TargetError: unreadable text, an unknown label, an empty range, or a target that no value in the
            span of the training data meets (each message lists the valid labels and their ranges).
    """
    match = _PATTERN.match(text or "")
    if match is None:
        raise TargetError(f"cannot read target {text!r}: write label<=value, label>=value or label=low:high; "
                          f"labels: {_valid(labels)}")
    name, op, rest = match.groups()
    if name not in labels:
        raise TargetError(f"unknown label {name!r} in target {text!r}; valid labels: {_valid(labels)}")
    info = labels[name]
    if op == "=":
        if ":" not in rest:
            raise TargetError(f"target {text!r}: give a range low:high (e.g. {name}={_num(info.min)}:"
                              f"{_num((info.min + info.max) / 2)}) or a bound with <= or >=")
        low_text, high_text = rest.split(":", 1)
        low, high = _number(low_text, text), _number(high_text, text)
        if not low < high:
            raise TargetError(f"target {text!r} is an empty range: give low:high with low < high")
    elif op == "<=":
        low, high = -math.inf, _number(rest, text)
    else:
        low, high = _number(rest, text), math.inf
    if high < info.min or low > info.max:
        raise TargetError(f"target {text!r} lies outside what the data spans: {info.span()}")
    return Target(name, low, high)


def parse_targets(texts: Sequence[str], labels: Mapping[str, LabelInfo]) -> tuple[Target, ...]:
    """Every target of a request; at least one, and each label at most once."""
    if not texts:
        raise TargetError(f"give at least one target (label<=value, label>=value or label=low:high); labels: "
                          f"{_valid(labels)}")
    targets = tuple(parse_target(t, labels) for t in texts)
    seen: set[str] = set()
    for t in targets:
        if t.label in seen:
            raise TargetError(f"{t.label} has two targets; give one range low:high instead")
        seen.add(t.label)
    return targets


__all__ = ["LabelInfo", "Target", "TargetError", "parse_target", "parse_targets"]
