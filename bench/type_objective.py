"""Which type-noise objective teaches the decoder the sites fastest (issue 14's site-type investigation).

Starting from the same trained weights, each variant fine-tunes stage 1 for ``--minutes`` of wall time
(batches of 32 training crystals, Adam 3e-4, the predicted cell as in later training), then the decoder's
site typing is measured on the validation part as :mod:`bench.site_types` does. Variants
(:class:`training.model.cdvae.ModelConfig`):

- ``reference``: type-noise level drawn independently of the coordinate level, type cross entropy
  divided by the type sigma (CDVAE / ConditionCDVAE+);
- ``uniform``: independent levels, every level weighted alike;
- ``coupled-uniform``: the type level is the coordinate level, every level weighted alike.

The number of steps each variant took is recorded (the machine must be otherwise idle).

    python bench/type_objective.py models/cdvae-plus-janus/model.pt --minutes 10 --out bench/results/type_objective.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from site_types import type_accuracy  # noqa: E402

from training.model.batching import training_batch  # noqa: E402
from training.model.cdvae import ConditionCDVAEPlus  # noqa: E402
from training.train.config import load_config  # noqa: E402
from training.train.stage1 import load_parts  # noqa: E402
from training.train.weights import load_trained  # noqa: E402

VARIANTS = {"reference": {}, "uniform": {"type_loss_weighting": "uniform"},
            "coupled-uniform": {"type_noise_coupled": True, "type_loss_weighting": "uniform"}}


def fine_tune(weights: Path, changes: dict, minutes: float, train: list) -> tuple[object, int]:
    trained = load_trained(weights)
    config = dataclasses.replace(trained.model.config, **changes)
    model = ConditionCDVAEPlus(config, trained.model.vocab, 0.0, 1.0, trained.model.lattice_scaler)
    model.load_state_dict(trained.model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    model.train()
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < minutes * 60:
        idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(step))[:32].tolist()
        batch = training_batch([train[i] for i in idx], model.vocab, trained.config.data.property)
        loss = model(batch, False, torch.Generator().manual_seed(1000 + step))["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        step += 1
    trained.model.load_state_dict(model.state_dict())
    return trained, step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--crystals", type=int, default=128, help="validation crystals measured")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    train, val, _ = load_parts(load_config("cpu-small", [f"train.limit_val={args.crystals}"]))
    train, crystals = list(train), list(val)
    result: dict = {"weights": str(args.weights), "minutes": args.minutes, "crystals": len(crystals), "variants": {}}
    for name, changes in VARIANTS.items():
        trained, steps = fine_tune(args.weights, changes, args.minutes, train)
        exact, accuracy = type_accuracy(trained, crystals, 0)
        result["variants"][name] = {"changes": changes, "steps": steps, "composition_counts_exact": exact,
                                    "decoder_type_accuracy": accuracy}
        print(name, steps, json.dumps(accuracy["sigma_0.0"]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
