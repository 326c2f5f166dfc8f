"""Training losses: the direction each one pushes and where its gradient goes, not only its value.

Each loss has a *check*: a function that raises ``AssertionError`` unless one gradient-descent
step on the loss moves what it should learn the right way. The check passes on the real loss,
and the ``..._catches`` tests run it on mutated copies (sign flipped, gradient cut, ...) to prove
that it would notice such a bug.
"""

import pytest
import torch
from torch import nn

from sepbook.audio import inverse_log_magnitude, log_magnitude
from sepbook.losses.adversarial import (additive_penalty, critic_input_gradient, one_sided_gradient_penalty,
                                        supervised_loss, unsupervised_loss, wasserstein_critic_loss)
from sepbook.losses.masking import magnitude_loss
from sepbook.models.blstm import blstm_separator
from sepbook.models.critic import Critic
from sepbook.models.unet import UNet

from mutants import detached, edited, negated

NAMES = ("accompaniment", "vocals")
FREQ, FRAMES = 16, 16


class LinearCritic(nn.Module):
    """D(x) = <w, x> per example: its input gradient is exactly w everywhere."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x):
        return (x * self.weight).flatten(1).sum(dim=1)


def tiny_critic(seed=0):
    torch.manual_seed(seed)
    return Critic(base_channels=4, n_strided_layers=2, n_frequency_layers=1, hidden_units=8)


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return UNet(n_sources=2, base_channels=4, depth=2)


def log_spectrograms(*shape, seed=0, scale=1.0):
    return log_magnitude(torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * scale)


def descend(loss, parameters, lr):
    """One plain gradient-descent step on ``parameters`` (in place)."""
    assert loss.requires_grad, "the loss carries no gradient to what should learn"
    gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in gradients), "the loss gives no gradient"
    with torch.no_grad():
        for parameter, gradient in zip(parameters, gradients):
            if gradient is not None:
                parameter -= lr * gradient


# ----------------------------------------------------------------------------- mutants








# ----------------------------------------------------------------------------- log magnitudes


def test_log_magnitude_round_trip_and_rejects_bad_input():
    mag = torch.rand(2, 1, 4, 4) * 10
    assert torch.allclose(inverse_log_magnitude(log_magnitude(mag)), mag, atol=1e-5)
    assert torch.equal(log_magnitude(torch.zeros(3)), torch.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        log_magnitude(-mag)
    with pytest.raises(ValueError, match="complex"):
        log_magnitude(torch.ones(3, dtype=torch.complex64))


# ----------------------------------------------------------------------------- L_s


def check_supervised(loss_fn):
    """A step on L_s moves every source's estimates towards its targets."""
    estimates = log_spectrograms(3, 2, FREQ, FRAMES, seed=1).requires_grad_(True)
    targets = log_spectrograms(3, 2, FREQ, FRAMES, seed=2)
    before = (estimates - targets).pow(2).sum(dim=(0, 2, 3)).detach()
    descend(loss_fn(estimates, targets), [estimates], lr=0.5)
    after = (estimates - targets).pow(2).sum(dim=(0, 2, 3))
    assert (after < before).all(), (before, after)


def test_supervised_loss_moves_estimates_towards_targets():
    check_supervised(supervised_loss)


@pytest.mark.parametrize("mutant", [negated, detached], ids=["negated", "detached"])
def test_supervised_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_supervised(mutant(supervised_loss))


def test_supervised_loss_sums_per_source_errors_and_checks_shapes():
    sources = log_spectrograms(3, 2, FREQ, FRAMES)
    assert supervised_loss(sources, sources) == 0
    assert supervised_loss(sources + 1, sources) == pytest.approx(2.0)  # MSE 1 per source, 2 sources
    error = sources.clone()
    error[:, 1] += 2  # only the voice is wrong: (2^2) for the voice, 0 for the accompaniment
    assert supervised_loss(error, sources) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="same shape"):
        supervised_loss(sources, sources[:, :1])


# ----------------------------------------------------------------------------- L_add


