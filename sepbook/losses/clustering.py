"""ChimeraNet's losses: deep clustering on the embeddings, mask inference on the masks, and their mix.

Shapes: embeddings ``(batch, frames, freq, D)``, one-hot assignments ``(batch, frames, freq, K)``,
weights ``(batch, frames, freq)``; magnitudes ``(batch, 1, freq, frames)`` for the mixture and
``(batch, K, 1, freq, frames)`` for masks and sources.

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

import torch

from sepbook.masks import ideal_binary_mask


def ideal_assignments(source_mags: torch.Tensor) -> torch.Tensor:
    """Y: each time-frequency bin assigned to its loudest source (the ideal binary mask), one-hot
    ``(batch, frames, freq, K)``."""
    return ideal_binary_mask(source_mags[:, :, 0]).permute(0, 3, 2, 1)


def magnitude_weights(mixture_mag: torch.Tensor) -> torch.Tensor:
    """W: the mixture's magnitude per bin, ``(batch, frames, freq)``, so silent bins do not count."""
    return mixture_mag[:, 0].transpose(1, 2)


def deep_clustering_loss(embeddings: torch.Tensor, assignments: torch.Tensor,
                         weights: torch.Tensor) -> torch.Tensor:
    """||W^1/2 (V V^T - Y Y^T) W^1/2||^2 in its low-rank form, per example over (sum W)^2; -> scalar.

    ``V^T V`` is only ``D x D``: the ``N x N`` affinity matrices are never built.
    """
    root = weights.flatten(1).sqrt().unsqueeze(-1)      # (batch, N, 1)
    v = embeddings.flatten(1, -2) * root                # (batch, N, D)
    y = assignments.flatten(1, -2) * root               # (batch, N, K)
    vv = (v.transpose(1, 2) @ v).square().sum((1, 2))
    vy = (v.transpose(1, 2) @ y).square().sum((1, 2))
    yy = (y.transpose(1, 2) @ y).square().sum((1, 2))
    total = weights.flatten(1).sum(1).square().clamp(min=1e-12)
    return ((vv - 2 * vy + yy) / total).mean()


def naive_deep_clustering_loss(embeddings: torch.Tensor, assignments: torch.Tensor,
                               weights: torch.Tensor) -> torch.Tensor:
    """The same loss through the full ``N x N`` affinity matrices: for checking, small inputs only."""
    w = weights.flatten(1)
    v, y = embeddings.flatten(1, -2), assignments.flatten(1, -2)
    difference = v @ v.transpose(1, 2) - y @ y.transpose(1, 2)         # (batch, N, N)
    weighted = w.unsqueeze(2) * difference.square() * w.unsqueeze(1)
    return (weighted.sum((1, 2)) / w.sum(1).square().clamp(min=1e-12)).mean()


def mask_inference_loss(masks: torch.Tensor, mixture_mag: torch.Tensor,
                        source_mags: torch.Tensor) -> torch.Tensor:
    """Magnitude spectrum approximation, (1/N) || |M X| - |S| ||_1; -> scalar."""
    return (masks * mixture_mag.unsqueeze(1) - source_mags).abs().mean()


def chimera_loss(dc: torch.Tensor, mi: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha L_DC + (1 - alpha) L_MI."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a weight in [0, 1], got {alpha}")
    return alpha * dc + (1 - alpha) * mi
