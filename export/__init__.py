"""Export: turn a trained checkpoint into a shippable model artifact.

Planned contents (arriving with the model issues): conversion of a training checkpoint
into a self-contained folder under ``artifacts/<model>/`` with a ``manifest.json``
(model name, version, training data, metrics, file hashes) and the exported network
files, plus the runtime engine that loads such a folder and generates candidate
crystals without importing ``training``. The web app discovers models by looking for
``manifest.json`` files under :func:`core.paths.artifacts_dir`.
"""
