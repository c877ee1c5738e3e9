"""Bulk generation benchmark (issue 17): a streamed run (``vdwgen generate --n`` beyond one request) chunk by chunk.

One formation-energy request at the median training label (100:1 screening, seed 0) of ``--n`` crystals through
:func:`services.generation.generate_streamed` into a fresh DuckDB file, exactly as ``vdwgen generate --n N --db``
runs it. After each stored chunk: crystals stored, seconds since the start, resident memory now and its peak
(Linux ``VmRSS``/``VmHWM``). For the whole run: crystals/s, valid crystals/s, the peak, and the throughput of the
first and the last chunks (whether a run slows down as its store grows: duplicates are looked for among the
stored candidates of each formula). ``--prepared`` builds the whole novelty reference first (otherwise each
formula's part is built when it first appears, which also grows memory). One entry per ``--n`` (and
``--prepared``), or per ``--label``, in ``--out`` (other entries of the file are kept).

    python bench/streaming.py --artifacts artifacts/cdvae-plus-janus --n 1000 --out bench/results/streaming.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from core.memory import peak_resident_mib, resident_mib
from services.generation import BULK_MAX_COUNT, generate_streamed, novelty_reference
from serving.engine import DECODE_BATCH, Engine
from serving.request import GenerationRequest, check_request
from store.database import open_store


def streamed_run(engine: Engine, n: int, steps: int, chunk_size: int, db: Path) -> dict:
    """One streamed run of ``n`` crystals, measured chunk by chunk (see the module docstring)."""
    request = GenerationRequest("formation_energy", n, target=engine.manifest.property.percentile("50"), seed=0,
                                steps_per_level=steps)
    checked = check_request(request, engine.manifest, BULK_MAX_COUNT)
    chunks: list[dict] = []
    t0 = time.perf_counter()

    def progress(_stage: str, done: int, _total: int) -> None:
        chunks.append({"stored": done, "seconds": round(time.perf_counter() - t0, 2),
                       "rss_mib": round(resident_mib(), 1), "peak_rss_mib": round(peak_resident_mib(), 1)})
        print(json.dumps(chunks[-1]), flush=True)

    done = generate_streamed(engine, checked, open_store(db), progress, chunk_size)
    seconds = time.perf_counter() - t0

    def rate(k: int) -> float:
        before = chunks[k - 1] if k > 0 else {"stored": 0, "seconds": 0.0}
        return round((chunks[k]["stored"] - before["stored"]) / (chunks[k]["seconds"] - before["seconds"]), 3)

    return {"crystals": done.stored, "status": done.status, "steps_per_level": checked.steps_per_level,
            "chunk_size": chunk_size, "seconds": round(seconds, 1),
            "crystals_per_s": round(done.stored / seconds, 3), "valid": done.valid,
            "valid_crystals_per_s": round(done.valid / seconds, 3),
            "first_chunk_crystals_per_s": rate(0), "last_chunk_crystals_per_s": rate(len(chunks) - 1),
            "peak_rss_mib": round(peak_resident_mib(), 1), "chunks": chunks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--n", type=int, required=True, help="crystals in the run")
    parser.add_argument("--steps", type=int, default=None, help="steps per level (default: the artifact's)")
    parser.add_argument("--chunk-size", type=int, default=DECODE_BATCH)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--note", default="", help="what else the machine was doing, recorded with the entry")
    parser.add_argument("--label", default="", help="the entry's name in --out (default: n=N[, prepared])")
    parser.add_argument("--prepared", action="store_true",
                        help="build the whole novelty reference first, so that memory growing with n is the run's own")
    args = parser.parse_args(argv)
    engine = Engine.load(args.artifacts)
    prepared = {}
    if args.prepared:
        t = time.perf_counter()
        reference, _ = novelty_reference(engine.manifest)  # the one the run uses (cached per process)
        if reference is not None:
            reference.prepare()
        prepared = {"prepare_s": round(time.perf_counter() - t, 1), "rss_mib_after": round(resident_mib(), 1)}
    entry = streamed_run(engine, args.n, args.steps or engine.manifest.sampling.steps_per_level, args.chunk_size,
                         Path(tempfile.mkdtemp(prefix="vdwgen-stream-")) / "bench.duckdb")
    entry["prepared_reference"] = prepared or None
    entry["machine"] = {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(), "note": args.note}
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.label or f"n={args.n}" + (", prepared" if args.prepared else "")] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
