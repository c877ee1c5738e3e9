"""The labelling steps of the dataset build, each a pure function of its inputs.

They run inside worker processes (one CHGNet + D3 :class:`Oracle` per process, one
thread each) and return plain JSON-able dicts, so the driver in
:mod:`training.data.build` can store every finished chunk and resume after a kill.

Protocol (see ``dataset_card.md``):

1. monolayer E(a): relax the heights of each layer at fixed in-plane lattice constant
   on a grid; the layer's relaxed lattice constant is the minimum of a cubic spline;
2. per pair: the common lattice constant a* minimises E_bottom(a) + E_top(a); both
   layers are relaxed (heights) at a*;
3. per configuration: rigid layers at a*, the gap between facing chalcogen planes
   scanned on a grid, a cubic spline's minimum taken, the energy evaluated there;
4. per flip class: the lowest-energy stacking relaxed at fixed cell from the scan optimum.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.optimize import minimize_scalar

from oracle.calculator import Oracle
from training.data.geometry import (
    LayerGeometry,
    bilayer_structure,
    initial_heights,
    interlayer_gap,
    monolayer_structure,
)
from training.data.recipe import BilayerConfig, Monolayer


@dataclass(frozen=True)
class Protocol:
    """Numerical settings of the labelling protocol (saved with the build)."""

    lattice_min: float = 3.35
    lattice_max: float = 4.55
    lattice_step: float = 0.05
    gap_min: float = 2.6
    gap_max: float = 4.6
    gap_step: float = 0.2
    fmax_layer: float = 0.01  # eV/A
    fmax_bilayer: float = 0.02  # eV/A
    max_relax_steps: int = 300

    def lattice_grid(self) -> np.ndarray:
        n = int(round((self.lattice_max - self.lattice_min) / self.lattice_step)) + 1
        return np.round(np.linspace(self.lattice_min, self.lattice_max, n), 6)

    def gap_grid(self) -> np.ndarray:
        n = int(round((self.gap_max - self.gap_min) / self.gap_step)) + 1
        return np.round(np.linspace(self.gap_min, self.gap_max, n), 6)

    def as_dict(self) -> dict:
        return asdict(self)


# -- step 1: monolayers -------------------------------------------------------------
def monolayer_curve(oracle: Oracle, layer: Monolayer, protocol: Protocol) -> dict:
    """E(a) of one layer on the lattice grid, its relaxed lattice constant and heights.

    Walks the grid upward from the middle and downward, starting each point from the
    neighbour's relaxed heights.
    """
    grid = protocol.lattice_grid()
    energies = np.zeros(len(grid))
    heights = np.zeros((len(grid), 4))
    mid = len(grid) // 2
    for order in (range(mid, len(grid)), range(mid - 1, -1, -1)):
        prev: tuple[float, ...] | None = None
        for i in order:
            start = prev if prev is not None else initial_heights(layer, float(grid[i]))
            h, e = _relax_layer(oracle, layer, float(grid[i]), start, protocol)
            energies[i], heights[i] = e, h
            prev = tuple(h)
    spline = CubicSpline(grid, energies)
    i0 = int(np.argmin(energies))
    lo, hi = grid[max(i0 - 1, 0)], grid[min(i0 + 1, len(grid) - 1)]
    a0 = float(minimize_scalar(spline, bounds=(lo, hi), method="bounded").x)
    h0, e0 = _relax_layer(oracle, layer, a0, tuple(heights[i0]), protocol)
    return {
        "name": layer.name,
        "grid": grid.tolist(),
        "energies": energies.tolist(),
        "heights": heights.tolist(),
        "a0": a0,
        "energy": e0,
        "heights0": list(h0),
        "minimum_inside_grid": bool(0 < i0 < len(grid) - 1),
    }


def _relax_layer(
    oracle: Oracle, layer: Monolayer, a: float, heights: tuple[float, ...], protocol: Protocol
) -> tuple[np.ndarray, float]:
    start = monolayer_structure(layer, LayerGeometry(a, tuple(heights)))  # type: ignore[arg-type]
    (res,) = oracle.relax_positions(
        [start], fmax=protocol.fmax_layer, max_steps=protocol.max_relax_steps
    )
    z = res.structure.cart_coords[:, 2]
    return z - z[0], res.energy


# -- step 2: pairs ------------------------------------------------------------------
def common_lattice_constant(curve_a: dict, curve_b: dict) -> float:
    """a* minimising the summed spline energies of two layers (between their own a0)."""
    grid = np.asarray(curve_a["grid"])
    total = CubicSpline(grid, np.asarray(curve_a["energies"]) + np.asarray(curve_b["energies"]))
    lo, hi = sorted((curve_a["a0"], curve_b["a0"]))
    if hi - lo < 1e-6:
        return float(lo)
    return float(minimize_scalar(total, bounds=(lo, hi), method="bounded").x)


def relax_pair_layers(
    oracle: Oracle, pairs: list[tuple[Monolayer, Monolayer, float, dict, dict]], protocol: Protocol
) -> list[dict]:
    """Relax both layers of every pair at the pair's a* (all in one FIRE batch)."""
    starts = []
    for bottom, top, a_star, curve_b, curve_t in pairs:
        for layer, curve in ((bottom, curve_b), (top, curve_t)):
            h = [float(np.interp(a_star, curve["grid"], np.asarray(curve["heights"])[:, k]))
                 for k in range(4)]
            starts.append(monolayer_structure(layer, LayerGeometry(a_star, tuple(h))))  # type: ignore[arg-type]
    results = oracle.relax_positions(
        starts, fmax=protocol.fmax_layer, max_steps=protocol.max_relax_steps
    )
    out = []
    for k, (bottom, top, a_star, _, _) in enumerate(pairs):
        rb, rt = results[2 * k], results[2 * k + 1]
        zb, zt = rb.structure.cart_coords[:, 2], rt.structure.cart_coords[:, 2]
        out.append({
            "bottom": bottom.name, "top": top.name, "a_star": a_star,
            "bottom_energy": rb.energy, "top_energy": rt.energy,
            "bottom_heights": (zb - zb[0]).tolist(), "top_heights": (zt - zt[0]).tolist(),
            "converged": bool(rb.converged and rt.converged),
        })
    return out


