"""Training the chapter's systems: the three steps of the paper, the supervised upper bound and the
classifier baseline, each a ``step_fn`` that :func:`sepbook.experiments.train.fit` drives.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import torch
from torch import nn

from sepbook.audio import log_magnitude, n_bins
from sepbook.experiments.train import fit, pick_device, seed_everything, update
from sepbook.losses.adversarial import supervised_loss
from sepbook.losses.transcription import (clip_mask, critic_loss, harmonic_mask, harmonic_template, interference_loss,
                                          mixture_loss, reassembled_loss, reassembly_detection_loss, transcription_loss)
from sepbook.models.transcriptor import ClipClassifier, Transcriptor
from sepbook.models.unet import UNet
from sepbook.recipes.transcription.data import Sets, batches

#: Critics, trained first on mixtures and their scores (or clip labels).
CRITICS: tuple[str, ...] = ("transcriptor", "classifier")
#: Separators trained against a frozen critic: which mixture-loss masks each uses (clip, harmonic).
ISOLATED: dict[str, tuple[bool, bool]] = {
    "isolated c-mix": (True, False), "isolated h-mix": (False, True), "isolated c+h-mix": (True, True),
    "classifier baseline": (True, False),
}
#: Separator and transcriptor fine-tuned together, starting from 'isolated c+h-mix': the adversary.
FINE_TUNED: dict[str, str | None] = {"fine-tune": None, "fine-tune + AML": "AML", "fine-tune + ATL": "ATL"}
VARIANTS: tuple[str, ...] = ("supervised", *ISOLATED, *FINE_TUNED, *CRITICS)
#: What each variant starts from: models trained earlier on the same seed.
REQUIRES: dict[str, tuple[str, ...]] = {
    **{v: ("transcriptor",) for v in ISOLATED if v != "classifier baseline"},
    "classifier baseline": ("classifier",),
    **{v: ("isolated c+h-mix", "transcriptor") for v in FINE_TUNED},
}


def build(cfg: Mapping[str, Any], variant: str) -> nn.ModuleDict:
    """The modules ``variant`` trains and keeps: a ``separator`` (U-Net of masks), a ``transcriptor``,
    or a ``classifier``. ``model.settings`` keeps what :func:`separate` needs."""
    k, bins = len(cfg["instruments"]), n_bins(cfg)
    parts = {}
    if variant not in CRITICS:
        parts["separator"] = UNet(k, cfg["unet_base"], cfg["unet_depth"], masks=True)
    if variant == "transcriptor" or variant in FINE_TUNED:
        parts["transcriptor"] = Transcriptor(bins, k, cfg["n_pitches"], cfg["channels"], cfg["hidden"])
    if variant == "classifier":
        parts["classifier"] = ClipClassifier(bins, k, cfg["channels"], cfg["hidden"])
    if not parts or variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    model = nn.ModuleDict(parts)
    model.settings = {key: cfg[key] for key in ("n_fft", "hop", "frames", "sr")}
    return model


def separated(separator: nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """Masked mixture magnitudes ``(batch, K, F, T)`` from mixture magnitudes ``(batch, 1, F, T)``."""
    return separator(log_magnitude(mixture)) * mixture


# ----------------------------------------------------------------------------- the steps


def critic_pretraining_loss(model: nn.ModuleDict, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Step 1: the transcriptor learns the score of each instrument from the mixture (the classifier,
    only which instruments play in the clip)."""
    mixture = log_magnitude(batch["mixture"])
    if "classifier" in model:
        return transcription_loss(model["classifier"](mixture), clip_mask(batch["rolls"]).float())
    return transcription_loss(model["transcriptor"](mixture), batch["rolls"])


