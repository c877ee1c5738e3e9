"""Where chunks of work run: in this process, in a local process pool, or on a Dask cluster.

Long jobs (the dataset build's labelling, bulk generation) are cut into chunks; the driver sends
each chunk out as ``fn(item)``, gets its result back as soon as it finishes and alone writes it
(to the work folder or the store). Workers never write anything, so a worker that dies loses only
the chunk it was running, and a rerun recomputes only the chunks that were never written.

Three places to run chunks, one interface (:class:`Executor`, made by :func:`open_executor`):

* one worker: in this process (the caller's threads and warnings are kept);
* ``N`` workers: a local ``spawn`` process pool, the default;
* ``--cluster ADDRESS``: the scheduler of an existing Dask distributed cluster
  (``tcp://HOST:8786``), or ``--cluster local:N`` for a local cluster of ``N`` worker processes.

Why Dask distributed, not Ray: both packages are pure-Python wheels (plus small pure or
widely-wheeled dependencies: tornado, msgpack, cloudpickle, toolz) that install in seconds next to
torch, where Ray is a large platform-specific binary with its own services to run; a cluster is
``dask scheduler`` plus ``dask worker`` on machines that have the project installed, and
``LocalCluster`` gives the tests a real multi-process cluster in a few seconds. Its futures fit
the chunk model exactly: one future per chunk, results collected as they finish
(``as_completed``), and the scheduler reruns a task whose worker died on another worker (up to
``distributed.scheduler.allowed-failures`` times), so a dead worker costs its chunk's time only.

Per-process state (one CHGNet oracle, one loaded generation engine) is set up by an
``initializer`` that runs once in every worker process before its first chunk: by the pool's
initializer locally and lazily on the first chunk a Dask worker process runs (including a worker
that joined or restarted mid-run). Chunks run one at a time per worker process even on a worker
started with several threads (they share one model), so start workers with ``--nthreads 1``.

``dask`` is imported only inside the Dask code paths: nothing else pays for it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import VdwgenError

SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
"""Thread settings of every worker process, read by OpenMP and BLAS when they load: each worker is one core's
worth of work. Dask's workers start with these; the local pool sets them too (without them D3's OpenMP and
BLAS threads oversubscribed the cores: a 2-monolayer build took 145-163 s instead of 52 s, same labels)."""

CONNECT_TIMEOUT_S = 10.0
"""How long :func:`open_executor` waits for the scheduler of ``--cluster ADDRESS``."""

_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_ADDRESS = re.compile(rf"^(?:{'|'.join(_SCHEMES)})://\[?[A-Za-z0-9_.:-]+\]?:\d{{1,5}}$")
_LOCAL = re.compile(r"^local:(\d+)$")

Initializer = Callable[..., None]


class ClusterError(VdwgenError):
    """A cluster that cannot be used: a malformed address, an unreachable scheduler, a lost chunk."""


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed ``--cluster`` value: a local cluster of ``workers`` processes, or a scheduler ``address``."""

    address: str | None = None
    workers: int | None = None

    @property
    def is_local(self) -> bool:
        """Whether the cluster is started here (``local:N``) rather than reached at an address."""
        return self.address is None

    def __str__(self) -> str:
        return f"local:{self.workers}" if self.is_local else str(self.address)


def parse_cluster(text: str) -> ClusterSpec:
    """``local:N`` or a scheduler address such as ``tcp://HOST:8786``; anything else is one-line refused."""
    value = text.strip()
    local = _LOCAL.match(value)
    if local:
        workers = int(local[1])
        if workers < 1:
            raise ClusterError(f"--cluster {text}: a local cluster needs at least 1 worker; give local:N with "
                               "N >= 1, or a scheduler address such as tcp://HOST:8786")
        return ClusterSpec(workers=workers)
    if _ADDRESS.match(value):
        return ClusterSpec(address=value)
    raise ClusterError(f"--cluster {text!r} is not a scheduler address or local:N; give e.g. "
                       f"tcp://HOST:8786 (schemes: {', '.join(_SCHEMES)}) or local:4")


