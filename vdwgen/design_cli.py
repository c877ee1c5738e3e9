"""`vdwgen design`: SMOACS candidates for several targets at once, stored, relaxed and judged by the oracle.

The work is :func:`services.design.design_and_store`; this module picks the templates, shows progress, writes
the files (the names `vdwgen export-poscar` gives) and prints one line per candidate with every criterion
before and after the oracle's relaxation.
"""

from __future__ import annotations

from pathlib import Path

from services.design import DesignRequest


def _value(value: float | None, met: bool | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}{'' if met is None else (' ok' if met else ' no')}"


def _pair(criterion: dict) -> str:
    """``designed ok / oracle no``: one criterion before and after the oracle's relaxation."""
    return (f"{_value(criterion['designed'], criterion['met'])} / "
            f"{_value(criterion['oracle'], criterion['oracle_met'])}")


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def run_design_cli(request: DesignRequest, predictor_dir: Path | None, artifacts: Path | None, db: Path | None,
                   out: Path | None, relax: bool, workers: int) -> int:
    """Design, store (and relax) one run; print its table and success counts."""
    from scoring.oracle_labels import ORACLE_LABELS
    from services.design import check_design, design_and_store, request_templates
    from serving.predictor import load_predictor_artifact
    from store.database import open_store
    from store.files import write_folder
    from vdwgen.progress import stage_bar

    predictor = load_predictor_artifact(predictor_dir)
    checked = check_design(request, predictor)
    store = open_store(db)
    bar, progress = stage_bar("templates", request.steps)
    engine = None
    if request.templates in ("generated", "both"):
        from serving.artifacts import find_artifact
        from serving.engine import Engine

        engine = Engine.load(artifacts or find_artifact("formation_energy"))
    try:
        templates = request_templates(predictor, checked, engine, progress)
        done = design_and_store(predictor, checked, store, templates, progress, relax, workers)
    finally:
        bar.close()
    rows = {int(r["id"]): r for r in store.run_rows(done.run_id)}
    criteria: dict[int, dict[str, dict]] = {}
    for c in store.design_rows(done.run_id):
        criteria.setdefault(int(c["candidate_id"]), {})[c["label"]] = c
    if out is not None:
        write_folder(store, done.candidate_ids, out)
    labels = [t.label for t in checked.targets]
    head = ["id", "formula", "valid", "novel", *(f"{t.text()} (designed / oracle)" for t in checked.targets),
            "all (designed)", "all (oracle)"]
    table = [[str(cid), rows[cid]["formula"], _yes_no(rows[cid]["valid"]), _yes_no(rows[cid]["novel"]),
              *(_pair(criteria.get(cid, {})[k]) for k in labels), _yes_no(rows[cid]["design_met"]),
              _yes_no(rows[cid].get("design_oracle_met"))] for cid in done.candidate_ids]
    widths = [max(len(line[k]) for line in [head, *table]) for k in range(len(head))]
    for line in [head, *table]:  # the formula left-aligned, every other column right-aligned
        print("  ".join(cell.ljust(w) if k == 1 else cell.rjust(w) for k, (cell, w) in enumerate(zip(line, widths))))
    n = len(done.candidate_ids)
    met = sum(1 for cid in done.candidate_ids if rows[cid]["design_met"])
    print(f"run {done.run_id}: {n} candidates optimised in {done.designed.seconds:.0f} s; every target met as "
          f"designed: {met}/{n}")
    if relax:
        after = [rows[cid].get("design_oracle_met") for cid in done.candidate_ids]
        ok = sum(1 for v in after if v)
        novel_ok = sum(1 for cid, v in zip(done.candidate_ids, after) if v and rows[cid].get("relaxed_novel"))
        new_ok = sum(1 for cid, v in zip(done.candidate_ids, after) if v and rows[cid].get("relaxed_known") is False)
        print(f"after the oracle's relaxation: every target met by {ok}/{n}, of them {novel_ok} novel (no training "
              f"crystal matches) and {new_ok} new (no dataset crystal matches); relaxation {done.relax_status}: "
              f"{done.relax_message}")
    unchecked = [t.label for t in checked.targets if t.label not in ORACLE_LABELS]
    if unchecked:
        print(f"the oracle (CHGNet + D3) cannot check {', '.join(unchecked)}: judged by the predictor only, so no "
              "candidate counts as meeting every target after relaxation")
    print(f"targets: {' AND '.join(t.text() for t in checked.targets)}; stored in {store.path}"
          + (f"; files in {out}" if out is not None else ""))
    return 0


__all__ = ["run_design_cli"]
