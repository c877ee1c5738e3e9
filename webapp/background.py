"""A generation run in a background thread, so that it outlives the script run that started it.

Streamlit stops a page's script whenever the user clicks elsewhere or a widget changes; work done
inside the script dies with it. A :class:`GenerationJob` runs
:func:`services.generation.generate_and_store` in a plain thread instead (Streamlit's stop and rerun
requests reach the script thread only), so the run is stored whatever the page does meanwhile.
The page keeps the job in its session and reads :meth:`GenerationJob.progress` (thread-safe) to
show where the run is, and :attr:`GenerationJob.stored` or :attr:`GenerationJob.error` once it ended.
The thread never calls Streamlit.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from services.generation import StoredRun, generate_and_store, novelty_reference
from serving.engine import Engine
from serving.request import CheckedRequest
from store.database import Store

STAGES = ("reference", "decoding", "scoring", "relaxing")
"""What a job does, in order: load the novelty reference (once per process; instant later), decode, score
(then store), and relax with the oracle when asked (each batch stored as it finishes)."""


@dataclass(frozen=True)
class JobProgress:
    """Where a job is: its stage (one of :data:`STAGES`), ``done`` of ``total`` in that stage, seconds since
    the job started."""

    stage: str
    done: int
    total: int
    elapsed: float


class GenerationJob:
    """One run of ``checked`` on ``engine``, stored in ``store``, in a daemon thread (use :meth:`start`)."""

    def __init__(self, engine: Engine, checked: CheckedRequest, store: Store, relax: bool = False,
                 relax_workers: ProcessPoolExecutor | int = 0) -> None:
        self.engine = engine
        self.checked = checked
        self.relax = relax
        self._relax_workers = relax_workers
        self._store = store
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._stage, self._done, self._total = STAGES[0], 0, 1
        self._stored: StoredRun | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=f"vdwgen-generate-{id(self):x}", daemon=True)

    @classmethod
    def start(cls, engine: Engine, checked: CheckedRequest, store: Store, relax: bool = False,
              relax_workers: ProcessPoolExecutor | int = 0) -> GenerationJob:
        """A started job; with ``relax`` the oracle relaxes the stored crystals on ``relax_workers``."""
        job = cls(engine, checked, store, relax, relax_workers)
        job._thread.start()
        return job

    def _report(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self._stage, self._done, self._total = stage, done, total

    def _work(self) -> None:
        try:
            try:
                # Loaded once per process and cached; loading it here lets the page say so while it loads.
                novelty_reference(self.engine.manifest)
            except Exception:
                pass  # generate_and_store meets the same error and stores the run as failed
            self._report("decoding", 0, self.checked.request.count)
            stored = generate_and_store(self.engine, self.checked, self._store, self._report, self.relax,
                                        self._relax_workers)
        except BaseException as exc:  # the page shows it; generate_and_store stored the run as failed
            with self._lock:
                self._error = exc
        else:
            with self._lock:
                self._stored = stored

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ended or ``timeout`` seconds passed; True when it ended."""
        self._thread.join(timeout)
        return not self.running

    def progress(self) -> JobProgress:
        with self._lock:
            return JobProgress(self._stage, self._done, self._total, time.monotonic() - self._started)

    @property
    def stored(self) -> StoredRun | None:
        """The stored run, once the job ended without error."""
        with self._lock:
            return self._stored

    @property
    def error(self) -> BaseException | None:
        """What stopped the job, once it ended with an error."""
        with self._lock:
            return self._error
