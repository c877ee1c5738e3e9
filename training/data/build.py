"""Build and label the Janus III-VI bilayer dataset: `vdwgen dataset build`.

The driver runs the steps of :mod:`training.data.stages` over worker processes (a local
process pool by default, or a Dask cluster with ``--cluster``: see :mod:`core.executor`),
shows a progress bar with an ETA per step, and stores every finished piece of work
under ``<out>/_work/`` (atomic writes; workers only return results, the driver writes
them).  A killed build restarts where it stopped: finished steps and chunks are read
back, not recomputed.  The settings of a work folder are fixed at its first run; a
different protocol or monolayer subset is refused until the folder is cleared
(``--fresh``).

Outputs in ``<out>/``: ``bilayers.parquet`` (one row per configuration: structure,
identifiers, labels, splits), ``monolayers.json``, ``references.json``,
``dataset_card.md`` and the label histograms (PNG).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.errors import VdwgenError
from core.executor import Executor, open_executor
from training.data.recipe import BilayerConfig, Monolayer, enumerate_bilayers, enumerate_monolayers
from training.data.stages import Protocol

_ORACLE: Any = None  # one per worker process (pool process or Dask worker process)


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how.

    Attributes:
        out: output folder (``data/janus_iii_vi`` for the shipped dataset).
        workers: worker processes, one CHGNet thread each (ignored with ``cluster``).
        monolayers: restrict to these monolayer names (e.g. ``("S-Ga-Ga-S",)``) for a
            small build; ``None`` = all 45.
        chunk_size: configurations per stored chunk of the scan and relaxation steps.
        protocol: numerical settings of the labelling.
        fresh: delete an existing work folder first.
        write_outputs: write the card and plots (the table is always written).
        cluster: run the labelling on a Dask cluster: a scheduler address (``tcp://HOST:8786``) or
            ``local:N`` (a local cluster of N worker processes); ``None`` = the local process pool.
    """

    out: Path
    workers: int = 2
    monolayers: tuple[str, ...] | None = None
    chunk_size: int = 60
    protocol: Protocol = field(default_factory=Protocol)
    fresh: bool = False
    write_outputs: bool = True
    cluster: str | None = None


class BuildError(VdwgenError):
    """A build cannot start or continue (the message says why and what to do)."""


def select_monolayers(names: Sequence[str] | None) -> list[Monolayer]:
    """The recipe monolayers, or the named subset (unknown names are refused)."""
    layers = enumerate_monolayers()
    if names is None:
        return layers
    by_name = {m.name: m for m in layers}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise BuildError(
            f"unknown monolayer(s) {', '.join(unknown)}; names are bottom-to-top sequences, "
            f"e.g. {', '.join(list(by_name)[:4])} (all: {', '.join(by_name)})"
        )
    return [m for m in layers if m.name in set(names)]


# -- worker side --------------------------------------------------------------------
def _init_worker(threads: int) -> None:
    """Set up a worker process once: ``threads`` torch threads, warnings off, its own CHGNet oracle."""
    global _ORACLE
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    from oracle.calculator import Oracle

    _ORACLE = Oracle()


def _oracle():
    global _ORACLE
    if _ORACLE is None:  # in-process run (one worker): keep the caller's threads and warnings
        from oracle.calculator import Oracle

        _ORACLE = Oracle()
    return _ORACLE


def _task(job: tuple[str, Any]) -> Any:
    from training.data import stages

    kind, payload = job
    oracle = _oracle()
    if kind == "monolayer":
        layer, protocol = payload
        return stages.monolayer_curve(oracle, layer, protocol)
    if kind == "pairs":
        items, protocol = payload
        return stages.relax_pair_layers(oracle, items, protocol)
    if kind == "scan":
        configs, pairs, protocol = payload
        return stages.scan_gaps(oracle, configs, pairs, protocol)
    if kind == "relax":
        configs, pairs, gaps, protocol = payload
        return stages.relax_bilayers(oracle, configs, pairs, gaps, protocol)
    if kind == "references":
        from training.data.references import relax_reference

        return relax_reference(oracle, payload)
    raise ValueError(f"unknown job kind {kind!r}")


