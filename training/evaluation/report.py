"""``report.md`` from ``metrics.json``: our figures next to the nearest published ones.

For the Janus model these are the ConditionCDVAE+ paper's J2DH-8 numbers, on *different data* (its
DFT-labelled J2DH-8, ours the rebuilt CHGNet + D3 Janus III-VI set; its Table 3 used VASP where we
use CHGNet + D3); for a perov-5 model, the CDVAE paper's perov-5 rows (same benchmark, full GPU
training). The report says so at every table; for other datasets there is no published row.
Shortfalls are stated, not hidden; skipped stages are listed with their reason.
"""

from __future__ import annotations

from pathlib import Path

PAPER = {
    "reconstruction": {"ConditionCDVAE+": (25.35, 0.1842), "CDVAE": (20.52, 0.2124)},
    "generation": {  # struc %, comp %, COV-R %, COV-P %, EMD density, EMD #elem
        "ConditionCDVAE+": (100.00, 100.00, 100.00, 87.41, 0.1067, 0.0964),
        "CDVAE": (100.00, 100.00, 100.00, 80.84, 0.1040, 0.2404),
    },
    "relaxation": {  # converged %, mean steps, mean energy difference (eV)
        "ConditionCDVAE+": (99.50, 62.39, 4.2308),
        "CDVAE": (95.16, 63.20, 4.4113),
    },
}
"""Paper (Sci. Rep. 15, 23023 (2025)), J2DH-8 rows of Tables 1-3."""

CDVAE_PEROV5 = {
    "reconstruction": (97.52, 0.0156),
    "generation": (100.00, 98.59, 99.45, 98.46, 0.1258, 0.0628),
}
"""CDVAE (Xie et al., ICLR 2022), perov-5 rows of its reconstruction and generation tables."""


def published(dataset: str) -> tuple[str, dict[str, dict[str, tuple]]] | None:
    """(source, {section: {model: row}}) of the published figures for ``dataset``, or None."""
    if dataset == "janus_iii_vi":
        return "ConditionCDVAE+ paper, J2DH-8 (different data)", PAPER
    if dataset.startswith("perov"):
        return ("CDVAE paper, perov-5 (same benchmark; the full dataset and GPU training)",
                {"reconstruction": {"CDVAE": CDVAE_PEROV5["reconstruction"]},
                 "generation": {"CDVAE": CDVAE_PEROV5["generation"]}})
    return None


NAMES = {"model": "ConditionCDVAE+", "baseline": "CDVAE"}
"""Row names of the evaluated models in the tables."""

