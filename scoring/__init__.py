"""Scoring: a generated crystal -> one typed record of everything a referee asks about it.

- :mod:`scoring.validity`: structural validity (distances, volume), SMACT charge neutrality;
- :mod:`scoring.layers`: the 2D analysis (layers as bond-graph components, vacuum, gap, contacts);
- :mod:`scoring.novelty`: StructureMatcher novelty against a training table and duplicates,
  with the exact height pre-filter of :mod:`scoring.slab_filter`;
- :mod:`scoring.record`: :class:`~scoring.record.CandidateRecord`, the scored crystal the store keeps
  and the app and CLI show;
- :mod:`scoring.batch`: :func:`~scoring.batch.score_crystals`, a batch with novelty and duplicates;
- :mod:`scoring.gap_scan`: a bilayer's interlayer gap set by the rigid scan that labelled the dataset;
- :mod:`scoring.oracle_check`: the oracle's verdict on a crystal (gap scan, relaxation of positions and in-plane
  cell, E_f, RMSD, flags).

Nothing here imports the store, serving or ``training``.
"""
