"""An Open-Unmix-style BLSTM mask estimator: the baseline every later chapter compares against.

The whole model in one file: magnitude STFT in, one soft mask per source out, applied to the mixture
and inverted with the mixture phase.

Chapter: foundations/first_separator
"""
from __future__ import annotations

import torch
from torch import nn

from sepbook.audio import STFT
from sepbook.checks import check_audio


class BLSTMTrunk(nn.Module):
    """Mixture magnitudes to per-frame features: the recurrent body the mask heads sit on.

    ``features(mixture_mag)``: ``(batch, channels, freq, frames)`` -> ``(batch, frames, 2 * hidden)``,
    or ``(batch, frames, hidden)`` with ``skip=False``.

    Per frame: standardise each frequency bin (learned mean and scale), project to
    ``hidden`` units, run a stack of bidirectional LSTMs over time, and concatenate
    their output with their input (a skip, as in Open-Unmix; ``skip=False`` gives the
    LSTM output alone, as nussl's ChimeraNet heads read it).
    """

    def __init__(self, n_freq: int, n_channels: int = 1, hidden: int = 256,
                 layers: int = 3, dropout: float = 0.0, skip: bool = True):
        super().__init__()
        _check_hidden(hidden)
        self.n_freq, self.n_channels, self.hidden, self.skip = n_freq, n_channels, hidden, skip
        self.input_mean = nn.Parameter(torch.zeros(n_freq))
        self.input_scale = nn.Parameter(torch.ones(n_freq))
        self.encode = nn.Sequential(
            nn.Linear(n_channels * n_freq, hidden), nn.LayerNorm(hidden), nn.Tanh()
        )
        self.lstm = nn.LSTM(hidden, hidden // 2, num_layers=layers,
                            bidirectional=True, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)

    def features(self, mixture_mag: torch.Tensor) -> torch.Tensor:
        _check_mixture_mag(mixture_mag, self.n_channels, self.n_freq)
        batch, channels, freq, frames = mixture_mag.shape
        # log compression evens out the huge dynamic range of magnitudes before the
        # LSTM sees them
        # (batch, frames, channels, freq)
        x = torch.log1p(mixture_mag).permute(0, 3, 1, 2)
        x = (x - self.input_mean) * self.input_scale
        x = self.encode(x.reshape(batch, frames, channels * freq))
        y, _ = self.lstm(x)
        return torch.cat([x, y], dim=-1) if self.skip else y

    @property
    def width(self) -> int:
        """How many features per frame :meth:`features` gives."""
        return 2 * self.hidden if self.skip else self.hidden


class BLSTMMasker(BLSTMTrunk):
    """Map mixture magnitudes to one soft mask per source.

    ``(batch, channels, freq, frames)`` -> ``(batch, K, channels, freq, frames)``.

    The :class:`BLSTMTrunk`'s features, then two dense layers to
    ``K * channels * freq`` sigmoid masks per frame.
    """

    def __init__(self, n_freq: int, n_sources: int, n_channels: int = 1,
                 hidden: int = 256, layers: int = 3, dropout: float = 0.0):
        super().__init__(n_freq, n_channels, hidden, layers, dropout)
        self.n_sources = n_sources
        self.decode = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(),
            nn.Linear(hidden, n_sources * n_channels * n_freq),
        )

    def forward(self, mixture_mag: torch.Tensor) -> torch.Tensor:
        return self.masks_of(self.features(mixture_mag), mixture_mag.shape)

    def masks_of(self, features: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Masks ``(batch, K, channels, freq, frames)`` from the :meth:`features`
        of a mixture of ``shape``."""
        batch, channels, freq, frames = shape
        masks = torch.sigmoid(self.decode(features)).reshape(
            batch, frames, self.n_sources, channels, freq
        )
        return masks.permute(0, 2, 3, 4, 1)


def _check_hidden(hidden: int) -> None:
    if hidden % 2:
        raise ValueError(
            f"hidden must be even (split over two LSTM directions), got {hidden}"
        )


def _check_mixture_mag(mixture_mag: torch.Tensor, n_channels: int, n_freq: int) -> None:
    _, channels, freq, _ = mixture_mag.shape
    if channels != n_channels or freq != n_freq:
        raise ValueError(
            f"mixture_mag: expected (batch, {n_channels}, {n_freq}, frames), "
            f"got {tuple(mixture_mag.shape)}"
        )


class MaskSeparator(nn.Module):
    """Waveform in, waveforms out: STFT, a masking network, mixture-phase iSTFT.

    ``forward(mixture)`` maps ``(batch, channels, time)`` to ``(batch, K, channels, time)``.
    ``estimate_magnitudes`` gives the masked magnitudes ``(batch, K, channels, freq, frames)`` that
    the training loss compares with the sources' magnitudes.
    """

    def __init__(self, masker: nn.Module, n_fft: int, hop: int):
        super().__init__()
        self.masker = masker
        self.stft = STFT(n_fft=n_fft, hop=hop)

    def estimate_magnitudes(self, mixture_spec: torch.Tensor) -> torch.Tensor:
        mixture_mag = mixture_spec.abs()
        return self.masker(mixture_mag) * mixture_mag.unsqueeze(1)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        check_audio(mixture, "mixture", min_samples=self.stft.n_fft)
        if mixture.dim() != 3:
            raise ValueError(f"mixture: expected (batch, channels, time), got shape {tuple(mixture.shape)}")
        spec = self.stft(mixture)                                    # (batch, channels, freq, frames)
        masks = self.masker(spec.abs())
        return self.stft.inverse(masks * spec.unsqueeze(1), length=mixture.shape[-1])


def blstm_separator(n_sources: int, n_fft: int, hop: int, n_channels: int = 1, hidden: int = 256,
                    layers: int = 3) -> MaskSeparator:
    """The Foundations baseline: a :class:`BLSTMMasker` inside a :class:`MaskSeparator`."""
    masker = BLSTMMasker(n_fft // 2 + 1, n_sources, n_channels, hidden, layers)
    return MaskSeparator(masker, n_fft, hop)
