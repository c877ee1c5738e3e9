"""Stage ``new_and_right`` of ``vdwgen evaluate``: generated crystals that are new and as stable as the best known.

Our dataset already holds hundreds to thousands of exact bilayers for any formation-energy target, so
what a user gains from a generated crystal is a bilayer that is not in it and is about as stable as the
best stacking known for its formula. This stage counts, among the crystals the oracle stages relaxed
(CHGNet + D3, the dataset's convention), those that

1. relax to a structure that matches no bilayer of the dataset in any split (the paper's
   StructureMatcher tolerances; the relaxed structure, since a crystal that relaxes into a known
   bilayer is not new), and
2. have an oracle formation energy at most :data:`WITHIN` eV/atom above the lowest of their reduced
   formula in the dataset (all splits).

A formula absent from the dataset has no best known stacking: such crystals are counted apart
(``no_known_stacking``) and never as right. Shares are over every crystal generated for the group,
so a crystal the oracle was not asked about (overlapping atoms) counts as a failure. Groups:

- ``targets``: the formation-energy requests of stage ``energy_targets``;
- ``formulas``: the formula requests of stage ``formulas``;
- ``samples``: the model's samples, whose crystals new to the training part stage ``relaxation``
  relaxed; the share is over every sample examined to find them.

Each group also gives the share of relaxed crystals in the right layer order. Novelty verdicts are kept
in ``_cache/novelty_all_<group>.json`` (the scan resumes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from training.evaluation.cache import from_poscars, read_json
from training.evaluation.generation import motif_share
from training.evaluation.novelty_scan import novel_indices
from training.evaluation.selection import ABSENT_FORMULA, TRAINING_FORMULAS
from training.evaluation.stage_energy_targets import QUANTILES

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context

WITHIN = 0.05
"""eV/atom above the best known stacking of the formula that still counts as right."""


def _groups(ctx: Context) -> dict[str, tuple[int, list[dict]]]:
    """Per group: how many crystals were generated (the share's denominator) and the oracle checks."""
    cache = ctx.cache
    groups: dict[str, tuple[int, list[dict]]] = {}
    generated, checks = 0, []
    for q in QUANTILES:
        generated += len(read_json(cache / f"target_p{q}.json").get("poscars", []))
        checks += read_json(cache / f"oracle_target_p{q}.json").get("checks", [])
    groups["targets"] = (generated, checks)
    generated, checks = 0, []
    for formula in (*TRAINING_FORMULAS, ABSENT_FORMULA):
        generated += len(read_json(cache / f"formula_{formula}.json").get("poscars", []))
        checks += read_json(cache / f"oracle_formula_{formula}.json").get("checks", [])
    groups["formulas"] = (generated, checks)
    flags = read_json(cache / "novelty_model.json").get("flags", [])
    checks = read_json(cache / "oracle_relax_model.json").get("checks", [])
    chosen = [i for i, f in enumerate(flags) if f is True][:len(checks)]
    # the samples examined until the relaxed ones were found (all of them when fewer were found)
    examined = chosen[-1] + 1 if chosen and len(chosen) == len(checks) else len(flags)
    groups["samples"] = (examined, checks)
    return groups


def best_known(table: pd.DataFrame, prop: str) -> dict[str, float]:
    """The lowest ``prop`` per reduced formula over every row of the dataset."""
    return {str(k): float(v) for k, v in table.groupby("reduced_formula")[prop].min().items()}


def run(ctx: Context) -> dict:
    """Per group and overall: generated, oracle-checked, close to the best known, new and right."""
    data = ctx.dataset
    best = best_known(data.table, data.property)
    out: dict = {"within_ev_per_atom": WITHIN, "reference": f"every row of {data.name} (all splits)"}
    totals = {"generated": 0, "new_and_right": 0}
    for group, (generated, checks) in _groups(ctx).items():
        relaxed = from_poscars([c["relaxed_poscar"] for c in checks])
        close, unknown = [], 0
        for check, structure in zip(checks, relaxed, strict=True):
            reference = best.get(structure.composition.reduced_formula)
            if reference is None:
                unknown += 1
            elif check["formation_energy"] <= reference + WITHIN:
                close.append(check["relaxed_poscar"])
        new = novel_indices(close, len(close), ctx.cache / f"novelty_all_{group}.json", f"new and right: {group}",
                            data.path, data.split, ctx.workers, part=None) if close else []
        out[group] = {"generated": generated, "oracle_checked": len(checks), "no_known_stacking": unknown,
                      "within_0.05_of_best_known": len(close), "new_and_right": len(new),
                      "share": len(new) / generated if generated else None,
                      "motif_share_relaxed": motif_share(relaxed)}
        totals["generated"] += generated
        totals["new_and_right"] += len(new)
    out["overall"] = {**totals, "share": totals["new_and_right"] / totals["generated"] if totals["generated"] else None}
    return out
