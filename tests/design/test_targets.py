"""Design targets: what a user may write, what is refused in one line, and the hinge loss the optimiser sees."""

from __future__ import annotations

import math

import pytest
import torch

from design.targets import (
    TRAIN_BOUND_SHIFT,
    TRAIN_MARGIN_RATIO,
    LabelInfo,
    Target,
    TargetError,
    parse_target,
    parse_targets,
)

LABELS = {
    "formation_energy_per_atom": LabelInfo("formation_energy_per_atom", "eV/atom", -1.067, -0.425, 0.1),
    "interlayer_gap": LabelInfo("interlayer_gap", "Å", 2.824, 4.214, 0.3),
}


def test_three_forms_are_read() -> None:
    upper = Target("formation_energy_per_atom", -math.inf, -0.8)
    assert parse_target("formation_energy_per_atom<=-0.8", LABELS) == upper
    assert parse_target(" interlayer_gap >= 3.1 ", LABELS) == Target("interlayer_gap", 3.1, math.inf)
    assert parse_target("interlayer_gap=3.0:3.3", LABELS) == Target("interlayer_gap", 3.0, 3.3)
    assert parse_target("interlayer_gap=3.0:3.3", LABELS).text() == "interlayer_gap=3:3.3"


@pytest.mark.parametrize("text, words", [
    ("band_gap<=1", ["unknown label 'band_gap'", "formation_energy_per_atom (-1.067 to -0.425 eV/atom)",
                     "interlayer_gap (2.824 to 4.214 Å)"]),
    ("interlayer_gap=3.3:3.0", ["empty range", "low < high"]),
    ("interlayer_gap=5:6", ["outside what the data spans", "2.824 to 4.214"]),
    ("formation_energy_per_atom<=-1.5", ["outside what the data spans"]),
    ("interlayer_gap=3.1", ["give a range low:high"]),
    ("interlayer_gap=a:3", ["'a' is not a number"]),
    ("interlayer_gap<=nan", ["not a finite number"]),
    ("gap is small", ["cannot read target", "label<=value"]),
])
def test_bad_targets_are_refused_in_one_line(text: str, words: list[str]) -> None:
    with pytest.raises(TargetError) as caught:
        parse_target(text, LABELS)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_a_request_needs_a_target_and_one_per_label() -> None:
    with pytest.raises(TargetError, match="at least one target"):
        parse_targets([], LABELS)
    with pytest.raises(TargetError, match="interlayer_gap has two targets"):
        parse_targets(["interlayer_gap>=3", "interlayer_gap<=3.3"], LABELS)


def test_hinge_loss_has_the_known_values() -> None:
    std = 0.3
    window = Target("interlayer_gap", 3.0, 3.4)  # centre 3.2, half-width 0.2, training half-width 0.04
    values = torch.tensor([3.2, 3.2 + TRAIN_MARGIN_RATIO * 0.2, 3.5, 2.9])
    expected = torch.tensor([0.0, 0.0, (0.3 - 0.04) / std, (0.3 - 0.04) / std])
    torch.testing.assert_close(window.loss(values, std), expected)
    assert window.met(values).tolist() == [True, True, False, False]
    upper = Target("formation_energy_per_atom", -math.inf, -0.8)
    shift = TRAIN_BOUND_SHIFT * 0.1
    torch.testing.assert_close(upper.loss(torch.tensor([-0.9, -0.8, -0.7]), 0.1),
                               torch.tensor([0.0, shift / 0.1, (0.1 + shift) / 0.1]))
    lower = Target("interlayer_gap", 3.1, math.inf)
    torch.testing.assert_close(lower.loss(torch.tensor([3.0, 4.0]), std),
                               torch.tensor([(0.1 + TRAIN_BOUND_SHIFT * std) / std, 0.0]))
    assert upper.met(torch.tensor([-0.8, -0.79])).tolist() == [True, False]
