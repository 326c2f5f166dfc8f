"""The loss of mask-based separators: masked mixture magnitudes vs the sources'.

Chapter: foundations/first_separator
"""
from __future__ import annotations

import torch


def magnitude_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Open-Unmix's loss: MSE of the estimated source magnitudes; -> scalar.

    ``batch['mixture']`` is ``(batch, channels, time)``, ``batch['sources']``
    ``(batch, K, channels, time)``; ``model`` is a
    :class:`~sepbook.models.blstm.MaskSeparator`.
    """
    mixture_spec = model.stft(batch["mixture"])
    target = model.stft(batch["sources"]).abs()
    estimate = model.estimate_magnitudes(mixture_spec)
    return torch.mean((estimate - target) ** 2)
