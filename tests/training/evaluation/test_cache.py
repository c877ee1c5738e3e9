"""What the evaluations keep on disk: oracle checks are taken from a cache only for the very structures they were
made of (a cache reused for other crystals, or kept from an older protocol, is checked again), and an
interrupted run resumes with the checks it finished."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

import oracle.convention
import oracle.shared
import scoring.oracle_check
from training.evaluation.cache import input_key, oracle_checks


@dataclass
class _Check:
    """The fields of an oracle check that the cache keeps (and ``relaxed``, which it keeps as a POSCAR)."""

    formation_energy: float
    cell: str
    scan_gap: float
    relaxed: Structure


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[list[Structure]]:
    """The structures handed to the oracle, call by call (a fake oracle: the energy is the cell's c length)."""
    calls: list[list[Structure]] = []

    def check_with_oracle(structures: list[Structure], _references: object, _oracle: object,
                          progress: object = None) -> list[_Check]:
        calls.append(list(structures))
        return [_Check(-float(s.lattice.c), "in_plane", 3.0, s) for s in structures]

    monkeypatch.setattr(scoring.oracle_check, "check_with_oracle", check_with_oracle)
    monkeypatch.setattr(oracle.shared, "get_oracle", lambda: None)
    monkeypatch.setattr(oracle.convention, "load_references", lambda _dataset: {})
    return calls


def _stretched(bilayer: Callable[[float], Structure], c: float) -> Structure:
    s = bilayer(0.0)
    return Structure(Lattice.hexagonal(s.lattice.a, c), s.species, s.frac_coords)


def test_cached_checks_serve_only_the_structures_they_were_made_of(
        checked: list[list[Structure]], bilayer: Callable[[float], Structure], tmp_path: Path) -> None:
    a, b, c = (_stretched(bilayer, length) for length in (30.0, 31.0, 32.0))
    path = tmp_path / "oracle.json"
    first = oracle_checks([a, b], path, "test", tmp_path)
    assert [len(call) for call in checked] == [2] and [x["formation_energy"] for x in first] == [-30.0, -31.0]
    again = oracle_checks([b, a], path, "test", tmp_path)  # the same crystals in another order: nothing checked
    assert len(checked) == 1 and [x["formation_energy"] for x in again] == [-31.0, -30.0]
    other = oracle_checks([a, c], path, "test", tmp_path)  # another crystal in b's place is checked itself
    assert [call[0].lattice.c for call in checked[1:]] == [pytest.approx(32.0)]
    assert [x["formation_energy"] for x in other] == [-30.0, -32.0]
    kept = json.loads(path.read_text())["checks"]  # the file holds these crystals' checks, in order
    assert [x["input"] for x in kept] == [input_key(a), input_key(c)]
    oracle_checks([c, a, c], path, "test", tmp_path)  # reordered, one repeated: nothing checked, the file follows
    assert len(checked) == 2
    assert [x["input"] for x in json.loads(path.read_text())["checks"]] == [input_key(c), input_key(a), input_key(c)]


def test_checks_of_an_older_protocol_or_without_their_input_are_made_again(
        checked: list[list[Structure]], bilayer: Callable[[float], Structure], tmp_path: Path) -> None:
    a = _stretched(bilayer, 30.0)
    path = tmp_path / "oracle.json"
    old = {"formation_energy": -1.0, "cell": "in_plane", "scan_gap": 3.0, "relaxed_poscar": a.to(fmt="poscar")}
    path.write_text(json.dumps({"checks": [old, {**old, "cell": "fixed", "input": input_key(a)}]}))
    assert oracle_checks([a], path, "test", tmp_path)[0]["formation_energy"] == -30.0
    assert len(checked) == 1
