"""Measuring a trained model: reconstruction, validity, coverage, conditional accuracy (paper Tables 1-3).

Two drivers, both reached through the ``vdwgen`` command line:

- :mod:`~training.evaluation.evaluate` (``vdwgen evaluate``): the served artifacts, checked by the
  oracle; one module per stage (``stage_reconstruction``, ``stage_samples``, ``stage_generation``,
  ``stage_energy_targets``, ``stage_formulas``, ``stage_relaxation``, ``stage_latent``), with
  :mod:`~training.evaluation.cache` keeping finished work and :mod:`~training.evaluation.novelty_scan`
  the resumable novelty scan;
- :mod:`~training.evaluation.model_card` (``vdwgen model-card``): the trained weights, checked with
  the model's own encoder + property head.

Shared by both: :mod:`~training.evaluation.selection` (property, formulas, which crystals),
:mod:`~training.evaluation.progress` (bars) and the metrics of :mod:`~training.evaluation.reconstruction`,
:mod:`~training.evaluation.generation`, :mod:`~training.evaluation.coverage` and
:mod:`~training.evaluation.oracle_stats`; :mod:`~training.evaluation.plots` and
:mod:`~training.evaluation.report` draw and write the evaluation's figures.
"""
