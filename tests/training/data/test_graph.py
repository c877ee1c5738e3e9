"""The periodic radius graph agrees with pymatgen's neighbour lists, batches and scripts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from training.data.graph import batch_index, edge_vectors, image_shifts, radius_graph_pbc

CUTOFF = 5.0
NO_LIMIT = 10_000


def random_triclinic(seed: int) -> Structure:
    """3-10 atoms in a random cell: lengths 3-7 Å, angles 60-120 degrees, not too flat."""
    rng = np.random.default_rng(seed)
    while True:
        lengths = rng.uniform(3.0, 7.0, 3)
        angles = rng.uniform(60.0, 120.0, 3)
        lattice = Lattice.from_parameters(*lengths, *angles)
        if lattice.volume / np.prod(lengths) > 0.4:
            break
    n = int(rng.integers(3, 11))
    return Structure(lattice, ["C"] * n, rng.uniform(0.0, 1.0, (n, 3)))


def hexagonal_bilayer() -> Structure:
    """8-atom bilayer, a = 3.8 Å, c = 30 Å: two 4-plane layers 3.3 Å apart, ~19 Å vacuum."""
    z_bottom = [8.0, 9.3, 10.6, 11.9]
    z_top = [z + 3.9 + 3.3 for z in z_bottom]
    sites = [(1 / 3, 2 / 3), (2 / 3, 1 / 3)]
    frac = [(*sites[k % 2], z / 30.0) for k, z in enumerate(z_bottom + z_top)]
    return Structure(Lattice.hexagonal(3.8, 30.0), ["In", "Se", "In", "S"] * 2, frac)


def pymatgen_edges(structure: Structure, cutoff: float) -> dict[tuple[int, int, int, int, int], float]:
    """(source j, target i, image) -> distance from ``get_all_neighbors``."""
    edges = {}
    for i, neighbours in enumerate(structure.get_all_neighbors(cutoff)):
        for nb in neighbours:
            image = tuple(int(round(x)) for x in nb.image)
            np.testing.assert_allclose(nb.frac_coords, structure[nb.index].frac_coords + image, atol=1e-9)
            edges[(nb.index, i, *image)] = nb.nn_distance
    return edges


def as_tensors(structures: list[Structure]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    frac = torch.tensor(np.concatenate([s.frac_coords for s in structures]), dtype=torch.float64)
    lattice = torch.tensor(np.stack([s.lattice.matrix for s in structures]), dtype=torch.float64)
    num_atoms = torch.tensor([len(s) for s in structures])
    return frac, lattice, num_atoms


def our_edges(structure: Structure, cutoff: float, max_neighbors: int = NO_LIMIT) -> dict[tuple, float]:
    edge_index, offsets, distances = radius_graph_pbc(*as_tensors([structure]), cutoff, max_neighbors)
    keys = [(j, i, *off) for (j, i), off in zip(edge_index.T.tolist(), offsets.tolist())]
    assert len(set(keys)) == len(keys)
    return dict(zip(keys, distances.tolist()))


def assert_same_edges(ours: dict[tuple, float], reference: dict[tuple, float]) -> None:
    assert set(ours) == set(reference)
    for key, distance in reference.items():
        assert ours[key] == pytest.approx(distance, abs=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_matches_pymatgen_on_random_triclinic_cells(seed: int) -> None:
    structure = random_triclinic(seed)
    assert_same_edges(our_edges(structure, CUTOFF), pymatgen_edges(structure, CUTOFF))


def test_offsets_follow_unwrapped_coordinates() -> None:
    structure = random_triclinic(10)
    rng = np.random.default_rng(10)
    shifted = Structure(structure.lattice, structure.species,
                        structure.frac_coords + rng.integers(-2, 3, (len(structure), 3)))
    assert_same_edges(our_edges(shifted, CUTOFF), pymatgen_edges(shifted, CUTOFF))


def test_matches_pymatgen_on_vacuum_bilayer() -> None:
    structure = hexagonal_bilayer()
    _, lattice, _ = as_tensors([structure])
    assert image_shifts(lattice, 7.0).tolist() == [[3, 3, 1]]
    reference = pymatgen_edges(structure, 7.0)
    assert len(reference) > 100
    assert_same_edges(our_edges(structure, 7.0), reference)


def test_edge_vectors_match_pymatgen_coordinates() -> None:
    structure = random_triclinic(3)
    frac, lattice, num_atoms = as_tensors([structure])
    edge_index, offsets, distances = radius_graph_pbc(frac, lattice, num_atoms, CUTOFF, NO_LIMIT)
    vectors = edge_vectors(frac, lattice, batch_index(num_atoms), edge_index, offsets)
    torch.testing.assert_close(vectors.norm(dim=1), distances)
    for (j, i), off, vec in zip(edge_index.T.tolist(), offsets.tolist(), vectors.numpy()):
        expected = structure.lattice.get_cartesian_coords(structure[j].frac_coords + off) - structure[i].coords
        np.testing.assert_allclose(vec, expected, atol=1e-9)


@pytest.mark.parametrize("k", [1, 4, 12])
def test_max_neighbors_keeps_the_nearest(k: int) -> None:
    structure = random_triclinic(4)
    full = our_edges(structure, CUTOFF)
    kept = our_edges(structure, CUTOFF, max_neighbors=k)
    assert set(kept) <= set(full)
    for i in range(len(structure)):
        all_d = sorted(d for key, d in full.items() if key[1] == i)
        kept_d = sorted(d for key, d in kept.items() if key[1] == i)
        assert len(kept_d) == min(k, len(all_d))
        assert kept_d == all_d[: len(kept_d)]
    assert our_edges(structure, CUTOFF, max_neighbors=k) == kept  # deterministic


def test_ties_break_by_source_then_offset() -> None:
    # simple cubic: the 6 nearest images of the single atom are exactly 3 Å away
    structure = Structure(Lattice.cubic(3.0), ["Po"], [[0.0, 0.0, 0.0]])
    edge_index, offsets, distances = radius_graph_pbc(*as_tensors([structure]), 3.5, 2)
    assert offsets.tolist() == [[-1, 0, 0], [0, -1, 0]]
    assert distances.tolist() == pytest.approx([3.0, 3.0])


def test_batch_equals_single_crystals() -> None:
    structures = [random_triclinic(5), hexagonal_bilayer(), random_triclinic(6)]
    edge_index, offsets, distances = radius_graph_pbc(*as_tensors(structures), 6.0, 24)
    start = 0
    for s in structures:
        single_index, single_offsets, single_distances = radius_graph_pbc(*as_tensors([s]), 6.0, 24)
        mine = (edge_index[1] >= start) & (edge_index[1] < start + len(s))
        assert ((edge_index[0][mine] >= start) & (edge_index[0][mine] < start + len(s))).all()
        assert torch.equal(edge_index[:, mine] - start, single_index)
        assert torch.equal(offsets[mine], single_offsets)
        torch.testing.assert_close(distances[mine], single_distances)
        start += len(s)


def test_torchscript_equals_eager() -> None:
    scripted = torch.jit.script(radius_graph_pbc)
    inputs = as_tensors([random_triclinic(7), hexagonal_bilayer()])
    for dtype in (torch.float64, torch.float32):
        frac, lattice, num_atoms = inputs[0].to(dtype), inputs[1].to(dtype), inputs[2]
        eager = radius_graph_pbc(frac, lattice, num_atoms, 6.0, 16)
        script = scripted(frac, lattice, num_atoms, 6.0, 16)
        for a, b in zip(eager, script):
            assert torch.equal(a, b)
    script_vectors = torch.jit.script(edge_vectors)
    frac, lattice, num_atoms = inputs
    edge_index, offsets, _ = radius_graph_pbc(frac, lattice, num_atoms, 6.0, 16)
    batch = torch.jit.script(batch_index)(num_atoms)
    assert torch.equal(script_vectors(frac, lattice, batch, edge_index, offsets),
                       edge_vectors(frac, lattice, batch, edge_index, offsets))


def test_distances_carry_gradients() -> None:
    frac, lattice, num_atoms = as_tensors([random_triclinic(8)])
    frac.requires_grad_(True)
    lattice.requires_grad_(True)
    _, _, distances = radius_graph_pbc(frac, lattice, num_atoms, CUTOFF, NO_LIMIT)
    distances.sum().backward()
    assert frac.grad is not None and lattice.grad is not None
    assert torch.isfinite(frac.grad).all() and lattice.grad.abs().sum() > 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cutoff": 0.0}, "cutoff must be > 0"),
    ({"max_neighbors": 0}, "max_neighbors must be at least 1"),
    ({"num_atoms": torch.tensor([2])}, "num_atoms sums to 2"),
])
def test_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    frac, lattice, num_atoms = as_tensors([random_triclinic(9)])
    args = {"frac_coords": frac, "lattice": lattice, "num_atoms": num_atoms, "cutoff": CUTOFF,
            "max_neighbors": 8} | kwargs
    with pytest.raises(ValueError, match=message):
        radius_graph_pbc(**args)


def test_rejects_nearly_flat_cell() -> None:
    lattice = torch.tensor([[[4.0, 0, 0], [0, 4.0, 0], [0, 0, 0.01]]], dtype=torch.float64)
    with pytest.raises(ValueError, match="max_shift=20"):
        radius_graph_pbc(torch.zeros(1, 3, dtype=torch.float64), lattice, torch.tensor([1]), 5.0, 8)
