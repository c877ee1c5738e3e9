"""The dataset card (``dataset_card.md``) and label histograms written after a build."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.data.references import anion_corrections
from training.data.stages import Protocol

PLOTS = {
    "formation_energy_per_atom": ("Formation energy (eV/atom, MP2020-compatible)", "hist_formation_energy.png"),
    "interlayer_energy_per_atom": ("Interlayer energy (meV/atom)", "hist_interlayer_energy.png"),
    "interlayer_gap": ("Interlayer gap between facing chalcogen planes (Å)", "hist_interlayer_gap.png"),
}


def write_plots(df: pd.DataFrame, out: Path) -> list[Path]:
    """One histogram per headline label; relaxed (lowest-stacking) rows highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for column, (label, name) in PLOTS.items():
        values = df[column].to_numpy() * (1000.0 if "interlayer_energy" in column else 1.0)
        relaxed = df["relaxed"].to_numpy()
        fig, ax = plt.subplots(figsize=(6.0, 3.6), dpi=110)
        bins = np.histogram_bin_edges(values, bins=60)
        ax.hist(values, bins=bins, color="#4C72B0", alpha=0.85, label=f"all configurations ({len(values):,})")
        ax.hist(values[relaxed], bins=bins, color="#DD8452", alpha=0.85,
                label=f"relaxed lowest stacking per flip class ({int(relaxed.sum()):,})")
        ax.set_xlabel(label)
        ax.set_ylabel("count")
        ax.set_title(f"Janus III–VI bilayers (CHGNet + D3): {column}", fontsize=9)
        ax.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        path = out / name
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def _stats(df: pd.DataFrame, column: str, unit: str, scale: float = 1.0, fmt: str = ".3f") -> str:
    v = df[column].to_numpy() * scale
    q = np.percentile(v, [5, 50, 95])
    return (f"| `{column}` ({unit}) | {v.min():{fmt}} | {q[0]:{fmt}} | {q[1]:{fmt}} | {v.mean():{fmt}} | "
            f"{q[2]:{fmt}} | {v.max():{fmt}} |")


def _counts(series: pd.Series) -> str:
    counts = series.value_counts()
    return ", ".join(f"{part} {counts.get(part, 0):,}" for part in ("train", "val", "test"))


