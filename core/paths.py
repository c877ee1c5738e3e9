"""Where the product keeps its files.

Every folder can be moved with an environment variable, so a container, a test or a
second checkout can point the app somewhere else without touching code:

========================  ===============================  ============================
function                  default                          override
========================  ===============================  ============================
:func:`repo_root`         the checkout holding ``vdwgen``  ``VDWGEN_ROOT``
:func:`data_dir`          ``<repo>/var``                   ``VDWGEN_DATA_DIR``
:func:`artifacts_dir`     ``<repo>/artifacts``             ``VDWGEN_ARTIFACTS_DIR``
:func:`dataset_dir`       ``<repo>/data/janus_iii_vi``     ``VDWGEN_DATASET_DIR``
========================  ===============================  ============================

The functions only compute paths and never create anything, except
:func:`ensure_data_dir`, which makes the writable data folder on demand. Variables are
read at each call, so a change to the environment takes effect at once.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _env_path(name: str) -> Path | None:
    """The path in environment variable ``name``, or None when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def repo_root() -> Path:
    """The root of the checkout (the folder holding ``pyproject.toml`` and ``vdwgen/``).

    ``VDWGEN_ROOT`` wins when set. Otherwise the parent of this package is used when it
    is a checkout (an editable install or running from the source tree); for a
    non-editable install, where the package sits in site-packages, the current working
    directory is taken instead: set ``VDWGEN_ROOT`` there (the Dockerfile does).
    """
    root = _env_path("VDWGEN_ROOT")
    if root is not None:
        return root
    parent = _PACKAGE_DIR.parent
    if (parent / "pyproject.toml").is_file():
        return parent
    return Path.cwd()


def data_dir() -> Path:
    """The writable folder for run-time data (candidate store, downloads): ``VDWGEN_DATA_DIR``
    or ``<repo>/var``. Not created here; see :func:`ensure_data_dir`."""
    return _env_path("VDWGEN_DATA_DIR") or repo_root() / "var"


def ensure_data_dir() -> Path:
    """:func:`data_dir`, created (with parents) if it does not exist yet."""
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def artifacts_dir() -> Path:
    """The folder of exported models, one sub-folder with a ``manifest.json`` per model:
    ``VDWGEN_ARTIFACTS_DIR`` or ``<repo>/artifacts``."""
    return _env_path("VDWGEN_ARTIFACTS_DIR") or repo_root() / "artifacts"


def reports_dir() -> Path:
    """The folder of evaluation reports, one sub-folder per model name (``report.md``, PNGs):
    ``VDWGEN_REPORTS_DIR`` or ``<repo>/reports``."""
    return _env_path("VDWGEN_REPORTS_DIR") or repo_root() / "reports"


def dataset_dir() -> Path:
    """The folder of the Janus III-VI bilayer dataset (``bilayers.parquet`` and friends):
    ``VDWGEN_DATASET_DIR`` or ``<repo>/data/janus_iii_vi``."""
    return _env_path("VDWGEN_DATASET_DIR") or repo_root() / "data" / "janus_iii_vi"
