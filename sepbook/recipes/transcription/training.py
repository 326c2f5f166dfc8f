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
from sepbook.losses.transcription import (clip_mask, critic_loss, harmonic_mask, harmonic_template,
                                          hidden_interference_loss, interference_loss, mixture_loss, own_source_loss,
                                          reassembled_loss, reassembly_detection_loss, transcription_loss)
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
    "fine-tune": ("isolated c+h-mix", "transcriptor"),
}


def candidates(cfg: Mapping[str, Any], variant: str) -> dict[str, float]:
    """The runs an adversarial variant chooses among on validation: ``'<variant> @ <w>'`` -> ``w``."""
    if not FINE_TUNED.get(variant):
        return {}
    return {f"{variant} @ {w:g}": float(w) for w in cfg["adversarial_weights"]}


def requires(cfg: Mapping[str, Any], variant: str) -> tuple[str, ...]:
    """The runs (same seed) ``variant`` starts from or chooses among."""
    if " @ " in variant:
        return REQUIRES["fine-tune"]
    if FINE_TUNED.get(variant):
        return (*candidates(cfg, variant), "transcriptor")
    return REQUIRES.get(variant, ())


def run_names(cfg: Mapping[str, Any]) -> list[str]:
    """Every run of one seed, each after the runs it needs."""
    names = [*CRITICS, "supervised", *ISOLATED, "fine-tune"]
    for variant, adversary in FINE_TUNED.items():
        if adversary:
            names += [*candidates(cfg, variant), variant]
    return names


def system(variant: str) -> str:
    """The variant a run belongs to: ``'fine-tune + ATL @ 0.1'`` -> ``'fine-tune + ATL'``."""
    return variant.split(" @ ")[0]


def build(cfg: Mapping[str, Any], variant: str) -> nn.ModuleDict:
    """The modules ``variant`` trains and keeps: a ``separator`` (U-Net of masks), a ``transcriptor``,
    a ``classifier``, and for AML a ``detector`` (one logit per frame read from the transcriptor's
    features). ``model.settings`` keeps what :func:`separate` needs."""
    k, bins, name = len(cfg["instruments"]), n_bins(cfg), system(variant)
    if name not in VARIANTS or (" @ " in variant and variant not in candidates(cfg, name)):
        raise ValueError(f"variant: expected one of {list(VARIANTS)} or a candidate such as "
                         f"{next(iter(candidates(cfg, 'fine-tune + ATL')), '')!r}, got {variant!r}")
    parts = {}
    if name not in CRITICS:
        parts["separator"] = UNet(k, cfg["unet_base"], cfg["unet_depth"], masks=True)
    if name == "transcriptor" or name in FINE_TUNED:
        parts["transcriptor"] = Transcriptor(bins, k, cfg["n_pitches"], cfg["channels"], cfg["hidden"])
    if FINE_TUNED.get(name) == "AML":
        parts["detector"] = nn.Linear(cfg["hidden"], 1)
    if name == "classifier":
        parts["classifier"] = ClipClassifier(bins, k, cfg["channels"], cfg["hidden"])
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


def detector_of(model: nn.ModuleDict):
    """AML's detector as a function: log-magnitudes ``(batch, 1, F, T)`` -> logits ``(batch, T)``."""
    return lambda spectrogram: model["detector"](model["transcriptor"].features(spectrogram))[..., 0]


def fine_tune_step(model, optimizers, batch, *, template, mix_weight, adversary,
                   adversarial_weight):
    """Step 3: the separator, then the transcriptor (with AML's detector), each one update.

    The separator keeps step 2's loss with the transcriptor held fixed, plus the adversary's
    separator side. The transcriptor keeps learning the mixtures' scores and learns to read each
    separated source as its own instrument (``L_own``); the adversary adds, with weight
    ``adversarial_weight``, the search for what is left of the other instruments (``ATL``) or the
    detection of re-assembled mixtures (``AML``).
    """
    separator, transcriptor = model["separator"], model["transcriptor"]
    rolls, w = batch["rolls"], adversarial_weight
    critics = [m for name, m in model.items() if name != "separator"]
    for critic in critics:
        critic.requires_grad_(False)
    try:
        loss, loss_critic, loss_mix, estimates = score_loss(
            separator, transcriptor, batch, template, True, True, mix_weight)
        if adversary == "ATL":
            hidden = hidden_interference_loss(transcriptor, estimates, rolls)
            loss = loss + w * hidden
        if adversary == "AML":
            loss = loss + w * reassembled_loss(detector_of(model), estimates)
        update(optimizers["separator"], loss)
    finally:
        for critic in critics:
            critic.requires_grad_(True)

    mixture = log_magnitude(batch["mixture"])
    loss_t = transcription_loss(transcriptor(mixture), rolls)
    loss_t = loss_t + own_source_loss(transcriptor, estimates, rolls)
    if adversary == "ATL":
        loss_t = loss_t + w * interference_loss(transcriptor, estimates, rolls)
    if adversary == "AML":
        detection = reassembly_detection_loss(detector_of(model), batch["mixture"],
                                              estimates)
        loss_t = loss_t + w * detection
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


