"""Threads for torch work: the intra-op thread count of a block, and jobs run side by side on threads.

Why decoding runs on threads of one intra-op thread each: a reduction split over several threads sums in
another order than one thread does, and 250 Langevin steps amplify a last-bit difference into another
crystal. A chunk computed on one thread is computed the same way whatever the process's thread count, so
running chunks side by side (one per core) gives the same crystals on 1 or 2 cores, and on this CPU it is
also faster than splitting each operation of one large chunk over the cores (``bench/sampling.py``).
Torch operations release the GIL, so Python threads run them in parallel.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with at most ``threads`` torch intra-op threads (None: unchanged), then restore.

    The setting is process-wide: other torch work in the process during the block gets the
    same limit (it only runs slower, never differently).
    """
    import torch

    before = torch.get_num_threads()
    if threads is None or threads >= before:
        yield
        return
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Failed:
    """An exception raised by a job, carried back to the thread that waits for its result."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def in_order_on_threads(fn: Callable[[Job], Result], jobs: Sequence[Job], threads: int) -> Iterator[Result]:
    """``fn(job)`` for every job, on up to ``threads`` threads, yielded in the order of ``jobs``.

    Each result is yielded as soon as it and every result before it are ready, so a caller that keeps what
    it got when interrupted (Ctrl-C) keeps a prefix of the jobs. The workers are daemon threads: leaving the
    iterator early (an exception, Ctrl-C, ``break``) stops them taking new jobs, and a job still running
    finishes in the background without holding up the process's exit. An exception of a job is raised here,
    at that job's place in the order. One thread (or one job) runs everything in the calling thread.
    """
    if threads <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
        return
    results: dict[int, Result | _Failed] = {}
    ready = threading.Condition()
    pending = iter(enumerate(jobs))
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            with ready:
                item = next(pending, None)
            if item is None:
                return
            k, job = item
            try:
                out: Result | _Failed = fn(job)
            except BaseException as exc:  # noqa: BLE001 - carried to the waiting thread and raised there
                out = _Failed(exc)
            with ready:
                results[k] = out
                ready.notify_all()

    for _ in range(min(threads, len(jobs))):
        threading.Thread(target=worker, daemon=True, name="vdwgen-decode").start()
    try:
        for k in range(len(jobs)):
            with ready:
                while k not in results:
                    ready.wait(timeout=0.25)  # wakes regularly, so Ctrl-C reaches the waiting thread
                out = results.pop(k)
            if isinstance(out, _Failed):
                raise out.error
            yield out
    finally:
        stop.set()


def chunks_side_by_side(fn: Callable[[int, int, int], Result], total: int, size: int,
                        on_cpu: bool) -> Iterator[Result]:
    """``fn(k, start, stop)`` for each chunk ``k`` of ``range(total)`` in chunks of ``size``, yielded in order.

    On the CPU the chunks run side by side on as many threads as torch may use, each with one intra-op
    thread, so a chunk's result does not depend on the thread count; elsewhere (a GPU) one after another.
    Each chunk runs in the caller's grad mode: torch keeps ``no_grad`` per thread, so a worker thread would
    otherwise record gradients that the caller turned off (and its results could not become numpy arrays).
    """
    import torch

    chunks = [(k, start, min(start + size, total)) for k, start in enumerate(range(0, total, size))]
    threads = torch_thread_count() if on_cpu else 1
    grad = torch.is_grad_enabled()

    def run(chunk: tuple[int, int, int]) -> Result:
        with torch.set_grad_enabled(grad):
            return fn(*chunk)

    with torch_threads(1 if on_cpu else None):
        yield from in_order_on_threads(run, chunks, threads)


def torch_thread_count() -> int:
    """Torch's intra-op thread count in this process."""
    import torch

    return torch.get_num_threads()


__all__ = ["chunks_side_by_side", "in_order_on_threads", "torch_threads"]
