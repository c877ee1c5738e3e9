"""Tests of the stage-2 conditional WGAN-GP."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from training.model.gan import (
    CRITIC_WIDTHS,
    GENERATOR_WIDTHS,
    GP_LAMBDA,
    Critic,
    GanTrainConfig,
    Generator,
    critic_loss,
    generator_loss,
    gradient_penalty,
    make_optimizers,
    make_schedulers,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


class LinearCritic(nn.Module):
    """f(z, c) = w . z + u . c, gradient w.r.t. z is w everywhere."""

    def __init__(self, w: Tensor, u: Tensor):
        super().__init__()
        self.w, self.u = w, u

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        return z @ self.w + c @ self.u


class HalfSquaredNormCritic(nn.Module):
    """f(z, c) = ||z||^2 / 2 + sum(c), gradient w.r.t. z is z."""

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        return 0.5 * (z**2).sum(dim=-1) + c.sum(dim=-1)


def test_default_widths() -> None:
    assert GENERATOR_WIDTHS == (256, 512, 512, 1024, 1024)
    assert max(CRITIC_WIDTHS) == 512 and len(CRITIC_WIDTHS) == 3
    gen = Generator(noise_dim=256, cond_dim=16, latent_dim=256)
    linears = [m for m in gen.net if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [256, 512, 512, 1024, 1024, 256]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in gen.net) == 5
    assert sum(isinstance(m, nn.LeakyReLU) for m in gen.net) == 5
    critic = Critic(latent_dim=256, cond_dim=16)
    assert sum(isinstance(m, nn.Dropout) for m in critic.net) == 3
    assert GP_LAMBDA == 10.0


def test_generator_and_critic_shapes() -> None:
    gen = Generator(noise_dim=8, cond_dim=4, latent_dim=6, widths=(8, 16))
    critic = Critic(latent_dim=6, cond_dim=4, widths=(8, 8, 8))
    noise = gen.sample_noise(5, torch.Generator().manual_seed(1))
    cond = torch.randn(5, 4)
    z = gen(noise, cond)
    assert z.shape == (5, 6)
    assert critic(z, cond).shape == (5,)
    with pytest.raises(ValueError, match="expected noise"):
        gen(torch.randn(5, 7), cond)


def test_generator_eval_mode_is_deterministic_and_per_sample() -> None:
    gen = Generator(noise_dim=8, cond_dim=4, latent_dim=6, widths=(8, 16))
    gen.train()
    gen(torch.randn(16, 8), torch.randn(16, 4))  # update running statistics
    gen.eval()
    noise, cond = torch.randn(4, 8), torch.randn(4, 4)
    first = gen(noise, cond)
    torch.testing.assert_close(gen(noise, cond), first, rtol=0, atol=0)
    # In eval mode BatchNorm uses running stats, so a sample ignores its batch mates.
    torch.testing.assert_close(gen(noise[:1], cond[:1]), first[:1])


def test_same_seed_same_noise() -> None:
    gen = Generator(noise_dim=8, cond_dim=4, latent_dim=6, widths=(8,))
    a = gen.sample_noise(3, torch.Generator().manual_seed(7))
    b = gen.sample_noise(3, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_gradient_penalty_linear_critic() -> None:
    w = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)  # ||w|| = 5
    critic = LinearCritic(w, torch.tensor([1.0, -2.0], dtype=torch.float64))
    real = torch.randn(6, 3, dtype=torch.float64)
    fake = torch.randn(6, 3, dtype=torch.float64)
    cond = torch.randn(6, 2, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, cond, generator=torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2, rel=1e-12)


def test_gradient_penalty_half_squared_norm_critic() -> None:
    real = torch.randn(8, 4, dtype=torch.float64)
    fake = torch.randn(8, 4, dtype=torch.float64)
    cond = torch.randn(8, 3, dtype=torch.float64)
    rng = torch.Generator().manual_seed(3)
    gp = gradient_penalty(HalfSquaredNormCritic(), real, fake, cond, generator=rng)
    eps = torch.rand(8, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    zhat = eps * real + (1 - eps) * fake
    expected = ((zhat.norm(dim=-1) - 1.0) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-12)


def test_gradient_penalty_backpropagates_into_critic() -> None:
    critic = Critic(latent_dim=4, cond_dim=2, widths=(8, 8, 8), dropout=0.0)
    gp = gradient_penalty(critic, torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 2))
    gp.backward()
    assert critic.net[0].weight.grad is not None
    assert critic.net[0].weight.grad.abs().sum() > 0


def test_wasserstein_losses() -> None:
    real = torch.tensor([1.0, 2.0, 3.0])
    fake = torch.tensor([-1.0, 0.0, 4.0])
    assert critic_loss(real, fake).item() == pytest.approx(1.0 - 2.0)
    assert generator_loss(fake).item() == pytest.approx(-1.0)


def test_config_and_optimizers() -> None:
    cfg = GanTrainConfig()
    assert (cfg.lr, cfg.betas, cfg.n_critic, cfg.gp_lambda) == (2e-4, (0.5, 0.999), 5, 10.0)
    plateau = (cfg.plateau_factor, cfg.plateau_patience, cfg.min_lr, cfg.property_weight)
    assert plateau == (0.6, 30, 1e-5, 10.0)
    gen = Generator(noise_dim=4, cond_dim=2, latent_dim=3, widths=(4,))
    critic = Critic(latent_dim=3, cond_dim=2, widths=(4,))
    opt_g, opt_c = make_optimizers(gen, critic, cfg)
    for opt in (opt_g, opt_c):
        assert opt.param_groups[0]["lr"] == 2e-4
        assert opt.param_groups[0]["betas"] == (0.5, 0.999)
    with pytest.raises(ValueError, match="n_critic"):
        GanTrainConfig(n_critic=0)


def test_plateau_scheduler_steps_down_to_floor() -> None:
    cfg = GanTrainConfig()
    gen = Generator(noise_dim=4, cond_dim=2, latent_dim=3, widths=(4,))
    critic = Critic(latent_dim=3, cond_dim=2, widths=(4,))
    opt_g, opt_c = make_optimizers(gen, critic, cfg)
    sched_g, sched_c = make_schedulers(opt_g, opt_c, cfg)
    lrs = []
    for _ in range(250):
        sched_g.step(1.0)  # a constant loss never improves
        sched_c.step(1.0)
        lrs.append(opt_g.param_groups[0]["lr"])
    assert opt_c.param_groups[0]["lr"] == lrs[-1]
    # No drop during the first 31 epochs (1 sets the best, 30 of patience).
    assert lrs[:31] == [2e-4] * 31
    changes = [i for i in range(1, len(lrs)) if lrs[i] != lrs[i - 1]]
    assert changes[:3] == [31, 62, 93]
    for i in changes:
        expected = max(lrs[i - 1] * 0.6, cfg.min_lr)
        assert lrs[i] == pytest.approx(expected)
    assert min(lrs) == pytest.approx(1e-5)
    assert all(lr >= 1e-5 - 1e-15 for lr in lrs)
    assert lrs[-1] == pytest.approx(1e-5)


def test_one_training_step_runs() -> None:
    """A tiny critic + generator step with the penalty, as the stage-2 loop does it."""
    cfg = GanTrainConfig()
    gen = Generator(noise_dim=4, cond_dim=2, latent_dim=3, widths=(8, 8))
    critic = Critic(latent_dim=3, cond_dim=2, widths=(8, 8, 8))
    opt_g, opt_c = make_optimizers(gen, critic, cfg)
    real, cond = torch.randn(6, 3), torch.randn(6, 2)
    fake = gen(gen.sample_noise(6), cond)
    penalty = gradient_penalty(critic, real, fake, cond)
    loss_c = critic_loss(critic(real, cond), critic(fake.detach(), cond)) + cfg.gp_lambda * penalty
    opt_c.zero_grad()
    loss_c.backward()
    opt_c.step()
    loss_g = generator_loss(critic(gen(gen.sample_noise(6), cond), cond))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    assert torch.isfinite(loss_c) and torch.isfinite(loss_g)
