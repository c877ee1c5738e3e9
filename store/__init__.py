"""The candidate store: one DuckDB file of runs and scored candidates.

- :mod:`store.schema`: the numbered migrations of the ``runs`` and ``candidates`` tables;
- :mod:`store.database`: :func:`~store.database.open_store` (one locked-down connection per file
  per process), atomic runs, oracle verdicts;
- :mod:`store.query`: the read-only path for user SQL (one SELECT, row cap, timeout);
- :mod:`store.files`: POSCAR names, folders and ZIPs of stored candidates (the CLI's
  ``export-poscar`` and the app's downloads).

It stores :class:`scoring.record.CandidateRecord` rows and never imports ``training``.
"""
