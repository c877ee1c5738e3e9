"""``python -m vdwgen``: the ``vdwgen`` command, also as a module (``torchrun -m vdwgen train ...``)."""

from vdwgen.cli import main

raise SystemExit(main())
