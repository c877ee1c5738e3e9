"""Which generated crystals are new: a resumable scan against the training part, in worker processes.

StructureMatcher against every stacking of the same formula costs 2-15 s per crystal (formulas
have up to ~260 stackings in the training part), so :func:`novel_indices` examines crystals in
``workers`` processes, in order, and keeps the verdicts after every chunk.

Each worker gets the dataset table and its split column's suffix as arguments (``functools.partial``
of :func:`novelty_flag`, and the pool's initializer loads that training part once per process);
nothing has to be set up in a worker before it can answer.
"""

from __future__ import annotations

import functools
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pymatgen.core import Structure

from scoring.novelty import TrainingSet
from scoring.validity import compositionally_valid, structurally_valid
from training.evaluation.cache import read_json, write_json
from training.evaluation.progress import progress_bar


@functools.lru_cache(maxsize=1)
def training_part(table: str, split: str, part: str | None = "train") -> TrainingSet:
    """Part ``part`` of ``table`` by its ``split_<split>`` column (None: every row), loaded once per process."""
    return TrainingSet.load(Path(table), split=split, part=part)


def _start_worker(table: str, split: str, part: str | None) -> None:
    """Pool initializer: quiet pymatgen's warnings and load the reference part before the first crystal."""
    warnings.filterwarnings("ignore")
    training_part(table, split, part)


def novelty_flag(table: str, split: str, poscar: str, part: str | None = "train") -> bool | None:
    """True: valid and novel; False: valid and matches a crystal of part ``part`` of ``table`` (None:
    any row); None: invalid."""
    s = Structure.from_str(poscar, fmt="poscar")
    if not (structurally_valid(s) and compositionally_valid(s.composition)):
        return None
    return training_part(table, split, part).is_novel(s)


def novel_indices(poscars: list[str], want: int, path: Path, desc: str, table: Path, split: str,
                  workers: int, part: str | None = "train") -> list[int]:
    """Indices of the first ``want`` valid crystals that match nothing in the training part of ``table``
    (split by its ``split_<split>`` column; ``part`` None: nothing in the whole table).

    Verdicts (see :func:`novelty_flag`) are kept in ``path`` after every chunk of ``4 * workers``
    crystals: a rerun resumes, and the chosen crystals do not depend on the number of workers.
    """
    flags: list[bool | None] = list(read_json(path).get("flags", []))
    bar = progress_bar(desc, want)
    bar.update(min(want, sum(f is True for f in flags)))
    chunk = 4 * max(1, workers)
    flag = functools.partial(novelty_flag, str(table), split, part=part)
    pool = (ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(str(table), split, part))
            if workers > 1 else None)
    if pool is None:
        _start_worker(str(table), split, part)
    try:
        while sum(f is True for f in flags) < want and len(flags) < len(poscars):
            batch = poscars[len(flags):len(flags) + chunk]
            found = list(pool.map(flag, batch)) if pool is not None else [flag(p) for p in batch]
            before = sum(f is True for f in flags)
            flags.extend(found)
            write_json(path, {"flags": flags})
            bar.update(min(want, before + sum(f is True for f in found)) - min(want, before))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        else:
            training_part.cache_clear()  # the table's matcher index is not kept after the scan
    return [i for i, f in enumerate(flags) if f is True][:want]
