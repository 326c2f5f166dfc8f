"""Training the baseline, the upper bound, V and VA: the models, one adversarial training step, the
critics' diagnostics and the runs.

Every step takes ``n_critic`` updates of each critic (fresh unlabelled and solo batches each
time), then one separator update on ``L_s + alpha L_u + beta L_add`` (paper Sec. 3.3); the
baseline and the upper bound take only ``L_s``. :func:`sepbook.experiments.train.fit` drives it like any other
training. Every system starts from the same supervised separator (``start_steps`` on the paired
songs; the upper bound's start also sees the unlabelled songs' true pairs), and its critics are
first trained alone on that separator's outputs; then each system trains ``steps`` more separator
updates, stopped early on validation alike.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from sepbook import seeds
from sepbook.audio import log_magnitude
from sepbook.experiments.train import fit, seed_everything, update
from sepbook.losses.adversarial import (additive_penalty, one_sided_gradient_penalty, supervised_loss,
                                        unsupervised_loss, wasserstein_critic_loss)
from sepbook.models.critic import Critic
from sepbook.models.unet import UNet
from sepbook.recipes.adversarial.data import SOURCES
from sepbook.recipes.adversarial.spectrograms import SpectrogramSets, critic_batch, paired_batch, unlabelled_batch

#: The systems the page compares; each is chosen on validation among its candidate settings.
VARIANTS: tuple[str, ...] = ("baseline", "upper bound", "V", "VA")
#: Which sources get a critic in each system (paper Sec. 4.3.4).
CRITICS: dict[str, tuple[str, ...]] = {"baseline": (), "upper bound": (), "V": ("vocals",),
                                       "VA": ("vocals", "accompaniment")}
#: The supervised separators every system starts from: one on the paired songs, one for the upper bound.
STARTS: tuple[str, str] = ("supervised start", "upper start")


def system(variant: str) -> str:
    """The system a run trains: ``'V (scarce)'`` and ``'V @ alpha 0.01'`` are V; a start is supervised."""
    if variant in STARTS:
        return "upper bound" if variant == STARTS[1] else "baseline"
    name = variant.split(" @ ")[0].split(" (")[0]
    if name not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)} (optionally with a tag), got {variant!r}")
    return name


def setting_name(cfg: Mapping[str, Any], name: str) -> str:
    """What a system's candidates differ in: the learning rate for the supervised systems, alpha for V and VA."""
    return "lr" if not CRITICS[name] else "alpha"


def candidates(cfg: Mapping[str, Any], name: str) -> dict[str, float]:
    """The runs among which system ``name`` is chosen on validation: ``{'V @ alpha 0.01': 0.01, ...}``.

    The supervised systems try the learning rates ``cfg['lrs']``; V and VA the weights
    ``cfg['alphas_V']`` and ``cfg['alphas_VA']`` (with ``beta = alpha``): grids of equal size.
    """
    grid = cfg["lrs"] if not CRITICS[name] else cfg[f"alphas_{name}"]
    return {f"{name} @ {setting_name(cfg, name)} {value:g}": float(value) for value in grid}


def weights(cfg: Mapping[str, Any], variant: str, alpha: float | None = None) -> tuple[float, float]:
    """The paper's ``alpha = beta`` of a run: 0 for the supervised systems, else ``alpha``."""
    if not CRITICS[system(variant)]:
        return 0.0, 0.0
    if alpha is None:
        raise ValueError(f"alpha: run {variant!r} has critics and needs its alpha (one of its candidates' settings)")
    return float(alpha), float(alpha)


