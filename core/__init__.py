"""The bottom of the product: what every other package shares and nothing else.

- :mod:`core.errors`: :class:`~core.errors.VdwgenError`, the one base class of errors a user can fix;
- :mod:`core.paths`: where the product keeps its files (each folder movable by an environment variable);
- :mod:`core.chemistry`: formulas against a model's element vocabulary and cell sizes;
- :mod:`core.manifest`: the typed artifact manifest, the contract between training and serving.

Nothing here imports another project package.
"""

__version__ = "0.1.0"
