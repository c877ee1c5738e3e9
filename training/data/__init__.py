"""Crystal data: the dataset type, CDVAE CSV import/export, batching and periodic graphs."""

from training.data.cdvae_csv import (
    DatasetImportError,
    ImportResult,
    RowProblem,
    canonical_structure,
    export_cdvae_csv,
    import_cdvae_csv,
)
from training.data.crystal import (
    Crystal,
    CrystalDataset,
    atomic_numbers,
    element_symbols,
    read_parquet,
    write_parquet,
)
from training.data.featurize import (
    CrystalTensors,
    crystal_from_tensors,
    crystals_from_tensors,
    featurize,
    lattice_from_params,
    params_from_lattice,
)
from training.data.graph import batch_index, edge_vectors, image_shifts, radius_graph_pbc

__all__ = [
    "Crystal",
    "CrystalDataset",
    "CrystalTensors",
    "DatasetImportError",
    "ImportResult",
    "RowProblem",
    "atomic_numbers",
    "batch_index",
    "canonical_structure",
    "crystal_from_tensors",
    "crystals_from_tensors",
    "edge_vectors",
    "element_symbols",
    "export_cdvae_csv",
    "featurize",
    "image_shifts",
    "import_cdvae_csv",
    "lattice_from_params",
    "params_from_lattice",
    "radius_graph_pbc",
    "read_parquet",
    "write_parquet",
]
