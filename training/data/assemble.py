"""Turn the stored build results into the dataset table: structures, identifiers, labels, splits.

Labels (energies from CHGNet + D3, see :mod:`oracle.calculator`):

- ``formation_energy_per_atom`` (eV/atom): ``(E - sum_i n_i mu_i) / N`` against the relaxed
  elemental references; MP2020-compatible (CHGNet's native convention, anion corrections
  included);
- ``formation_energy_per_atom_raw`` (eV/atom): the same with the MP2020 anion corrections
  removed (raw-PBE-like);
- ``interlayer_energy_per_atom`` (eV/atom): ``(E - E_bottom(a*) - E_top(a*)) / N`` against
  the two layers relaxed at the common lattice constant;
- ``binding_energy_per_area`` (meV/A^2): the same energy difference per cell area;
- ``strain_energy_per_atom`` (eV/atom): ``(E_bottom(a*) - E_bottom(a0) + E_top(a*) - E_top(a0)) / N``,
  the cost of bringing both free layers to the common lattice constant;
- ``interlayer_gap`` (A): vertical distance between the facing chalcogen planes;
- ``a_common`` (A): the shared in-plane lattice constant a*.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from oracle.convention import formation_energy
from training.data.geometry import bilayer_structure
from training.data.recipe import BilayerConfig
from training.data.references import anion_corrections
from training.data.splits import grouped_split, random_split
from training.data.stages import Protocol, stacked_heights

TABLE_NAME = "bilayers.parquet"


def assemble_table(
    out: Path,
    configs: list[BilayerConfig],
    curves: dict[str, dict],
    pair_of: list[dict],
    scans: dict[int, dict],
    relaxed: dict[int, dict],
    refs: dict[str, dict],
    duplicates: dict[int, int],
    protocol: Protocol,
    seed: int = 42,
) -> Path:
    """Write ``bilayers.parquet`` under ``out`` and return its path."""
    from training.data.crystal import write_parquet

    corrections = anion_corrections()
    mu = {el: r["energy_per_atom"] for el, r in refs.items()}
    rows = []
    for cfg, pair in zip(configs, pair_of):
        scan = scans[cfg.index]
        rel = relaxed.get(cfg.index)
        if rel is not None:
            z = np.asarray(rel["cart_z"])
            z = z - z[0]
            structure = bilayer_structure(cfg, pair["a_star"], z[:4], z[4:], float(z[4] - z[3]))
            energy = rel["energy"]
        else:
            hb, ht = stacked_heights(cfg, pair)
            structure = bilayer_structure(cfg, pair["a_star"], hb, ht, scan["gap"])
            energy = scan["energy"]
        species = [str(sp) for sp in structure.species]
        n = len(species)
        comp = Composition("".join(species))
        e_layers = pair["bottom_energy"] + pair["top_energy"]
        area = float(np.linalg.norm(np.cross(structure.lattice.matrix[0], structure.lattice.matrix[1])))
        e_form = formation_energy(energy, structure, mu)
        correction = sum(corrections.get(el, 0.0) for el in species) / n
        fc = cfg.flip_class
        dup = duplicates.get(cfg.index)
        z = structure.cart_coords[:, 2]
        rows.append({
            "id": cfg.id,
            "lattice": structure.lattice.matrix.reshape(-1).tolist(),
            "species": species,
            "frac_coords": structure.frac_coords.reshape(-1).tolist(),
            "formula": "".join(f"{el}{int(k) if k > 1 else ''}"
                               for el, k in sorted(comp.get_el_amt_dict().items())),
            "reduced_formula": comp.reduced_formula,
            "num_atoms": n,
            "bottom": fc.bottom.name,
            "top": fc.top.name,
            "bottom_flipped": fc.bottom_flipped,
            "top_flipped": fc.top_flipped,
            "flip_class": fc.index,
            "flip_class_name": fc.name,
            "stacking": cfg.stacking,
            "rotation_deg": cfg.rotation_deg,
            "shift": cfg.shift,
            "registry": cfg.registry(),
            "homo_pair": fc.bottom == fc.top,
            "symmetry_duplicate_of": configs[dup].id if dup is not None else None,
            "relaxed": rel is not None,
            "relax_steps": int(rel["steps"]) if rel is not None else 0,
            "relax_converged": bool(rel["converged"]) if rel is not None else False,
            "gap_at_scan_edge": bool(scan["gap_at_scan_edge"]),
            "a_common": float(pair["a_star"]),
            "strain_bottom": float(pair["a_star"] / curves[fc.bottom.name]["a0"] - 1),
            "strain_top": float(pair["a_star"] / curves[fc.top.name]["a0"] - 1),
            "interlayer_gap": float(z[4:].min() - z[:4].max()),
            "interlayer_gap_scan": float(scan["gap"]),
            "energy": float(energy),
            "energy_per_atom": float(energy / n),
            "energy_scan": float(scan["energy"]),
            "formation_energy_per_atom": float(e_form),
            "formation_energy_per_atom_raw": float(e_form - correction),
            "interlayer_energy_per_atom": float((energy - e_layers) / n),
            "binding_energy_per_area": float((energy - e_layers) / area * 1000.0),
            "strain_energy_per_atom": float(
                (e_layers - curves[fc.bottom.name]["energy"] - curves[fc.top.name]["energy"]) / n
            ),
        })
    df = pd.DataFrame(rows)
    df["split_random"] = random_split(df, seed=seed)
    df["split_pair"] = grouped_split(df, seed=seed)
    path = Path(out) / TABLE_NAME
    write_parquet(df, path)
    return path
