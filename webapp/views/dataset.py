"""Dataset page: browse the Janus III-VI bilayer dataset, or the dataset any served model was trained on.

The datasets: the Janus table (``bilayers.parquet`` in :func:`core.paths.dataset_dir`) when it is built,
and each distinct ``training_data.parquet`` that an exported model trained with ``vdwgen train --data``
carries (its crystals and split). Read with pandas (never through ``training``): counts, label ranges,
histograms, and a small filterable table. The Janus table keeps its own view (monolayers, stackings,
the histograms built with it); any other dataset gets the general one (elements, cell sizes, split parts,
the model's property with its unit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import streamlit as st

from core.manifest import ArtifactError, Manifest, read_manifest
from core.paths import artifacts_dir, dataset_dir
from serving.artifacts import find_models

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
JANUS = "Janus III–VI bilayers (shipped)"
# Columns of a model's dataset table that are structure, not labels.
STRUCTURE_COLUMNS = {"lattice", "species", "frac_coords", "id", "reduced_formula", "num_atoms", "formula"}


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


def model_datasets() -> dict[str, tuple[Path, Manifest]]:
    """Each distinct dataset table carried by an exported model: label -> (table, the first model's manifest)."""
    found: dict[str, tuple[Path, Manifest]] = {}
    seen: set[str] = set()
    for folder in find_models(artifacts_dir()):
        try:
            manifest = read_manifest(folder, verify=False)
        except ArtifactError:
            continue  # the Model and Generate pages name unreadable manifests
        data, path = manifest.training_data, manifest.carried_training_table
        if path is None or data.sha256 in seen:
            continue
        seen.add(data.sha256)
        found[f"{data.id.split(':')[0]} (trained {manifest.name})"] = (path, manifest)
    return found


@st.cache_data(show_spinner="Loading the dataset...")
def load_model_table(path: str, stamp: tuple[int, int]) -> pd.DataFrame:
    """A model's dataset as a display table: id, formula, atoms, elements, every scalar label, the split."""
    del stamp
    frame = pd.read_parquet(path)
    view = pd.DataFrame({"id": frame["id"], "reduced_formula": frame["reduced_formula"],
                         "num_atoms": frame["num_atoms"],
                         "elements": frame["species"].map(lambda species: " ".join(sorted(set(species))))})
    for column in frame.columns:
        if column not in STRUCTURE_COLUMNS and column not in view:
            view[column] = frame[column]
    return view


def show_model_dataset(df: pd.DataFrame, manifest: Manifest) -> None:
    """Counts, label ranges, the property's histogram and a filterable table of a model's dataset."""
    split = next((c for c in df.columns if c.startswith("split_")), None)
    elements = sorted({e for value in df["elements"] for e in value.split()})
    sizes = ", ".join(map(str, sorted(df["num_atoms"].unique())))
    counts = [("Crystals", f"{len(df):,}"), ("Formulas", f"{df['reduced_formula'].nunique():,}"),
              ("Elements", f"{len(elements)}"), ("Atoms per cell", sizes)]
    for column, (title, value) in zip(st.columns(len(counts)), counts, strict=True):
        column.metric(title, value)
    if split is not None:
        parts = df[split].value_counts()
        st.caption("Split: " + " · ".join(f"{part} {parts.get(part, 0):,}" for part in ("train", "val", "test"))
                   + f" (the model `{manifest.name}` learned from the train part)")
    st.caption("Elements: " + ", ".join(elements))
    prop = manifest.property
    labels = [c for c in df.columns if c not in ("id", "reduced_formula", "num_atoms", "elements", split)
              and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()]
    if labels:
        st.subheader("Label ranges")
        st.dataframe(pd.DataFrame([{"column": c, "unit": prop.unit if c == prop.name else "",
                                    "model property": "yes" if c == prop.name else "",
                                    "min": float(df[c].min()), "median": float(df[c].median()),
                                    "max": float(df[c].max())} for c in labels]),
                     hide_index=True, width="stretch")
    view = df
    if prop.name in df and df[prop.name].notna().any():
        values = df[prop.name].dropna().to_numpy(dtype=float)
        heights, edges = np.histogram(values, bins=40)
        st.subheader(f"{prop.label}: histogram")
        st.bar_chart(pd.DataFrame({prop.label: heights}, index=np.round((edges[:-1] + edges[1:]) / 2, 3)),
                     x_label=prop.label, y_label="crystals")
        lo, hi = float(values.min()), float(values.max())
        if lo < hi:
            low, high = st.slider(prop.label, min_value=lo, max_value=hi, value=(lo, hi),
                                  step=(hi - lo) / 1000, format="%.3f", key="dataset_property")
            view = view[view[prop.name].between(low, high)]
    st.subheader("Crystals")
    element = st.selectbox("Containing element", ["All", *elements], key="dataset_element")
    if element != "All":
        view = view[view["elements"].str.split().map(lambda names: element in names)]
    st.caption(f"{len(view):,} of {len(df):,} crystals")
    st.dataframe(view, hide_index=True, width="stretch")


folder = dataset_dir()
table = folder / TABLE_NAME
others = model_datasets()
choices = ([JANUS] if table.is_file() else []) + list(others)

st.title("Datasets")
if not choices:
    st.info(
        f"The dataset is not built yet: no `{TABLE_NAME}` in `{folder}`. "
        "Build it with `make dataset` (or `vdwgen dataset build --workers 2`).",
        icon=":material/info:",
    )
    st.stop()
choice = st.selectbox("Dataset", choices, key="dataset_choice",
                      help="The Janus bilayers, and the dataset of every served model trained on its own data.")

if choice != JANUS:
    path, manifest = others[choice]
    stat = path.stat()
    show_model_dataset(load_model_table(str(path), (stat.st_mtime_ns, stat.st_size)), manifest)
    st.stop()

st.header("Janus III–VI bilayer dataset")

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
