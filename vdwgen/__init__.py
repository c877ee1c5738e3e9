"""vdwgen: inverse design of van der Waals heterostructures (bilayers).

The package holds what every part of the product shares: the version, the folder
layout (:mod:`vdwgen.paths`), user-facing errors and the ``vdwgen`` command line.
Model training lives in ``training/``, export in ``export/``, the web app in ``webapp/``
and the candidate store in ``store/``.
"""

__version__ = "0.1.0"