def supervised_separation_loss(model: nn.ModuleDict, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The upper bound: separated log-magnitudes against the stems' (the only system that sees stems)."""
    estimates = separated(model["separator"], batch["mixture"])
    return supervised_loss(log_magnitude(estimates), log_magnitude(batch["sources"]))


def score_loss(separator, critic, batch, template, clip: bool, harmonic: bool, mix_weight: float):
    """Step 2's loss ``L_tr-sep + mix_weight * L_mix`` and its two parts; the critic is not updated here."""
    estimates = separated(separator, batch["mixture"])
    rolls = batch["rolls"]
    targets = clip_mask(rolls).float() if isinstance(critic, ClipClassifier) else rolls
    loss_critic = critic_loss(critic, estimates, targets)
    loss_mix = mixture_loss(estimates, batch["mixture"], clip_mask(rolls) if clip else None,
                            harmonic_mask(rolls, template).any(dim=1) if harmonic else None)
    return loss_critic + mix_weight * loss_mix, loss_critic, loss_mix, estimates


def separator_step(model, optimizers, batch, *, critic, template, clip, harmonic, mix_weight):
    """Step 2: one separator update against the frozen ``critic`` (which gets no gradient)."""
    loss, loss_critic, loss_mix, _ = score_loss(model["separator"], critic, batch, template, clip, harmonic,
                                                mix_weight)
    update(optimizers["separator"], loss)
    return {"loss": float(loss.detach()), "L_tr-sep": float(loss_critic.detach()), "L_mix": float(loss_mix.detach())}


def fine_tune_step(model, optimizers, batch, *, template, mix_weight, adversary,
                   adversarial_weight):
    """Step 3: the separator, then the transcriptor, each one update.

    The separator keeps step 2's loss (with the transcriptor fixed during its update), plus
    ``AML``'s separator side. The transcriptor keeps learning the mixtures' scores and learns to
    read the separated sources as the separator does (``L_tr-sep``); an adversary adds, with weight
    ``adversarial_weight``, the search for what is left of the other instruments (``ATL``) or the
    detection of re-assembled mixtures (``AML``).
    """
    separator, transcriptor = model["separator"], model["transcriptor"]
    rolls, w = batch["rolls"], adversarial_weight
    transcriptor.requires_grad_(False)
    try:
        loss, loss_critic, loss_mix, estimates = score_loss(
            separator, transcriptor, batch, template, True, True, mix_weight)
        if adversary == "AML":
            loss = loss + w * reassembled_loss(transcriptor, estimates, rolls)
        update(optimizers["separator"], loss)
    finally:
        transcriptor.requires_grad_(True)

    estimates = estimates.detach()
    mixture = log_magnitude(batch["mixture"])
    loss_t = transcription_loss(transcriptor(mixture), rolls)
    loss_t = loss_t + critic_loss(transcriptor, estimates, rolls)
    if adversary == "ATL":
        loss_t = loss_t + w * interference_loss(transcriptor, estimates, rolls)
    if adversary == "AML":
        loss_t = loss_t + w * reassembly_detection_loss(transcriptor, estimates)
    update(optimizers["transcriptor"], loss_t)
    return {"loss": float(loss.detach()),
            "transcriptor loss": float(loss_t.detach()),
            "L_tr-sep": float(loss_critic.detach()),
            "L_mix": float(loss_mix.detach())}


# ----------------------------------------------------------------------------- the run


def template_of(cfg: Mapping[str, Any]) -> torch.Tensor:
    """The harmonic template ``(P, F)`` of the profile's pitch window and STFT."""
    return harmonic_template(cfg["lowest_pitch"], cfg["n_pitches"], cfg["sr"], cfg["n_fft"], n_bins(cfg),
                             cfg["n_harmonics"])


@torch.no_grad()
def validation_loss(loss_fn, model, sets: Sets) -> dict[str, float]:
    """Mean of ``loss_fn(model, batch)`` over the fixed validation batches: scores only, never stems
    (except for the supervised system)."""
    device = next(model.parameters()).device
    values = [float(loss_fn(model, {k: v.to(device) for k, v in b.items()})) for b in sets.valid]
    return {"valid loss": sum(values) / len(values)}


def train(cfg: Mapping[str, Any], sets: Sets, variant: str, seed: int = 0, *,
          prerequisites: Mapping[str, nn.Module] | None = None, **fit_options):
    """Train ``variant`` on ``seed``; -> ``(model, history)``, on the CPU in eval mode.

    ``prerequisites`` holds the trained models :data:`REQUIRES` names for ``variant`` (same seed).
    Critics and separators keep the weights of their best validation loss; fine-tuning keeps its
    last weights, because its loss moves with the transcriptor it is measured by.
    """
    missing = [name for name in REQUIRES.get(variant, ()) if name not in (prerequisites or {})]
    if missing:
        raise ValueError(f"prerequisites: {variant!r} starts from trained {missing} (same seed); pass them")
    seed_everything(seed)
    model = build(cfg, variant)
    device = pick_device(fit_options.get("device"))
    template = template_of(cfg).to(device)
    # the custom steps of steps 2 and 3 do not clip (grad_clip=None): the committed runs trained so
    custom = dict(grad_clip=None) | fit_options
    options = dict(seed=seed, valid_every=cfg["valid_every"], label=f"{variant} seed {seed}") | fit_options
    feed = partial(batches, cfg, sets, seed)
    if variant in CRITICS or variant == "supervised":
        loss_fn = critic_pretraining_loss if variant in CRITICS else supervised_separation_loss
        steps = cfg["transcriptor_steps"] if variant in CRITICS else cfg["separator_steps"]
        history = fit(model, loss_fn, feed, steps=steps, lr=cfg["lr"],
                      valid_fn=partial(validation_loss, loss_fn, sets=sets), keep_best=("valid loss", "min"),
                      **options)
        return model.cpu().eval(), history
    if variant in ISOLATED:
        critic_name = "classifier" if variant == "classifier baseline" else "transcriptor"
        critic = prerequisites[critic_name][critic_name].to(device).eval().requires_grad_(False)
        clip, harmonic = ISOLATED[variant]
        step = partial(separator_step, critic=critic, template=template, clip=clip, harmonic=harmonic,
                       mix_weight=cfg["mix_weight"])

        def loss_fn(m, batch):
            return score_loss(m["separator"], critic, batch, template, clip, harmonic, cfg["mix_weight"])[0]

        optimizers = {"separator": torch.optim.Adam(model["separator"].parameters(), lr=cfg["lr"])}
        history = fit(model, step_fn=step, optimizers=optimizers, batches=feed, steps=cfg["separator_steps"],
                      valid_fn=partial(validation_loss, loss_fn, sets=sets), keep_best=("valid loss", "min"),
                      **options | custom)
        return model.cpu().eval(), history
    model["separator"].load_state_dict(prerequisites["isolated c+h-mix"]["separator"].state_dict())
    model["transcriptor"].load_state_dict(prerequisites["transcriptor"]["transcriptor"].state_dict())
    optimizers = {name: torch.optim.Adam(model[name].parameters(), lr=cfg["lr"])
                  for name in ("separator", "transcriptor")}
    step = partial(fine_tune_step, template=template, mix_weight=cfg["mix_weight"], adversary=FINE_TUNED[variant],
                   adversarial_weight=cfg["adversarial_weight"])
    history = fit(model, step_fn=step, optimizers=optimizers, batches=feed, steps=cfg["fine_tune_steps"],
                  **options | custom)
    return model.cpu().eval(), history
