"""The dataset's formation-energy convention under the oracle.

``E_f = (E_total - sum_i mu[el_i]) / N``, with ``mu`` the energy per atom of each element's
relaxed ground state under the same oracle, stored in the dataset's ``references.json``.
CHGNet learned MP2020-corrected energies, so ``E_f`` is MP2020-compatible, exactly like the
dataset's ``formation_energy_per_atom`` label. The dataset build, the evaluation, the
oracle check and the app all use these two functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from pymatgen.core import Structure

from oracle.shared import OracleError

REFERENCES_FILE = "references.json"
"""The dataset's elemental references: element -> {"energy_per_atom": eV, ...}."""


def load_references(dataset_dir: Path) -> dict[str, float]:
    """Element -> energy per atom (eV) of its relaxed ground state, from the dataset's references.json."""
    path = Path(dataset_dir) / REFERENCES_FILE
    if not path.is_file():
        raise OracleError(
            f"no elemental references at {path}: the oracle's formation energy needs the dataset's "
            f"{REFERENCES_FILE} (build the dataset with `vdwgen dataset build`, or point VDWGEN_DATASET_DIR "
            "at a built one)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        references = {str(element): float(entry["energy_per_atom"]) for element, entry in raw.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise OracleError(f"cannot read the elemental references {path}: {exc!r}; expected "
                               '{"Ga": {"energy_per_atom": ...}, ...}') from None
    if not references:
        raise OracleError(f"the elemental references {path} list no elements")
    return references


def formation_energy(total_energy: float, structure: Structure, references: Mapping[str, float]) -> float:
    """``(E_total - sum_i mu[el_i]) / N`` in eV/atom (the dataset's convention)."""
    mu = sum(references[site.specie.symbol] for site in structure)
    return (total_energy - mu) / len(structure)