def check_additive(loss_fn):
    """A step on L_add moves the estimates' *linear* sum towards the mixture."""
    estimates = log_spectrograms(3, 2, FREQ, FRAMES, seed=3).requires_grad_(True)
    mixture = log_spectrograms(3, 1, FREQ, FRAMES, seed=4, scale=2.0)

    def mismatch():
        return (torch.expm1(estimates).sum(1, keepdim=True) - torch.expm1(mixture)).pow(2).sum().item()

    before = mismatch()
    descend(loss_fn(estimates, mixture), [estimates], lr=0.5)
    assert mismatch() < before, (before, mismatch())


def test_additive_penalty_moves_estimates_towards_summing_to_the_mixture():
    check_additive(additive_penalty)


@pytest.mark.parametrize("mutant", [negated, detached], ids=["negated", "detached"])
def test_additive_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_additive(mutant(additive_penalty))


def test_additive_penalty_compares_linear_magnitudes():
    linear = torch.rand(3, 2, FREQ, FRAMES) + 0.1
    mixture = log_magnitude(linear.sum(1, keepdim=True))
    assert additive_penalty(log_magnitude(linear), mixture) == pytest.approx(0.0, abs=1e-10)
    # two sources of magnitude 1 make a mixture of 2; halving log(1 + 2) gives each only 0.73
    two = log_magnitude(torch.full((1, 1, 2, 2), 2.0))
    assert additive_penalty(torch.cat([two / 2, two / 2], dim=1), two).item() == pytest.approx(
        (2 * (3 ** 0.5 - 1) - 2) ** 2, rel=1e-5)
    with pytest.raises(ValueError, match="mixture"):
        additive_penalty(log_magnitude(linear), log_magnitude(linear))


# ----------------------------------------------------------------------------- L_u (the separator's term)


def check_unsupervised(loss_fn):
    """A separator step on L_u raises the critic's score of its voice estimates, and only the voice moves."""
    separator, critic = tiny_unet().double(), tiny_critic().double()  # double: the first-order effect is small
    critic.requires_grad_(False)
    mixture = log_spectrograms(4, 1, FREQ, FRAMES, seed=5, scale=3.0).double()

    def score():
        with torch.no_grad():
            return critic(separator(mixture)[:, 1:2]).mean().item()

    before = score()
    descend(loss_fn({"vocals": critic}, separator(mixture), NAMES), list(separator.parameters()), lr=1.0)
    assert score() > before, (before, score())

    estimates = separator(mixture).detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss_fn({"vocals": critic}, estimates, NAMES), estimates)
    assert gradient[:, 0].abs().sum() == 0, "the accompaniment has no critic, so L_u must not move it"
    assert gradient[:, 1].abs().sum() > 0


def test_unsupervised_loss_makes_estimates_look_real_to_the_critic():
    check_unsupervised(unsupervised_loss)


@pytest.mark.parametrize("mutant", [
    negated, detached,
    lambda f: edited(f, "estimates[:, k:k + 1]", "estimates[:, 0:1]"),  # scores the wrong source
], ids=["negated", "detached", "wrong source"])
def test_unsupervised_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_unsupervised(mutant(unsupervised_loss))


def test_unsupervised_loss_sums_the_critics_it_has():
    estimates = torch.rand(3, 2, 2, 2)
    critic = LinearCritic(torch.ones(1, 1, 2, 2))
    voice = unsupervised_loss({"vocals": critic}, estimates, NAMES)
    assert voice.item() == pytest.approx(-estimates[:, 1].sum(dim=(1, 2)).mean().item(), rel=1e-6)
    both = unsupervised_loss({"vocals": critic, "accompaniment": critic}, estimates, NAMES)
    assert both.item() == pytest.approx(-estimates.sum(dim=(1, 2, 3)).mean().item(), rel=1e-6)
    assert unsupervised_loss({}, estimates, NAMES).item() == 0.0
    with pytest.raises(ValueError, match="drums"):
        unsupervised_loss({"drums": critic}, estimates, NAMES)
    with pytest.raises(ValueError, match="source_names"):
        unsupervised_loss({"vocals": critic}, estimates, ("vocals",))


