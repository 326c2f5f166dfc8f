"""Training the chapter's two systems on either set: IASS (masks and activity, one network) and the
Foundations BLSTM (masks only), with the same batches, steps and separation loss.

Chapter: activity/activity_aware
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import torch
from torch import nn

from sepbook.losses.activity import activity_loss, masked_magnitude_loss
from sepbook.losses.adversarial import log_magnitude
from sepbook.models.blstm import BLSTMMasker
from sepbook.models.iass import IASS
from sepbook.recipes.activity.data import DATASETS, Sets, Splits, batches, n_bins, sources, training_sets
from sepbook.train import fit, seed_everything, to_device

MODELS: tuple[str, ...] = ("IASS", "BLSTM")
#: Every trained system: (model, dataset) under its name.
VARIANTS: dict[str, tuple[str, str]] = {f"{model} {dataset}": (model, dataset)
                                        for dataset in DATASETS for model in MODELS}


def build(cfg: Mapping[str, Any], variant: str) -> nn.Module:
    """The network of ``variant`` (e.g. ``'IASS medley'``), sized for its set's instruments."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    model, dataset = VARIANTS[variant]
    k = len(sources(cfg, dataset))
    if model == "IASS":
        network = IASS(k, n_bins(cfg), cfg["unet_base"], cfg["unet_depth"], cfg["unet_max_channels"],
                       cfg["head_hidden"])
    else:
        network = BLSTMMasker(n_bins(cfg), k, 1, cfg["blstm_hidden"], cfg["blstm_layers"])
    network.settings = {key: cfg[key] for key in ("n_fft", "hop", "sr", "threshold", "median_frames")}
    return network


def masks_and_logits(model: nn.Module, mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Masks ``(B, K, F, T)`` of mixture magnitudes ``(B, 1, F, T)``, and IASS's activity logits
    ``(B, K, T)`` (``None`` for the BLSTM, which predicts no activity)."""
    if isinstance(model, IASS):
        return model(log_magnitude(mixture))
    return model(mixture)[:, :, 0], None


def iass_loss(model: IASS, batch, positive_weight: torch.Tensor,
              activity_weight: float):
    """IASS's loss: separation MSE plus ``activity_weight`` times the weighted activity BCE;
    -> ``(loss, {'separation': ..., 'activity': ...})``, both terms logged by the step."""
    masks, logits = model(log_magnitude(batch["mixture"]))
    separation = masked_magnitude_loss(masks, batch["mixture"], batch["sources"])
    activity = activity_loss(logits, batch["activity"], positive_weight)
    loss = separation + activity_weight * activity
    return loss, {"separation": separation, "activity": activity}


def blstm_loss(model: BLSTMMasker, batch) -> torch.Tensor:
    """The baseline's loss: the same separation MSE, nothing else."""
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
    loss = (partial(iass_loss, positive_weight=sets.positive_weight, activity_weight=cfg["activity_weight"])
            if isinstance(model, IASS) else blstm_loss)
    options.setdefault("label", f"{variant} seed {seed}")
    history = fit(model, loss, partial(batches, cfg, sets, seed), steps=cfg["steps"], lr=cfg["lr"], seed=seed,
                  valid_fn=partial(validation_loss, sets=sets), valid_every=cfg["valid_every"],
                  keep_best=("valid separation", "min"), **options)
    return model.cpu().eval(), history


def train(cfg: Mapping[str, Any], data: Splits, variant: str, seed: int = 0, **options):
    """Train ``variant`` on its set's training songs; -> ``(model, history)``. ``options`` go to
    :func:`sepbook.train.fit`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    return train_on(cfg, training_sets(cfg, data, VARIANTS[variant][1]), variant, seed, **options)
