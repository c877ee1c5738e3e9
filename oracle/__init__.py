"""The physics oracle that labelled the dataset and checks every claim: CHGNet 0.3.0 + DFT-D3.

- :mod:`oracle.calculator`: :class:`~oracle.calculator.Oracle` (batched energies, forces, fixed-cell
  FIRE relaxation; D3 zero damping, PBE; slabs periodic in-plane only) and an ASE calculator;
- :mod:`oracle.shared`: the process's one oracle (:func:`~oracle.shared.get_oracle`), its error type
  and the torch thread limit used while it works;
- :mod:`oracle.convention`: the dataset's formation-energy convention and its elemental references.

Used by the dataset build (``training.data``), the evaluation, scoring's oracle check and the app.
CHGNet, torch and dftd3 are imported only when an oracle is built.
"""
