"""Scoring a batch: duplicates among a run's crystals, found the same way whether a streamed run keeps one finder
for all its chunks or reads the stored candidates again for each chunk."""

from __future__ import annotations

from dataclasses import replace

import pytest

import scoring.batch as batch
from scoring.batch import DuplicateFinder, score_crystals
from scoring.novelty import matcher
from serving.engine import GeneratedCrystal


def _as_id(duplicate_of: int) -> int:
    """A stored id (100 + index, as :func:`_store_read_again` stores them) for ``-(index + 1)``, as the store does."""
    return 100 - duplicate_of - 1 if duplicate_of < 0 else duplicate_of


def _kept_finder(chunks: list[list[GeneratedCrystal]]) -> list[int | None]:
    """Duplicates of each crystal with one finder for the run (earlier chunks as ``-(index + 1)``)."""
    finder = DuplicateFinder(None, matcher())
    return [r.duplicate_of for chunk in chunks for r in score_crystals(chunk, None, duplicates=finder)]


def _store_read_again(chunks: list[list[GeneratedCrystal]]) -> list[int | None]:
    """The same with each chunk stored and its originals read back as POSCARs (ids 100 + index) by a fresh finder,
    as :meth:`store.database.Store.same_formula` reads them."""
    stored: list[tuple[int, str, str, bool]] = []

    def same_formula(f: str) -> list[tuple[int, str]]:
        return [(cid, poscar) for cid, formula, poscar, original in stored if formula == f and original]

    out = []
    for chunk in chunks:
        records = score_crystals(chunk, None, same_formula)
        out += [None if r.duplicate_of is None else _as_id(r.duplicate_of) for r in records]
        stored += [(100 + m.index, m.structure.composition.reduced_formula, r.poscar, r.duplicate_of is None)
                   for m, r in zip(chunk, records)]
    return out


@pytest.mark.parametrize("kept", [500, 1])
def test_a_finder_kept_over_the_chunks_finds_what_reading_the_store_again_finds(
        kept: int, repeated_stackings: list[list[GeneratedCrystal]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "MAX_DUPLICATE_CHECKS", kept)
    as_ids = [None if d is None else _as_id(d) for d in _kept_finder(repeated_stackings)]
    assert as_ids == _store_read_again(repeated_stackings)
    if kept == 500:
        assert as_ids == [None, None, 100, None, 101]  # the copies of crystals 0 and 1, one and two chunks later
    else:
        assert as_ids[2] is None  # crystal 0 was pushed out by crystal 1 before the copy came


def test_a_crystal_is_compared_with_the_originals_only(repeated_stackings: list[list[GeneratedCrystal]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """a, a copy of a, then b: b is compared with a alone (the copy is found through a), and the copy of a copy
    names the original."""
    import scoring.novelty as novelty

    (a, b), (a_copy, _c), (_b_copy,) = repeated_stackings
    compared: list[int] = []
    fits = novelty.fits

    def counted(m, x, y):  # noqa: ANN001, ANN202 - wraps scoring.novelty.fits
        compared.append(1)
        return fits(m, x, y)

    monkeypatch.setattr(novelty, "fits", counted)
    run = [a, replace(a_copy, index=1), replace(b, index=2), replace(a_copy, index=3)]
    records = score_crystals(run, None)
    assert [r.duplicate_of for r in records] == [None, -1, None, -1]
    assert compared == [1, 1, 1]  # the copy with a, b with a, the second copy with a (never with the first copy)