# -- worker side ------------------------------------------------------------------------
_READY: set[tuple[str, str, tuple]] = set()  # initializers already run in this process
_PROCESS_LOCK = threading.Lock()  # one chunk at a time per process (chunks share its per-process model)


@contextlib.contextmanager
def single_threaded_children() -> Iterator[None]:
    """Processes spawned inside the block start with :data:`SINGLE_THREADED` (this process's environment is
    restored after)."""
    saved = {name: os.environ.get(name) for name in SINGLE_THREADED}
    os.environ.update(SINGLE_THREADED)  # inherited by the processes spawned now
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _indexed(job: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, Any]:
    """Pool task: ``(index, fn(item))`` so results can come back in any order."""
    fn, index, item = job
    return index, fn(item)


def run_on_worker(fn: Callable[[Any], Any], initializer: Initializer | None, initargs: tuple, item: Any) -> Any:
    """Dask task: run ``initializer(*initargs)`` once in this worker process, then ``fn(item)``.

    Holding a process-wide lock makes a worker started with several threads run its chunks one
    after another: they share the process's model (oracle, engine), which is not thread-safe.
    """
    with _PROCESS_LOCK:
        if initializer is not None:
            key = (initializer.__module__, initializer.__qualname__, initargs)
            if key not in _READY:
                initializer(*initargs)
                _READY.add(key)
        return fn(item)


# -- driver side ------------------------------------------------------------------------
class Executor:
    """Runs ``fn`` over items and yields ``(index, result)`` as each finishes (any order).

    Attributes:
        workers: how many chunks can run at once (used to size chunks, and recorded in build timings).
        where: a few words for messages, e.g. ``"a local pool of 2 processes"``.
    """

    workers: int = 1
    where: str = "this process"

    def start(self) -> None:
        """Start the workers now (else they start with the first chunk), e.g. to know :attr:`workers`."""

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(items[index]))`` for every item, in the order they finish."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers after a finished run."""

    def terminate(self) -> None:
        """Stop at once (Ctrl-C): running chunks are abandoned; nothing they computed is written."""
        self.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.terminate()


class InProcess(Executor):
    """Chunks run one after another in this process; the caller's threads and warnings are kept."""

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for index, item in enumerate(items):
            yield index, fn(item)