# ----------------------------------------------------------------------------- the critic's term


def check_critic(loss_fn):
    """A critic step on its loss raises D(real) - D(fake); the returned estimate is that gap, detached."""
    critic = tiny_critic().double()
    real = log_spectrograms(4, 1, FREQ, FRAMES, seed=6, scale=4.0).double()
    fake = log_spectrograms(4, 1, FREQ, FRAMES, seed=7).double()

    def gap():
        with torch.no_grad():
            return (critic(real).mean() - critic(fake).mean()).item()

    before = gap()
    loss, distance = loss_fn(critic, real, fake)
    assert not distance.requires_grad
    assert distance.item() == pytest.approx(before, rel=1e-5, abs=1e-6)
    descend(loss, list(critic.parameters()), lr=0.1)
    assert gap() > before, (before, gap())


def test_wasserstein_critic_loss_widens_the_gap_between_real_and_fake():
    check_critic(wasserstein_critic_loss)


@pytest.mark.parametrize("mutant", [negated, detached], ids=["negated", "detached"])
def test_critic_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_critic(mutant(wasserstein_critic_loss))


def test_wasserstein_critic_loss_value():
    critic = LinearCritic(torch.ones(1, 1, 2, 2))
    real, fake = torch.full((3, 1, 2, 2), 2.0), torch.full((3, 1, 2, 2), 0.5)
    loss, wasserstein = wasserstein_critic_loss(critic, real, fake)
    assert loss.item() == pytest.approx(2.0 - 8.0)
    assert wasserstein.item() == pytest.approx(8.0 - 2.0)


# ----------------------------------------------------------------------------- gradient penalty


