"""One progress bar for a command whose work goes through named stages (decoding, scoring, relaxing, ...)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm


def stage_bar(stage: str, total: int, unit: str = "it") -> tuple[tqdm, Callable[[str, int, int], None]]:
    """A bar on stderr starting at ``stage`` and the ``(stage, done, total)`` callback that moves it: a new stage
    renames the bar and starts it again at 0 of its total. The caller closes the bar."""
    bar = tqdm(total=total, desc=stage, unit=unit, dynamic_ncols=True, file=sys.stderr)
    current = [stage]  # the stage shown (tqdm keeps its description with a ": " appended)

    def update(name: str, done: int, total: int) -> None:
        if current[0] != name:
            current[0] = name
            bar.set_description(name)
            bar.reset(total)
        bar.update(done - bar.n)

    return bar, update


__all__ = ["stage_bar"]
