"""A small transcriptor: log-magnitude spectrogram in, one piano roll of logits per instrument out.

Used as the separator's critic in the score-supervision chapter (Hung, Wichern and Le Roux,
ICASSP 2021); with one "pitch" and its logits pooled over time it is the clip-level instrument
classifier of the weak-supervision baseline (Pishdadian, Wichern and Le Roux, 2020).

Why convolutions, then a dense layer, then a recurrent one: on a linear STFT axis a note's
harmonics sit at multiples of its fundamental, so their spacing grows with the pitch and no
small filter sees one pattern for every note. The small 2-D filters pick up local shapes (a
partial's onset and width, the close partials of a low note); the dense layer over each frame's
whole frequency axis learns which bins together mean which pitch (on a log-frequency axis the
pattern would keep its shape at every pitch). Whether a note is still sounding depends on the
frames around it, which a bidirectional GRU over time sees. This follows the acoustic model of
Onsets and Frames (which reads a mel spectrogram) at a size a CPU trains in minutes.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

import torch
from torch import nn


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU())


class Transcriptor(nn.Module):
    """Map a log-magnitude spectrogram to piano-roll logits, one roll per instrument.

    ``(batch, 1, n_bins, frames)`` -> ``(batch, n_instruments, n_pitches, frames)``.

    Three 3x3 convolutions (``channels`` filters) with 2x max-pooling along frequency after the
    last two; per frame, the feature map is flattened, projected to ``hidden`` units and read by
    a bidirectional GRU over time; a linear layer gives ``n_instruments * n_pitches`` logits per
    frame. ``sigmoid(logits) > 0.5`` is the transcription.
    """

    def __init__(self, n_bins: int, n_instruments: int, n_pitches: int, channels: int = 16,
                 hidden: int = 64) -> None:
        super().__init__()
        for name, value in (("n_bins", n_bins), ("n_instruments", n_instruments), ("n_pitches", n_pitches),
                            ("channels", channels), ("hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Transcriptor: {name} must be a positive integer, got {value!r}")
        if n_bins % 4 or hidden % 2:
            raise ValueError(f"Transcriptor: n_bins must be a multiple of 4 and hidden even, got {n_bins}, {hidden}")
        self.n_bins, self.n_instruments, self.n_pitches = n_bins, n_instruments, n_pitches
        self.convs = nn.Sequential(
            _conv(1, channels),
            _conv(channels, channels), nn.MaxPool2d((2, 1)),
            _conv(channels, channels), nn.MaxPool2d((2, 1)),
        )
        self.project = nn.Sequential(nn.Linear(channels * n_bins // 4, hidden), nn.LayerNorm(hidden), nn.ReLU())
        self.gru = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(hidden, n_instruments * n_pitches)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, n_bins, frames)`` log-magnitudes -> logits
        ``(batch, n_instruments, n_pitches, frames)``."""
        hidden = self.features(spectrogram)              # (batch, frames, hidden)
        logits = self.out(hidden)                        # (batch, frames, K * P)
        batch, frames = hidden.shape[:2]
        logits = logits.view(batch, frames, self.n_instruments, self.n_pitches)
        return logits.permute(0, 2, 3, 1)

    def features(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """What the last layer reads: ``(batch, 1, n_bins, frames)`` -> ``(batch, frames, hidden)``."""
        self._check_input(spectrogram)
        features = self.convs(spectrogram)       # (batch, C, bins / 4, frames)
        # one feature vector per frame: (batch, frames, C * bins / 4)
        features = features.flatten(1, 2).transpose(1, 2)
        hidden, _ = self.gru(self.project(features))
        return hidden

    def _check_input(self, spectrogram: torch.Tensor) -> None:
        if spectrogram.dim() != 4 or spectrogram.shape[1] != 1 or spectrogram.shape[2] != self.n_bins:
            raise ValueError(f"Transcriptor: expected a spectrogram shaped (batch, 1, {self.n_bins}, frames), "
                             f"got {tuple(spectrogram.shape)}")


class ClipClassifier(nn.Module):
    """Which instruments play somewhere in a clip: ``(batch, 1, n_bins, frames)`` -> ``(batch, K)`` logits.

    A :class:`Transcriptor` with a single "pitch" per instrument whose logits are max-pooled over
    time: the weak label says only *whether* an instrument plays in the clip, not when or what.
    """

    def __init__(self, n_bins: int, n_instruments: int, channels: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.frames = Transcriptor(n_bins, n_instruments, 1, channels, hidden)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return self.frames(spectrogram)[:, :, 0].amax(dim=-1)
