"""The waveform separator's loss: negative SI-SDR, over the targets that are not silent.

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

import torch

from sepbook.metrics import si_sdr


def si_sdr_loss(estimates: torch.Tensor, targets: torch.Tensor,
                silence: float = 1e-6, eps: float = 1e-8) -> torch.Tensor:
    """Minus the mean SI-SDR (dB) of ``estimates`` against ``targets``, both ``(..., time)``.

    A target whose mean power is below ``silence`` is left out: SI-SDR rescales the target to fit
    the estimate, so a silent target has no scale to fit and would only add noise to the gradient.
    If every target is silent the loss is 0 (and pushes nothing).
    """
    sdr = si_sdr(estimates, targets, eps, checked=False)
    power = ((targets - targets.mean(-1, keepdim=True)) ** 2).sum(-1)
    audible = (power / targets.shape[-1] > silence).to(sdr.dtype)
    return -(sdr * audible).sum() / audible.sum().clamp(min=1)
