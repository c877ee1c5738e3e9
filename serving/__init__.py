"""Serving: exported artifacts -> crystals, importing nothing from ``training``.

- :mod:`serving.artifacts`: which folders under the artifacts root are models, and which serves a mode;
- :mod:`serving.request`: a :class:`~serving.request.GenerationRequest` checked once against a model's
  manifest into a :class:`~serving.request.CheckedRequest` (one-line messages that name the limit);
- :mod:`serving.engine`: :class:`~serving.engine.Engine` loads an artifact (hashes checked), runs the
  ONNX condition/generator/heads graphs, the 100:1 screening and the TorchScript Langevin decoder.
"""
