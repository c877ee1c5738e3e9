"""Conditional WGAN-GP on the frozen latent space (ConditionCDVAE+ stage 2).

Paper, "Generative adversarial networks" and Eq. 7: the generator maps noise
concatenated with the condition embedding through 5 hidden layers widening to
1024 units (LeakyReLU + BatchNorm) and a linear output to a latent ``z'``; the
critic scores ``(z, c)`` through 3 hidden layers up to 512 units (LeakyReLU +
Dropout) and a linear output.  Loss: Wasserstein with gradient penalty
(lambda 10), 5 critic steps per generator step, Adam lr 2e-4 betas (0.5, 0.999),
reduce-on-plateau x0.6 after 30 epochs without improvement, floor 1e-5.

Widths chosen here (the paper gives only the end points):
generator (256, 512, 512, 1024, 1024); critic (256, 384, 512).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim import Adam
from torch.optim.lr_scheduler import ReduceLROnPlateau

GP_LAMBDA = 10.0
"""Weight of the gradient penalty (paper Eq. 7)."""

GENERATOR_WIDTHS: tuple[int, ...] = (256, 512, 512, 1024, 1024)
CRITIC_WIDTHS: tuple[int, ...] = (256, 384, 512)


class Generator(nn.Module):
    """Conditional generator of latent vectors.

    Args:
        noise_dim: width of the input noise (reference 256).
        cond_dim: width of the condition embedding.
        latent_dim: width of the generated latent (256).
        widths: hidden widths; each layer is Linear -> BatchNorm1d -> LeakyReLU(0.2).
        negative_slope: LeakyReLU slope.

    Shapes:
        forward: noise (B, noise_dim), cond (B, cond_dim) -> z' (B, latent_dim).
        BatchNorm needs B > 1 in train mode; call ``eval()`` before sampling.
    """

    def __init__(
        self,
        noise_dim: int = 256,
        cond_dim: int = 128,
        latent_dim: int = 256,
        widths: tuple[int, ...] = GENERATOR_WIDTHS,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if len(widths) == 0:
            raise ValueError("the generator needs at least one hidden layer")
        self.noise_dim = noise_dim
        self.cond_dim = cond_dim
        self.latent_dim = latent_dim
        layers: list[nn.Module] = []
        width = noise_dim + cond_dim
        for hidden in widths:
            layers += [
                nn.Linear(width, hidden),
                nn.BatchNorm1d(hidden),
                nn.LeakyReLU(negative_slope),
            ]
            width = hidden
        layers.append(nn.Linear(width, latent_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, noise: Tensor, cond: Tensor) -> Tensor:
        if noise.shape[-1] != self.noise_dim or cond.shape[-1] != self.cond_dim:
            raise ValueError(
                f"expected noise (B, {self.noise_dim}) and cond (B, {self.cond_dim}), "
                f"got {tuple(noise.shape)} and {tuple(cond.shape)}"
            )
        return self.net(torch.cat([noise, cond], dim=-1))

    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal noise (batch, noise_dim) on the module's device and dtype."""
        ref = self.net[0].weight
        return torch.randn(
            batch, self.noise_dim, generator=generator, dtype=ref.dtype, device=ref.device
        )


class Critic(nn.Module):
    """Conditional Wasserstein critic (the paper's discriminator, no BatchNorm).

    Args:
        latent_dim: width of the latent being scored.
        cond_dim: width of the condition embedding.
        widths: hidden widths; each layer is Linear -> LeakyReLU(0.2) -> Dropout.
        dropout: dropout probability.
        negative_slope: LeakyReLU slope.

    Shapes:
        forward: z (B, latent_dim), cond (B, cond_dim) -> score (B,)
    """

    def __init__(
        self,
        latent_dim: int = 256,
        cond_dim: int = 128,
        widths: tuple[int, ...] = CRITIC_WIDTHS,
        dropout: float = 0.3,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if len(widths) == 0:
            raise ValueError("the critic needs at least one hidden layer")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.latent_dim = latent_dim
        self.cond_dim = cond_dim
        layers: list[nn.Module] = []
        width = latent_dim + cond_dim
        for hidden in widths:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(negative_slope), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, cond: Tensor) -> Tensor:
        if z.shape[-1] != self.latent_dim or cond.shape[-1] != self.cond_dim:
            raise ValueError(
                f"expected z (B, {self.latent_dim}) and cond (B, {self.cond_dim}), "
                f"got {tuple(z.shape)} and {tuple(cond.shape)}"
            )
        return self.net(torch.cat([z, cond], dim=-1)).squeeze(-1)


