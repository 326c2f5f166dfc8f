"""Training the baseline, V and VA: the models, one adversarial training step, and the run.

Every step takes ``n_critic`` updates of each critic (fresh unlabelled and solo batches each
time), then one separator update on ``L_s + alpha L_u + beta L_add`` (paper Sec. 3.3); the
baseline takes only ``L_s``. :func:`sepbook.train.fit` drives it like any other training.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from sepbook import seeds
from sepbook.losses.adversarial import (additive_penalty, log_magnitude, one_sided_gradient_penalty,
                                        supervised_loss, unsupervised_loss, wasserstein_critic_loss)
from sepbook.models.critic import Critic
from sepbook.models.unet import UNet
from sepbook.recipes.adversarial.data import SOURCES
from sepbook.recipes.adversarial.spectrograms import (SpectrogramSets, paired_batch, solo_batch,
                                                      unlabelled_batch)
from sepbook.train import fit, seed_everything

VARIANTS: tuple[str, ...] = ("baseline", "V", "VA")
#: Which sources get a critic in each system (paper Sec. 4.3.4).
CRITICS: dict[str, tuple[str, ...]] = {"baseline": (), "V": ("vocals",), "VA": ("vocals", "accompaniment")}


def system(variant: str) -> str:
    """The system a variant trains: ``'V (scarce)'`` is the V system on other data."""
    name = variant.split(" ")[0]
    if name not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)} (optionally with a tag), got {variant!r}")
    return name


def weights(cfg: Mapping[str, Any], variant: str) -> tuple[float, float]:
    """The paper's ``alpha = beta`` of ``variant``'s system: 0 for the baseline."""
    alpha = {"baseline": 0.0, "V": cfg["alpha_V"], "VA": cfg["alpha_VA"]}[system(variant)]
    return alpha, alpha


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
    optimizer.zero_grad(set_to_none=True)
    logs = {}
    for name, critic in critics.items():
        fake = estimates[:, SOURCES.index(name)].unsqueeze(1)
        real = solo[name]
        loss, distance = wasserstein_critic_loss(critic, real, fake)
        penalty = one_sided_gradient_penalty(critic, real, fake, generator)
        (loss + gp_weight * penalty).backward()
        logs[f"{name}_wasserstein"] = float(distance)
        logs[f"{name}_gradient_penalty"] = float(penalty.detach())
    optimizer.step()
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
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {"loss": float(total.detach()), "Ls": float(loss_s.detach()),
            "Lu": float(loss_u.detach()), "Ladd": float(loss_add.detach())}


def adversarial_step(
    model, optimizers, batch, *, alpha, beta, gp_weight
) -> dict[str, float]:
    """A whole training step: the critics, then the separator.

    This is the ``step_fn`` that :func:`sepbook.train.fit` runs.
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


def step_batches(cfg: Mapping[str, Any], sets: SpectrogramSets, variant: str, seed: int, start: int = 0):
    """Yield ``(step, batch)`` from ``start`` on; each batch is a pure function of ``(seed, step)``.

    Every system sees the same paired batches for a seed; the critics' batches and the gradient
    penalty's interpolation weights come from the same ``(seed, step)``, so a resumed run repeats
    an uninterrupted one exactly.
    """
    repeats = cfg["n_critic"] if CRITICS[system(variant)] else 0
    semi = system(variant) != "baseline"
    step = start
    while True:
        mixture, targets = paired_batch(cfg, sets, seed, step)
        yield step, {
            "mixture": mixture, "targets": targets,
            "unlabelled": [unlabelled_batch(cfg, sets, seed, step, r) for r in range(repeats)],
            "solo": [solo_batch(cfg, sets, seed, step, r) for r in range(repeats)],
            "generators": [seeds.generator(seed, "penalty", step, r) for r in range(repeats)],
            "unlabelled_separator": unlabelled_batch(cfg, sets, seed, step, repeats) if semi else None,
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


def train(cfg: Mapping[str, Any], sets: SpectrogramSets, variant: str, seed: int = 0, *,
          checkpoint=None, progress: bool = True, **fit_options):
    """Train ``variant`` for ``cfg['steps']`` separator updates; -> ``(model, history)``, on the CPU in eval mode.

    The separator's initial weights depend only on ``seed``, so the three systems start alike.
    As in the paper (Sec. 4.3.4) the weights with the best validation ``L_s`` are kept, critics
    included, so a figure pairing the separator and its critic shows one moment of training.
    """
    seed_everything(seed)
    model = build(cfg, variant)
    alpha, beta = weights(cfg, variant)
    optimizers = {"separator": torch.optim.Adam(model["separator"].parameters(), lr=cfg["lr"])}
    # An optimiser over no parameters is refused by torch; the baseline's critic optimiser sees a dummy.
    critic_parameters = list(model["critics"].parameters()) or [nn.Parameter(torch.zeros(()))]
    optimizers["critics"] = torch.optim.Adam(critic_parameters, lr=cfg["critic_lr"])
    step = partial(adversarial_step, alpha=alpha, beta=beta, gp_weight=cfg["gp_weight"])
    history = fit(model, step_fn=step, optimizers=optimizers, batches=partial(step_batches, cfg, sets, variant, seed),
                  steps=cfg["steps"], seed=seed, valid_fn=lambda m: validation_loss(m, sets),
                  valid_every=cfg["valid_every"], keep_best=("valid L_s", "min"), checkpoint=checkpoint,
                  progress=progress, label=f"{variant} seed {seed}", **fit_options)
    return model.cpu().eval(), history
