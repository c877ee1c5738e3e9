"""The offline side: datasets, the ConditionCDVAE+ model, its training and its evaluation.

- :mod:`training.data`: the Janus III-VI build and labelling (with :mod:`oracle`), CDVAE CSV import,
  the dataset type, featurisation and periodic graphs;
- :mod:`training.model`: the networks (equivariant encoder/decoder, conditions, LMF, heads, CWGAN-GP,
  annealed Langevin);
- :mod:`training.train`: configs, stage 1, stage 2, checkpoints, shipped weights;
- :mod:`training.evaluation`: the paper's measurements on exported artifacts, checked by the oracle;
- :mod:`training.sample`: the eager sampler (reference for export parity and benchmarks).

Nothing in serving, the store or the app imports this package.
"""
