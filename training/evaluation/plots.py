"""The report's figures (matplotlib, Agg backend, small PNGs)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 90


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def bulk_window(values: Sequence[float], pad: float = 0.05) -> tuple[float, float]:
    """An axis range that shows the bulk of ``values``: quartiles widened by three interquartile
    ranges, never wider than the data. A few crystals the oracle finds far off (e.g. atoms
    pressed together that a fixed-cell relaxation cannot separate) would otherwise squeeze
    everything else into one bin; they are counted as off-scale instead."""
    v = np.asarray(values, dtype=float)
    q1, q3 = np.quantile(v, [0.25, 0.75])
    spread = max(q3 - q1, pad)
    return max(float(v.min()), q1 - 3 * spread) - pad, min(float(v.max()), q3 + 3 * spread) + pad


def _off_scale(ax: plt.Axes, values: np.ndarray, window: tuple[float, float]) -> None:
    outside = int(np.sum((values < window[0]) | (values > window[1])))
    if outside:
        ax.text(0.98, 0.5, f"{outside} off-scale", transform=ax.transAxes, ha="right", fontsize=7, color="0.3")


def target_histograms(conditioned: Mapping[str, tuple[float, Sequence[float]]], unconditional: Sequence[float],
                      path: Path) -> Path:
    """Oracle formation energies for each target (paper Fig. 3b analogue) over the unconditional ones.

    Args:
        conditioned: label -> (target, oracle energies of the crystals generated for it).
        unconditional: oracle energies of unconditional samples.
    """
    n = len(conditioned)
    fig, axes = plt.subplots(1, n, figsize=(4.0 * n, 3.2), sharey=False, squeeze=False)
    every = np.concatenate([np.asarray(v, dtype=float) for _, v in conditioned.values()] + [np.asarray(unconditional)])
    window = bulk_window(every)
    bins = np.linspace(*window, 40)
    for ax, (label, (target, values)) in zip(axes[0], conditioned.items(), strict=True):
        ax.hist(unconditional, bins=bins, density=True, color="0.75", label="unconditional")
        ax.hist(values, bins=bins, density=True, alpha=0.75, color="tab:blue", label="conditioned")
        ax.axvline(target, color="tab:red", lw=1.5, label=f"target {target:.3f}")
        ax.axvspan(target - 0.05, target + 0.05, color="tab:red", alpha=0.08)
        ax.set_title(f"{label}: oracle E_f")
        ax.set_xlabel("formation energy (eV/atom, CHGNet + D3)")
        _off_scale(ax, np.asarray(values, dtype=float), window)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("density")
    return _save(fig, path)


def predicted_vs_oracle(predicted: Sequence[float], oracle: Sequence[float], path: Path) -> Path:
    """The model's predicted formation energy against the oracle's, one point per crystal."""
    p, o = np.asarray(predicted, dtype=float), np.asarray(oracle, dtype=float)
    fig, ax = plt.subplots(figsize=(4.0, 3.8))
    ax.scatter(o, p, s=6, alpha=0.6)
    lo, hi = bulk_window(np.concatenate([p, o]))
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    _off_scale(ax, o, (lo, hi))
    ax.set_xlabel("oracle E_f (eV/atom)")
    ax.set_ylabel("predicted E_f (eV/atom)")
    error = np.abs(p - o)
    ax.set_title(f"prediction vs oracle\n(median |error| {np.median(error):.3f}, mean {np.mean(error):.3f})",
                 fontsize=9)
    return _save(fig, path)


def latent_maps(maps: Mapping[str, np.ndarray], values: np.ndarray, formulas: Sequence[str], path: Path,
                label: str = "E_f (eV/atom)", top: int = 8) -> Path:
    """t-SNE maps (one row per latent kind), coloured by the property and by formula.

    Args:
        maps: title -> (n, 2) embedding.
        values: (n,) property labels; ``label`` names them (with the unit).
        formulas: (n,) reduced formulas; the ``top`` most frequent get a colour, others grey.
    """
    common = [f for f, _ in Counter(formulas).most_common(top)]
    colour = {f: plt.cm.tab10(i) for i, f in enumerate(common)}
    rows = len(maps)
    fig, axes = plt.subplots(rows, 2, figsize=(9.0, 4.0 * rows), squeeze=False)
    for r, (title, xy) in enumerate(maps.items()):
        ax = axes[r][0]
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=4, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=label)
        ax.set_title(f"{title}: {label.split(' (')[0]}")
        ax = axes[r][1]
        grey = np.array([f not in colour for f in formulas])
        ax.scatter(xy[grey, 0], xy[grey, 1], s=3, color="0.85")
        for f in common:
            sel = np.array([g == f for g in formulas])
            ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=colour[f], label=f)
        ax.set_title(f"{title}: formula ({top} most common)")
        ax.legend(fontsize=6, markerscale=2, loc="best")
        for a in axes[r]:
            a.set_xticks([])
            a.set_yticks([])
    return _save(fig, path)


def property_histograms(values: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> Path:
    """Density and number-of-elements distributions per set (the EMD inputs); a set without a valid
    crystal is named in the legend as empty."""
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.2))
    for ax, key, unit in ((axes[0], "density", "g/cm^3"), (axes[1], "n_elements", "")):
        data = {name: np.asarray(v[key], dtype=float) for name, v in values.items() if len(v[key])}
        for name in (name for name, v in values.items() if not len(v[key])):
            ax.plot([], [], lw=0, label=f"{name}: no valid crystal")
        if not data:
            ax.set_xlabel(f"{key} {unit}".strip())
            ax.legend(fontsize=7)
            continue
        if key == "n_elements":
            bins = np.arange(0.5, max(max(d.max() for d in data.values()), 4) + 1.5)
        else:
            every = np.concatenate(list(data.values()))
            bins = np.linspace(np.quantile(every, 0.005), np.quantile(every, 0.995), 40)
        for name, d in data.items():
            ax.hist(d, bins=bins, density=True, histtype="step", lw=1.5, label=name)
        ax.set_xlabel(f"{key} {unit}".strip())
        ax.legend(fontsize=7)
    return _save(fig, path)


def learning_curve(runs: Mapping[str, Sequence[Mapping[str, str]]], path: Path) -> Path:
    """Stage-1 learning curves of one or more runs (their ``metrics.csv`` rows) against training hours:
    training and validation loss, and the validation reconstruction the loop logs every few epochs
    (match rate and share in the right layer order)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, (name, rows) in enumerate(runs.items()):
        colour = f"C{k}"
        hours = np.cumsum([float(r["seconds"]) for r in rows]) / 3600
        left.plot(hours, [float(r["train_loss"]) for r in rows], color=colour, alpha=0.45, lw=1,
                  label=f"{name}: training")
        left.plot(hours, [float(r["val_loss"]) for r in rows], color=colour, lw=1.6, label=f"{name}: validation")
        logged = [(h, r) for h, r in zip(hours, rows, strict=True) if r.get("val_match_rate", "") not in ("", None)]
        if logged:
            at = [h for h, _ in logged]
            right.plot(at, [100 * float(r["val_match_rate"]) for _, r in logged], "o-", color=colour, ms=3,
                       label=f"{name}: match rate")
            shares = [(h, r["val_motif_share"]) for h, r in logged if r.get("val_motif_share") not in ("", "nan")]
            if shares:
                right.plot([h for h, _ in shares], [100 * float(v) for _, v in shares], "s--", color=colour, ms=3,
                           alpha=0.6, label=f"{name}: layer order right")
    left.set_xlabel("training hours (stage 1)")
    left.set_ylabel("loss (sum of weighted terms)")
    left.legend(fontsize=7)
    right.set_xlabel("training hours (stage 1)")
    right.set_ylabel("validation reconstruction (%)")
    right.set_ylim(0, 100)
    if right.lines:
        right.legend(fontsize=7)
    return _save(fig, path)