class LocalPool(Executor):
    """A ``spawn`` process pool of ``workers`` processes, started on the first chunk (none if all is done)."""

    def __init__(self, workers: int, initializer: Initializer | None = None, initargs: tuple = ()) -> None:
        self.workers = workers
        self.where = f"a local pool of {workers} processes"
        self._initializer, self._initargs = initializer, initargs
        self._pool: Any = None

    def start(self) -> None:
        if self._pool is None:
            with single_threaded_children():
                self._pool = mp.get_context("spawn").Pool(self.workers, initializer=self._initializer,
                                                          initargs=self._initargs)

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not items:
            return
        self.start()
        yield from self._pool.imap_unordered(_indexed, [(fn, k, item) for k, item in enumerate(items)])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def terminate(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


class DaskCluster(Executor):
    """Chunks as Dask futures on a cluster: an existing scheduler, or a local cluster started here.

    The connection (or the local cluster) is made by :meth:`start` or the first chunk. A chunk whose worker dies is
    rerun by the scheduler on another worker; a chunk that fails is reported after the other
    chunks have come back, so every chunk that could finish is returned (and written) first.
    """

    def __init__(self, spec: ClusterSpec, initializer: Initializer | None = None, initargs: tuple = (),
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.spec = spec
        self.where = (f"a local Dask cluster of {spec.workers} worker processes" if spec.is_local
                      else f"the Dask cluster at {spec.address}")
        self.workers = spec.workers or 1
        self._initializer, self._initargs = initializer, initargs
        self._timeout = connect_timeout
        self._client: Any = None
        self._cluster: Any = None
        self._pending: list[Any] = []

    def start(self) -> None:
        """Start the local cluster or reach the scheduler (a one-line :class:`ClusterError` if it cannot)."""
        if self._client is not None:
            return
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
            raise ClusterError(f"--cluster needs the `distributed` package ({exc}); "
                               "pip install -r requirements.txt") from exc
        if self.spec.is_local:
            import dask

            # one task sent to a worker at a time: a worker that dies then takes down only the chunk it ran
            with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                self._cluster = LocalCluster(n_workers=self.spec.workers, threads_per_worker=1, processes=True,
                                             dashboard_address=":0")  # no fixed port to collide on
            self._client = Client(self._cluster)
            return
        try:
            self._client = Client(self.spec.address, timeout=self._timeout)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {self.spec.address} within "
                               f"{self._timeout:g} s ({type(exc).__name__}); start it with `dask scheduler` "
                               "or check the address") from exc
        workers = self._client.scheduler_info().get("workers", {})
        self.workers = max(len(workers), 1)
        threaded = sorted(addr for addr, w in workers.items() if w.get("nthreads", 1) > 1)
        if not workers:
            print(f"note: no workers at {self.spec.address} yet; chunks wait until one joins", file=sys.stderr)
        elif threaded:
            print(f"note: {len(threaded)} worker(s) at {self.spec.address} have several threads; chunks run one "
                  "at a time per worker process (start workers with --nthreads 1)", file=sys.stderr)

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not items:
            return
        self.start()
        from distributed import as_completed

        futures = [self._client.submit(run_on_worker, fn, self._initializer, self._initargs, item, pure=False)
                   for item in items]
        index = {future.key: k for k, future in enumerate(futures)}
        self._pending = futures  # cancelled by terminate()
        failed: list[tuple[int, BaseException]] = []
        for future in as_completed(futures):
            k = index[future.key]
            if future.status == "finished":
                result = future.result()
                future.release()
                yield k, result
            else:
                failed.append((k, self._error(future)))
        self._pending = []
        if failed:  # the first chunk's error, after every other chunk came back
            raise min(failed, key=lambda pair: pair[0])[1]

    def _error(self, future: Any) -> BaseException:
        """The exception of a chunk that did not finish; losses of the cluster become a :class:`ClusterError`."""
        from distributed import KilledWorker

        if future.status == "cancelled":
            return ClusterError(f"lost a chunk on {self.where} (the connection to the scheduler was lost or the "
                                "task was cancelled); finished chunks are kept — run the same command again")
        error = future.exception()
        if isinstance(error, KilledWorker):
            return ClusterError(f"a chunk was lost on {self.where}: every worker that ran it died ({error}); "
                                "finished chunks are kept — run the same command again")
        return error

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def terminate(self) -> None:
        if self._client is not None and self._pending:
            try:
                self._client.cancel(self._pending)
            except Exception:  # noqa: BLE001 - stopping anyway; the cluster may already be gone
                pass
            self._pending = []
        self.close()


def open_executor(workers: int = 1, cluster: str | ClusterSpec | None = None,
                  initializer: Initializer | None = None, initargs: tuple = (),
                  connect_timeout: float = CONNECT_TIMEOUT_S) -> Executor:
    """The executor for ``cluster`` (``local:N`` or an address), else a local pool of ``workers``
    processes (in-process for one worker). Nothing starts until the first chunk is sent."""
    if cluster is not None:
        spec = cluster if isinstance(cluster, ClusterSpec) else parse_cluster(cluster)
        return DaskCluster(spec, initializer, initargs, connect_timeout)
    if workers < 1:
        raise ClusterError(f"workers must be at least 1 (got {workers})")
    if workers == 1:
        return InProcess()
    return LocalPool(workers, initializer, initargs)
