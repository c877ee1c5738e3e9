"""Jobs side by side on threads: results in the jobs' order whatever order they finish in, a job's error
raised at its place, an early exit that stops handing out jobs; the torch thread limit restored."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from core.threads import chunks_side_by_side, in_order_on_threads, torch_threads


def test_results_come_in_job_order_and_jobs_run_side_by_side() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def job(k: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05 * (k % 3))  # later jobs often finish first
        with lock:
            running[0] -= 1
        return k * k

    assert list(in_order_on_threads(job, list(range(9)), threads=3)) == [k * k for k in range(9)]
    assert most[0] > 1  # really side by side
    assert list(in_order_on_threads(job, list(range(4)), threads=1)) == [0, 1, 4, 9]


def test_an_error_is_raised_at_its_place_after_the_results_before_it() -> None:
    def job(k: int) -> int:
        if k == 2:
            raise ValueError("job 2 failed")
        return k

    got = []
    with pytest.raises(ValueError, match="job 2 failed"):
        for value in in_order_on_threads(job, [0, 1, 2, 3], threads=2):
            got.append(value)
    assert got == [0, 1]


def test_leaving_early_stops_handing_out_jobs() -> None:
    started = []

    def job(k: int) -> int:
        started.append(k)
        time.sleep(0.05)
        return k

    for value in in_order_on_threads(job, list(range(40)), threads=2):
        if value == 1:
            break
    time.sleep(0.3)  # the workers notice the stop after their current job
    assert len(started) < 10


def test_torch_threads_limits_the_block_and_restores() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(before + 4):  # never raises the count
        assert torch.get_num_threads() == before


def test_chunks_run_in_the_callers_grad_mode_on_every_thread() -> None:
    """Torch keeps no_grad per thread: a chunk decoded under the caller's no_grad on a worker thread must not
    record gradients (training's validation reconstruction on two threads failed at .numpy() on a result)."""
    weight = torch.ones(3, requires_grad=True)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            parts = list(chunks_side_by_side(lambda k, start, stop: (weight * (k + 1), threading.get_ident()),
                                             total=8, size=2, on_cpu=True))
        assert all(ident != threading.get_ident() for _, ident in parts)  # on worker threads
        assert all(not part.requires_grad for part, _ in parts)
        assert [part.numpy().tolist() for part, _ in parts] == [[k + 1.0] * 3 for k in range(4)]
        with torch.enable_grad():  # and gradients where the caller records them
            parts = list(chunks_side_by_side(lambda k, start, stop: weight * (k + 1), total=4, size=2, on_cpu=True))
        assert all(part.requires_grad for part in parts)
    finally:
        torch.set_num_threads(before)
