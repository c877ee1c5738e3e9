"""Data-parallel training in processes started by torchrun (``torch.distributed.run``).

torchrun starts N copies of ``vdwgen train`` and tells each one its place through environment
variables (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). Without
``WORLD_SIZE`` (a plain ``vdwgen train``) nothing here acts: one process, trained as always.

Under torchrun the processes ("ranks") agree on:

- the process group: NCCL with one GPU per rank (``cuda:LOCAL_RANK``) when CUDA is available,
  gloo on CPUs otherwise, plus a gloo group with a long timeout for :func:`barrier` (a rank can
  wait there while rank 0 writes a dataset table or trains stage 2 alone);
- the global batch: every rank shuffles with the same seed, so each sees the same global batch
  of ``train.batch_size`` crystals and computes its own contiguous slice of it
  (:func:`batch_share`), with the weights that make DDP's average of the ranks' gradients the
  gradient of the whole batch;
- writing: only rank 0 (:attr:`Ranks.main`) writes files; :func:`main_first` lets rank 0 do
  file work (a ``--data`` run's ``data.parquet``) before the other ranks read its result.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from training.model.cdvae import BatchRows
from training.train.runfiles import TrainingError

#: How long a rank waits in :func:`barrier` (stage 2 runs on rank 0 alone for minutes to hours).
WAIT = timedelta(hours=48)


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run.

    Attributes:
        rank: 0 .. world_size - 1 over all nodes; rank 0 writes every file.
        world_size: number of processes (1: a plain, single-process run).
        local_rank: index on this node (its GPU, on a GPU node).
        device: where this rank trains stage 1 (``cpu`` or ``cuda:LOCAL_RANK``).
        waits: the gloo group :func:`barrier` uses; ``None`` outside torchrun.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    waits: Any = field(default=None, compare=False, repr=False)

    @property
    def joined(self) -> bool:
        """True under torchrun (a process group is in use, even with one process)."""
        return self.waits is not None

    @property
    def main(self) -> bool:
        """True on the rank that writes files and trains stage 2."""
        return self.rank == 0


SINGLE = Ranks()
"""A plain run on a machine without a GPU: one process on the CPU, no process group."""


def _env_int(name: str, default: str | None = None) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TrainingError(f"torchrun's environment variable {name}={value!r} is not a whole number") from None


def world_size() -> int:
    """How many processes torchrun started (``WORLD_SIZE``); 1 outside torchrun."""
    size = _env_int("WORLD_SIZE", "1")
    if size < 1:
        raise TrainingError(f"torchrun's environment variable WORLD_SIZE={size} must be at least 1")
    return size


@contextmanager
def process_group() -> Iterator[Ranks]:
    """This process's :class:`Ranks` for the duration of a run.

    Outside torchrun (no ``WORLD_SIZE``) nothing is set up: one process, on the first GPU when torch
    sees one, else :data:`SINGLE` (the CPU). Under torchrun it joins the process group (unless the caller
    already did) and leaves it at the end.
    """
    if "WORLD_SIZE" not in os.environ:
        yield Ranks(device=torch.device("cuda", 0)) if torch.cuda.is_available() else SINGLE
        return
    world, rank, local = world_size(), _env_int("RANK", "0"), _env_int("LOCAL_RANK", "0")
    if not 0 <= rank < world:
        raise TrainingError(f"torchrun's RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world})")
    if torch.cuda.is_available():
        device, backend = torch.device("cuda", local), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        yield Ranks(rank, world, local, device, dist.new_group(backend="gloo", timeout=WAIT))
    finally:
        if owned:
            dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    """Wait until every rank got here (nothing to wait for in a single process)."""
    if ranks.joined:
        dist.barrier(group=ranks.waits)


@contextmanager
def main_first(ranks: Ranks) -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (e.g. rank 0 writes a table the others read)."""
    if not ranks.main:
        barrier(ranks)
    yield
    if ranks.main:
        barrier(ranks)


@contextmanager
def idle_threads(ranks: Ranks) -> Iterator[None]:
    """On a CPU node, let rank 0 use the torch threads of the node's other ranks for the block
    (they wait at a barrier meanwhile, e.g. during stage 2); nothing changes elsewhere."""
    local = _env_int("LOCAL_WORLD_SIZE", "1") if ranks.joined else 1
    if not ranks.main or ranks.device.type != "cpu" or local <= 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(threads * local)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_batch_size(batch_size: int, processes: int, key: str = "train.batch_size") -> None:
    """Refuse a global batch that does not split evenly over ``processes`` ranks.

    Raises:
        TrainingError: naming the batch size and the number of processes.
    """
    if batch_size % processes:
        raise TrainingError(f"{key}={batch_size} does not split over {processes} processes: "
                            f"choose a multiple of {processes}")


@dataclass(frozen=True)
class Share:
    """One rank's part of a global batch.

    Attributes:
        start, stop: the crystals ``[start, stop)`` of the global batch this rank computes.
        rows: where they sit in it, so the model draws their noise as the global batch's rows
            (``None`` in a single process: the batch is the global batch).
        crystal_weight, atom_weight: factors for loss terms that are means over crystals and
            over atoms: ``world_size * (this rank's share of the batch's crystals or atoms)``, so
            that DDP's mean of the ranks' gradients is the gradient of the global batch's means.
            Both are 0 for a stand-in (a rank left without crystals computes crystal 0 for nothing).
    """

    start: int
    stop: int
    rows: BatchRows | None = None
    crystal_weight: float = 1.0
    atom_weight: float = 1.0


def batch_share(atoms: Sequence[int], ranks: Ranks) -> Share:
    """This rank's slice of a global batch whose crystals have ``atoms`` atoms each.

    Rank r takes crystals ``[r * n // N, (r + 1) * n // N)``: ``batch_size / N`` each for a full
    batch, as even as can be for the short last batch of an epoch. A rank that gets none (a last
    batch of fewer crystals than ranks) still has to take part in the gradient all-reduce, so it
    computes crystal 0 with weight 0.
    """
    n = len(atoms)
    if not ranks.joined:
        return Share(0, n)
    start, stop = ranks.rank * n // ranks.world_size, (ranks.rank + 1) * n // ranks.world_size
    total = sum(atoms)
    if start == stop:
        return Share(0, 1, BatchRows(n, total, 0, 0), 0.0, 0.0)
    mine = sum(atoms[start:stop])
    return Share(start, stop, BatchRows(n, total, start, sum(atoms[:start])),
                 ranks.world_size * (stop - start) / n, ranks.world_size * mine / total)


def all_sum(tensor: Tensor, ranks: Ranks) -> Tensor:
    """``tensor`` summed over the ranks, in place (on the rank's device); itself in a single process."""
    if ranks.joined:
        dist.all_reduce(tensor)
    return tensor


def data_parallel(model: nn.Module, ranks: Ranks) -> nn.Module:
    """``model`` wrapped in DDP (its gradients averaged over the ranks during backward), or
    ``model`` itself in a single process.

    ``find_unused_parameters``: which parameters a step uses depends on the config (the "not
    given" embeddings only with modality dropout). Buffers are constants (noise levels,
    scalers), so they are not broadcast before every forward.
    """
    if not ranks.joined:
        return model
    return DistributedDataParallel(model, device_ids=[ranks.device.index] if ranks.device.type == "cuda" else None,
                                   find_unused_parameters=True, forward_sync_buffers=False)
