"""This process's resident memory, as Linux counts it (``/proc/self/status``), for benchmarks that report it."""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_mib(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` in MiB (nan where there is no such file: not Linux)."""
    try:
        lines = _STATUS.read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def resident_mib() -> float:
    """Resident memory now (``VmRSS``)."""
    return _status_mib("VmRSS")


def peak_resident_mib() -> float:
    """The resident-memory high-water mark since the process started or since :func:`reset_peak` (``VmHWM``)."""
    return _status_mib("VmHWM")


def reset_peak() -> bool:
    """Reset the high-water mark to the memory in use now; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


__all__ = ["peak_resident_mib", "reset_peak", "resident_mib"]
