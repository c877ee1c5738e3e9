"""The in-memory crystal dataset: :class:`Crystal`, :class:`CrystalDataset` and their table form.

Table schema (one row per crystal; written as zstd-compressed Parquet by
:func:`write_parquet`):

- ``id`` (str): stable identifier, unique within a dataset;
- ``lattice`` (list of 9 float64): the 3x3 lattice matrix in Å, row-major, rows are the
  lattice vectors a, b, c;
- ``species`` (list of str): element symbols, one per atom;
- ``frac_coords`` (list of 3N float64): fractional coordinates, row-major (atom by atom);
- any number of extra scalar columns (identifiers, labels, splits).

Only the columns named as ``property_columns`` become :attr:`Crystal.properties`; the
whole table stays available as :attr:`CrystalDataset.table` for metadata queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, overload

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pymatgen.core import Structure

STRUCTURE_COLUMNS = ("id", "lattice", "species", "frac_coords")
PARQUET_COMPRESSION = "zstd"


@lru_cache(maxsize=1)
def _element_table() -> tuple[dict[str, int], tuple[str, ...]]:
    """Symbol -> atomic number and atomic number -> symbol (index 0 unused)."""
    from pymatgen.core import Element

    symbols = ["X"] + [Element.from_Z(z).symbol for z in range(1, 119)]
    return {s: z for z, s in enumerate(symbols) if z > 0}, tuple(symbols)


def atomic_numbers(species: Sequence[str]) -> np.ndarray:
    """Atomic numbers of element symbols.

    Args:
        species: element symbols, length N.

    Returns:
        int64 array of shape (N,).

    Raises:
        ValueError: for a symbol that is not an element (H to Og).
    """
    to_z, _ = _element_table()
    try:
        return np.array([to_z[s] for s in species], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"unknown element symbol {exc.args[0]!r}; expected H ... Og") from None


def element_symbols(numbers: Iterable[int]) -> tuple[str, ...]:
    """Element symbols of atomic numbers (1 to 118).

    Raises:
        ValueError: for a number outside 1..118.
    """
    _, symbols = _element_table()
    out = []
    for z in numbers:
        z = int(z)
        if not 1 <= z <= 118:
            raise ValueError(f"atomic number {z} out of range; expected 1 to 118")
        out.append(symbols[z])
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Crystal:
    """One periodic crystal.

    Arrays are stored as read-only float64 copies. Equality is identity (arrays do not
    compare as scalars); compare fields explicitly with a tolerance.

    Attributes:
        id: stable identifier.
        lattice: (3, 3) lattice matrix in Å; rows are the lattice vectors.
        species: element symbols, length N.
        frac_coords: (N, 3) fractional coordinates.
        properties: scalar labels by name (read-only mapping).
    """

    id: str
    lattice: np.ndarray
    species: tuple[str, ...]
    frac_coords: np.ndarray
    properties: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lattice = np.array(self.lattice, dtype=np.float64)
        if lattice.shape != (3, 3):
            raise ValueError(f"crystal {self.id!r}: lattice must have shape (3, 3), got {lattice.shape}")
        if not np.isfinite(lattice).all():
            raise ValueError(f"crystal {self.id!r}: lattice has non-finite entries")
        if abs(np.linalg.det(lattice)) < 1e-6:
            raise ValueError(f"crystal {self.id!r}: lattice is singular (|det| < 1e-6 Å^3)")
        species = tuple(str(s) for s in self.species)
        if len(species) == 0:
            raise ValueError(f"crystal {self.id!r}: needs at least 1 atom")
        atomic_numbers(species)  # validates the symbols
        frac = np.array(self.frac_coords, dtype=np.float64)
        if frac.ndim != 2 or frac.shape[1] != 3 or frac.shape[0] != len(species):
            raise ValueError(
                f"crystal {self.id!r}: frac_coords must have shape ({len(species)}, 3) "
                f"(one row per species), got {frac.shape}"
            )
        if not np.isfinite(frac).all():
            raise ValueError(f"crystal {self.id!r}: frac_coords has non-finite entries")
        lattice.setflags(write=False)
        frac.setflags(write=False)
        props = MappingProxyType({str(k): float(v) for k, v in dict(self.properties).items()})
        object.__setattr__(self, "id", str(self.id))
        object.__setattr__(self, "lattice", lattice)
        object.__setattr__(self, "species", species)
        object.__setattr__(self, "frac_coords", frac)
        object.__setattr__(self, "properties", props)

    @property
    def num_atoms(self) -> int:
        """Number of atoms N."""
        return len(self.species)

    def atomic_numbers(self) -> np.ndarray:
        """(N,) int64 atomic numbers."""
        return atomic_numbers(self.species)

    def cart_coords(self) -> np.ndarray:
        """(N, 3) Cartesian coordinates in Å (``frac_coords @ lattice``)."""
        return self.frac_coords @ self.lattice

    def lattice_params(self) -> tuple[float, float, float, float, float, float]:
        """Lengths a, b, c (Å) and angles alpha, beta, gamma (degrees).

        alpha is the angle between b and c, beta between a and c, gamma between a and b.
        """
        lengths = np.linalg.norm(self.lattice, axis=1)
        angles = []
        for i, j in ((1, 2), (0, 2), (0, 1)):
            cos = np.dot(self.lattice[i], self.lattice[j]) / (lengths[i] * lengths[j])
            angles.append(float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))))
        a, b, c = (float(x) for x in lengths)
        return a, b, c, angles[0], angles[1], angles[2]

    def to_structure(self) -> Structure:
        """The crystal as a pymatgen ``Structure`` (same lattice matrix and site order)."""
        from pymatgen.core import Lattice, Structure

        return Structure(Lattice(self.lattice), list(self.species), self.frac_coords,
                         coords_are_cartesian=False)

    @classmethod
    def from_structure(cls, structure: Structure, id: str,
                       properties: Mapping[str, float] | None = None) -> Crystal:
        """Build from an ordered pymatgen ``Structure``.

        Oxidation states are dropped (only element symbols are kept); lattice matrix and
        site order are kept as they are.

        Raises:
            ValueError: for a disordered structure (partial occupancies) or non-element sites.
        """
        if not structure.is_ordered:
            raise ValueError(f"crystal {id!r}: disordered structure (partial occupancies) is not supported")
        species = []
        for site in structure:
            symbol = getattr(site.specie, "symbol", None)
            if symbol is None or getattr(site.specie, "Z", None) is None:
                raise ValueError(f"crystal {id!r}: site species {site.specie} is not an element")
            species.append(symbol)
        return cls(id=id, lattice=structure.lattice.matrix, species=tuple(species),
                   frac_coords=structure.frac_coords, properties=dict(properties or {}))


class CrystalDataset(Sequence[Crystal]):
    """An ordered, named collection of crystals with unique ids.

    Args:
        crystals: the crystals.
        name: dataset name (e.g. ``"janus_iii_vi"`` or ``"mp_20"``).
        property_names: names every crystal must carry in ``properties``; default: the
            property names of the first crystal.
        table: optional metadata table aligned row by row with ``crystals`` (kept as given).

    Raises:
        ValueError: for duplicate ids, missing properties, or a table of the wrong length.
    """

    def __init__(self, crystals: Iterable[Crystal], name: str = "dataset",
                 property_names: Sequence[str] | None = None,
                 table: pd.DataFrame | None = None) -> None:
        self._crystals: tuple[Crystal, ...] = tuple(crystals)
        self.name = str(name)
        if property_names is None:
            property_names = tuple(self._crystals[0].properties) if self._crystals else ()
        self._property_names = tuple(property_names)
        seen: dict[str, int] = {}
        for index, crystal in enumerate(self._crystals):
            if crystal.id in seen:
                raise ValueError(f"duplicate crystal id {crystal.id!r} at positions {seen[crystal.id]} and {index}")
            seen[crystal.id] = index
            missing = [p for p in self._property_names if p not in crystal.properties]
            if missing:
                raise ValueError(f"crystal {crystal.id!r} lacks properties {missing}; "
                                 f"dataset properties: {', '.join(self._property_names)}")
        if table is not None and len(table) != len(self._crystals):
            raise ValueError(f"table has {len(table)} rows but there are {len(self._crystals)} crystals")
        self._table = table

    def __len__(self) -> int:
        return len(self._crystals)

    @overload
    def __getitem__(self, index: int) -> Crystal: ...

    @overload
    def __getitem__(self, index: slice) -> CrystalDataset: ...

    def __getitem__(self, index: int | slice) -> Crystal | CrystalDataset:
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        return self._crystals[index]

    def __iter__(self) -> Iterator[Crystal]:
        return iter(self._crystals)

    def __repr__(self) -> str:
        return (f"CrystalDataset(name={self.name!r}, crystals={len(self)}, "
                f"properties={list(self._property_names)})")

    @property
    def property_names(self) -> tuple[str, ...]:
        """Names of the properties every crystal carries."""
        return self._property_names

    @property
    def ids(self) -> tuple[str, ...]:
        """Crystal ids in dataset order."""
        return tuple(c.id for c in self._crystals)

    @property
    def table(self) -> pd.DataFrame:
        """The metadata table, row-aligned with the crystals.

        The DataFrame given to :meth:`from_table` (index reset), or :meth:`to_table` when
        the dataset was built from crystals.
        """
        return self._table if self._table is not None else self.to_table()

    def property_array(self, name: str) -> np.ndarray:
        """(len,) float64 values of one property.

        Raises:
            ValueError: for a name that is not a dataset property (message lists them).
        """
        if name not in self._property_names:
            raise ValueError(f"unknown property {name!r}; available: {', '.join(self._property_names) or '(none)'}")
        return np.array([c.properties[name] for c in self._crystals], dtype=np.float64)

    def subset(self, indices: Iterable[int], name: str | None = None) -> CrystalDataset:
        """The crystals at ``indices`` (in that order), with the matching table rows.

        Raises:
            IndexError: for an index outside ``[-len, len)``.
        """
        idx = [int(i) for i in indices]
        n = len(self)
        for i in idx:
            if not -n <= i < n:
                raise IndexError(f"index {i} out of range for dataset of {n} crystals")
        table = None
        if self._table is not None:
            table = self._table.iloc[idx].reset_index(drop=True)
        return CrystalDataset((self._crystals[i] for i in idx), name=name or self.name,
                              property_names=self._property_names, table=table)

    def to_table(self) -> pd.DataFrame:
        """The dataset as a table in the module's schema.

        Structure columns come from the crystals, then one column per property, then the
        remaining columns of the original table (if any).
        """
        data: dict[str, list] = {
            "id": [c.id for c in self._crystals],
            "lattice": [c.lattice.reshape(-1).tolist() for c in self._crystals],
            "species": [list(c.species) for c in self._crystals],
            "frac_coords": [c.frac_coords.reshape(-1).tolist() for c in self._crystals],
        }
        for p in self._property_names:
            data[p] = [c.properties[p] for c in self._crystals]
        df = pd.DataFrame(data, columns=list(data))
        if self._table is not None:
            extra = [col for col in self._table.columns if col not in data]
            if extra:
                df = pd.concat([df, self._table[extra].reset_index(drop=True)], axis=1)
        return df

    @classmethod
    def from_table(cls, df: pd.DataFrame, name: str = "dataset",
                   property_columns: Sequence[str] | None = None) -> CrystalDataset:
        """Crystals from a table in the module's schema.

        Args:
            df: table with ``id``, ``lattice``, ``species``, ``frac_coords`` columns.
            name: dataset name.
            property_columns: numeric columns to put into ``Crystal.properties`` (default: none).

        Raises:
            ValueError: for missing structure columns, unknown or non-numeric property
                columns, or a malformed row (the message names the row's id).
        """
        missing = [c for c in STRUCTURE_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"table lacks columns {missing}; required: {', '.join(STRUCTURE_COLUMNS)}")
        props = list(property_columns or [])
        unknown = [p for p in props if p not in df.columns]
        if unknown:
            available = [c for c in df.columns if c not in STRUCTURE_COLUMNS]
            raise ValueError(f"unknown property column(s) {unknown}; available: {', '.join(map(str, available))}")
        for p in props:
            if p in STRUCTURE_COLUMNS or not pd.api.types.is_numeric_dtype(df[p]):
                raise ValueError(f"property column {p!r} is not numeric (dtype {df[p].dtype})")
        table = df.reset_index(drop=True)
        values = {p: table[p].to_numpy(dtype=np.float64) for p in props}
        crystals = []
        for row, (cid, lat, species, frac) in enumerate(
            zip(table["id"], table["lattice"], table["species"], table["frac_coords"])
        ):
            lat = np.asarray(lat, dtype=np.float64)
            frac = np.asarray(frac, dtype=np.float64)
            if lat.size != 9:
                raise ValueError(f"row {row} (id {cid!r}): lattice has {lat.size} values, expected 9")
            if frac.size != 3 * len(species):
                raise ValueError(f"row {row} (id {cid!r}): frac_coords has {frac.size} values, "
                                 f"expected 3 x {len(species)} species")
            crystals.append(Crystal(id=str(cid), lattice=lat.reshape(3, 3), species=tuple(species),
                                    frac_coords=frac.reshape(-1, 3),
                                    properties={p: values[p][row] for p in props}))
        return cls(crystals, name=name, property_names=props, table=table)


def write_parquet(data: CrystalDataset | pd.DataFrame, path: str | Path) -> Path:
    """Write a dataset (via :meth:`CrystalDataset.to_table`) or a schema table as zstd Parquet.

    Creates missing parent folders. Returns the path written.

    Raises:
        ValueError: for a DataFrame that lacks the structure columns.
    """
    df = data.to_table() if isinstance(data, CrystalDataset) else data
    missing = [c for c in STRUCTURE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; required: {', '.join(STRUCTURE_COLUMNS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, engine="pyarrow", compression=PARQUET_COMPRESSION, index=False)
    return path


def read_parquet(path: str | Path, name: str | None = None,
                 property_columns: Sequence[str] | None = None) -> CrystalDataset:
    """Read a Parquet table written by :func:`write_parquet` as a dataset.

    Args:
        path: the Parquet file.
        name: dataset name (default: the file name without suffix).
        property_columns: numeric columns to carry as crystal properties (default: none).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such Parquet file: {path}")
    df = pd.read_parquet(path, engine="pyarrow")
    return CrystalDataset.from_table(df, name=name or path.stem, property_columns=property_columns)
