"""Store: the DuckDB candidate store.

Planned contents (arriving with the generator): a DuckDB database under
:func:`core.paths.data_dir` that keeps generated candidate crystals with their
conditions, predicted labels and provenance, lets the web app filter them with SQL,
and writes POSCAR files for download. Like ``webapp``, this package must never import
``training`` (a test in ``tests/test_setup.py`` enforces it).
"""
