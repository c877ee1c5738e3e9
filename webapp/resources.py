"""Process-wide resources of the app, loaded once (``st.cache_resource``)."""

from __future__ import annotations

import streamlit as st

from store.database import Store, default_db_path, open_store


@st.cache_resource(show_spinner="Opening the candidate store...")
def _store(path: str) -> Store:
    return open_store(path)


def candidate_store() -> Store:
    """The candidate store at ``VDWGEN_DB`` or ``<data dir>/candidates.duckdb`` (one per process)."""
    return _store(str(default_db_path()))
