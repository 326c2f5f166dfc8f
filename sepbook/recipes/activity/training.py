"""Training the chapter's four systems on either set, with the same batches, steps and separation
loss: the residual U-Net and the Foundations BLSTM, each with and without an activity head (IASS is
the U-Net with its head).

Chapter: activity/activity_aware
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import torch
from torch import nn

from sepbook.audio import log_magnitude, n_bins
from sepbook.experiments.train import fit, seed_everything, to_device
from sepbook.losses.activity import activity_loss, masked_magnitude_loss
from sepbook.models.blstm import BLSTMMasker
from sepbook.models.iass import IASS, ActivityBLSTM
from sepbook.recipes.activity.data import DATASETS, Sets, Splits, batches, sources, training_sets

#: The 2 x 2 design: {residual U-Net, BLSTM} x {with, without an activity head}. IASS is the
#: U-Net with its head; "U-Net" is the same network trained with the head's loss weight at 0.
MODELS: tuple[str, ...] = ("IASS", "U-Net", "BLSTM", "BLSTM + head")
#: The models whose activity head is trained, and so can weight their masks at inference.
DETECTORS: tuple[str, ...] = ("IASS", "BLSTM + head")
#: Every trained system: its name -> (model, dataset).
PARTS: dict[str, tuple[str, str]] = {f"{model} {dataset}": (model, dataset)
                                     for dataset in DATASETS for model in MODELS}
#: Every trained system, in the page's order.
VARIANTS: tuple[str, ...] = tuple(PARTS)


def build(cfg: Mapping[str, Any], variant: str) -> nn.Module:
    """The network of ``variant`` (e.g. ``'IASS medley'``), sized for its set's instruments."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    model, dataset = PARTS[variant]
    k = len(sources(cfg, dataset))
    if model in ("IASS", "U-Net"):
        network = IASS(k, n_bins(cfg), cfg["unet_base"], cfg["unet_depth"], cfg["unet_max_channels"],
                       cfg["head_hidden"])
    elif model == "BLSTM + head":
        network = ActivityBLSTM(n_bins(cfg), k, cfg["blstm_hidden"], cfg["blstm_layers"])
    else:
        network = BLSTMMasker(n_bins(cfg), k, 1, cfg["blstm_hidden"], cfg["blstm_layers"])
    network.settings = {key: cfg[key] for key in ("n_fft", "hop", "sr", "threshold", "median_frames")}
    return network


def masks_and_logits(model: nn.Module, mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Masks ``(B, K, F, T)`` of mixture magnitudes ``(B, 1, F, T)``, and the activity logits
    ``(B, K, T)`` of a network with a head (``None`` for the plain BLSTM)."""
    if isinstance(model, IASS):
        return model(log_magnitude(mixture))
    if isinstance(model, ActivityBLSTM):
        masks, logits = model(mixture)
        return masks[:, :, 0], logits
    return model(mixture)[:, :, 0], None


def multitask_loss(model: nn.Module, batch, positive_weight: torch.Tensor,
                   activity_weight: float):
    """Separation MSE plus ``activity_weight`` times the weighted activity BCE;
    -> ``(loss, {'separation': ..., 'activity': ...})``, both terms logged by the step."""
    masks, logits = masks_and_logits(model, batch["mixture"])
    separation = masked_magnitude_loss(masks, batch["mixture"], batch["sources"])
    activity = activity_loss(logits, batch["activity"], positive_weight)
    loss = separation + activity_weight * activity
    return loss, {"separation": separation, "activity": activity}


def separation_loss(model: nn.Module, batch) -> torch.Tensor:
    """The separation MSE alone: the U-Net without its head's loss, and the plain BLSTM."""
    masks, _ = masks_and_logits(model, batch["mixture"])
    return masked_magnitude_loss(masks, batch["mixture"], batch["sources"])


@torch.no_grad()
def validation_loss(model: nn.Module, sets: Sets) -> dict[str, float]:
    """Mean separation MSE over the fixed validation batches (what picks the kept weights)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for batch in sets.valid:
        batch = to_device(batch, device)
        masks, _ = masks_and_logits(model, batch["mixture"])
        total += float(masked_magnitude_loss(masks, batch["mixture"], batch["sources"]))
    model.train(was_training)
    return {"valid separation": total / len(sets.valid)}


def train_on(cfg: Mapping[str, Any], sets: Sets, variant: str, seed: int = 0, **options):
    """Train ``variant`` on prepared :class:`Sets` for ``cfg['steps']`` steps; -> ``(model, history)``."""
    seed_everything(seed)
    model = build(cfg, variant)
    loss = (partial(multitask_loss, positive_weight=sets.positive_weight, activity_weight=cfg["activity_weight"])
            if PARTS[variant][0] in DETECTORS else separation_loss)
    options.setdefault("label", f"{variant} seed {seed}")
    history = fit(model, loss, partial(batches, cfg, sets, seed), steps=cfg["steps"], lr=cfg["lr"], seed=seed,
                  valid_fn=partial(validation_loss, sets=sets), valid_every=cfg["valid_every"],
                  keep_best=("valid separation", "min"), **options)
    return model.cpu().eval(), history


def train(cfg: Mapping[str, Any], data: Splits, variant: str, seed: int = 0, **options):
    """Train ``variant`` on its set's training songs; -> ``(model, history)``. ``options`` go to
    :func:`sepbook.experiments.train.fit`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    return train_on(cfg, training_sets(cfg, data, PARTS[variant][1]), variant, seed, **options)