def build(cfg: Mapping[str, Any], variant: str) -> nn.ModuleDict:
    """The modules ``variant`` trains: a U-Net ``separator`` and a dict of ``critics`` (none for the baseline).

    ``model.settings`` keeps the STFT sizes, so ``separate(model, mixture)`` needs nothing else.
    """
    # The separator is built first, so every system starts from the same separator for a seed.
    separator = UNet(n_sources=len(SOURCES), base_channels=cfg["unet_base"], depth=cfg["unet_depth"])
    critics = {name: Critic(base_channels=cfg["critic_base"], n_strided_layers=cfg["critic_strided_layers"],
                            n_frequency_layers=cfg["critic_frequency_layers"], hidden_units=cfg["critic_hidden"])
               for name in CRITICS[system(variant)]}
    model = nn.ModuleDict({"separator": separator, "critics": nn.ModuleDict(critics)})
    model.settings = {k: cfg[k] for k in ("n_fft", "hop", "frames")}  # what separate() needs
    return model


def critic_step(critics, optimizer, separator, mixture, solo, gp_weight,
                generator=None) -> dict[str, float]:
    """Update each critic once (eqs. 3-4): real solo excerpts vs separated mixtures.

    The unlabelled mixtures are separated once, without gradient to the separator.
    """
    with torch.no_grad():
        estimates = separator(mixture)
    logs, total = {}, 0
    for name, critic in critics.items():
        fake = estimates[:, SOURCES.index(name)].unsqueeze(1)
        real = solo[name]
        loss, distance = wasserstein_critic_loss(critic, real, fake)
        penalty = one_sided_gradient_penalty(critic, real, fake, generator)
        total = total + loss + gp_weight * penalty
        logs[f"{name}_wasserstein"] = float(distance)
        logs[f"{name}_gradient_penalty"] = float(penalty.detach())
    update(optimizer, total)
    return logs


def separator_step(separator, optimizer, critics, mixture, targets, unlabelled,
                   alpha, beta) -> dict[str, float]:
    """One separator update on ``L_s + alpha L_u + beta L_add``.

    The critics stay fixed.
    """
    loss_s = supervised_loss(separator(mixture), targets)
    loss_u = loss_add = loss_s.new_zeros(())
    if unlabelled is not None:
        estimates = separator(unlabelled)
        if critics:
            loss_u = unsupervised_loss(critics, estimates, SOURCES)
        loss_add = additive_penalty(estimates, unlabelled)
    total = loss_s + alpha * loss_u + beta * loss_add
    update(optimizer, total)
    return {"loss": float(total.detach()), "Ls": float(loss_s.detach()),
            "Lu": float(loss_u.detach()), "Ladd": float(loss_add.detach())}


def adversarial_step(
    model, optimizers, batch, *, alpha, beta, gp_weight
) -> dict[str, float]:
    """A whole training step: the critics, then the separator.

    This is the ``step_fn`` that :func:`sepbook.experiments.train.fit` runs.
    """
    separator, critics = model["separator"], model["critics"]
    logs: dict[str, list[float]] = {}
    critic_batches = zip(batch["unlabelled"], batch["solo"], batch["generators"])
    for mixture, solo, generator in critic_batches:
        logged = critic_step(critics, optimizers["critics"], separator, mixture,
                             solo, gp_weight, generator)
        for key, value in logged.items():
            logs.setdefault(key, []).append(value)
    # the separator's update must not move the critics
    critics.requires_grad_(False)
    try:
        out = separator_step(separator, optimizers["separator"], critics,
                             batch["mixture"], batch["targets"],
                             batch["unlabelled_separator"], alpha, beta)
    finally:
        critics.requires_grad_(True)
    return out | {key: float(np.mean(values)) for key, values in logs.items()}


