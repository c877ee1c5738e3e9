"""Dataset page: browse the Janus III-VI bilayer dataset.

Reads ``bilayers.parquet`` with pandas (never through ``training``), shows counts, label
ranges, the histograms built with the dataset, and a small filterable table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import streamlit as st

from core.paths import dataset_dir

TABLE_NAME = "bilayers.parquet"
# Shown in the table when present, in this order.
TABLE_COLUMNS = [
    "id", "formula", "reduced_formula", "bottom", "top", "bottom_flipped", "top_flipped",
    "stacking", "rotation_deg", "shift", "flip_class", "symmetry_duplicate_of", "relaxed",
    "a_common", "interlayer_gap", "formation_energy_per_atom", "formation_energy_per_atom_raw",
    "interlayer_energy_per_atom", "binding_energy_per_area", "energy_per_atom",
]
# Labels whose range is shown as a metric: column -> (title, unit, scale, digits).
LABEL_RANGES = {
    "formation_energy_per_atom": ("Formation energy", "eV/atom", 1.0, 3),
    "interlayer_energy_per_atom": ("Interlayer energy", "meV/atom", 1000.0, 1),
    "binding_energy_per_area": ("Binding energy", "meV/Å²", 1.0, 1),
    "interlayer_gap": ("Interlayer gap", "Å", 1.0, 2),
    "a_common": ("Lattice constant", "Å", 1.0, 3),
}
EXTRA_COLUMNS = ["split_random", "split_pair"]


@st.cache_data(show_spinner="Loading the dataset...")
def load_table(path: str, stamp: tuple[int, int]) -> pd.DataFrame:
    """The displayable columns of the dataset; ``stamp`` (mtime, size) renews the cache
    when the file is rebuilt."""
    del stamp
    present = set(pq.read_schema(path).names)
    wanted = [c for c in TABLE_COLUMNS + EXTRA_COLUMNS if c in present]
    return pd.read_parquet(path, columns=wanted or None)


def monolayer_names(df: pd.DataFrame) -> list[str]:
    """The monolayers that appear as bottom or top layer."""
    names: set[str] = set()
    for column in ("bottom", "top"):
        if column in df:
            names.update(str(v) for v in df[column].dropna().unique())
    return sorted(names)


def show_counts(df: pd.DataFrame) -> None:
    counts = [("Configurations", f"{len(df):,}")]
    monolayers = monolayer_names(df)
    if monolayers:
        counts.append(("Monolayers", f"{len(monolayers):,}"))
    if "flip_class" in df:
        counts.append(("Flip classes", f"{df['flip_class'].nunique():,}"))
    if "relaxed" in df:
        counts.append(("Relaxed", f"{int(df['relaxed'].sum()):,}"))
    for column, (title, value) in zip(st.columns(len(counts)), counts, strict=True):
        column.metric(title, value)


def show_label_ranges(df: pd.DataFrame) -> None:
    """A small table: label, unit, min, median, max (metrics truncate long ranges)."""
    rows = []
    for name, (title, unit, scale, digits) in LABEL_RANGES.items():
        if name in df and pd.api.types.is_numeric_dtype(df[name]) and df[name].notna().any():
            values = df[name] * scale
            rows.append({"label": title, "unit": unit, "column": name,
                         "min": round(float(values.min()), digits),
                         "median": round(float(values.median()), digits),
                         "max": round(float(values.max()), digits)})
    if not rows:
        return
    st.subheader("Label ranges")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def show_histograms(folder: Path) -> None:
    """Each histogram at its own pixel width (the dataset build writes 660 px PNGs), as many per row
    as fit: side by side on a wide screen, one under the other on a narrow one. Squeezed into one
    row of columns they shrank to thumbnails with unreadable labels."""
    pictures = sorted(folder.glob("*.png"))
    if not pictures:
        return
    st.subheader("Histograms")
    st.image([str(p) for p in pictures], caption=[p.stem.replace("_", " ") for p in pictures], width="content")


def show_table(df: pd.DataFrame) -> None:
    st.subheader("Configurations")
    view = df
    monolayers = monolayer_names(df)
    if monolayers:
        choice = st.selectbox("Monolayer (bottom or top)", ["All", *monolayers],
                              key="dataset_monolayer")
        if choice != "All":
            mask = pd.Series(False, index=view.index)
            for column in ("bottom", "top"):
                if column in view:
                    mask |= view[column] == choice
            view = view[mask]
    energy = "formation_energy_per_atom"
    if energy in df and pd.api.types.is_numeric_dtype(df[energy]) and df[energy].notna().any():
        lo, hi = float(df[energy].min()), float(df[energy].max())
        if lo < hi:
            low, high = st.slider("Formation energy (eV/atom)", min_value=lo, max_value=hi,
                                  value=(lo, hi), step=0.001, format="%.3f",
                                  key="dataset_formation_energy")
            view = view[view[energy].between(low, high)]
    columns = [c for c in TABLE_COLUMNS if c in view] or list(view.columns)
    st.caption(f"{len(view):,} of {len(df):,} configurations")
    st.dataframe(view[columns], hide_index=True, width="stretch")


folder = dataset_dir()
table = folder / TABLE_NAME

st.title("Janus III–VI bilayer dataset")
if not table.is_file():
    st.info(
        f"The dataset is not built yet: no `{TABLE_NAME}` in `{folder}`. "
        "Build it with `make dataset` (or `vdwgen dataset build --workers 2`).",
        icon=":material/info:",
    )
    st.stop()

info = table.stat()
try:
    data = load_table(str(table), (info.st_mtime_ns, info.st_size))
except Exception as exc:  # a half-written or foreign file: say so instead of crashing
    st.error(f"Could not read `{table}`: {exc}")
    st.stop()

show_counts(data)
show_label_ranges(data)
show_histograms(folder)
show_table(data)
card = folder / "dataset_card.md"
if card.is_file():
    with st.expander("Dataset card"):
        st.markdown(card.read_text(encoding="utf-8"))
