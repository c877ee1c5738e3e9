"""Stage ``latent`` of ``vdwgen evaluate`` (paper Fig. 4): t-SNE maps of test latents.

The model's encoder means ``z = mu`` (no fusion) and the fused ``z_c`` of the same test crystals,
coloured by the model's property; draws ``latent_tsne.png``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from training.evaluation import plots
from training.evaluation.selection import evenly

if TYPE_CHECKING:
    from training.evaluation.evaluate import Context


def run(ctx: Context) -> dict:
    """Both maps of ``ctx.budget.tsne`` test crystals; returns the count and the t-SNE perplexity."""
    import torch
    from sklearn.manifold import TSNE

    from training.data.crystal import CrystalDataset
    from training.sample import Sampler
    from training.train.weights import load_trained

    prop = ctx.dataset.property
    rows = ctx.dataset.part(ctx.split_part)
    rows = rows.iloc[evenly(len(rows), ctx.budget.tsne)].reset_index(drop=True)
    crystals = list(CrystalDataset.from_table(rows, name="latent", property_columns=[prop]))
    sampler = Sampler(load_trained(ctx.checkpoint))
    mu, cond = sampler.encode(crystals)
    with torch.no_grad():
        z_c = sampler.heads(mu, cond, torch.zeros(len(mu), dtype=torch.long))[0]
    perplexity = float(min(30, max(5, (len(rows) - 1) // 3)))
    maps = {}
    for title, x in (("z (no fusion)", mu.numpy()), ("z_c (LMF fusion)", z_c.numpy())):
        maps[title] = TSNE(2, perplexity=perplexity, init="pca", random_state=ctx.seed).fit_transform(x)
    label = f"{prop} ({ctx.dataset.unit})" if ctx.dataset.unit else prop
    plots.latent_maps(maps, rows[prop].to_numpy(), list(rows["reduced_formula"]), ctx.out / "latent_tsne.png", label)
    return {"count": len(rows), "perplexity": perplexity}
