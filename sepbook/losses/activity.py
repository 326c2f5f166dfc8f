"""The two losses of instrument-activation-aware separation: MSE of the masked magnitudes, and
weighted binary cross-entropy of the per-frame activity.

Chapter: activity/activity_aware
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_magnitude_loss(masks: torch.Tensor, mixture: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """MSE between ``masks * mixture`` and the sources' magnitudes; -> scalar.

    ``masks`` and ``sources`` are ``(batch, K, freq, frames)``, ``mixture`` ``(batch, 1, freq, frames)``.
    """
    if masks.shape != sources.shape or mixture.shape != masks.shape[:1] + (1,) + masks.shape[2:]:
        raise ValueError(f"masks, mixture, sources: expected (B, K, F, T), (B, 1, F, T), (B, K, F, T), got "
                         f"{tuple(masks.shape)}, {tuple(mixture.shape)}, {tuple(sources.shape)}")
    return torch.mean((masks * mixture - sources) ** 2)


def activity_loss(logits: torch.Tensor, labels: torch.Tensor,
                  positive_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of activity ``logits`` ``(batch, K, frames)`` against 0/1 ``labels``; -> scalar.

    ``positive_weight`` ``(K,)`` scales the active frames of each instrument, so that an instrument
    that is nearly always on (or off) still teaches the head both classes.
    """
    _check_labels(logits, labels)
    if positive_weight is not None:  # one weight per instrument, for every frame
        positive_weight = positive_weight.to(logits).reshape(-1, 1)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits),
                                              pos_weight=positive_weight)


def positive_weights(labels: torch.Tensor, limit: float = 10.0) -> torch.Tensor:
    """``(K,)`` weights that balance active against silent frames: silent count / active count per
    instrument, clipped to ``[1 / limit, limit]``; ``labels`` ``(K, frames)``."""
    active = labels.float().sum(-1)
    silent = labels.shape[-1] - active
    return (silent / active.clamp(min=1)).clamp(1 / limit, limit)


def _check_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.shape != labels.shape:
        raise ValueError(f"labels: expected the logits' shape {tuple(logits.shape)} (batch, K, frames), "
                         f"got {tuple(labels.shape)}")