PLOTS = (
    ("energy_targets.png", "Oracle formation energies of crystals generated for three targets (Fig. 3b analogue)"),
    ("predicted_vs_oracle.png", "The model's predicted formation energy against the oracle's"),
    ("property_distributions.png", "Density and number of elements: generated vs test crystals"),
    ("latent_tsne.png", "t-SNE of test latents without and with LMF fusion (Fig. 4 analogue)"),
)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def _num(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _paper_row(m: dict, section: str, label: str) -> tuple | None:
    """The published row a model of ours is compared with (the ConditionCDVAE+ row for our model, CDVAE's
    for the baseline; for a dataset where only CDVAE was published, CDVAE's row for both)."""
    found = published(m.get("settings", {}).get("dataset", "janus_iii_vi"))
    if found is None:
        return None
    rows = found[1].get(section, {})
    return rows.get(NAMES[label]) or (rows.get("CDVAE") if len(rows) == 1 else None)


def _source(m: dict) -> str:
    found = published(m.get("settings", {}).get("dataset", "janus_iii_vi"))
    return found[0] if found else "no published figures for this dataset"


def _labels(section: dict) -> list[str]:
    return [label for label in ("model", "baseline") if label in section]


def _reconstruction(m: dict) -> list[str]:
    r = m["reconstruction"]
    lines = ["## Reconstruction (Table 1)", "",
             f"StructureMatcher(stol 0.5, angle_tol 10, ltol 0.3); {r['steps_per_level']} Langevin steps per level. "
             f"{r['pair_split_note']}. Published: {_source(m)}.", "",
             "| model | set | crystals | match rate (%) | RMSE | layer order right (%) | published match (%) | "
             "published RMSE |", "|---|---|---|---|---|---|---|---|"]
    for label in _labels(r):
        paper = _paper_row(m, "reconstruction", label) or ("n/a", "n/a")
        for split, row in r[label].items():
            lines.append(f"| {NAMES[label]} (ours) | {split} | {row['count']} | {_pct(row['match_rate'])} | "
                         f"{_num(row['rmse'])} | {_pct(row.get('motif_share'))} | {paper[0]} | {paper[1]} |")
    paper = _paper_row(m, "reconstruction", "model")
    if paper is not None:
        ours = next(iter(r["model"].values()))
        pm, pr = paper
        verdict = "meets" if 100 * ours["match_rate"] >= pm and (ours["rmse"] or 9) <= pr else "falls short of"
        lines += ["", f"**Verdict:** the model {verdict} the published reconstruction "
                  f"(match {_pct(ours['match_rate'])} % vs {pm} %, RMSE {_num(ours['rmse'])} vs {pr}; "
                  f"{_source(m)}).", ""]
    else:
        lines.append("")
    return lines


def _property(m: dict) -> list[str]:
    p = m["property"]
    unit = f" ({p['unit']})" if p.get("unit") else ""
    lines = ["## Property head on the held-out crystals", "",
             f"`{p['property']}`{unit} of {p['count']} crystals predicted from the encoder's mean by the head the "
             f"screening uses. Label standard deviation {_num(p['label_std'])}; always predicting the training mean "
             f"gives MAE {_num(p['mean_predictor_mae'])}.", "", "| model | MAE | RMSE |", "|---|---|---|"]
    for label in _labels(p):
        row = p[label]
        if "skipped" in row:
            lines.append(f"| {NAMES[label]} (ours) | {row['skipped']} | |")
        else:
            lines.append(f"| {NAMES[label]} (ours) | {_num(row['mae'])} | {_num(row['rmse'])} |")
    return [*lines, ""]


def _generation(m: dict) -> list[str]:
    g, s = m["generation"], m["samples"]
    lines = ["## Generation (Table 2)", "",
             f"{s['count']} crystals per model ({s['steps_per_level']} steps per level); model: {s['targets']}"
             f"{'; baseline: its prior' if 'baseline' in g else ''}. COV against {g['reference']['count']} crystals "
             f"of the evaluated part "
             "(CrystalNN 'ops' fingerprints, cutoff 0.4; Magpie features standardised on the training part, "
             f"cutoff 10). EMDs on valid crystals. Published: {_source(m)}.", "",
             "| model | struc. valid (%) | comp. valid (%) | COV-R (%) | COV-P (%) | EMD density | EMD #elem | "
             "layer order right (%) | published (struc / comp / R / P / rho / #elem) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label in _labels(g):
        row = g[label]
        p = _paper_row(m, "generation", label)
        published_row = " / ".join(str(x) for x in p) if p else "n/a"
        lines.append(f"| {NAMES[label]} (ours) | {_pct(row['validity']['structural'])} | "
                     f"{_pct(row['validity']['compositional'])} | "
                     f"{_pct(row['coverage']['cov_r'])} | {_pct(row['coverage']['cov_p'])} | "
                     f"{_num(row['emd_density'])} | {_num(row['emd_n_elements'])} | {_pct(row.get('motif_share'))} | "
                     f"{published_row} |")
    for label in _labels(g):
        w = g[label]["validity"]
        if "every" in w:  # the product's stricter checks (reports written before them lack these figures)
            lines.append(f"\n{NAMES[label]}, our checks: contacts (no pair closer than 0.85 x covalent radii) "
                         f"{_pct(w['contacts'])} %, layer motif {_pct(w['motif'])} %, van der Waals gap "
                         f"{_pct(w['gap'])} % of those with the motif; every check that applies (the app's "
                         f"'valid') {_pct(w['every'])} %.")
    v = g["model"]["validity"]
    paper = _paper_row(m, "generation", "model")
    if paper is not None:
        short = [name for name, x, ref in (("structural", v["structural"], paper[0]),
                                           ("compositional", v["compositional"], paper[1])) if 100 * x < ref]
        lines += ["", ("**Verdict:** validity " + ("matches the published figures." if not short else
                       f"falls short of the published figures ({', '.join(short)}).")), ""]
    else:
        lines.append("")
    return lines


def _energy_targets(m: dict) -> list[str]:
    e = m["energy_targets"]
    lines = ["## Formation-energy targets checked by the oracle (Fig. 3b)", "",
             "Crystals generated for each target (100:1 screening) are relaxed with CHGNet + D3 "
             "(all positions and the in-plane cell, fmax 0.05 eV/A, 500 steps) and their formation energy "
             "recomputed with the dataset's convention. The model never saw the oracle at sampling time.", "",
             "| target | E_f target | relaxed | oracle median | oracle median abs. error | oracle within +-0.05 (%) | "
             "predicted within +-0.05 (%) | unconditional within +-0.05 (%) | layer order right: generated / "
             "relaxed (%) |", "|---|---|---|---|---|---|---|---|---|"]
    u = e.get("unconditional", {})
    for q in ("p10", "p50", "p90"):
        row = e[q]
        lines.append(f"| {q} | {row['target']:.3f} | {row['relaxed']}/{row['generated']} | {row['median']:.3f} | "
                     f"{row['median_abs_error']:.3f} | {_pct(row['within_0.05'])} | "
                     f"{_pct(row['predicted']['within_0.05'])} | {_pct(u.get(f'within_0.05_of_{q}'))} | "
                     f"{_pct(row.get('motif_share'))} / {_pct(row.get('motif_share_relaxed'))} |")
    baseline = (f"Unconditional baseline samples: {u['count']} relaxed, oracle median {u['median']:.3f} eV/atom. "
                if u else "No baseline evaluated. ")
    lines += ["", f"{baseline}|predicted - oracle| over all conditioned crystals: median "
              f"{e.get('prediction_vs_oracle_median_abs_error', float('nan')):.3f}, mean "
              f"{e['prediction_vs_oracle_mae']:.3f} eV/atom; {e.get('oracle_above_zero', 'n/a')} of "
              f"{e.get('oracle_count', 'n/a')} have a positive oracle formation energy.", ""]
    return lines


def _formulas(m: dict) -> list[str]:
    lines = ["## Formula requests checked by the oracle", "",
             "Element counts fixed to the formula (scaled to the 8-atom cell; which site holds which element is "
             "the decoder's choice with site typing `counts`, the starting draw with `argmax`); relaxed as above. "
             "'data best' is the lowest "
             "formation energy of that cell formula among all stackings in the dataset.", "",
             "| formula | cell | in training part | relaxed | oracle median | oracle best | data best | "
             "best - data best | within 0.01 of data best (%) | distinct stackings | layer order right: generated / "
             "relaxed (%) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for formula, row in m["formulas"].items():
        lines.append(f"| {formula} | {row['cell']} | {row['in_training_part']} | {row['relaxed']}/{row['generated']} | "
                     f"{_num(row.get('oracle_median'), 3)} | {_num(row.get('oracle_best'), 3)} | "
                     f"{_num(row.get('data_best'), 3)} | {_num(row.get('best_minus_data_best'), 3)} | "
                     f"{_pct(row.get('within_0.01_of_data_best'))} | {row.get('distinct_stackings', 0)} | "
                     f"{_pct(row.get('motif_share'))} / {_pct(row.get('motif_share_relaxed'))} |")
    lines.append("")
    return lines


def _relaxation(m: dict) -> list[str]:
    r = m["relaxation"]
    lines = ["## Relaxation of novel crystals (Table 3 analogue)", "",
             "Generated crystals that are valid and match nothing in the training part, relaxed (positions and "
             "in-plane cell) with CHGNet + D3 (the paper used VASP: a different oracle, and its energy difference is "
             "per structure).", "",
             "| model | relaxed | novel share of valid (%) | converged (%) | mean steps | mean energy drop (eV/cell) | "
             "(eV/atom) | median energy drop (eV/atom) | mean RMSD (A) | paper converged / steps / energy diff |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label in _labels(r):
        paper = NAMES[label]
        row = r[label]
        p = PAPER["relaxation"][paper]
        if not row.get("count"):
            lines.append(f"| {paper} (ours) | 0 | {_pct(row.get('novel_share_of_valid'))} | | | | | | | "
                         f"{p[0]} / {p[1]} / {p[2]} |")
            continue
        lines.append(f"| {paper} (ours) | {row['count']} | {_pct(row.get('novel_share_of_valid'))} | "
                     f"{_pct(row['converged'])} | {row['mean_steps']:.1f} | "
                     f"{row['mean_energy_drop_ev']:.3f} | {row['mean_energy_drop_ev_per_atom']:.4f} | "
                     f"{_num(row.get('median_energy_drop_ev_per_atom'))} | "
                     f"{row['mean_rmsd']:.3f} | {p[0]} / {p[1]} / {p[2]} |")
    lines.append("")
    return lines


def _new_and_right(m: dict) -> list[str]:
    n = m["new_and_right"]
    lines = ["## New and right: crystals the dataset does not hold, as stable as its best", "",
             f"Relaxed by the oracle (as above), matching no bilayer in {n['reference']} and at most "
             f"{n['within_ev_per_atom']} eV/atom above the lowest formation energy of their reduced formula there. "
             "Shares are over every crystal generated for the group; a formula the dataset lacks has no reference "
             "and never counts.", "",
             "| group | generated | oracle-checked | no known stacking | within 0.05 of best known | new and right | "
             "share (%) | layer order right, relaxed (%) |", "|---|---|---|---|---|---|---|---|"]
    for group in ("targets", "formulas", "samples"):
        row = n.get(group)
        if row:
            lines.append(f"| {group} | {row['generated']} | {row['oracle_checked']} | {row['no_known_stacking']} | "
                         f"{row['within_0.05_of_best_known']} | {row['new_and_right']} | {_pct(row['share'])} | "
                         f"{_pct(row['motif_share_relaxed'])} |")
    total = n["overall"]
    lines.append(f"| all | {total['generated']} | | | | {total['new_and_right']} | {_pct(total['share'])} | |")
    return [*lines, ""]


def _samplers(m: dict) -> list[str]:
    """What decides each model's crystals beyond its weights, as the reconstruction stage recorded it."""
    r = m.get("reconstruction", {})
    labels = [label for label in ("model", "baseline") if label in r.get("site_types", {})]
    if not labels:
        return []
    parts = [f"{NAMES[label]}: noise × {r.get('noise_scale', {}).get(label, 1.0):g}, sites typed by "
             f"`{r['site_types'][label]}`, free compositions by `{r.get('compositions', {}).get(label, 'head')}`"
             for label in labels]
    return ["Samplers (noise × 1 is the reference's; `counts` keeps each crystal's element counts and lets the decoder "
            "place them; free compositions `known` take the nearest training composition, `head` the composition "
            "head's): " + "; ".join(parts) + ".", ""]


def write_report(metrics: dict, path: Path) -> Path:
    """Write ``report.md`` for whatever stages ``metrics`` holds."""
    s = metrics.get("settings", {})
    baseline = f"baseline `{s['baseline']}`" if s.get("baseline") else "no baseline"
    outside = s.get("outside_vocabulary", 0)
    lines = [f"# Evaluation of `{s.get('model', '?')}` ({baseline})", "",
             f"Preset `{s.get('preset')}`, seed {s.get('seed')}, {s.get('steps_per_level')} Langevin steps per level. "
             f"Trained on `{s.get('data', {}).get('id', '?')}`; evaluated on the `{s.get('split')}` part of "
             f"`{s.get('dataset', s.get('data', {}).get('id', '?'))}`"
             + (f" ({outside} crystals with elements the model does not know left out)" if outside else "") + ". "
             f"Compared with: {_source(metrics)}.", ""]
    lines += _samplers(metrics)
    sections = (("reconstruction", _reconstruction), ("property", _property), ("generation", _generation),
                ("energy_targets", _energy_targets), ("formulas", _formulas), ("relaxation", _relaxation),
                ("new_and_right", _new_and_right))
    skipped = [(key, metrics[key]["skipped"]) for key, _ in sections
               if isinstance(metrics.get(key), dict) and "skipped" in metrics[key]]
    for key, section in sections:
        if key in metrics and "skipped" not in metrics[key] and (key != "generation" or "samples" in metrics):
            lines += section(metrics)
    if skipped:
        lines += ["## Stages not run", ""]
        lines += [f"- `{key}`: {reason.removeprefix('skipped: ')}" for key, reason in skipped] + [""]
    figures = [(name, caption) for name, caption in PLOTS if (path.parent / name).is_file()]
    if figures:
        lines += ["## Figures", ""]
        for name, caption in figures:
            lines += [f"**{caption}**", "", f"![{caption}]({name})", ""]
    seconds = metrics.get("seconds", {})
    if seconds:
        lines += ["## Time per stage", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in seconds.items()] + [f"| total | {sum(seconds.values()):.0f} |", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