# -- step 3: rigid gap scan ------------------------------------------------------------
def stacked_heights(config: BilayerConfig, pair: dict) -> tuple[np.ndarray, np.ndarray]:
    """Heights (4,), (4,) of the bottom and top layers as stacked (flips applied)."""
    fc = config.flip_class
    b = LayerGeometry(pair["a_star"], tuple(pair["bottom_heights"]))  # type: ignore[arg-type]
    t = LayerGeometry(pair["a_star"], tuple(pair["top_heights"]))  # type: ignore[arg-type]
    return b.oriented(fc.bottom_flipped), t.oriented(fc.top_flipped)


def scan_gaps(
    oracle: Oracle, configs: list[BilayerConfig], pairs: list[dict], protocol: Protocol
) -> list[dict]:
    """Rigid-layer gap scan of each configuration and the energy at the fitted minimum.

    Args:
        configs: configurations to label.
        pairs: for each configuration, its pair record from :func:`relax_pair_layers`
            (layers relaxed at a*, in canonical orientation).
    """
    gaps = protocol.gap_grid()
    structures = []
    for cfg, pair in zip(configs, pairs):
        hb, ht = stacked_heights(cfg, pair)
        structures += [bilayer_structure(cfg, pair["a_star"], hb, ht, g) for g in gaps]
    energies = oracle.energies(structures).reshape(len(configs), len(gaps))
    fitted: list[float] = []
    edge: list[bool] = []
    for row in energies:
        i = int(np.argmin(row))
        if 0 < i < len(gaps) - 1:
            spline = CubicSpline(gaps, row)
            res = minimize_scalar(spline, bounds=(gaps[i - 1], gaps[i + 1]), method="bounded")
            fitted.append(float(res.x))
            edge.append(False)
        else:
            fitted.append(float(gaps[i]))
            edge.append(True)
    best = []
    for cfg, pair, g in zip(configs, pairs, fitted):
        hb, ht = stacked_heights(cfg, pair)
        best.append(bilayer_structure(cfg, pair["a_star"], hb, ht, g))
    e_best = oracle.energies(best)
    return [
        {"index": cfg.index, "scan_energies": row.tolist(), "gap": g, "energy": float(e),
         "gap_at_scan_edge": ed}
        for cfg, row, g, e, ed in zip(configs, energies, fitted, e_best, edge)
    ]


# -- step 4: fixed-cell relaxation -----------------------------------------------------
def relax_bilayers(
    oracle: Oracle, configs: list[BilayerConfig], pairs: list[dict], gaps: list[float],
    protocol: Protocol,
) -> list[dict]:
    """Relax atomic heights at fixed cell, starting from the scan optimum."""
    starts = []
    for cfg, pair, g in zip(configs, pairs, gaps):
        hb, ht = stacked_heights(cfg, pair)
        starts.append(bilayer_structure(cfg, pair["a_star"], hb, ht, g))
    results = oracle.relax_positions(
        starts, fmax=protocol.fmax_bilayer, max_steps=protocol.max_relax_steps
    )
    return [
        {"index": cfg.index, "energy": r.energy, "steps": r.steps, "converged": r.converged,
         "max_force": r.max_force, "cart_z": r.structure.cart_coords[:, 2].tolist(),
         "gap": interlayer_gap(r.structure)}
        for cfg, r in zip(configs, results)
    ]
