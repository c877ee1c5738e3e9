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
from typing import Any

from services.design import CheckedDesign, StoredDesign
from services.generation import StoredRun, generate_and_store, novelty_reference
from serving.engine import Engine
from serving.predictor import LoadedPredictor
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


class ThreadJob:
    """Work that stores its result, in a daemon thread: progress, result and error read thread-safely.

    A subclass implements :meth:`run` (called in the thread with :meth:`report` as its progress callback) and
    is started with :meth:`begin`."""

    def __init__(self, first_stage: str) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._stage, self._done, self._total = first_stage, 0, 1
        self._stored: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=f"vdwgen-{type(self).__name__}-{id(self):x}",
                                        daemon=True)

    def begin(self) -> ThreadJob:
        self._thread.start()
        return self

    def report(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self._stage, self._done, self._total = stage, done, total

    def run(self) -> Any:  # pragma: no cover - every job defines it
        raise NotImplementedError

    def _work(self) -> None:
        try:
            stored = self.run()
        except BaseException as exc:  # the page shows it; the service stored the run as failed
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
    def stored(self) -> Any:
        """The stored run, once the job ended without error."""
        with self._lock:
            return self._stored

    @property
    def error(self) -> BaseException | None:
        """What stopped the job, once it ended with an error."""
        with self._lock:
            return self._error


class GenerationJob(ThreadJob):
    """One run of ``checked`` on ``engine``, stored in ``store``, in a daemon thread (use :meth:`start`)."""

    def __init__(self, engine: Engine, checked: CheckedRequest, store: Store, relax: bool = False,
                 relax_workers: ProcessPoolExecutor | int = 0) -> None:
        super().__init__(STAGES[0])
        self.engine = engine
        self.checked = checked
        self.relax = relax
        self._relax_workers = relax_workers
        self._store = store

    @classmethod
    def start(cls, engine: Engine, checked: CheckedRequest, store: Store, relax: bool = False,
              relax_workers: ProcessPoolExecutor | int = 0) -> GenerationJob:
        """A started job; with ``relax`` the oracle relaxes the stored crystals on ``relax_workers``."""
        job = cls(engine, checked, store, relax, relax_workers)
        job.begin()
        return job

    def run(self) -> StoredRun:
        try:
            # Loaded once per process and cached; loading it here lets the page say so while it loads.
            novelty_reference(self.engine.manifest)
        except Exception:
            pass  # generate_and_store meets the same error and stores the run as failed
        self.report("decoding", 0, self.checked.request.count)
        return generate_and_store(self.engine, self.checked, self._store, self.report, self.relax,
                                  self._relax_workers)


class DesignJob(ThreadJob):
    """One design run (:func:`services.design.design_and_store`) in a daemon thread; templates are made first
    (crystals from ``engine`` for ``generated`` / ``both``)."""

    def __init__(self, predictor: LoadedPredictor, checked: CheckedDesign, store: Store, engine: Engine | None,
                 relax: bool, relax_workers: ProcessPoolExecutor | int = 0) -> None:
        super().__init__("templates")
        self.predictor, self.checked, self.engine, self.relax = predictor, checked, engine, relax
        self._store, self._relax_workers = store, relax_workers

    def run(self) -> StoredDesign:
        from services.design import design_and_store, request_templates

        templates = request_templates(self.predictor, self.checked, self.engine, self.report)
        return design_and_store(self.predictor, self.checked, self._store, templates, self.report, self.relax,
                                self._relax_workers)
