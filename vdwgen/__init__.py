"""The ``vdwgen`` command line: a thin layer of subcommands over typed library functions.

:mod:`vdwgen.cli` parses the arguments and dispatches; each ``*_cli`` module turns parsed
arguments into one call of a library function (``services``, ``store``, ``training``, ``export``)
and prints its result. Nothing in the product imports this package: it sits at the top, next to
``webapp/``.
"""

from core import __version__

__all__ = ["__version__"]
