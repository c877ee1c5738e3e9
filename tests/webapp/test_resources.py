"""The app's process-wide resources: the oracle worker pool is replaced once it lost a worker."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ProcessPoolExecutor

import pytest
import streamlit as st

import services.verification
from services.verification import usable
from webapp.resources import relax_workers


def test_a_relax_pool_that_lost_a_worker_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[ProcessPoolExecutor] = []

    def small_pool(workers: int) -> ProcessPoolExecutor:  # the real one loads CHGNet in every worker
        pool = ProcessPoolExecutor(workers)
        pool.submit(os.getpid).result()
        started.append(pool)
        return pool

    monkeypatch.setattr(services.verification, "relax_pool", small_pool)
    st.cache_resource.clear()
    try:
        first = relax_workers()
        assert relax_workers() is first and usable(first)  # one pool per app process
        for pid in list(first._processes):  # noqa: SLF001 - the test plays the out-of-memory killer
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(Exception):  # noqa: B017, PT011 - the pool notices its dead worker on the next job
            first.submit(os.getpid).result(timeout=30)
        second = relax_workers()
        assert second is not first and usable(second) and second.submit(os.getpid).result(timeout=30) > 0
        assert len(started) == 2
    finally:
        for pool in started:
            pool.shutdown(wait=False, cancel_futures=True)
        st.cache_resource.clear()
