"""Progress bars of the evaluations (on stderr, one per step, counted in crystals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_bar(desc: str, total: int) -> tqdm:
    """A bar for ``total`` crystals; the caller closes it."""
    return tqdm(total=total, desc=desc, unit="crystal", dynamic_ncols=True, mininterval=2.0)


def with_bar(work: Callable[[Callable[[int], None]], T], desc: str, total: int) -> T:
    """``work(progress)`` under a bar, where ``progress(done)`` reports the crystals finished so far
    (the decoders' callback); the bar is closed however ``work`` ends."""
    bar = progress_bar(desc, total)
    try:
        return work(lambda done: bar.update(done - bar.n))
    finally:
        bar.close()