def step_batches(cfg: Mapping[str, Any], sets: SpectrogramSets, variant: str, seed: int, start: int = 0,
                 offset: int = 0):
    """Yield ``(step, batch)`` from ``start`` on; each batch is a pure function of ``(seed, offset + step)``.

    Every system sees the same paired batches for a seed; the critics' batches and the gradient
    penalty's interpolation weights come from the same ``(seed, step)``, so a resumed run repeats
    an uninterrupted one exactly. ``offset`` numbers a second stage's steps after the first's.
    """
    critics = bool(CRITICS[system(variant)])
    repeats = cfg["n_critic"] if critics else 0
    step = start
    while True:
        at = offset + step
        mixture, targets = paired_batch(cfg, sets, seed, at)
        pairs = [critic_batch(cfg, sets, seed, at, r) for r in range(repeats)]
        yield step, {
            "mixture": mixture, "targets": targets,
            "unlabelled": [unlabelled for unlabelled, _ in pairs],
            "solo": [solo for _, solo in pairs],
            "generators": [seeds.generator(seed, "penalty", at, r) for r in range(repeats)],
            "unlabelled_separator": unlabelled_batch(cfg, sets, seed, at, repeats) if critics else None,
        }
        step += 1


@torch.no_grad()
def validation_loss(model: nn.ModuleDict, sets: SpectrogramSets, chunk: int = 64) -> dict[str, float]:
    """Mean ``L_s`` of the separator on the fixed validation excerpts."""
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(sets.valid), chunk):
        excerpt = log_magnitude(sets.valid[start:start + chunk].to(device))
        total += float(supervised_loss(model["separator"](excerpt[:, :1]), excerpt[:, 1:])) * len(excerpt)
    return {"valid L_s": total / max(len(sets.valid), 1)}


#: One loudness for every excerpt the diagnostics score: the middle of the training range [0.2, 1.2].
DIAGNOSTIC_LOUDNESS = 0.7


def critic_diagnostics(model: nn.ModuleDict, sets: SpectrogramSets, excerpts: int = 64) -> dict[str, float]:
    """How informative each critic is, on fixed excerpts: its mean score for held-out real solos
    (validation songs outside the paired domain), for the true stems of the unlabelled songs and
    for the separator's estimates of them; and the cosine between the separator's gradients of
    ``L_u`` (on those unlabelled mixtures) and of ``L_s`` (on the validation excerpts).

    A critic that judges realness scores true stems about as high as held-out solos and estimates
    lower; a positive cosine means following the critics also lowers the supervised loss.
    """
    separator, critics = model["separator"], model["critics"]
    if not len(critics):
        return {}
    device = next(separator.parameters()).device

    def fixed(excerpts_: torch.Tensor) -> torch.Tensor:
        chosen = excerpts_[torch.linspace(0, len(excerpts_) - 1, min(excerpts, len(excerpts_))).long()]
        return log_magnitude(DIAGNOSTIC_LOUDNESS * chosen.to(device))

    held_out, unlabelled = fixed(sets.held_out), fixed(sets.unlabelled.excerpts(sets.valid.shape[-1]))
    logs = {}
    with torch.no_grad():
        estimates = separator(unlabelled[:, :1])
        for name, critic in critics.items():
            k = SOURCES.index(name)
            logs[f"{name}: held-out solos"] = float(critic(held_out[:, k + 1:k + 2]).mean())
            logs[f"{name}: true stems"] = float(critic(unlabelled[:, k + 1:k + 2]).mean())
            logs[f"{name}: estimates"] = float(critic(estimates[:, k:k + 1]).mean())
    parameters = [p for p in separator.parameters() if p.requires_grad]
    with torch.enable_grad():
        loss_u = unsupervised_loss(critics, separator(unlabelled[:, :1]), SOURCES)
        grad_u = torch.autograd.grad(loss_u, parameters)
        valid = log_magnitude(sets.valid[:excerpts].to(device))
        loss_s = supervised_loss(separator(valid[:, :1]), valid[:, 1:])
        grad_s = torch.autograd.grad(loss_s, parameters)
    flat_u, flat_s = torch.cat([g.flatten() for g in grad_u]), torch.cat([g.flatten() for g in grad_s])
    logs["cosine(grad L_u, grad L_s)"] = float(torch.nn.functional.cosine_similarity(flat_u, flat_s, dim=0))
    return logs


