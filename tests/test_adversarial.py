"""Tests for the adversarial semi-supervised separation chapter: U-Net, critic, losses and steps."""
import copy

import pytest
import torch
from torch import nn

from sepbook.adversarial import (
    AdversarialConfig,
    additive_penalty,
    build_critics,
    critic_input_gradient,
    critic_step,
    inverse_log_magnitude,
    log_magnitude,
    one_sided_gradient_penalty,
    random_loudness,
    separator_step,
    supervised_loss,
    unsupervised_loss,
    wasserstein_critic_loss,
)
from sepbook.models.critic import Critic
from sepbook.models.unet import UNet

NAMES = ("accompaniment", "vocals")
FREQ, FRAMES = 16, 16


class LinearCritic(nn.Module):
    """D(x) = <w, x> per example: its input gradient is exactly w everywhere."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x):
        return (x * self.weight).flatten(1).sum(dim=1)


def tiny_unet():
    return UNet(n_sources=2, base_channels=4, depth=2)


def tiny_critic():
    return Critic(base_channels=4, n_strided_layers=2, n_frequency_layers=1, hidden_units=8)


def tiny_batch(batch=3, seed=0):
    """Paired log-magnitudes: sources (batch, 2, F, T) and their linear-sum mixture (batch, 1, F, T)."""
    g = torch.Generator().manual_seed(seed)
    sources_linear = torch.rand(batch, 2, FREQ, FRAMES, generator=g) * torch.tensor([3.0, 1.0]).view(1, 2, 1, 1)
    mixture_linear = sources_linear.sum(dim=1, keepdim=True)
    return log_magnitude(mixture_linear), log_magnitude(sources_linear)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- models


def test_unet_output_shape_and_non_negative():
    torch.manual_seed(0)
    mixture, _ = tiny_batch()
    out = tiny_unet()(mixture)
    assert out.shape == (3, 2, FREQ, FRAMES)
    assert (out >= 0).all()
    # every source head is active at initialisation (none stuck at zero)
    assert ((out > 0).float().mean(dim=(0, 2, 3)) > 0.5).all()


def test_unet_paper_size_shape():
    torch.manual_seed(0)
    model = UNet()  # paper: 16 filters, 4 levels
    with torch.no_grad():
        out = model(torch.rand(1, 1, 256, 64))
    assert out.shape == (1, 2, 256, 64)


def test_unet_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = tiny_unet()
    mixture, sources = tiny_batch()
    supervised_loss(model(mixture), sources).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("shape", [(2, 1, 15, 16), (2, 1, 16, 10), (2, 2, 16, 16), (1, 16, 16)])
def test_unet_rejects_bad_sizes(shape):
    with pytest.raises(ValueError, match="UNet"):
        tiny_unet()(torch.rand(shape))


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)


def test_critic_output_shape_and_recipe_sizes():
    torch.manual_seed(0)
    assert tiny_critic()(torch.rand(5, 1, FREQ, FRAMES)).shape == (5,)
    paper_critic = Critic()
    with torch.no_grad():
        for freq, frames in [(128, 32), (256, 64), (256, 32), (128, 64)]:
            assert paper_critic(torch.rand(2, 1, freq, frames)).shape == (2,)


@pytest.mark.parametrize("shape", [(2, 1, 32, 64), (2, 1, 128, 8), (2, 2, 128, 32), (128, 32)])
def test_critic_rejects_bad_inputs(shape):
    with pytest.raises(ValueError, match="Critic"):
        Critic()(torch.rand(shape))


def test_critic_gradients_reach_every_parameter():
    torch.manual_seed(0)
    critic = tiny_critic()
    critic(torch.rand(4, 1, FREQ, FRAMES)).sum().backward()
    for name, parameter in critic.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------- losses


def test_log_magnitude_round_trip_and_rejects_negative():
    mag = torch.rand(2, 1, 4, 4) * 10
    assert torch.allclose(inverse_log_magnitude(log_magnitude(mag)), mag, atol=1e-5)
    with pytest.raises(ValueError, match="non-negative"):
        log_magnitude(-mag)


def test_random_loudness_one_factor_per_example_in_range():
    mag = torch.rand(64, 1, 4, 4) + 0.5
    louder = random_loudness(mag, generator=torch.Generator().manual_seed(0))
    ratio = louder / mag
    per_example = ratio.flatten(1)
    assert torch.allclose(per_example, per_example[:, :1].expand_as(per_example), atol=1e-6)
    assert per_example.min() >= 0.2 - 1e-6 and per_example.max() <= 1.2 + 1e-6
    assert per_example[:, 0].std() > 0.1
    with pytest.raises(ValueError, match="low"):
        random_loudness(mag, low=1.0, high=0.5)


def test_supervised_loss_zero_for_perfect_estimates_and_checks_shapes():
    _, sources = tiny_batch()
    assert supervised_loss(sources, sources) == 0
    assert supervised_loss(sources + 1, sources) == pytest.approx(2.0)  # MSE 1 per source, 2 sources
    with pytest.raises(ValueError, match="same shape"):
        supervised_loss(sources, sources[:, :1])


def test_additive_penalty_zero_when_estimates_sum_to_mixture():
    mixture, sources = tiny_batch()
    assert additive_penalty(sources, mixture) == pytest.approx(0.0, abs=1e-10)
    assert additive_penalty(sources * 0.5, mixture) > 0
    assert additive_penalty(sources[:, :1], mixture) > 0
    with pytest.raises(ValueError, match="additive_penalty"):
        additive_penalty(sources, sources)


def test_gradient_penalty_one_sided_for_linear_critic():
    torch.manual_seed(0)
    real, fake = torch.rand(4, 1, 3, 5, dtype=torch.float64), torch.rand(4, 1, 3, 5, dtype=torch.float64)
    direction = torch.randn(1, 1, 3, 5, dtype=torch.float64)
    direction = direction / direction.norm()
    inside = LinearCritic(0.7 * direction)
    assert one_sided_gradient_penalty(inside, real, fake).item() == 0.0
    outside = LinearCritic(2.5 * direction)
    assert one_sided_gradient_penalty(outside, real, fake).item() == pytest.approx((2.5 - 1.0) ** 2, rel=1e-10)


def test_gradient_penalty_trains_the_critic():
    torch.manual_seed(0)
    weight = 3.0 * torch.ones(1, 1, 2, 2)
    critic = LinearCritic(weight)
    penalty = one_sided_gradient_penalty(critic, torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2))
    penalty.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    norm = weight.norm()
    assert torch.allclose(critic.weight.grad, 2 * (norm - 1) * weight / norm, atol=1e-5)


def test_gradient_penalty_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="same shape"):
        one_sided_gradient_penalty(tiny_critic(), torch.rand(2, 1, FREQ, FRAMES), torch.rand(3, 1, FREQ, FRAMES))


def test_critic_input_gradient_equals_linear_weight():
    weight = torch.randn(1, 1, FREQ, FRAMES)
    x = torch.rand(3, 1, FREQ, FRAMES)
    gradient = critic_input_gradient(LinearCritic(weight), x)
    assert gradient.shape == x.shape
    assert torch.allclose(gradient, weight.expand_as(x))
    with torch.no_grad():  # works inside no_grad too, as in a plotting cell
        assert critic_input_gradient(tiny_critic(), x).shape == x.shape


def test_wasserstein_critic_loss_signs():
    critic = LinearCritic(torch.ones(1, 1, 2, 2))
    real, fake = torch.full((3, 1, 2, 2), 2.0), torch.full((3, 1, 2, 2), 0.5)
    loss, wasserstein = wasserstein_critic_loss(critic, real, fake)
    assert loss.item() == pytest.approx(2.0 - 8.0)
    assert wasserstein.item() == pytest.approx(8.0 - 2.0)


def test_unsupervised_loss_uses_only_sources_with_a_critic():
    estimates = torch.rand(3, 2, 2, 2)
    vocal_critic = LinearCritic(torch.ones(1, 1, 2, 2))
    loss = unsupervised_loss({"vocals": vocal_critic}, estimates, NAMES)
    assert loss.item() == pytest.approx(-estimates[:, 1].sum(dim=(1, 2)).mean().item(), rel=1e-6)
    both = unsupervised_loss({"vocals": vocal_critic, "accompaniment": vocal_critic}, estimates, NAMES)
    assert both.item() == pytest.approx(-estimates.sum(dim=(1, 2, 3)).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="drums"):
        unsupervised_loss({"drums": vocal_critic}, estimates, NAMES)


# --------------------------------------------------------------------------- steps


def make_setup(seed=0):
    torch.manual_seed(seed)
    separator = tiny_unet()
    critics = build_critics(NAMES, base_channels=4, n_strided_layers=2, n_frequency_layers=1, hidden_units=8)
    critic_optimizers = {n: torch.optim.Adam(c.parameters(), lr=1e-3) for n, c in critics.items()}
    optimizer = torch.optim.Adam(separator.parameters(), lr=1e-3)
    paired_mix, paired_sources = tiny_batch(seed=seed)
    unlabelled_mix, solo = tiny_batch(seed=seed + 1)
    solo_sources = {name: solo[:, k : k + 1] for k, name in enumerate(NAMES)}
    return separator, optimizer, critics, critic_optimizers, paired_mix, paired_sources, unlabelled_mix, solo_sources


def test_critic_step_changes_only_critics():
    separator, _, critics, critic_optimizers, _, _, unlabelled_mix, solo_sources = make_setup()
    separator_before, critics_before = snapshot(separator), snapshot(critics)
    logs = critic_step(
        critics, critic_optimizers, separator, unlabelled_mix, solo_sources, source_names=NAMES, gp_weight=10.0
    )
    assert same(separator_before, snapshot(separator))
    assert all(p.grad is None for p in separator.parameters())
    after = snapshot(critics)
    for name in NAMES:
        changed = [k for k in after if k.startswith(name) and not torch.equal(after[k], critics_before[k])]
        assert changed, name
    assert set(logs) == {f"{n}_{what}" for n in NAMES for what in ("wasserstein", "gradient_penalty")}
    assert all(isinstance(v, float) for v in logs.values())


def test_separator_step_changes_only_separator():
    separator, optimizer, critics, _, paired_mix, paired_sources, unlabelled_mix, _ = make_setup()
    separator_before, critics_before = snapshot(separator), snapshot(critics)
    logs = separator_step(
        separator, optimizer, critics, paired_mix, paired_sources, unlabelled_mix, 0.5, 0.5, source_names=NAMES
    )
    assert same(critics_before, snapshot(critics))
    assert all(p.grad is None for p in critics.parameters())
    assert all(p.requires_grad for p in critics.parameters())  # frozen only during the step
    after = snapshot(separator)
    assert all(not torch.equal(after[k], separator_before[k]) for k in after)
    assert set(logs) == {"Ls", "Lu", "Ladd", "total"}
    assert logs["total"] == pytest.approx(logs["Ls"] + 0.5 * logs["Lu"] + 0.5 * logs["Ladd"], rel=1e-5)


def test_separator_step_baseline_and_missing_unlabelled():
    separator, optimizer, critics, _, paired_mix, paired_sources, _, _ = make_setup()
    logs = separator_step(separator, optimizer, {}, paired_mix, paired_sources, None, 0.0, 0.0, source_names=NAMES)
    assert logs["Lu"] == 0.0 and logs["Ladd"] == 0.0 and logs["total"] == logs["Ls"]
    with pytest.raises(ValueError, match="unlabelled_mix"):
        separator_step(separator, optimizer, critics, paired_mix, paired_sources, None, 0.1, 0.1, source_names=NAMES)


def test_adversarial_loop_stays_finite():
    separator, optimizer, critics, critic_optimizers, paired_mix, paired_sources, unlabelled_mix, solo = make_setup()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        for _ in range(2):
            critic_logs = critic_step(
                critics, critic_optimizers, separator, unlabelled_mix, solo, source_names=NAMES, generator=generator
            )
        logs = separator_step(
            separator, optimizer, critics, paired_mix, paired_sources, unlabelled_mix, 0.01, 0.01, source_names=NAMES
        )
    values = torch.tensor(list(logs.values()) + list(critic_logs.values()))
    assert torch.isfinite(values).all()


def separable_batch(batch=2, seed=0):
    """Sustained horizontal lines (accompaniment) plus short vertical bursts (vocals): a split a U-Net can learn.

    Independent random bins (``tiny_batch``) cannot be split from their sum at all, so they are no
    test of fitting ability.
    """
    g = torch.Generator().manual_seed(seed)
    rows = (torch.rand(batch, 1, FREQ, 1, generator=g) < 0.3) * torch.rand(batch, 1, FREQ, 1, generator=g) * 4
    bursts = (torch.rand(batch, 1, 1, FRAMES, generator=g) < 0.3) * torch.rand(batch, 1, 1, FRAMES, generator=g) * 4
    sources = torch.cat([rows.expand(-1, -1, -1, FRAMES), bursts.expand(-1, -1, FREQ, -1)], dim=1)
    return log_magnitude(sources.sum(dim=1, keepdim=True)), log_magnitude(sources)


def test_unet_overfits_one_batch():
    torch.manual_seed(0)
    separator = tiny_unet()
    optimizer = torch.optim.Adam(separator.parameters(), lr=3e-3)
    paired_mix, paired_sources = separable_batch()
    losses = [
        separator_step(separator, optimizer, {}, paired_mix, paired_sources, None, 0.0, 0.0, source_names=NAMES)["Ls"]
        for _ in range(100)
    ]
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


# --------------------------------------------------------------------------- configuration


def test_config_paper_variants_and_validation():
    assert AdversarialConfig.paper("baseline").critic_sources == ()
    v = AdversarialConfig.paper("V")
    assert (v.alpha, v.beta, v.critic_sources) == (0.01, 0.01, ("vocals",))
    va = AdversarialConfig.paper("VA", accompaniment="accomp")
    assert (va.alpha, va.critic_sources) == (0.001, ("vocals", "accomp"))
    assert AdversarialConfig().n_critic == 5 and AdversarialConfig().lr == 5e-5
    with pytest.raises(ValueError, match="critics"):
        AdversarialConfig(critics="A")
    with pytest.raises(ValueError, match="n_critic"):
        AdversarialConfig(n_critic=0)