def write_card_and_plots(
    out: Path, table_path: Path, refs: dict[str, dict], curves: dict[str, dict],
    protocol: Protocol, timings: dict[str, float], options: Any,
) -> Path:
    """Write ``dataset_card.md``, the PNG histograms, ``monolayers.json`` and ``references.json``."""
    import json
    from importlib.metadata import version

    df = pd.read_parquet(table_path)
    write_plots(df, out)
    (out / "references.json").write_text(json.dumps(
        {el: {k: v for k, v in r.items() if k != "structure"} | {"structure": r["structure"]}
         for el, r in refs.items()}, indent=1))
    (out / "monolayers.json").write_text(json.dumps(curves, indent=1))
    versions = {p: version(p) for p in ("chgnet", "dftd3", "pymatgen", "torch", "numpy", "scipy", "ase")}
    corr = anion_corrections()
    n_dup = int(df["symmetry_duplicate_of"].notna().sum())
    relaxed = df[df["relaxed"]]
    scan_shift = (relaxed["energy"] - relaxed["energy_scan"]) / relaxed["num_atoms"] * 1000
    gap_shift = (relaxed["interlayer_gap"] - relaxed["interlayer_gap_scan"]).abs()
    a0 = {name: c["a0"] for name, c in curves.items()}
    steps = {k: v for k, v in timings.items() if k != "workers"}
    lines = [
        "# Janus III–VI bilayers (J2DH recipe), labelled with CHGNet + DFT-D3",
        "",
        "Rebuilt from the recipe of the J2DH-8 data set used by ConditionCDVAE+ (the original DFT data",
        "is not public). Every structure and label here was computed by `vdwgen dataset build`.",
        "",
        "## Contents",
        f"- `bilayers.parquet`: {len(df):,} bilayer configurations ({df['flip_class'].nunique():,} flip classes "
        f"× 6 stackings) from {len(curves)} monolayers; 8 atoms per cell, hexagonal, "
        "20 Å of vacuum along c. Columns: `id`, `lattice` (3×3 row vectors, Å), `species`, "
        "`frac_coords` (N×3, row-major), identifiers, labels, splits.",
        f"- {n_dup} configurations repeat an earlier one by symmetry (homo pairs); they are kept, flagged in "
        "`symmetry_duplicate_of`, and always share the split of the crystal they repeat.",
        "- `monolayers.json`: E(a) curves, relaxed lattice constants and heights of the monolayers;",
        "  `references.json`: the relaxed elemental references.",
        "- Histograms: `hist_formation_energy.png`, `hist_interlayer_energy.png`, `hist_interlayer_gap.png`.",
        "",
        "## Physics",
        f"- Potential: CHGNet {versions['chgnet']} package, pretrained weights v0.3.0 shipped in the wheel "
        "(no download).",
        f"- Dispersion: DFT-D3 (`dftd3` {versions['dftd3']}), zero damping, PBE parameters "
        f"s6 = 1.0, rs6 = 1.217, s8 = 0.722, rs8 = 1.0, alpha = 14, no three-body "
        "term; slabs periodic in-plane only.",
        "- Elemental references, fully relaxed (cell + positions, FIRE, fmax 0.01 eV/Å): "
        + ", ".join(f"{el} {r['energy_per_atom']:.4f} eV/atom ({r['num_atoms']}-atom cell)"
                    for el, r in sorted(refs.items())) + ".",
        "",
        "## Protocol",
        f"1. Monolayers: atomic heights relaxed (FIRE, fmax {protocol.fmax_layer} eV/Å) at fixed in-plane "
        f"lattice constant on a grid {protocol.lattice_min}–{protocol.lattice_max} Å, step "
        f"{protocol.lattice_step} Å; the relaxed lattice constant is the minimum of a cubic spline of E(a). "
        f"a0 spans {min(a0.values()):.3f}–{max(a0.values()):.3f} Å.",
        "2. Pairs: the common lattice constant a* minimises E_bottom(a) + E_top(a); both layers are relaxed "
        "(heights) at a*.",
        f"3. All configurations: rigid layers at a*, the gap between facing chalcogen planes scanned "
        f"{protocol.gap_min}–{protocol.gap_max} Å in {protocol.gap_step} Å steps, a cubic spline's minimum "
        f"taken and the energy evaluated there ({int(df['gap_at_scan_edge'].sum())} minima at the scan edge).",
        f"4. The lowest-energy stacking of every flip class ({len(relaxed):,} configurations): atomic heights "
        f"relaxed at fixed cell from the scan optimum (FIRE, fmax {protocol.fmax_bilayer} eV/Å, at most "
        f"{protocol.max_relax_steps} steps; {int(relaxed['relax_converged'].sum()):,} converged, median "
        f"{int(relaxed['relax_steps'].median()) if len(relaxed) else 0} steps). Relaxation lowered the energy "
        f"by a median {float(np.median(-scan_shift)) if len(relaxed) else 0:.3f} meV/atom (max "
        f"{float(np.max(-scan_shift)) if len(relaxed) else 0:.3f}) and moved the gap by a median "
        f"{float(np.median(gap_shift)) if len(relaxed) else 0:.3f} Å. "
        "Rows carry `relaxed`; `energy_scan` and `interlayer_gap_scan` keep the scan values for every row.",
        "",
        "## Energy convention",
        "`formation_energy_per_atom` is **MP2020-compatible**: CHGNet reproduces Materials Project energies "
        "with the MP2020 anion corrections, so E(bilayer) − Σ n_i μ_i with oracle-relaxed elemental μ_i "
        "already includes them. `formation_energy_per_atom_raw` removes the corrections "
        f"(S {corr['S']}, Se {corr['Se']}, Te {corr['Te']} eV per anion atom, from pymatgen's "
        "MP2020Compatibility.yaml) for a raw-PBE-like value. Interlayer and binding energies are "
        "differences of like terms and are the same in both conventions.",
        "",
        "## Label statistics",
        "| label | min | 5 % | median | mean | 95 % | max |",
        "|---|---|---|---|---|---|---|",
        _stats(df, "formation_energy_per_atom", "eV/atom"),
        _stats(df, "formation_energy_per_atom_raw", "eV/atom"),
        _stats(df, "interlayer_energy_per_atom", "meV/atom", 1000.0, ".2f"),
        _stats(df, "strain_energy_per_atom", "meV/atom", 1000.0, ".2f"),
        _stats(df, "binding_energy_per_area", "meV/Å²", 1.0, ".2f"),
        _stats(df, "interlayer_gap", "Å"),
        _stats(df, "a_common", "Å"),
        "",
        f"Positive interlayer energies: {int((df['interlayer_energy_per_atom'] > 0).sum())} rows "
        f"({100 * float((df['interlayer_energy_per_atom'] > 0).mean()):.1f} %). "
        "`strain_energy_per_atom` is the cost of straining both layers from their own a0 to a*; "
        "interlayer + strain energy is the bilayer's energy against the two free monolayers "
        f"(positive for {int(((df['interlayer_energy_per_atom'] + df['strain_energy_per_atom']) > 0).sum()):,} rows).",
        "",
        "## Splits",
        "- `split_random`: the paper's random 6:2:2 split, seed 42 (symmetry duplicates follow their crystal): "
        + _counts(df["split_random"]) + ".",
        "- `split_pair`: grouped by monolayer pair (no pair in two parts), seed 42: "
        + _counts(df["split_pair"]) + ".",
        "",
        "## Provenance",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; Python {platform.python_version()}.",
        f"- Build: {timings.get('workers', options.workers)} worker processes, one thread each; "
        "step times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in steps.items())
        + f"; total {sum(steps.values()) / 60:.1f} min on this machine (2 CPU cores).",
        "- Rebuild: `make dataset` (= `vdwgen dataset build --workers 2`); interrupted builds resume from "
        "`data/janus_iii_vi/_work/`; `--fresh` starts over.",
        "",
    ]
    path = out / "dataset_card.md"
    path.write_text("\n".join(lines))
    return path
