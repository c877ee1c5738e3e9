"""The TorchScript decoder written the same way every time: ``decoder.pt`` depends on the weights, the
sampler settings and the code only.

``torch.jit.script`` lists each module's constants (e.g. ``in_features``, ``out_features`` of a linear
layer) in the order Python iterates a set of their names, and that order follows the process's string
hash seed. Left random, two exports of the same weights differ in a few bytes of generated code, and so in
their sha256: the served artifact would look like another model to everything keyed by its files (the
evaluation's report, the design evaluation's ledger). So the decoder is scripted in a child process with
the hash seed fixed (:data:`HASH_SEED`, the seed that reproduces the shipped ``decoder.pt`` byte for byte).

    python -m export.script_decoder WEIGHTS.pt OUT/decoder.pt '{"steps_per_level": 5, ...}'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

HASH_SEED = "11"


def eager_decoder(weights: Path, settings: dict) -> torch.nn.Module:
    """The eager :class:`training.model.langevin.CrystalDecoder` of a freshly loaded model in ``weights`` with
    ``settings`` (the fields of :class:`training.model.langevin.LangevinSettings`)."""
    from training.model.langevin import AnnealedLangevin, CrystalDecoder, LangevinSettings
    from training.train.weights import load_trained

    fresh = load_trained(Path(weights)).model.eval()
    return CrystalDecoder(AnnealedLangevin(fresh.decoder, fresh.coord_sigmas, LangevinSettings(**settings)),
                          fresh.vocab.size).eval()


def save_scripted_decoder(weights: Path, path: Path, settings: dict) -> None:
    """Script :func:`eager_decoder` and save it to ``path``, in this process."""
    import torch

    decoder = eager_decoder(weights, settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(decoder), str(path))


def script_decoder(weights: Path, path: Path, settings: dict) -> None:
    """:func:`save_scripted_decoder` under the fixed hash seed: here when this process has it, else in a child.

    Raises:
        RuntimeError: the child process failed (its last error lines in the message).
    """
    if os.environ.get("PYTHONHASHSEED") == HASH_SEED:
        save_scripted_decoder(weights, path, settings)
        return
    from core.paths import repo_root

    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED,
           "PYTHONPATH": os.pathsep.join([str(repo_root()), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "export.script_decoder", str(weights), str(path),
                           json.dumps(settings)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"scripting the decoder failed: {tail}")


if __name__ == "__main__":
    save_scripted_decoder(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]))
