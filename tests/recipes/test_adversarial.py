"""The adversarial chapter's models and training steps: U-Net, critic, critic_step, separator_step, adversarial_step.

The losses themselves are tested in test_losses.py; here each step is checked for what it
updates, what it leaves alone and which way it moves things. The ``..._catches`` tests swap a
mutated loss into the training module (monkeypatch, the package is untouched) to show that the
step checks would notice a sign flip or a cut gradient.
"""
from functools import partial

import pytest
import torch
from torch import nn

from sepbook.audio import log_magnitude
from sepbook.losses.adversarial import (additive_penalty, one_sided_gradient_penalty, supervised_loss,
                                        wasserstein_critic_loss)
from sepbook.models.critic import Critic
from sepbook.models.unet import UNet
from sepbook.recipes import adversarial
from sepbook.recipes.adversarial import training
from sepbook.recipes.adversarial.training import adversarial_step, critic_step, separator_step

from helpers import check_update_rule, same, snapshot
from mutants import negated

FREQ, FRAMES = 16, 16
SMALL_MODELS = dict(unet_base=4, unet_depth=2, critic_base=4, critic_strided_layers=2, critic_frequency_layers=1,
                    critic_hidden=8, frames=FRAMES, n_fft=2 * FREQ)


@pytest.fixture(scope="module")
def cfg():
    return adversarial.config("tiny", **SMALL_MODELS)


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return UNet(n_sources=2, base_channels=4, depth=2)


def tiny_critic(seed=0):
    torch.manual_seed(seed)
    return Critic(base_channels=4, n_strided_layers=2, n_frequency_layers=1, hidden_units=8)


def tiny_batch(batch=3, seed=0):
    """Paired log-magnitudes: sources (batch, 2, F, T) and their linear-sum mixture (batch, 1, F, T)."""
    g = torch.Generator().manual_seed(seed)
    sources_linear = torch.rand(batch, 2, FREQ, FRAMES, generator=g) * torch.tensor([3.0, 1.0]).view(1, 2, 1, 1)
    return log_magnitude(sources_linear.sum(dim=1, keepdim=True)), log_magnitude(sources_linear)


def solo_batch(seed=1):
    _, solo = tiny_batch(seed=seed)
    return {name: solo[:, k:k + 1] for k, name in enumerate(adversarial.SOURCES)}




def detached_input(loss_fn):
    """The loss with its estimates cut from the graph: no gradient reaches what produced them."""
    def cut(first, second, *rest):
        if isinstance(first, dict):  # unsupervised_loss(critics, estimates, names)
            return loss_fn(first, second.detach(), *rest)
        return loss_fn(first.detach(), second, *rest)
    return cut


# ----------------------------------------------------------------------------- models


def test_unet_output_shape_and_non_negative():
    mixture, _ = tiny_batch()
    out = tiny_unet()(mixture)
    assert out.shape == (3, 2, FREQ, FRAMES)
    assert (out >= 0).all()
    assert ((out > 0).float().mean(dim=(0, 2, 3)) > 0.5).all()  # every head is active at initialisation


def test_unet_paper_size_shape():
    torch.manual_seed(0)
    with torch.no_grad():
        assert UNet()(torch.rand(1, 1, 256, 64)).shape == (1, 2, 256, 64)  # paper: 16 filters, 4 levels


def test_unet_gradients_reach_every_parameter():
    model = tiny_unet()
    mixture, sources = tiny_batch()
    supervised_loss(model(mixture), sources).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("shape", [(2, 1, 15, 16), (2, 1, 16, 10), (2, 2, 16, 16), (1, 16, 16)])
def test_unet_rejects_bad_sizes(shape):
    with pytest.raises(ValueError, match="UNet"):
        tiny_unet()(torch.rand(shape))


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)


def test_critic_output_shape_and_recipe_sizes():
    assert tiny_critic()(torch.rand(5, 1, FREQ, FRAMES)).shape == (5,)
    paper_critic = Critic()
    with torch.no_grad():
        for freq, frames in [(128, 32), (256, 64), (256, 32), (128, 64)]:
            assert paper_critic(torch.rand(2, 1, freq, frames)).shape == (2,)


def test_critic_scores_examples_independently():
    critic, x = tiny_critic(), torch.rand(4, 1, FREQ, FRAMES)
    with torch.no_grad():
        assert torch.allclose(critic(x)[1:2], critic(x[1:2]), atol=1e-6)  # no batch statistics


