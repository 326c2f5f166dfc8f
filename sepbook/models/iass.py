"""Instrument-activation-aware source separation (IASS; Hung and Lerch, ISMIR 2020): a residual
U-Net of masks whose bottleneck also says, frame by frame, which instruments play.

Chapter: activity/activity_aware
"""
from __future__ import annotations

import torch
from torch import nn

from sepbook.models.blstm import BLSTMMasker
from sepbook.models.unet import ResidualBlock, UNet


class ActivityHead(nn.Module):
    """Per-frame activity logits from the U-Net bottleneck.

    ``(batch, channels, bins, frames)`` -> ``(batch, K, frames)``: each frame's features over all
    bottleneck bins, a 3-frame convolution and LeakyReLU, then one logit per instrument.
    """

    def __init__(self, channels: int, bins: int, n_sources: int,
                 hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels * bins, hidden, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, n_sources, kernel_size=1),
        )

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        batch, channels, bins, frames = bottleneck.shape
        return self.net(bottleneck.reshape(batch, channels * bins, frames))


class IASS(nn.Module):
    """Masks and activity from one network.

    ``forward(log_mixture)``: ``(batch, 1, freq, frames)`` holding ``log(1 + |X|)`` ->
    masks ``(batch, K, freq, frames)`` in [0, 1] and activity logits ``(batch, K, frames)``.
    ``freq`` must equal ``n_freq`` (a multiple of ``2 ** depth``); any number of frames works,
    because the U-Net pools along frequency only and so keeps one bottleneck column per frame
    for the head.
    """

    def __init__(self, n_sources: int, n_freq: int, base_channels: int = 16, depth: int = 4,
                 max_channels: int | None = None, hidden: int = 64) -> None:
        super().__init__()
        if n_freq % 2**depth:
            raise ValueError(f"n_freq: expected a multiple of 2**depth = {2 ** depth}, got {n_freq}")
        self.n_freq = n_freq
        self.unet = UNet(n_sources, base_channels, depth, masks=True, block=ResidualBlock, pool=(2, 1),
                         max_channels=max_channels)
        self.activity = ActivityHead(self.unet.widths[-1], n_freq // 2**depth, n_sources, hidden)

    def forward(self, log_mixture: torch.Tensor):
        if log_mixture.dim() != 4 or log_mixture.shape[-2] != self.n_freq:
            raise ValueError(f"IASS: log_mixture must be (batch, 1, {self.n_freq}, frames), "
                             f"got {tuple(log_mixture.shape)}")
        masks, bottleneck = self.unet.forward_with_bottleneck(log_mixture)
        return masks, self.activity(bottleneck)


class ActivityBLSTM(BLSTMMasker):
    """The Foundations BLSTM with an activity head: the multi-task idea on the other network.

    ``forward(mixture_mag)``: ``(batch, 1, freq, frames)`` linear magnitudes -> masks
    ``(batch, K, 1, freq, frames)`` and activity logits ``(batch, K, frames)``, the logits read
    by one linear layer from the same per-frame features the masks are decoded from.
    """

    def __init__(self, n_freq: int, n_sources: int, hidden: int = 256, layers: int = 3) -> None:
        super().__init__(n_freq, n_sources, 1, hidden, layers)
        self.activity = nn.Linear(self.width, n_sources)

    def forward(self, mixture_mag: torch.Tensor):
        features = self.features(mixture_mag)                          # (batch, frames, width)
        return self.masks_of(features, mixture_mag.shape), self.activity(features).transpose(1, 2)