class QuadraticCritic(nn.Module):
    """D(x) = <w, x^2>: its input gradient 2 w x depends on x, so the penalty could reach whatever made x."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x):
        return (x * x * self.weight).flatten(1).sum(dim=1)


def check_penalty(penalty_fn):
    """The penalty trains the critic towards 1-Lipschitz, only above norm 1, and never the producers of its inputs."""
    real = torch.rand(4, 1, 3, 5, dtype=torch.float64)
    direction = torch.randn(1, 1, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    direction = direction / direction.norm()
    assert penalty_fn(LinearCritic(0.7 * direction), real, torch.rand_like(real)).item() == 0.0
    assert penalty_fn(LinearCritic(2.5 * direction), real, torch.rand_like(real)).item() == pytest.approx(
        (2.5 - 1.0) ** 2, rel=1e-8)

    steep = QuadraticCritic(torch.full((1, 1, 3, 5), 4.0, dtype=torch.float64))
    producer = nn.Linear(5, 5).double()  # stands in for the separator that made the fake excerpts
    fake = producer(torch.rand(4, 1, 3, 5, dtype=torch.float64)) + 1.0
    real_source = real.clone().requires_grad_(True)

    def penalty():
        return penalty_fn(steep, real_source * 1.0, fake, torch.Generator().manual_seed(0))

    before = penalty()
    assert before.item() > 0 and before.requires_grad, "the penalty must carry a gradient to the critic"
    before.backward(retain_graph=True)
    assert all(p.grad is None for p in producer.parameters()), "the penalty must not train the separator"
    assert real_source.grad is None, "the penalty must not reach the real excerpts' producer"
    assert steep.weight.grad is not None and steep.weight.grad.abs().sum() > 0, "the penalty must train the critic"
    steep.weight.grad = None
    descend(penalty(), [steep.weight], lr=1e-3)
    assert penalty().item() < before.item()


def test_gradient_penalty_pulls_steep_critics_back_and_spares_the_separator():
    check_penalty(one_sided_gradient_penalty)


@pytest.mark.parametrize("mutant", [
    negated, detached,
    lambda f: edited(f, "create_graph=True", "create_graph=False"),
    lambda f: edited(f, "(1 - eps) * fake.detach()", "(1 - eps) * fake"),
    lambda f: edited(f, "eps * real.detach()", "eps * real"),
    lambda f: edited(f, "(norm - 1).clamp(min=0)", "(norm - 1)"),  # two-sided
], ids=["negated", "detached", "no create_graph", "fake not detached", "real not detached", "two-sided"])
def test_penalty_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_penalty(mutant(one_sided_gradient_penalty))


def test_gradient_penalty_gradient_for_a_linear_critic():
    weight = 3.0 * torch.ones(1, 1, 2, 2)
    critic = LinearCritic(weight)
    one_sided_gradient_penalty(critic, torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2)).backward()
    norm = weight.norm()  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(critic.weight.grad, 2 * (norm - 1) * weight / norm, atol=1e-5)


def test_gradient_penalty_interpolates_with_the_given_generator():
    critic = tiny_critic()
    real, fake = log_spectrograms(3, 1, FREQ, FRAMES, seed=8, scale=5), log_spectrograms(3, 1, FREQ, FRAMES, seed=9)
    first = one_sided_gradient_penalty(critic, real, fake, torch.Generator().manual_seed(1))
    again = one_sided_gradient_penalty(critic, real, fake, torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    with pytest.raises(ValueError, match="same shape"):
        one_sided_gradient_penalty(critic, real, fake[:2])


def test_critic_input_gradient_equals_linear_weight_and_leaves_the_critic_alone():
    weight = torch.randn(1, 1, FREQ, FRAMES)
    critic = LinearCritic(weight)
    x = torch.rand(3, 1, FREQ, FRAMES)
    gradient = critic_input_gradient(critic, x)
    assert gradient.shape == x.shape and torch.allclose(gradient, weight.expand_as(x))
    assert critic.weight.grad is None
    with torch.no_grad():  # works inside no_grad too, as in a plotting cell
        assert critic_input_gradient(tiny_critic(), x).shape == x.shape


# ----------------------------------------------------------------------------- magnitude loss (Foundations)


def _tones(batch=2, time=4096):
    t = torch.arange(time) / 8000
    low = torch.sin(2 * torch.pi * 220 * t) * (t < 0.25)
    high = 0.5 * torch.sin(2 * torch.pi * 1760 * t) * (t >= 0.2)
    sources = torch.stack([low, high])[None, :, None].repeat(batch, 1, 1, 1)
    return {"mixture": sources.sum(1), "sources": sources}


def check_magnitude(loss_fn):
    """A step of the mask estimator on the loss brings its masked magnitudes closer to the sources'."""
    torch.manual_seed(0)
    model = blstm_separator(n_sources=2, n_fft=256, hop=64, hidden=16, layers=1)
    batch = _tones()

    def distance():
        with torch.no_grad():
            estimate = model.estimate_magnitudes(model.stft(batch["mixture"]))
            return (estimate - model.stft(batch["sources"]).abs()).pow(2).sum().item()

    before = distance()
    descend(loss_fn(model, batch), list(model.parameters()), lr=0.05)
    assert distance() < before, (before, distance())


def test_magnitude_loss_moves_masked_magnitudes_towards_the_sources():
    check_magnitude(magnitude_loss)


@pytest.mark.parametrize("mutant", [
    negated, detached,
    lambda f: edited(f, "estimate = model.estimate_magnitudes(mixture_spec)",
                     "estimate = model.estimate_magnitudes(mixture_spec).detach()"),
], ids=["negated", "detached", "estimate detached"])
def test_magnitude_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_magnitude(mutant(magnitude_loss))


def test_magnitude_loss_is_zero_for_a_perfect_estimate_and_reaches_every_parameter():
    torch.manual_seed(0)
    model = blstm_separator(n_sources=2, n_fft=256, hop=64, hidden=16, layers=2)
    batch = _tones()
    magnitude_loss(model, batch).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    silent = {"mixture": torch.zeros(1, 1, 1024), "sources": torch.zeros(1, 2, 1, 1024)}
    assert magnitude_loss(model, silent).item() == 0.0
