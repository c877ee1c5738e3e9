"""Export (offline side): a trained checkpoint -> a self-contained artifact folder ``artifacts/<name>/``.

- :mod:`export.graphs`: the exportable wrappers of the model's parts (condition, generator,
  fusion + heads) with float16-stored weights;
- :mod:`export.build`: :func:`~export.build.export_artifact` writes ``condition.onnx``,
  ``generator.onnx``, ``fusion_heads.onnx``, the TorchScript Langevin decoder ``decoder.pt`` and the
  manifest (:mod:`core.manifest`), after checking each part's parity with the eager model.

This package imports ``training`` (it reads checkpoints); serving (:mod:`serving`) reads what it
writes and never imports either.
"""
