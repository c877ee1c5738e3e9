"""vdwgen web app: the entry point of `streamlit run webapp/app.py`.

A thin shell around the product: it sets up the page and the navigation, and each page
lives in ``webapp/pages/``. The app reads only files (model artifacts, the dataset
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

st.set_page_config(
    page_title="vdwgen - van der Waals bilayer design", page_icon=":material/layers:", layout="wide"
)

navigation = st.navigation(
    [
        st.Page("pages/generate.py", title="Generate", icon=":material/auto_awesome:",
                default=True),
        st.Page("pages/candidates.py", title="Candidates", icon=":material/database:"),
        st.Page("pages/model.py", title="Model", icon=":material/model_training:"),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/table_chart:"),
    ]
)
st.sidebar.caption(f"vdwgen {__version__} - inverse design of van der Waals bilayers")
navigation.run()
