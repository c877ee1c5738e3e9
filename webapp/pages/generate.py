"""Generate page: ask the generator for bilayers with a target property.

No model is shipped in this milestone: the page lists the model artifacts it finds
(folders under ``artifacts/`` holding a ``manifest.json``) and otherwise says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from vdwgen.paths import artifacts_dir

NO_MODEL_MESSAGE = (
    "No model is shipped yet — the generator arrives with the model issues; "
    "meanwhile browse the dataset."
)


def find_models(root: Path) -> list[Path]:
    """Model folders under ``root``: each holds a ``manifest.json``."""
    if not root.is_dir():
        return []
    return sorted(manifest.parent for manifest in root.glob("*/manifest.json"))


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a model folder, or None when it is not a readable JSON object."""
    try:
        data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


st.title("Generate bilayers")
st.write(
    "Ask for van der Waals bilayers with a target formation energy or formula; the "
    "generator proposes candidate crystals to filter and download."
)

models = find_models(artifacts_dir())
if not models:
    st.info(NO_MODEL_MESSAGE, icon=":material/info:")
    st.page_link("pages/dataset.py", label="Browse the dataset", icon=":material/table_chart:")
else:
    chosen = st.selectbox(
        "Model", models, format_func=lambda folder: folder.name, key="generate_model"
    )
    manifest = read_manifest(chosen)
    if manifest is None:
        st.warning(f"`{chosen / 'manifest.json'}` is not a readable JSON object.")
    else:
        st.json(manifest, expanded=False)
    st.info("Generation from this page arrives with the runtime engine.", icon=":material/info:")
