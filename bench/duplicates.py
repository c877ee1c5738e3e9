"""Duplicate checks as a streamed run grows (issue 17): a stored run's candidates replayed, chunk by chunk, through
the duplicate finder a streamed run keeps (:class:`scoring.batch.DuplicateFinder`, trimmed at each chunk).

Per chunk: seconds, pairs looked at (earlier crystals of the same formula and size), pairs the height test settles
(:func:`scoring.slab_filter.cannot_match`), StructureMatcher fits and duplicates found. Reads the run from a DuckDB
file (e.g. the one ``bench/streaming.py`` leaves in its temporary folder); writes JSON.

    python bench/duplicates.py --db /tmp/vdwgen-stream-XXXX/bench.duckdb --run 1 --out bench/results/duplicates.json
    python bench/duplicates.py --db ... --limit 2048 --compare --out ...   # against pymatgen's own fit
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb
from pymatgen.core import Structure

import scoring.novelty as novelty
from scoring import lattice_search
from scoring.batch import DuplicateFinder
from scoring.novelty import ReducedCrystal, matcher


def replay(db: Path, run_id: int, chunk_size: int, limit: int | None = None, search: str = "vectorised") -> dict:
    """``search``: "vectorised" (:mod:`scoring.lattice_search`, what the product runs) or "pymatgen" (its
    ``StructureMatcher.fit``, for comparison)."""
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT index_in_run, reduced_formula, poscar FROM candidates WHERE run_id = ? "
                       "ORDER BY index_in_run LIMIT ?", [run_id, limit]).fetchall()
    con.close()
    m = matcher()
    vectorised_fit = lattice_search.fit
    if search == "pymatgen":
        lattice_search.fit = lambda mm, a, b: bool(mm.fit(a, b, skip_structure_reduction=True))  # type: ignore[assignment]
    counts = {"pairs": 0, "settled_by_heights": 0, "fits": 0}
    cannot_match = novelty.cannot_match

    def counted_cannot_match(a, b, mm):  # noqa: ANN001, ANN202 - wraps scoring.slab_filter.cannot_match
        counts["pairs"] += 1
        settled = cannot_match(a, b, mm)
        counts["settled_by_heights"] += settled
        counts["fits"] += not settled
        return settled

    novelty.cannot_match = counted_cannot_match  # type: ignore[assignment]
    finder = DuplicateFinder(None, m)
    chunks = []
    try:
        for start in range(0, len(rows), chunk_size):
            before = dict(counts)
            t = time.perf_counter()
            finder.trim()
            found = 0
            for index, formula, poscar in rows[start:start + chunk_size]:
                crystal = ReducedCrystal(Structure.from_str(poscar, fmt="poscar"), m)
                found += finder.first_match(index, crystal, formula) is not None
            chunks.append({"stored_before": start, "seconds": round(time.perf_counter() - t, 2), "duplicates": found,
                           **{k: counts[k] - before[k] for k in counts},
                           "earlier_kept": sum(len(v) for v in finder.earlier.values())})
            print(json.dumps(chunks[-1]), flush=True)
    finally:
        novelty.cannot_match = cannot_match  # type: ignore[assignment]
        lattice_search.fit = vectorised_fit  # type: ignore[assignment]
    return {"run": run_id, "crystals": len(rows), "chunk_size": chunk_size, "lattice_search": search,
            "seconds": round(sum(c["seconds"] for c in chunks), 1), "duplicates": sum(c["duplicates"] for c in chunks),
            "chunks": chunks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None, help="replay the run's first N crystals only")
    parser.add_argument("--compare", action="store_true",
                        help="replay twice, with the vectorised lattice search and with pymatgen's fit")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    searches = ("vectorised", "pymatgen") if args.compare else ("vectorised",)
    result: dict = {"note": args.note}
    for search in searches:
        result[search] = replay(args.db, args.run, args.chunk_size, args.limit, search)
    if args.compare:
        same = [a["duplicates"] == b["duplicates"] for a, b in zip(result["vectorised"]["chunks"],
                                                                   result["pymatgen"]["chunks"])]
        result["same_duplicates_in_every_chunk"] = all(same)
        result["speedup"] = round(result["pymatgen"]["seconds"] / result["vectorised"]["seconds"], 2)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
