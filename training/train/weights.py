"""A trained ConditionCDVAE+ (stage-1 model + stage-2 generator) as weights: save, load, rebuild.

Two files hold a model:

- a run folder's ``checkpoint.pt`` (stage 1) and ``gan.pt`` (stage 2) carry optimiser
  state and position for resuming;
- a weights file (``model.pt``, what ``models/`` ships) holds only what sampling needs:
  the resolved config, the element vocabulary, the stage-1 state dict (scalers are
  buffers in it) and the generator's state dict. ``half=True`` stores floating
  parameters as float16 to halve the file; :func:`load_trained` always returns float32
  modules, so the model that is measured is the model that ships.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import VdwgenError
from training.model.cdvae import ConditionCDVAEPlus
from training.model.conditions import ElementVocabulary
from training.model.gan import Generator
from training.model.heads import LatticeScaler
from training.train.config import RunConfig, config_from_dict

WEIGHTS_FORMAT = 1


class WeightsError(VdwgenError):
    """A weights file or run folder cannot be read as a trained model."""


@dataclass
class TrainedModel:
    """A stage-1 model and, once stage 2 ran, its latent generator (both in eval mode)."""

    config: RunConfig
    model: ConditionCDVAEPlus
    generator: Generator | None

    @property
    def vocab(self) -> ElementVocabulary:
        return self.model.vocab

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part: encoder, decoder, fusion + heads, generator."""
        count = lambda module: sum(p.numel() for p in module.parameters()) if module is not None else 0  # noqa: E731
        encoder, decoder = count(self.model.encoder), count(self.model.decoder)
        return {"encoder": encoder, "decoder": decoder, "fusion_and_heads": count(self.model) - encoder - decoder,
                "generator": count(self.generator), "total": count(self.model) + count(self.generator)}


def empty_model(config: RunConfig, vocab: ElementVocabulary) -> ConditionCDVAEPlus:
    """A stage-1 model with placeholder scalers, to be filled by ``load_state_dict``."""
    scaler = LatticeScaler(torch.zeros(6), torch.ones(6))
    return ConditionCDVAEPlus(config.model, vocab, 0.0, 1.0, scaler)


def make_generator(config: RunConfig, model: ConditionCDVAEPlus) -> Generator | None:
    """The stage-2 generator for this model (None for the unconditional baseline)."""
    if model.config.condition == "none":
        return None
    return Generator(noise_dim=config.gan.noise_dim, cond_dim=model.cond_in, latent_dim=model.config.latent_dim)


def rebuild(config_dict: dict, vocab: list[str], model_state: dict, generator_state: dict | None) -> TrainedModel:
    """Modules from plain saved parts (float32, eval mode)."""
    config = config_from_dict({k: v for k, v in config_dict.items() if k != "name"}, config_dict.get("name", "model"))
    model = empty_model(config, ElementVocabulary(tuple(vocab)))
    _load(model, model_state)
    generator = None
    if generator_state is not None:
        generator = make_generator(config, model)
        if generator is None:
            raise WeightsError("the weights hold a generator but the model is unconditional")
        _load(generator, generator_state)
        generator.eval()
    return TrainedModel(config, model.eval(), generator)


def _load(module: torch.nn.Module, state: dict) -> None:
    """Load a state dict, casting each tensor to the dtype the module keeps it in
    (float16-stored parameters become float32; float64 tables stay float64)."""
    own = module.state_dict()
    module.load_state_dict({k: v.to(own[k].dtype) if k in own else v for k, v in state.items()})


def save_weights(trained: TrainedModel, path: Path, half: bool = False) -> Path:
    """Write a weights-only file (atomically); float16 parameters if ``half`` (buffers keep their dtype)."""
    def pack(module: torch.nn.Module) -> dict:
        parameters = {name for name, _ in module.named_parameters()}
        return {k: v.detach().cpu().half() if half and k in parameters else v.detach().cpu()
                for k, v in module.state_dict().items()}

    payload = {
        "format": WEIGHTS_FORMAT,
        "config": trained.config.as_dict(),
        "vocab": list(trained.vocab.symbols),
        "model": pack(trained.model),
        "generator": pack(trained.generator) if trained.generator is not None else None,
        "dtype": "float16" if half else "float32",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_trained(path: Path) -> TrainedModel:
    """A trained model from a weights file or a run folder (stage 2 optional).

    Raises:
        WeightsError: when nothing usable is there; the message names what is missing.
    """
    path = Path(path)
    if path.is_dir():
        stage1 = path / "checkpoint.pt"
        if not stage1.exists():
            raise WeightsError(f"{path} holds no checkpoint.pt; train with `vdwgen train --out {path}`")
        state = torch.load(stage1, map_location="cpu", weights_only=False)
        gan_path = path / "gan.pt"
        gen_state = (
            torch.load(gan_path, map_location="cpu", weights_only=False)["generator"] if gan_path.exists() else None
        )
        return rebuild(state["config"], state["vocab"], state["model"], gen_state)
    if not path.exists():
        raise WeightsError(f"no model weights at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise WeightsError(f"{path} is not a vdwgen weights file ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path} is not a vdwgen weights file of format {WEIGHTS_FORMAT}")
    return rebuild(payload["config"], payload["vocab"], payload["model"], payload["generator"])
