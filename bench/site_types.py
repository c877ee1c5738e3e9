"""Which element goes on which site: the decoder's site typing, measured on the validation part (issue 14).

For a trained model (a weights file) and ``--crystals`` validation crystals spread over the part:

1. ``composition_counts_exact``: share of crystals whose composition head, times the true atom count
   and rounded (largest remainders), gives exactly the true element counts.
2. ``decoder_type_accuracy``: the decoder's per-site type accuracy on the true cell and ``z_c`` of each
   crystal, with the coordinates perturbed by Gaussian noise of ``sigma`` Å (0 = the clean crystal),
   for four kinds of input types:
   - ``true``: the right types (the decoder only has to copy them);
   - ``shuffled``: the right element counts on the wrong sites (a random permutation within each
     crystal) -- what a sampler that placed the counts at random hands the decoder;
   - ``composition_soft``: every site gets the crystal's true composition as soft types;
   - ``drawn``: types drawn per site from the composition head (how sampling starts).
   ``copy`` is the share of sites where the decoder returns its input type.
3. ``reconstruction``: match rate and RMSE (the evaluation's protocol) and the share in the right
   layer order, decoding each crystal's own ``z_c`` with each site rule of
   :class:`training.model.langevin.LangevinSettings` (``argmax``, ``counts``).

Writes one JSON file:

    python bench/site_types.py models/cdvae-plus-janus/model.pt --out bench/results/site_types_issue3.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from training.evaluation.reconstruction import reconstruct
from training.model.batching import training_batch
from training.model.langevin import LangevinSettings, counts_from_composition
from training.sample import Sampler
from training.train.config import load_config
from training.train.stage1 import load_parts
from training.train.weights import load_trained

SIGMAS = (0.0, 0.05, 0.2, 0.5, 1.0, 3.0)


@torch.no_grad()
def type_accuracy(trained, crystals, seed: int) -> tuple[float, dict]:
    model = trained.model.eval()
    batch = training_batch(crystals, model.vocab, trained.config.data.property)
    g = torch.Generator().manual_seed(seed)
    mu, _ = model.encoder(batch.frac_coords, batch.atomic_numbers, batch.lattice, batch.num_atoms)
    z_c = model.fuse(mu, batch.property, batch.counts) if model.fusion is not None else mu
    composition = F.softmax(model.composition_head(z_c), dim=-1)
    exact = float((counts_from_composition(composition, batch.num_atoms) == batch.counts.long()).all(1).float().mean())
    crystal = torch.repeat_interleave(torch.arange(len(crystals)), batch.num_atoms)
    size = model.vocab.size
    truth = batch.type_index
    one_hot = F.one_hot(truth, size).float()
    starts = torch.cumsum(batch.num_atoms, 0) - batch.num_atoms
    perm = torch.cat([s + torch.randperm(int(n), generator=g)
                      for s, n in zip(starts.tolist(), batch.num_atoms.tolist(), strict=True)])
    inputs = {"true": one_hot, "shuffled": one_hot[perm],
              "composition_soft": (batch.counts / batch.num_atoms.unsqueeze(1))[crystal],
              "drawn": F.one_hot(torch.multinomial(composition[crystal], 1, generator=g).squeeze(1), size).float()}
    lattice = batch.lattice[crystal]
    out: dict = {}
    for sigma in SIGMAS:
        cart = torch.bmm(batch.frac_coords.unsqueeze(1), lattice).squeeze(1)
        cart = cart + sigma * torch.randn(cart.shape, generator=g)
        frac = torch.remainder(torch.bmm(cart.unsqueeze(1), torch.linalg.inv(lattice)).squeeze(1), 1.0)
        row = {}
        for name, types in inputs.items():
            _, logits = model.decoder(frac, types, batch.lattice, batch.num_atoms, z_c)
            predicted = logits.argmax(1)
            row[name] = {"accuracy": round(float((predicted == truth).float().mean()), 4),
                         "copy": round(float((predicted == types.argmax(1)).float().mean()), 4)}
        out[f"sigma_{sigma}"] = row
    return exact, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--crystals", type=int, default=128, help="validation crystals (spread over the part)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    trained = load_trained(args.weights)
    _, val, _ = load_parts(load_config("cpu-small", [f"train.limit_val={args.crystals}"]))
    crystals = list(val)
    exact, accuracy = type_accuracy(trained, crystals, args.seed)
    result = {"weights": str(args.weights), "crystals": len(crystals), "composition_counts_exact": exact,
              "decoder_type_accuracy": accuracy, "reconstruction": {}}
    print(json.dumps({k: result[k] for k in ("composition_counts_exact", "decoder_type_accuracy")}, indent=1))
    for rule in ("argmax", "counts"):
        t0 = time.perf_counter()
        recon = reconstruct(Sampler(trained, LangevinSettings(site_types=rule)), crystals, args.seed, rule)
        result["reconstruction"][rule] = {"match_rate": recon.match_rate, "rmse": recon.rmse,
                                          "motif_share": recon.motif_share,
                                          "seconds": round(time.perf_counter() - t0, 1)}
        print(rule, result["reconstruction"][rule], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
