"""Scoring a batch: duplicates among a run's crystals, found the same way whether a streamed run keeps one finder
for all its chunks or reads the stored candidates again for each chunk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Structure

import scoring.batch as batch
from scoring.batch import DuplicateFinder, score_crystals
from scoring.novelty import matcher, table_structure

TABLE = Path(__file__).resolve().parents[2] / "data" / "janus_iii_vi" / "bilayers.parquet"
FORMULA = "Al2InGaTeS3"


@dataclass
class Made:
    index: int
    structure: Structure
    predicted_formation_energy: float = -0.8


def _stackings(k: int) -> list[Structure]:
    """``k`` bilayers of one formula that the paper's tolerances tell apart (the first such rows of the table)."""
    table = pd.read_parquet(TABLE)
    m = matcher()
    chosen: list[Structure] = []
    for r in table[table["reduced_formula"] == FORMULA].itertuples():
        s = table_structure(r.lattice, r.species, r.frac_coords)
        if not any(m.fit(s, other) for other in chosen):
            chosen.append(s)
        if len(chosen) == k:
            return chosen
    raise AssertionError(f"fewer than {k} distinguishable {FORMULA} bilayers")


def _jiggled(s: Structure, seed: int) -> Structure:
    moved = s.cart_coords + np.random.default_rng(seed).uniform(-0.02, 0.02, (len(s), 3))
    return Structure(s.lattice, s.species, moved, coords_are_cartesian=True)


def _chunks() -> list[list[Made]]:
    a, b, c = _stackings(3)
    return [[Made(0, a), Made(1, b)], [Made(2, _jiggled(a, 1)), Made(3, c)], [Made(4, _jiggled(b, 2))]]


def _as_id(duplicate_of: int) -> int:
    """A stored id (100 + index, as :func:`_store_read_again` stores them) for ``-(index + 1)``, as the store does."""
    return 100 - duplicate_of - 1 if duplicate_of < 0 else duplicate_of


def _kept_finder() -> list[int | None]:
    """Duplicates of each crystal with one finder for the run (earlier chunks as ``-(index + 1)``)."""
    finder = DuplicateFinder(None, matcher())
    return [r.duplicate_of for chunk in _chunks() for r in score_crystals(chunk, None, duplicates=finder)]


def _store_read_again() -> list[int | None]:
    """The same with each chunk stored and read back as POSCARs (ids 100 + index) by a fresh finder."""
    stored: list[tuple[int, str, str]] = []

    def same_formula(f: str) -> list[tuple[int, str]]:
        return [(cid, poscar) for cid, formula, poscar in stored if formula == f]

    out = []
    for chunk in _chunks():
        records = score_crystals(chunk, None, same_formula)
        out += [None if r.duplicate_of is None else _as_id(r.duplicate_of) for r in records]
        stored += [(100 + m.index, m.structure.composition.reduced_formula, r.poscar) for m, r in zip(chunk, records)]
    return out


@pytest.mark.parametrize("kept", [500, 1])
def test_a_finder_kept_over_the_chunks_finds_what_reading_the_store_again_finds(
        kept: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "MAX_DUPLICATE_CHECKS", kept)
    as_ids = [None if d is None else _as_id(d) for d in _kept_finder()]
    assert as_ids == _store_read_again()
    if kept == 500:
        assert as_ids == [None, None, 100, None, 101]  # the copies of crystals 0 and 1, one and two chunks later
    else:
        assert as_ids[2] is None  # crystal 0 was pushed out by crystal 1 before the copy came