@pytest.mark.parametrize("shape", [(2, 1, 32, 64), (2, 1, 128, 8), (2, 2, 128, 32), (128, 32)])
def test_critic_rejects_bad_inputs(shape):
    with pytest.raises(ValueError, match="Critic"):
        Critic()(torch.rand(shape))


def test_critic_gradients_reach_every_parameter():
    critic = tiny_critic()
    critic(torch.rand(4, 1, FREQ, FRAMES)).sum().backward()
    for name, parameter in critic.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- systems


@pytest.mark.parametrize("variant, critics", [("baseline", set()), ("V", {"vocals"}),
                                              ("VA", {"vocals", "accompaniment"}), ("V (scarce)", {"vocals"})])
def test_build_gives_each_system_its_critics(cfg, variant, critics):
    model = adversarial.build(cfg, variant)
    assert set(model["critics"]) == critics
    assert isinstance(model["separator"], UNet) and model.settings == {k: cfg[k] for k in ("n_fft", "hop", "frames")}


def test_weights_follow_the_system(cfg):
    assert training.weights(cfg, "baseline") == (0.0, 0.0)
    assert training.weights(cfg, "V", 0.01) == (0.01, 0.01)
    assert training.weights(cfg, "upper bound", 0.01) == (0.0, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        training.weights(cfg, "V")
    assert training.weights(cfg, "VA @ alpha 0.001", 0.001) == (0.001, 0.001)
    assert training.weights(cfg, "V (mismatched)", 0.01) == training.weights(cfg, "V", 0.01)
    with pytest.raises(ValueError, match="'AV'"):
        training.weights(cfg, "AV")
    with pytest.raises(ValueError, match="'VX'"):
        adversarial.build(cfg, "VX")


def test_every_system_starts_from_the_same_separator(cfg):
    starts = {}
    for variant in ("baseline", "V", "VA"):
        training.seed_everything(0)
        starts[variant] = snapshot(adversarial.build(cfg, variant)["separator"])
    assert same(starts["baseline"], starts["V"]) and same(starts["baseline"], starts["VA"])


# ----------------------------------------------------------------------------- critic step


def check_critic_step():
    separator = tiny_unet()
    critics = nn.ModuleDict({name: tiny_critic(k) for k, name in enumerate(adversarial.SOURCES)})
    optimizer = torch.optim.Adam(critics.parameters(), lr=1e-3)
    mixture, _ = tiny_batch(seed=2)
    solo = solo_batch()

    def gaps():
        with torch.no_grad():
            estimates = separator(mixture)
            return {name: (c(solo[name]).mean() - c(estimates[:, k:k + 1]).mean()).item()
                    for k, (name, c) in enumerate(critics.items())}

    separator_before, critics_before, before = snapshot(separator), snapshot(critics), gaps()
    logs = critic_step(critics, optimizer, separator, mixture, solo, gp_weight=0.0)
    assert same(separator_before, snapshot(separator)) and all(p.grad is None for p in separator.parameters())
    after = snapshot(critics)
    for name in adversarial.SOURCES:
        assert any(not torch.equal(after[k], critics_before[k]) for k in after if k.startswith(name)), name
    assert set(logs) == {f"{n}_{what}" for n in adversarial.SOURCES for what in ("wasserstein", "gradient_penalty")}
    assert logs["vocals_wasserstein"] == pytest.approx(before["vocals"], rel=1e-4)
    for name, gap in gaps().items():
        assert gap > before[name], (name, before[name], gap)  # each critic tells real from separated better


def test_critic_step_trains_only_the_critics_to_tell_real_from_separated():
    check_critic_step()


@pytest.mark.parametrize("mutant", [negated], ids=["negated"])
def test_critic_step_check_catches(monkeypatch, mutant):
    monkeypatch.setattr(training, "wasserstein_critic_loss", mutant(wasserstein_critic_loss))
    with pytest.raises(AssertionError):
        check_critic_step()


def _steep_critic_step(gp_weight):
    """A critic whose input gradients are far steeper than 1; its penalty before and after one critic_step."""
    separator, critic = tiny_unet(), tiny_critic()
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.mul_(5.0)
    mixture, _ = tiny_batch(seed=2)
    solo = solo_batch()

    def penalty():
        fake = separator(mixture)[:, 1:2].detach()
        return one_sided_gradient_penalty(critic, solo["vocals"], fake, torch.Generator().manual_seed(0)).item()

    before = penalty()
    critics = nn.ModuleDict({"vocals": critic})
    logs = critic_step(critics, torch.optim.SGD(critics.parameters(), lr=1e-4), separator, mixture, solo,
                       gp_weight, torch.Generator().manual_seed(0))
    assert logs["vocals_gradient_penalty"] == pytest.approx(before, rel=1e-4)
    return before, penalty()


def test_critic_step_applies_the_gradient_penalty():
    before, after = _steep_critic_step(gp_weight=10.0)
    assert before > 1 and after < 0.9 * before


def test_critic_step_penalty_check_catches_a_detached_penalty(monkeypatch):
    real_penalty = training.one_sided_gradient_penalty
    monkeypatch.setattr(training, "one_sided_gradient_penalty", lambda *args: real_penalty(*args).detach())
    before, after = _steep_critic_step(gp_weight=10.0)
    assert not after < 0.9 * before


# ----------------------------------------------------------------------------- separator step


def test_separator_step_trains_only_the_separator_and_logs_its_terms():
    separator, critics = tiny_unet(), nn.ModuleDict({"vocals": tiny_critic()})
    optimizer = torch.optim.Adam(separator.parameters(), lr=1e-3)
    mixture, sources = tiny_batch()
    unlabelled, _ = tiny_batch(seed=1)
    separator_before, critics_before = snapshot(separator), snapshot(critics)
    logs = separator_step(separator, optimizer, critics, mixture, sources, unlabelled, 0.5, 0.25)
    assert same(critics_before, snapshot(critics))
    after = snapshot(separator)
    assert all(not torch.equal(after[k], separator_before[k]) for k in after)
    assert set(logs) == {"loss", "Ls", "Lu", "Ladd"} and logs["Lu"] != 0 and logs["Ladd"] > 0
    assert logs["loss"] == pytest.approx(logs["Ls"] + 0.5 * logs["Lu"] + 0.25 * logs["Ladd"], rel=1e-5)


def test_separator_step_without_unlabelled_data_is_supervised_only():
    separator = tiny_unet()
    mixture, sources = tiny_batch()
    logs = separator_step(separator, torch.optim.Adam(separator.parameters()), {}, mixture, sources, None, 0.1, 0.1)
    assert logs["Lu"] == 0.0 and logs["Ladd"] == 0.0 and logs["loss"] == logs["Ls"]


def _one_sgd_step(alpha, beta):
    """The separator after one SGD step of separator_step (double precision), its critic and its data."""
    separator, critic = tiny_unet().double(), tiny_critic().double()
    critic.requires_grad_(False)
    mixture, sources = (x.double() for x in tiny_batch())
    unlabelled = tiny_batch(seed=1)[0].double() + 0.5
    separator_step(separator, torch.optim.SGD(separator.parameters(), lr=0.05), {"vocals": critic},
                   mixture, sources, unlabelled, alpha, beta)
    return separator, critic, unlabelled


def check_separator_direction():
    """Against the same step without the term: L_u raises the critic's score, L_add brings the sum closer."""
    plain, critic, unlabelled = _one_sgd_step(0.0, 0.0)
    adversarial_, _, _ = _one_sgd_step(1.0, 0.0)
    additive, _, _ = _one_sgd_step(0.0, 0.01)
    with torch.no_grad():
        def score(separator):
            return critic(separator(unlabelled)[:, 1:2]).mean().item()

        def penalty(separator):
            return additive_penalty(separator(unlabelled), unlabelled).item()

        assert score(adversarial_) > score(plain), (score(adversarial_), score(plain))
        assert penalty(additive) < penalty(plain), (penalty(additive), penalty(plain))


def test_separator_step_moves_estimates_towards_the_critic_and_the_mixture():
    check_separator_direction()


@pytest.mark.parametrize("name, mutant", [
    ("unsupervised_loss", negated), ("unsupervised_loss", detached_input),
    ("additive_penalty", negated), ("additive_penalty", detached_input),
], ids=["Lu negated", "Lu detached", "Ladd negated", "Ladd detached"])
def test_separator_step_check_catches(monkeypatch, name, mutant):
    monkeypatch.setattr(training, name, mutant(getattr(training, name)))
    with pytest.raises(AssertionError):
        check_separator_direction()


def test_unet_overfits_one_separable_batch():
    """Sustained lines (accompaniment) plus short bursts (voice): a split a U-Net can learn."""
    g = torch.Generator().manual_seed(0)
    rows = (torch.rand(2, 1, FREQ, 1, generator=g) < 0.3) * torch.rand(2, 1, FREQ, 1, generator=g) * 4
    bursts = (torch.rand(2, 1, 1, FRAMES, generator=g) < 0.3) * torch.rand(2, 1, 1, FRAMES, generator=g) * 4
    sources = torch.cat([rows.expand(-1, -1, -1, FRAMES), bursts.expand(-1, -1, FREQ, -1)], dim=1)
    mixture, targets = log_magnitude(sources.sum(dim=1, keepdim=True)), log_magnitude(sources)
    separator = tiny_unet()
    optimizer = torch.optim.Adam(separator.parameters(), lr=3e-3)
    losses = [separator_step(separator, optimizer, {}, mixture, targets, None, 0.0, 0.0)["Ls"] for _ in range(100)]
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


# ----------------------------------------------------------------------------- the whole step


def _batch(cfg, variant, repeats):
    mixture, targets = tiny_batch(seed=3)
    semi = variant != "baseline"
    return {"mixture": mixture, "targets": targets,
            "unlabelled": [tiny_batch(seed=10 + r)[0] for r in range(repeats)],
            "solo": [solo_batch(seed=20 + r) for r in range(repeats)],
            "generators": [torch.Generator().manual_seed(r) for r in range(repeats)],
            "unlabelled_separator": tiny_batch(seed=30)[0] if semi else None}


def _system(cfg, variant, separator_weights=None):
    training.seed_everything(0)
    model = adversarial.build(cfg, variant)
    if separator_weights is not None:
        model["separator"].load_state_dict(separator_weights)
    critic_parameters = list(model["critics"].parameters()) or [nn.Parameter(torch.zeros(()))]
    optimizers = {"separator": torch.optim.Adam(model["separator"].parameters(), lr=1e-3),
                  "critics": torch.optim.Adam(critic_parameters, lr=1e-3)}
    return model, optimizers


def test_adversarial_step_with_alpha_zero_equals_the_baseline(cfg):
    baseline, baseline_optimizers = _system(cfg, "baseline")
    v, v_optimizers = _system(cfg, "VA", snapshot(baseline["separator"]))
    for _ in range(2):
        base_logs = adversarial_step(baseline, baseline_optimizers, _batch(cfg, "baseline", 0),
                                     alpha=0.0, beta=0.0, gp_weight=10.0)
        v_logs = adversarial_step(v, v_optimizers, _batch(cfg, "VA", 2), alpha=0.0, beta=0.0, gp_weight=10.0)
    assert v_logs["Ls"] == base_logs["Ls"] and v_logs["Lu"] != 0 and "vocals_wasserstein" in v_logs
    assert same(snapshot(baseline["separator"]), snapshot(v["separator"]))
    # and with alpha > 0 the adversarial terms do change the separator
    v2, v2_optimizers = _system(cfg, "VA", snapshot(baseline["separator"]))
    for _ in range(2):
        adversarial_step(v2, v2_optimizers, _batch(cfg, "VA", 2), alpha=0.5, beta=0.5, gp_weight=10.0)
    assert not same(snapshot(v2["separator"]), snapshot(v["separator"]))


def test_adversarial_step_updates_critics_in_their_step_only(cfg, monkeypatch):
    model, optimizers = _system(cfg, "V")
    seen = {}
    real_separator_step = training.separator_step

    def spying_separator_step(separator, optimizer, critics, *args):
        seen["frozen"] = not any(p.requires_grad for p in critics.parameters())
        seen["critics"] = snapshot(critics)
        return real_separator_step(separator, optimizer, critics, *args)

    monkeypatch.setattr(training, "separator_step", spying_separator_step)
    start = snapshot(model["critics"])
    logs = adversarial_step(model, optimizers, _batch(cfg, "V", 2), alpha=0.1, beta=0.1, gp_weight=10.0)
    assert seen["frozen"] and not same(seen["critics"], start)  # critics moved before, and are frozen during
    assert same(seen["critics"], snapshot(model["critics"]))   # the separator's update left them alone
    assert all(p.requires_grad for p in model["critics"].parameters())
    assert torch.isfinite(torch.tensor(list(logs.values()))).all()


def test_adversarial_step_unfreezes_the_critics_after_an_error(cfg):
    model, optimizers = _system(cfg, "V")
    batch = _batch(cfg, "V", 1)
    batch["targets"] = batch["targets"][:, :1]
    with pytest.raises(ValueError, match="same shape"):
        adversarial_step(model, optimizers, batch, alpha=0.1, beta=0.1, gp_weight=10.0)
    assert all(p.requires_grad for p in model["critics"].parameters())


# ----------------------------------------------------------------------------- the mechanism, on a toy


class ConstantSeparator(nn.Module):
    """A 'separator' whose estimate of every mixture is one learnable log-magnitude map per source."""

    def __init__(self, level: float):
        super().__init__()
        self.map = nn.Parameter(torch.full((1, 2, FREQ, FRAMES), level))

    def forward(self, mixture):
        return self.map.expand(len(mixture), -1, -1, -1)


LR = 0.1  # small steps: past the real level a Wasserstein critic keeps pulling
REAL_LEVEL = 1.0  # "real" voices: log-magnitudes around this level, a distribution the test knows


def toy_distance_moved(critic_updates=80, separator_updates=30):
    """Train a voice critic (critic_step) on real excerpts against a separator stuck at 0.2, then follow
    the separator's gradient of L_u through it; -> (distance to the real level before, after)."""
    torch.manual_seed(0)
    separator, critic = ConstantSeparator(0.2), tiny_critic()
    critics = nn.ModuleDict({"vocals": critic})
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-3)
    mixture = torch.zeros(8, 1, FREQ, FRAMES)
    for step in range(critic_updates):
        g = torch.Generator().manual_seed(step)
        real = REAL_LEVEL + 0.1 * torch.randn(8, 1, FREQ, FRAMES, generator=g)
        critic_step(critics, optimizer, separator, mixture, {"vocals": real}, gp_weight=10.0, generator=g)
    critics.requires_grad_(False)
    before = float((separator.map[0, 1] - REAL_LEVEL).abs().mean().detach())
    step = torch.optim.SGD(separator.parameters(), lr=LR)
    for _ in range(separator_updates):
        step.zero_grad()
        training.unsupervised_loss(critics, separator(mixture), adversarial.SOURCES).backward()
        step.step()
    return before, float((separator.map[0, 1] - REAL_LEVEL).abs().mean().detach())