def validation(model: nn.ModuleDict, sets: SpectrogramSets) -> dict[str, float]:
    """What every validation records: ``L_s`` on the validation excerpts, and the critics' diagnostics."""
    return validation_loss(model, sets) | critic_diagnostics(model, sets)


def warm_up_critics(cfg: Mapping[str, Any], model: nn.ModuleDict, optimizer: torch.optim.Optimizer,
                    sets: SpectrogramSets, seed: int) -> None:
    """``cfg['critic_warmup']`` critic updates on the starting separator's outputs, the separator
    untouched (in eval mode, so not even its batch statistics move), before joint training."""
    separator, critics = model["separator"], model["critics"]
    if not len(critics):
        return
    separator.eval()
    for step in range(cfg["critic_warmup"]):
        mixture, solo = critic_batch(cfg, sets, seed, step, repeat="warm-up")
        critic_step(critics, optimizer, separator, mixture, solo, cfg["gp_weight"],
                    seeds.generator(seed, "warm-up penalty", step))
    separator.train()


def choose(sets: SpectrogramSets, runs: Mapping[str, nn.Module]) -> tuple[str, dict[str, float]]:
    """The run of ``runs`` (name -> trained model) with the lowest validation ``L_s``, and every
    run's loss. Only validation songs are read: the test songs cannot sway the choice."""
    losses = {name: validation_loss(model, sets)["valid L_s"] for name, model in runs.items()}
    return min(losses, key=losses.get), losses


def train(cfg: Mapping[str, Any], sets: SpectrogramSets, variant: str, seed: int = 0, *,
          start: nn.Module | None = None, setting: float | None = None,
          checkpoint=None, progress: bool = True, **fit_options):
    """Train one run; -> ``(model, history)``, on the CPU in eval mode.

    A start (:data:`STARTS`) trains a supervised separator for ``cfg['start_steps']`` updates.
    Any other run starts from ``start``'s separator, warms up its critics, and trains
    ``cfg['steps']`` separator updates at its ``setting`` (the learning rate of a supervised system,
    alpha of V and VA), stopped after ``cfg['patience']`` validations without progress. As in the
    paper (Sec. 4.3.4) the weights with the best validation ``L_s`` are kept, critics included, so
    a figure pairing the separator and its critic shows one moment of training.
    """
    seed_everything(seed)
    first = variant in STARTS
    model = build(cfg, variant)
    if start is not None:
        model["separator"].load_state_dict(start["separator"].state_dict())
    alpha, beta = weights(cfg, variant, setting)
    lr = cfg["lr"] if first or CRITICS[system(variant)] else setting
    optimizers = {"separator": torch.optim.Adam(model["separator"].parameters(), lr=lr)}
    # An optimiser over no parameters is refused by torch; a supervised system's critic optimiser sees a dummy.
    critic_parameters = list(model["critics"].parameters()) or [nn.Parameter(torch.zeros(()))]
    optimizers["critics"] = torch.optim.Adam(critic_parameters, lr=cfg["critic_lr"])
    if not first:
        warm_up_critics(cfg, model, optimizers["critics"], sets, seed)
    steps = cfg["start_steps"] if first else cfg["steps"]
    step = partial(adversarial_step, alpha=alpha, beta=beta, gp_weight=cfg["gp_weight"])
    batches = partial(step_batches, cfg, sets, variant, seed, offset=0 if first else cfg["start_steps"])
    # grad_clip=None: the committed runs trained without clipping, and a change would change them
    history = fit(model, step_fn=step, optimizers=optimizers, batches=batches, steps=steps, seed=seed,
                  grad_clip=fit_options.pop("grad_clip", None),
                  valid_fn=lambda m: validation(m, sets), valid_every=cfg["valid_every"],
                  keep_best=("valid L_s", "min"), patience=None if first else cfg["patience"],
                  checkpoint=checkpoint, progress=progress, label=f"{variant} seed {seed}", **fit_options)
    return model.cpu().eval(), history
