"""Import and export crystal datasets in the CDVAE CSV layout (MP-20, Perov-5, Carbon-24, ...).

Layout: one row per crystal with a ``cif`` column (CIF text), an optional
``material_id`` column, and property columns (e.g. MP-20's
``formation_energy_per_atom``). Other columns are ignored.

Row numbers in problem reports are spreadsheet rows: the header is row 1, so the first
data row is row 2 (the data row with 0-based index k is row k + 2). They are not line
numbers of the file, because CIF text spans many lines inside one quoted field.

Every input row is either kept or reported as a :class:`RowProblem`; nothing is dropped
silently. As in CDVAE, sites come out in pymatgen's CIF-parser order (sorted by
electronegativity, stable within an element).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import pandas as pd

from training.data.crystal import Crystal, CrystalDataset

if TYPE_CHECKING:
    from pymatgen.core import Structure

ID_COLUMN = "material_id"
CIF_COLUMN = "cif"

ProblemKind = Literal[
    "duplicate id",
    "missing CIF",
    "missing property",
    "non-numeric property",
    "non-finite property",
    "bad CIF",
    "disordered structure",
    "too many atoms",
    "Niggli reduction failed",
]
_KIND_ORDER: tuple[str, ...] = get_args(ProblemKind)


class DatasetImportError(ValueError):
    """A row of an imported dataset is unusable (raised in strict mode).

    Attributes:
        problem: the offending row.
    """

    def __init__(self, problem: RowProblem) -> None:
        super().__init__(f"row {problem.row} (id {problem.id!r}): {problem.reason}")
        self.problem = problem


@dataclass(frozen=True)
class RowProblem:
    """Why one input row was skipped.

    Attributes:
        row: spreadsheet row number (header = row 1, first data row = row 2).
        id: the row's id (``material_id``, or ``row-{k}`` for 0-based data row k).
        reason: what was wrong, naming the column or limit.
        kind: the category counted in :meth:`ImportResult.summary`.
    """

    row: int
    id: str
    reason: str
    kind: ProblemKind


@dataclass(frozen=True)
class ImportResult:
    """Outcome of :func:`import_cdvae_csv`.

    Attributes:
        dataset: the kept crystals, in file order.
        problems: one entry per skipped row, in file order.
        rows_read: number of data rows in the file.
    """

    dataset: CrystalDataset
    problems: list[RowProblem] = field(default_factory=list)
    rows_read: int = 0

    def summary(self) -> str:
        """One line, e.g. ``"read 5 rows, kept 2, skipped 3: 2 bad CIF, 1 missing property"``."""
        text = f"read {self.rows_read} rows, kept {len(self.dataset)}, skipped {len(self.problems)}"
        if not self.problems:
            return text
        counts = {kind: 0 for kind in _KIND_ORDER}
        for problem in self.problems:
            counts[problem.kind] += 1
        return text + ": " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)


def _parse_property(text: str, column: str) -> tuple[float | None, ProblemKind | None, str]:
    """Value of a property cell, or the problem kind and reason."""
    stripped = text.strip()
    if not stripped:
        return None, "missing property", f"missing value for property {column!r}"
    try:
        value = float(stripped)
    except ValueError:
        return None, "non-numeric property", f"property {column!r} is not a number: {stripped[:40]!r}"
    if not math.isfinite(value):
        return None, "non-finite property", f"property {column!r} is not finite: {stripped!r}"
    return value, None, ""


def canonical_structure(structure: Structure, niggli: bool = True) -> Structure:
    """Canonical form of a parsed structure, as CDVAE's ``build_crystal`` makes it.

    CDVAE parses the CIF with ``Structure.from_str(cif, fmt="cif")`` (no primitive-cell
    reduction), then

    1. if ``niggli``: ``structure.get_reduced_structure()``, the Niggli-reduced cell
       (same atoms, a <= b <= c, angles all acute or all obtuse);
    2. builds a fresh ``Structure`` on ``Lattice.from_parameters(a, b, c, alpha, beta,
       gamma)`` of that cell with the same species and fractional coordinates: the
       canonical orientation (c along z, a in the xz plane), so that the lattice matrix
       is a function of the six lattice parameters only. This step happens also without
       Niggli reduction.

    Two small additions, both no-ops for CDVAE's own data flow:

    - when the cell already has the Niggli parameters (lengths within 1e-6 Å, angles
      within 1e-5 degrees), it is kept instead of pymatgen's reduced basis. The Niggli
      parameters are unique but the basis is not: for a hexagonal cell pymatgen may
      return -b, -a, -c, which moves the fractional coordinates. Keeping the input makes
      the import idempotent (re-importing an exported dataset changes nothing);
    - a left-handed cell (negative determinant; possible only for structures built in
      code, CIF and Niggli cells are right-handed) is replaced by -a, -b, -c with negated
      fractional coordinates first, so that step 2 is a rotation and never mirrors the
      crystal.

    Fractional coordinates are wrapped into [0, 1).

    Args:
        structure: an ordered pymatgen ``Structure``.
        niggli: Niggli-reduce first.

    Returns:
        a new ``Structure`` (site order kept).
    """
    from pymatgen.core import Lattice
    from pymatgen.core import Structure as _Structure

    if niggli:
        reduced = structure.get_reduced_structure()
        before = np.array(structure.lattice.parameters)
        after = np.array(reduced.lattice.parameters)
        if not (np.allclose(before[:3], after[:3], rtol=0.0, atol=1e-6)
                and np.allclose(before[3:], after[3:], rtol=0.0, atol=1e-5)):
            structure = reduced
    frac = structure.frac_coords
    if np.linalg.det(structure.lattice.matrix) < 0:
        frac = -frac
    frac = frac % 1.0
    frac[frac >= 1.0] -= 1.0
    return _Structure(Lattice.from_parameters(*structure.lattice.parameters), structure.species_and_occu,
                      frac, coords_are_cartesian=False)


def _read_row(cif: str, niggli: bool, max_atoms: int) -> tuple[Structure | None, ProblemKind | None, str]:
    """Canonical structure of one CIF cell, or the problem kind and reason."""
    from pymatgen.core import Structure as _Structure

    if not cif.strip():
        return None, "missing CIF", "empty 'cif' cell"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = _Structure.from_str(cif, fmt="cif")
    except Exception as exc:  # pymatgen raises many types for broken CIF text
        lines = str(exc).strip().splitlines()
        message = lines[0][:120] if lines else ""
        return None, "bad CIF", f"unparseable CIF ({type(exc).__name__}: {message})"
    if len(raw) == 0:
        return None, "bad CIF", "CIF has no atoms"
    if not raw.is_ordered:
        return None, "disordered structure", "disordered structure (partial occupancies) is not supported"
    if len(raw) > max_atoms:
        return None, "too many atoms", f"{len(raw)} atoms, more than max_atoms={max_atoms}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = canonical_structure(raw, niggli=niggli)
    except Exception as exc:
        return None, "Niggli reduction failed", f"Niggli reduction failed ({type(exc).__name__}: {exc})"
    return structure, None, ""


def import_cdvae_csv(
    path: str | Path,
    property_columns: Sequence[str],
    max_atoms: int = 20,
    strict: bool = False,
    niggli: bool = True,
) -> ImportResult:
    """Read a CDVAE-layout CSV into a :class:`CrystalDataset`, reporting every skipped row.

    Ids: the ``material_id`` cell when the column exists and the cell is not empty, else
    ``row-{k}`` for the 0-based data row index k. Structures go through
    :func:`canonical_structure` (CDVAE's ``build_crystal``: optional Niggli reduction,
    then the lattice rebuilt from its parameters). Parser warnings are suppressed.

    A row is skipped (and reported with its spreadsheet row number, id and reason) for: a
    duplicate id, an empty, unparseable or atom-less CIF, a disordered structure, more
    than ``max_atoms`` atoms, a failed Niggli reduction, or a property cell that is
    empty, non-numeric, NaN or infinite. Checks run in that order except that property
    cells are checked before the CIF is parsed; only the first problem of a row is
    reported.

    Args:
        path: the CSV file.
        property_columns: columns to carry as crystal properties (may be empty).
        max_atoms: largest number of atoms per cell kept, >= 1.
        strict: raise :class:`DatasetImportError` on the first problem instead of skipping.
        niggli: Niggli-reduce the cells (as CDVAE does by default).

    Returns:
        the kept crystals (named after the file) and the problems.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: without a ``cif`` column, for an unknown property column (the message
            lists the available columns), or for ``max_atoms < 1``.
        DatasetImportError: in strict mode, for the first problem row.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such CSV file: {path}")
    if max_atoms < 1:
        raise ValueError(f"max_atoms must be at least 1, got {max_atoms}")
    props = list(property_columns)
    if len(set(props)) != len(props):
        raise ValueError(f"property columns repeat: {props}")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if CIF_COLUMN not in df.columns:
        raise ValueError(f"{path} has no {CIF_COLUMN!r} column; columns: {', '.join(map(str, df.columns))}")
    available = [c for c in df.columns if c not in (CIF_COLUMN, ID_COLUMN)]
    unknown = [p for p in props if p not in available]
    if unknown:
        raise ValueError(f"unknown property column(s) {unknown} in {path.name}; "
                         f"available: {', '.join(map(str, available)) or '(none)'}")

    has_ids = ID_COLUMN in df.columns
    crystals: list[Crystal] = []
    problems: list[RowProblem] = []
    first_row_of: dict[str, int] = {}

    def report(row: int, cid: str, kind: ProblemKind, reason: str) -> None:
        problem = RowProblem(row=row, id=cid, reason=reason, kind=kind)
        if strict:
            raise DatasetImportError(problem)
        problems.append(problem)

    for k, record in enumerate(df.to_dict("records")):
        row = k + 2
        cid = str(record[ID_COLUMN]).strip() if has_ids else ""
        cid = cid or f"row-{k}"
        if cid in first_row_of:
            report(row, cid, "duplicate id", f"duplicate id, first used in row {first_row_of[cid]}")
            continue
        first_row_of[cid] = row
        values: dict[str, float] = {}
        for column in props:
            value, kind, reason = _parse_property(record[column], column)
            if kind is not None:
                report(row, cid, kind, reason)
                break
            values[column] = value
        else:
            structure, kind, reason = _read_row(record[CIF_COLUMN], niggli, max_atoms)
            if kind is not None:
                report(row, cid, kind, reason)
                continue
            crystals.append(Crystal.from_structure(structure, id=cid, properties=values))
    dataset = CrystalDataset(crystals, name=path.stem, property_names=props)
    return ImportResult(dataset=dataset, problems=problems, rows_read=len(df))