def check_toy_mechanism():
    before, after = toy_distance_moved()
    assert after < 0.8 * before, f"the separator's voice moved from {before:.3f} to {after:.3f} away from real"


def test_a_trained_critic_pulls_the_separator_towards_the_real_distribution():
    check_toy_mechanism()


@pytest.mark.parametrize("name", ["wasserstein_critic_loss", "unsupervised_loss"],
                         ids=["critic's sign flipped", "separator's sign flipped"])
def test_toy_mechanism_check_catches_a_flipped_sign(monkeypatch, name):
    if name == "wasserstein_critic_loss":
        original = training.wasserstein_critic_loss

        def flipped(critic, real, fake):
            loss, distance = original(critic, real, fake)
            return -loss, -distance
        monkeypatch.setattr(training, name, flipped)
    else:
        monkeypatch.setattr(training, name, negated(getattr(training, name)))
    with pytest.raises(AssertionError):
        check_toy_mechanism()


def test_the_adversarial_step_trains_through_the_update_rule():
    """Gradient scaling (float16 on a T4) and clipping reach the critics' and the separator's updates."""
    def make():
        torch.manual_seed(0)
        model = nn.ModuleDict({"separator": tiny_unet(), "critics": nn.ModuleDict(
            {name: tiny_critic(k) for k, name in enumerate(adversarial.SOURCES)})})
        optimizers = {"separator": torch.optim.SGD(model["separator"].parameters(), lr=1e-2),
                      "critics": torch.optim.SGD(model["critics"].parameters(), lr=1e-2)}
        mixture, targets = tiny_batch(seed=2)
        batch = {"unlabelled": [mixture, mixture], "solo": [solo_batch(), solo_batch(3)],
                 "generators": [torch.Generator().manual_seed(4), torch.Generator().manual_seed(5)],
                 "mixture": mixture, "targets": targets, "unlabelled_separator": tiny_batch(seed=6)[0]}
        return model, optimizers, batch

    check_update_rule(make, partial(adversarial_step, alpha=0.1, beta=0.1, gp_weight=10.0), updates=2)