# -- driver side ------------------------------------------------------------------------
class _Runner:
    """Runs the jobs of a step on an :class:`~core.executor.Executor` with a progress bar.

    Results come back to the driver, which alone writes them: a worker that dies loses only its chunk.
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    @property
    def workers(self) -> int:
        """Chunks that can run at once (known once the executor has started)."""
        return self.executor.workers

    def run(
        self, jobs: list[tuple[str, Any]], weights: list[int], desc: str,
        on_result: Callable[[int, Any], None],
    ) -> None:
        with tqdm(total=sum(weights), desc=desc, unit="item", dynamic_ncols=True,
                  smoothing=0.05) as bar:
            for k, result in self.executor.map_unordered(_task, jobs):
                on_result(k, result)
                bar.update(weights[k])

    def close(self) -> None:
        self.executor.close()

    def terminate(self) -> None:
        self.executor.terminate()


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def build_dataset(options: BuildOptions) -> Path:
    """Build (or resume) the dataset; returns the path of ``bilayers.parquet``."""
    from training.data.assemble import assemble_table
    from training.data.recipe import symmetry_duplicates

    layers = select_monolayers(options.monolayers)
    configs = enumerate_bilayers(layers)
    out = Path(options.out)
    work = out / "_work"
    if options.fresh and work.exists():
        shutil.rmtree(work)
    (work / "scan").mkdir(parents=True, exist_ok=True)
    (work / "relax").mkdir(parents=True, exist_ok=True)
    _check_settings(work, options, layers)
    protocol = options.protocol
    elements = sorted({el for m in layers for el in m.sequence})
    timings: dict[str, float] = _read_json(work / "timings.json") if (work / "timings.json").exists() else {}
    runner = _Runner(open_executor(options.workers, options.cluster, _init_worker, (1,)))
    computed = False  # whether this run did any of the labelling (for the recorded timings)
    try:
        if options.cluster is not None:
            print(f"labelling on {runner.executor.where}")
            runner.executor.start()  # an unreachable scheduler is reported before any work

        def stored_step(name: str, compute: Callable[[], Any]) -> Any:
            """Result of a whole step, computed once and kept in ``<work>/<name>.json``."""
            nonlocal computed
            path = work / f"{name}.json"
            if not path.exists():
                t0 = time.time()
                _write_json(path, compute())
                timings[name] = time.time() - t0
                computed = True
            return _read_json(path)

        def by_key(keys: list[str], jobs: list[tuple[str, Any]], desc: str) -> dict[str, Any]:
            results: dict[str, Any] = {}
            runner.run(jobs, [1] * len(jobs), desc, lambda k, r: results.__setitem__(keys[k], r))
            return results

        # 0. elemental references; 1. monolayer E(a) curves
        refs = stored_step("references", lambda: by_key(
            elements, [("references", el) for el in elements], "references"))
        curves = stored_step("monolayers", lambda: by_key(
            [m.name for m in layers], [("monolayer", (m, protocol)) for m in layers],
            "monolayers E(a)"))
        # 2. common lattice constant and layers relaxed at a* for every pair
        pair_records = stored_step(
            "pairs", lambda: _run_pairs(runner, configs, curves, protocol))
        pair_of = [pair_records[_pair_key(c)] for c in configs]

        # 3. rigid gap scan, chunked
        t0 = time.time()
        scans, n_new = _run_chunked(
            runner, work / "scan", configs, options.chunk_size, "gap scan",
            lambda chunk: ("scan", ([configs[i] for i in chunk], [pair_of[i] for i in chunk], protocol)),
        )
        if n_new:
            timings["scan"] = timings.get("scan", 0.0) + time.time() - t0
            computed = True

        # 4. relax the lowest-energy stacking of every flip class, chunked
        t0 = time.time()
        lowest = _lowest_per_flip_class(configs, scans)
        relaxed, n_new = _run_chunked(
            runner, work / "relax", [configs[i] for i in lowest], options.chunk_size,
            "relax lowest stackings",
            lambda chunk: ("relax", (
                [configs[lowest[j]] for j in chunk], [pair_of[lowest[j]] for j in chunk],
                [scans[lowest[j]]["gap"] for j in chunk], protocol,
            )),
        )
        if n_new:
            timings["relax"] = timings.get("relax", 0.0) + time.time() - t0
            computed = True
        if computed:
            timings["workers"] = runner.workers
        _write_json(work / "timings.json", timings)
    except BaseException:
        runner.terminate()  # finished chunks are already on disk under <out>/_work
        raise
    else:
        runner.close()

    table_path = assemble_table(
        out, configs, curves, pair_of, scans, relaxed, refs, symmetry_duplicates(configs),
        protocol,
    )
    if options.write_outputs:
        from training.data.card import write_card_and_plots

        write_card_and_plots(out, table_path, refs, curves, protocol, timings, options)
    return table_path


def _pair_key(config: BilayerConfig) -> str:
    return f"{config.flip_class.bottom.name}|{config.flip_class.top.name}"


def _run_pairs(runner: _Runner, configs, curves, protocol) -> dict[str, dict]:
    from training.data.stages import common_lattice_constant

    seen: dict[str, tuple[Monolayer, Monolayer]] = {}
    for c in configs:
        seen.setdefault(_pair_key(c), (c.flip_class.bottom, c.flip_class.top))
    items = [
        (b, t, common_lattice_constant(curves[b.name], curves[t.name]), curves[b.name], curves[t.name])
        for b, t in seen.values()
    ]
    runner.executor.start()  # a cluster's size is known once reached
    n_chunks = max(runner.workers * 4, 1)
    chunks = [items[k::n_chunks] for k in range(n_chunks) if items[k::n_chunks]]
    records: dict[str, dict] = {}

    def keep(_: int, result: list[dict]) -> None:
        for r in result:
            records[f"{r['bottom']}|{r['top']}"] = r

    runner.run([("pairs", (ch, protocol)) for ch in chunks], [len(ch) for ch in chunks],
               "layers at common a*", keep)
    return records


def _run_chunked(
    runner: _Runner, folder: Path, items: Sequence[Any], chunk_size: int, desc: str,
    make_job: Callable[[list[int]], tuple[str, Any]],
) -> tuple[dict[int, dict], int]:
    """Run a chunked step; each chunk's results are stored as soon as it finishes.

    Returns results keyed by configuration index and how many items this call computed.
    """
    chunks = [list(range(s, min(s + chunk_size, len(items)))) for s in range(0, len(items), chunk_size)]
    results: dict[int, dict] = {}
    todo: list[int] = []
    for k, chunk in enumerate(chunks):
        path = folder / f"chunk-{k:05d}-{chunk[0]}-{chunk[-1]}.json"
        if path.exists():
            for r in _read_json(path):
                results[r["index"]] = r
        else:
            todo.append(k)
    if todo:
        done = len(items) - sum(len(chunks[k]) for k in todo)
        if done:
            print(f"{desc}: resuming, {done} of {len(items)} already stored")

        def store(pos: int, result: list[dict]) -> None:
            k = todo[pos]
            chunk = chunks[k]
            _write_json(folder / f"chunk-{k:05d}-{chunk[0]}-{chunk[-1]}.json", result)
            for r in result:
                results[r["index"]] = r

        runner.run([make_job(chunks[k]) for k in todo], [len(chunks[k]) for k in todo], desc, store)
    return results, sum(len(chunks[k]) for k in todo)


def _lowest_per_flip_class(configs: list[BilayerConfig], scans: dict[int, dict]) -> list[int]:
    best: dict[int, int] = {}
    for c in configs:
        fc = c.flip_class.index
        if fc not in best or scans[c.index]["energy"] < scans[best[fc]]["energy"]:
            best[fc] = c.index
    return [best[k] for k in sorted(best)]


def _check_settings(work: Path, options: BuildOptions, layers: Iterable[Monolayer]) -> None:
    settings = {
        "protocol": options.protocol.as_dict(),
        "monolayers": [m.name for m in layers],
        "chunk_size": options.chunk_size,
        "versions": _versions(),
    }
    path = work / "settings.json"
    if path.exists():
        old = _read_json(path)
        if old != settings:
            changed = [k for k in settings if old.get(k) != settings[k]]
            raise BuildError(
                f"the work folder {work} was started with other settings ({', '.join(changed)} "
                "differ); rerun with --fresh to start over, or use the original settings to resume"
            )
    else:
        _write_json(path, settings)


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("chgnet", "dftd3", "pymatgen", "torch", "numpy", "scipy")}
