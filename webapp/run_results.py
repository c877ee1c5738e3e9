"""What the Generate page shows of a stored run: its table and its figures, from the stored rows only.

Every value comes from the run's rows in the candidate store (:meth:`store.database.Store.run_rows`): the
scores made when the run was stored and the oracle's verdicts stored as each relaxation finished, so nothing
is scored again; files come from :mod:`store.files`, named as on the Candidates page and by
``vdwgen export-poscar``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), digits)


def yes_no(value: bool | None) -> str:
    """``yes``/``no``, or ``-`` when not judged."""
    return "-" if value is None or pd.isna(value) else ("yes" if value else "no")


def duplicate_label(duplicate_of: int | None) -> str:
    """A record's ``duplicate_of`` in words: ``-`` (none), ``candidate 12`` (stored) or ``#k of this run``."""
    if duplicate_of is None or pd.isna(duplicate_of):
        return "-"
    if duplicate_of < 0:
        return f"#{-duplicate_of - 1} of this run"
    return f"candidate {int(duplicate_of)}"


def verdict(valid: bool | None, reason: str | None) -> str:
    """``valid``, ``invalid: why``, or ``-`` when not judged (a crystal the oracle did not relax)."""
    if valid is None or pd.isna(valid):
        return "-"
    return "valid" if valid else f"invalid: {reason}"


def results_table(rows: Sequence[dict], property_label: str = "E_f (eV/atom)") -> pd.DataFrame:
    """One row per stored crystal: its id, index in the run, validity (and why not), the model's prediction, the
    oracle's relaxed formation energy and energy drop, the relaxed crystal's validity, novelty before and after
    relaxation, the dataset bilayer it is (known), duplicates, the oracle's flags and the 2D checks (slabs only)."""
    table = [{"id": r["id"], "#": r["index_in_run"], "formula": r["formula"],
              "validity": verdict(r["valid"], r["invalid_reason"]),
              f"predicted {property_label}": _rounded(r["predicted_formation_energy"], 4),
              f"oracle {property_label}": _rounded(r.get("oracle_formation_energy"), 4),
              "energy drop (eV/atom)": _rounded(r.get("oracle_energy_drop_per_atom"), 3),
              "relaxed": verdict(r.get("relaxed_valid"), r.get("relaxed_invalid_reason")),
              "novel": yes_no(r["novel"]), "novel relaxed": yes_no(r.get("relaxed_novel")),
              "known as": r.get("known_id") or "-", "known as, relaxed": r.get("relaxed_known_id") or "-",
              "duplicate of": duplicate_label(r["duplicate_of"]), "oracle flags": r.get("oracle_flags") or "-",
              "kind": "slab" if r["slab"] else "bulk", "layers": r["n_layers"],
              "interlayer gap (Å)": _rounded(r["interlayer_gap"], 3),
              "min distance (Å)": _rounded(r["min_distance"], 3),
              "a (Å)": round(r["a"], 3), "c (Å)": round(r["c"], 3), "atoms": r["num_atoms"]}
             for r in rows]
    return pd.DataFrame(table)


def _criterion(value: float | None, met: bool | None) -> str:
    if value is None or pd.isna(value):
        return "-"
    return f"{value:.4g} {'met' if met else 'missed'}"


def design_table(rows: Sequence[dict], criteria: Sequence[dict], order: Sequence[str] = ()) -> pd.DataFrame:
    """One row per designed crystal: its id, formula, each criterion as designed (the predictor) and after the
    oracle's relaxation (value, met or missed), whether every target holds before and after, validity, novelty,
    the dataset bilayer it matches once relaxed and the template it started from. Criteria come in ``order`` (the
    targets as asked), any other after them."""
    by_candidate: dict[int, dict[str, dict]] = {}
    for c in criteria:
        by_candidate.setdefault(int(c["candidate_id"]), {})[c["target"]] = c
    table = []
    for r in rows:
        mine = by_candidate.get(int(r["id"]), {})
        line = {"id": r["id"], "formula": r["formula"]}
        for target in sorted(mine, key=lambda t: list(order).index(t) if t in order else len(order)):
            c = mine[target]
            line[f"{target} (designed)"] = _criterion(c["designed"], c["met"])
            line[f"{target} (relaxed)"] = _criterion(c["oracle"], c["oracle_met"])
        line.update({"all met, designed": yes_no(r.get("design_met")),
                     "all met, relaxed": yes_no(r.get("design_oracle_met")),
                     "validity": verdict(r["valid"], r["invalid_reason"]),
                     "relaxed": verdict(r.get("relaxed_valid"), r.get("relaxed_invalid_reason")),
                     "energy drop (eV/atom)": _rounded(r.get("oracle_energy_drop_per_atom"), 3),
                     "novel relaxed": yes_no(r.get("relaxed_novel")),
                     "known as, relaxed": r.get("relaxed_known_id") or "-",
                     "template": r.get("template_id") or "-"})
        table.append(line)
    return pd.DataFrame(table)


__all__ = ["design_table", "duplicate_label", "results_table", "verdict", "yes_no"]
