"""Process-wide resources of the app, loaded once (``st.cache_resource``)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import streamlit as st

from store.database import Store, default_db_path, open_store


@st.cache_resource(show_spinner="Opening the candidate store...")
def _store(path: str) -> Store:
    return open_store(path)


def candidate_store() -> Store:
    """The candidate store at ``VDWGEN_DB`` or ``<data dir>/candidates.duckdb`` (one per process)."""
    return _store(str(default_db_path()))


RELAX_WORKERS = 1
"""Oracle worker processes of the app: one core's worth of relaxation, the other core for the page and decoding."""


@st.cache_resource(show_spinner=False)
def _relax_pool() -> ProcessPoolExecutor:
    from services.verification import relax_pool

    return relax_pool(RELAX_WORKERS)


def relax_workers() -> ProcessPoolExecutor:
    """The app's pool of oracle worker processes (:func:`services.verification.relax_pool`), started once per app
    process (each worker loads CHGNet once); a pool that lost a worker (killed, out of memory) is replaced, so one
    dead worker fails one run's relaxation, not every later one."""
    from services.verification import usable

    pool = _relax_pool()
    if not usable(pool):
        pool.shutdown(wait=False, cancel_futures=True)
        _relax_pool.clear()
        pool = _relax_pool()
    return pool