def export_cdvae_csv(dataset: CrystalDataset, path: str | Path,
                     property_columns: Sequence[str] | None = None) -> Path:
    """Write a dataset as a CDVAE-layout CSV: ``material_id``, ``cif``, property columns.

    CIFs are P1 with 8 decimals (pymatgen ``CifWriter``); property values are written
    with full precision, so :func:`import_cdvae_csv` reads back the same values. Creates
    missing parent folders.

    Site order: pymatgen's CIF parser always sorts sites by electronegativity (stable,
    so atoms of one element keep their order). Import after export therefore gives back
    the same site order only for crystals already in that order, which every crystal
    read from a CIF is; others come back with their sites permuted.

    Args:
        dataset: crystals to write.
        path: the CSV file.
        property_columns: properties to write (default: all of ``dataset.property_names``).

    Returns:
        the path written.

    Raises:
        ValueError: for a property the dataset does not carry (message lists them).
    """
    from pymatgen.io.cif import CifWriter

    props = list(dataset.property_names if property_columns is None else property_columns)
    unknown = [p for p in props if p not in dataset.property_names]
    if unknown:
        raise ValueError(f"unknown properties {unknown}; available: {', '.join(dataset.property_names) or '(none)'}")
    rows = []
    for crystal in dataset:
        row: dict[str, object] = {ID_COLUMN: crystal.id, CIF_COLUMN: str(CifWriter(crystal.to_structure()))}
        for p in props:
            row[p] = repr(float(crystal.properties[p]))
        rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=[ID_COLUMN, CIF_COLUMN, *props]).to_csv(path, index=False)
    return path