def judged_by(judge: nn.Module, template: torch.Tensor, mix_weight: float):
    """The score-only validation loss of a separator, read by a fixed ``judge`` (the step-1
    transcriptor): ``L_tr-sep + mix_weight * L_c+h-mix``. Fine-tuning changes its own transcriptor,
    so its runs are compared, and their best weights kept, by this loss instead."""
    def loss_fn(model, batch):
        return score_loss(model["separator"], judge, batch, template, True, True, mix_weight)[0]
    return loss_fn


def choose(cfg: Mapping[str, Any], sets: Sets, variant: str, runs: Mapping[str, nn.Module],
           judge: nn.Module) -> tuple[str, dict[str, float]]:
    """The candidate of ``variant`` (name -> trained run) with the lowest score-only validation loss
    (:func:`judged_by`), and every candidate's loss. Only validation songs are read."""
    loss_fn = judged_by(judge.eval().requires_grad_(False), template_of(cfg), cfg["mix_weight"])
    losses = {name: validation_loss(loss_fn, runs[name], sets)["valid loss"] for name in candidates(cfg, variant)}
    return min(losses, key=losses.get), losses


def train(cfg: Mapping[str, Any], sets: Sets, variant: str, seed: int = 0, *,
          prerequisites: Mapping[str, nn.Module] | None = None, **fit_options):
    """Train ``variant`` on ``seed``; -> ``(model, history)``, on the CPU in eval mode.

    ``prerequisites`` holds the trained runs :func:`requires` names for ``variant`` (same seed).
    Every run keeps the weights of its best validation loss; fine-tuning runs are judged by the
    step-1 transcriptor (:func:`judged_by`), because their own transcriptor moves. An adversarial
    variant trains nothing: it takes its candidate (one per weight ``w``) with the best
    validation loss and records every candidate's loss and the choice in its history.
    """
    missing = [name for name in requires(cfg, variant) if name not in (prerequisites or {})]
    if missing:
        raise ValueError(f"prerequisites: {variant!r} starts from or chooses among trained {missing} "
                         "(same seed); pass them")
    if FINE_TUNED.get(variant):
        chosen, losses = choose(cfg, sets, variant, prerequisites, prerequisites["transcriptor"]["transcriptor"])
        return prerequisites[chosen], {"step": [], "valid_step": [], "valid": [], "chosen": chosen,
                                       "candidates": losses}
    seed_everything(seed)
    model = build(cfg, variant)
    name = system(variant)
    device = pick_device(fit_options.get("device"))
    template = template_of(cfg).to(device)
    options = dict(seed=seed, valid_every=cfg["valid_every"], label=f"{variant} seed {seed}") | fit_options
    feed = partial(batches, cfg, sets, seed)
    if name in CRITICS or name == "supervised":
        loss_fn = critic_pretraining_loss if name in CRITICS else supervised_separation_loss
        # the supervised ceiling is cheap to train longer: it should separate as well as the budget allows
        steps = cfg["transcriptor_steps"] if name in CRITICS else cfg["supervised_steps"]
        history = fit(model, loss_fn, feed, steps=steps, lr=cfg["lr"],
                      valid_fn=partial(validation_loss, loss_fn, sets=sets), keep_best=("valid loss", "min"),
                      **options)
        return model.cpu().eval(), history
    if name in ISOLATED:
        critic_name = "classifier" if name == "classifier baseline" else "transcriptor"
        critic = prerequisites[critic_name][critic_name].to(device).eval().requires_grad_(False)
        clip, harmonic = ISOLATED[name]
        step = partial(separator_step, critic=critic, template=template, clip=clip, harmonic=harmonic,
                       mix_weight=cfg["mix_weight"])

        def loss_fn(m, batch):
            return score_loss(m["separator"], critic, batch, template, clip, harmonic, cfg["mix_weight"])[0]

        optimizers = {"separator": torch.optim.Adam(model["separator"].parameters(), lr=cfg["lr"])}
        history = fit(model, step_fn=step, optimizers=optimizers, batches=feed, steps=cfg["separator_steps"],
                      valid_fn=partial(validation_loss, loss_fn, sets=sets), keep_best=("valid loss", "min"),
                      **options)
        return model.cpu().eval(), history
    model["separator"].load_state_dict(prerequisites["isolated c+h-mix"]["separator"].state_dict())
    model["transcriptor"].load_state_dict(prerequisites["transcriptor"]["transcriptor"].state_dict())
    judge = build(cfg, "transcriptor")["transcriptor"]
    judge.load_state_dict(prerequisites["transcriptor"]["transcriptor"].state_dict())
    judge = judge.to(device).eval().requires_grad_(False)
    optimizers = {"separator": torch.optim.Adam(model["separator"].parameters(), lr=cfg["lr"]),
                  "transcriptor": torch.optim.Adam([p for n, m in model.items() if n != "separator"
                                                    for p in m.parameters()], lr=cfg["lr"])}
    step = partial(fine_tune_step, template=template, mix_weight=cfg["mix_weight"], adversary=FINE_TUNED[name],
                   adversarial_weight=candidates(cfg, name).get(variant, 0.0))
    history = fit(model, step_fn=step, optimizers=optimizers, batches=feed, steps=cfg["fine_tune_steps"],
                  valid_fn=partial(validation_loss, judged_by(judge, template, cfg["mix_weight"]), sets=sets),
                  keep_best=("valid loss", "min"), **options)
    return model.cpu().eval(), history
