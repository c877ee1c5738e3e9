"""vdwgen web app: the entry point of `streamlit run webapp/app.py`.

A thin shell around the product: it sets up the page and the navigation, and each page
lives in ``webapp/views/``. The app reads only files (model artifacts, the dataset
Parquet) and never imports ``training``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts webapp/ on sys.path, not the checkout: make `vdwgen` importable
# when the project was not installed (`make app` installs it; a bare checkout may not).
try:
    import core  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover - depends on how the app is started
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import __version__

# An emoji favicon: the browser draws it from a local data: URL. A `:material/...:` page icon makes
# the browser fetch an SVG from fonts.gstatic.com, which fails offline.
PAGE_ICON = "🥞"
st.set_page_config(page_title="vdwgen - van der Waals bilayer design", page_icon=PAGE_ICON, layout="wide")

navigation = st.navigation(
    [
        st.Page("views/generate.py", title="Generate", icon=":material/auto_awesome:",
                default=True),
        st.Page("views/design.py", title="Design", icon=":material/tune:"),
        st.Page("views/candidates.py", title="Candidates", icon=":material/database:"),
        st.Page("views/model.py", title="Model", icon=":material/model_training:"),
        st.Page("views/dataset.py", title="Dataset", icon=":material/table_chart:"),
    ]
)
st.sidebar.caption(f"vdwgen {__version__} - inverse design of van der Waals bilayers")
navigation.run()
