"""The process's one oracle and its error type.

CHGNet takes a few seconds to load; the app's sessions, the CLI and the evaluation all share
the instance built by :func:`get_oracle` on first use.
"""

from __future__ import annotations

import contextlib
import io
import threading

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