def gradient_penalty(
    critic: nn.Module,
    real: Tensor,
    fake: Tensor,
    cond: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty ``E[(||grad_zhat D(zhat | c)||_2 - 1)^2]`` (paper Eq. 7, without lambda).

    ``zhat = eps * real + (1 - eps) * fake`` with one ``eps ~ U(0, 1)`` per sample.
    The graph is kept so the penalty can be backpropagated into the critic.

    Args:
        critic: callable ``(z (B, D), cond (B, C)) -> scores (B,)``.
        real: real latents (B, D).
        fake: generated latents (B, D); detached here.
        cond: condition embeddings (B, C); detached here.
        generator: optional seeded RNG for the interpolation weights.

    Returns:
        Scalar tensor; multiply by ``GP_LAMBDA`` in the caller.
    """
    if real.shape != fake.shape:
        raise ValueError(
            "real and fake must have the same shape, "
            f"got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    eps = torch.rand(real.shape[0], 1, generator=generator, dtype=real.dtype, device=real.device)
    zhat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(zhat, cond.detach())
    (grad,) = torch.autograd.grad(scores.sum(), zhat, create_graph=True)
    return ((grad.norm(2, dim=-1) - 1.0) ** 2).mean()


def critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Wasserstein critic loss ``E[D(fake)] - E[D(real)]`` (add the penalty separately)."""
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores: Tensor) -> Tensor:
    """Wasserstein generator loss ``-E[D(G(noise | c) | c)]``."""
    return -fake_scores.mean()


@dataclass(frozen=True)
class GanTrainConfig:
    """Stage-2 settings (paper values where the paper gives them).

    Attributes:
        epochs: passes over the training latents (one pass = every latent seen by the critic once).
        batch_size: latents per critic or generator step.
        noise_dim: width of the generator's input noise (reference 256).
        critic_dropout: dropout of the critic's hidden layers.
        lr: Adam learning rate of both networks.
        betas: Adam betas.
        n_critic: critic updates per generator update.
        gp_lambda: gradient-penalty weight.
        plateau_factor: learning-rate multiplier on a plateau.
        plateau_patience: epochs without improvement before reducing.
        min_lr: learning-rate floor.
        property_weight: weight of MSE(property head(z'), c) added to the
            generator loss (reference 10; 0 disables).
    """

    epochs: int = 200
    batch_size: int = 256
    noise_dim: int = 256
    critic_dropout: float = 0.3
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    n_critic: int = 5
    gp_lambda: float = GP_LAMBDA
    plateau_factor: float = 0.6
    plateau_patience: int = 30
    min_lr: float = 1e-5
    property_weight: float = 10.0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 2 or self.noise_dim < 1:
            raise ValueError(f"need epochs >= 0, batch_size >= 2 (BatchNorm) and noise_dim >= 1, "
                             f"got {self.epochs}, {self.batch_size}, {self.noise_dim}")
        if self.lr <= 0 or self.min_lr < 0:
            raise ValueError(f"lr must be > 0 and min_lr >= 0, got {self.lr}, {self.min_lr}")
        if self.n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {self.n_critic}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")


def make_optimizers(
    generator: nn.Module, critic: nn.Module, cfg: GanTrainConfig = GanTrainConfig()
) -> tuple[Adam, Adam]:
    """Adam optimisers for (generator, critic)."""
    return (
        Adam(generator.parameters(), lr=cfg.lr, betas=cfg.betas),
        Adam(critic.parameters(), lr=cfg.lr, betas=cfg.betas),
    )


def make_schedulers(
    gen_optimizer: torch.optim.Optimizer,
    critic_optimizer: torch.optim.Optimizer,
    cfg: GanTrainConfig = GanTrainConfig(),
) -> tuple[ReduceLROnPlateau, ReduceLROnPlateau]:
    """Reduce-on-plateau schedulers (mode min) for (generator, critic).

    Step each once per epoch with the epoch's loss.
    """

    def make(optimizer: torch.optim.Optimizer) -> ReduceLROnPlateau:
        return ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
            min_lr=cfg.min_lr,
        )

    return make(gen_optimizer), make(critic_optimizer)
