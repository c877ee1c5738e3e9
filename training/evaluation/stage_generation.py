"""Stage ``generation`` of ``vdwgen evaluate`` (paper Table 2).

Validity of the stored samples (model, and baseline when there is one), COV-R / COV-P against the
crystals of the evaluated part (structure and composition fingerprints), and the EMDs of density and
of the number of elements on up to ``budget.emd`` valid crystals; also draws ``property_distributions.png``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scoring.layers import in_family
from scoring.novelty import table_structure
from scoring.validity import compositionally_valid, structurally_valid, table_contact_limits
from training.evaluation import coverage as cov
from training.evaluation import plots
from training.evaluation.cache import cached_fingerprints, from_poscars, read_json
from training.evaluation.generation import motif_share, validity_rates
from training.evaluation.selection import evenly

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context


def run(ctx: Context) -> dict:
    """Table-2 figures of the stored samples against ``ctx.budget.reference`` crystals of the evaluated part."""
    from training.data.crystal import Crystal

    part = ctx.split_part
    test = ctx.dataset.part(part)
    test = test.iloc[evenly(len(test), ctx.budget.reference)]
    ref_structures = [table_structure(r.lattice, r.species, r.frac_coords) for r in test.itertuples()]
    train = ctx.dataset.part("train")
    scaler = cov.CompositionScaler.fit(cov.composition_fingerprints(list(train["reduced_formula"])))
    contacts = table_contact_limits(ctx.dataset.table)  # the contacts check as served scoring applies it
    ref_struc = cached_fingerprints(ref_structures, ctx.cache / f"fp_reference_{len(test)}.npz",
                                    "fingerprints: reference", ctx.workers)
    keep = ~np.isnan(ref_struc).any(axis=1)
    ref_struc = ref_struc[keep]
    ref_comp = scaler.transform(cov.composition_fingerprints([s.composition for s in ref_structures]))[keep]
    ref_density = [cov.density(s) for s in ref_structures]
    ref_nel = [cov.n_elements(s) for s in ref_structures]
    out: dict = {"reference": {"split": f"{ctx.dataset.split}:{part}", "count": int(keep.sum())}}
    histograms = {"test": {"density": ref_density, "n_elements": ref_nel}}
    for label in ctx.labels:
        structures = from_poscars(read_json(ctx.cache / f"samples_{label}.json")["poscars"])
        crystals = [Crystal.from_structure(s, f"{label}-{i}") for i, s in enumerate(structures)]
        validity = validity_rates(crystals, in_family(ctx.dataset.vocabulary), contacts).as_dict()
        valid = np.array([structurally_valid(s) and compositionally_valid(s.composition) for s in structures])
        gen_struc = cached_fingerprints(structures, ctx.cache / f"fp_{label}_{len(structures)}.npz",
                                        f"fingerprints: {label}", ctx.workers)
        gen_comp = scaler.transform(cov.composition_fingerprints([s.composition for s in structures]))
        coverage = cov.coverage(gen_struc, gen_comp, valid, ref_struc, ref_comp).as_dict()
        chosen = [s for s, v in zip(structures, valid, strict=True) if v][:ctx.budget.emd]
        density = [cov.density(s) for s in chosen]
        nel = [cov.n_elements(s) for s in chosen]
        out[label] = {"validity": validity, "coverage": coverage,
                      "emd_density": cov.emd(density, ref_density) if chosen else None,
                      "emd_n_elements": cov.emd(nel, ref_nel) if chosen else None,
                      "emd_count": len(chosen), "fingerprint_failures": int(np.isnan(gen_struc).any(axis=1).sum())}
        if in_family(ctx.dataset.vocabulary):
            out[label]["motif_share"] = motif_share(structures)
        histograms[label] = {"density": density, "n_elements": nel}
    plots.property_histograms(histograms, ctx.out / "property_distributions.png")
    return out
