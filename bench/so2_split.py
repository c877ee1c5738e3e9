"""Forward + backward seconds of the SO(2) convolution, slicing by order against one ``torch.split`` per tensor.

The backward of a slice fills a zero tensor the size of its whole input and copies the slice's gradient into it;
the convolution sliced its input, its radial weights and its outputs once per order, so a call paid several
full-size fills. ``torch.split`` gives the same values with one backward that concatenates. This script times the
slicing version (kept here as the reference) against :class:`training.model.equiformer_layers.SO2Convolution`
(split) on the shapes of the shipped sizes and the paper's, one torch thread, best of repeats, and checks that
both give the same values and gradients. Writes one JSON file.

    python bench/so2_split.py --out bench/results/so2_split.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import Tensor

from training.model.equiformer_layers import SO2Convolution


def sliced_forward(conv: SO2Convolution, x: Tensor, radial: Tensor) -> tuple[Tensor, Tensor]:
    """The convolution as it was written before: a slice per order."""
    num_edges, cin, cout, n0 = x.size(0), conv.in_channels, conv.out_channels, conv.lmax + 1
    weights = conv.radial(radial) if conv.use_radial else radial
    x0 = x[:, :n0].reshape(num_edges, n0 * cin)
    if conv.use_radial:
        x0 = x0 * weights[:, : n0 * cin]
    y0 = conv.linear_m0(x0)
    outputs = [y0[:, : n0 * cout].reshape(num_edges, n0, cout)]
    start, weight_start = n0, n0 * cin
    for m, linear in enumerate(conv.linears_m, start=1):
        n = conv.lmax + 1 - m
        pair = x[:, start: start + 2 * n].reshape(num_edges, 2, n * cin)
        if conv.use_radial:
            pair = pair * weights[:, weight_start: weight_start + n * cin].unsqueeze(1)
        y = linear(pair).reshape(num_edges, 2, 2, n * cout)
        outputs.append((y[:, 0, 0] - y[:, 1, 1]).reshape(num_edges, n, cout))
        outputs.append((y[:, 1, 0] + y[:, 0, 1]).reshape(num_edges, n, cout))
        start += 2 * n
        weight_start += n * cin
    return torch.cat(outputs, dim=1), y0[:, n0 * cout:]


def _time(fn, conv: SO2Convolution, x: Tensor, r: Tensor, repeats: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out, extra = fn(conv, x, r)
        (out.square().sum() + extra.sum()).backward()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/so2_split.json"))
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    shapes = [  # (name, lmax, mmax, in, out, radial features, edges)
        ("medium conv1", 2, 1, 96, 48, 48, 40000),
        ("medium conv2", 2, 1, 48, 48, 0, 40000),
        ("paper conv1", 4, 2, 256, 128, 128, 8000),
    ]
    rows = []
    for name, lmax, mmax, cin, cout, radial, edges in shapes:
        torch.manual_seed(0)
        conv = SO2Convolution(cin, cout, lmax, mmax, radial, 64, extra_scalars=16)
        x = torch.randn(edges, sum(conv.coefficient_sizes), cin, requires_grad=True)
        r = torch.randn(edges, max(radial, 1))
        split, sliced = conv(x, r), sliced_forward(conv, x, r)
        same = all(torch.equal(a, b) for a, b in zip(split, sliced))
        grads = [torch.autograd.grad(o.square().sum() + e.sum(), x)[0] for o, e in (split, sliced)]
        grad_error = float((grads[0] - grads[1]).abs().max())
        t_sliced, t_split = 0.0, 0.0
        for _ in range(2):  # interleaved, best of both rounds: the machine is shared
            t_sliced = min(t_sliced or float("inf"), _time(sliced_forward, conv, x, r, args.repeats))
            t_split = min(t_split or float("inf"), _time(SO2Convolution.forward, conv, x, r, args.repeats))
        rows.append({"shape": name, "lmax": lmax, "mmax": mmax, "in_channels": cin, "out_channels": cout,
                     "edges": edges, "same_values": same, "max_gradient_difference": grad_error,
                     "sliced_seconds": round(t_sliced, 4), "split_seconds": round(t_split, 4),
                     "speedup": round(t_sliced / t_split, 3)})
        print(rows[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"torch": torch.__version__, "threads": 1, "machine": platform.processor() or
                                    platform.machine(), "note": "forward + backward, best of repeats, shared CPU",
                                    "results": rows}, indent=2))


if __name__ == "__main__":
    main()
