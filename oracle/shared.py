"""The process's one oracle, its error type and the thread limit used while it works.

CHGNet takes a few seconds to load; the app's sessions, the CLI and the evaluation all share
the instance built by :func:`get_oracle` on first use.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator

from core.errors import VdwgenError
from oracle.calculator import Oracle


class OracleError(VdwgenError):
    """The oracle cannot do what was asked (missing packages or references, bad input); the message names the
    problem."""


_ORACLE: Oracle | None = None
_ORACLE_LOCK = threading.Lock()


def get_oracle() -> Oracle:
    """The process's oracle, built on first use (loading CHGNet takes a few seconds)."""
    global _ORACLE
    with _ORACLE_LOCK:
        if _ORACLE is None:
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # CHGNet announces itself on stdout
                    _ORACLE = Oracle()
            except ImportError as exc:
                raise OracleError(f"the oracle needs the packages chgnet and dftd3: {exc}") from None
        return _ORACLE


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with at most ``threads`` torch intra-op threads (None: unchanged), then restore.

    The setting is process-wide: other torch work in the process during the block gets the
    same limit (it only runs slower, never differently).
    """
    import torch

    before = torch.get_num_threads()
    if threads is None or threads >= before:
        yield
        return
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
