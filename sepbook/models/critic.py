"""Wasserstein critic (the paper's "discriminator") for one source's log-magnitudes.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

import torch
from torch import nn


def _leaky_relu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2)


class Critic(nn.Module):
    """Score how real ``(batch, 1, freq, frames)`` log-magnitudes look.

    -> ``(batch,)``.

    One critic per source, DCGAN-style as in the paper (Sec. 4.3.3): LeakyReLU(0.2)
    after every layer; ``n_strided_layers`` 4x4 convolutions with stride 2 in both
    axes, starting at ``base_channels`` (32 in the paper) and doubling; then
    ``n_frequency_layers`` 4x2 convolutions with stride (2, 1) that halve only
    frequency, because excerpts have more bins than frames (256 x 64 in the paper);
    then a dense layer of ``hidden_units`` (32) and one linear output, an unbounded
    score rather than a probability, as a Wasserstein critic needs.

    No batch normalisation: the gradient penalty (paper eq. 4) is defined per
    example, and batch statistics would couple the examples of a batch.

    Difference from the paper: the paper flattens the last feature map into the
    dense layer, which fixes the input size. Here the last map is averaged over time
    and average-pooled to ``frequency_bins_kept`` bins before the dense layer, so
    the critic accepts any excerpt large enough, scores are invariant to where in
    the excerpt an event sits, and which frequency region it occupies still counts.
    For 256 x 64 inputs the last map is 4 x 4 either way.

    Inputs need ``freq >= 2 ** (n_strided_layers + n_frequency_layers)`` and
    ``frames >= 2 ** n_strided_layers`` (64 x 16 with the defaults); smaller ones
    raise ``ValueError``.

    Chapter: adversarial/adversarial_separation
    """

    def __init__(
        self,
        base_channels: int = 32,
        n_strided_layers: int = 4,
        n_frequency_layers: int = 2,
        hidden_units: int = 32,
        frequency_bins_kept: int = 4,
    ) -> None:
        super().__init__()
        _check_sizes(base_channels, n_strided_layers, n_frequency_layers,
                     hidden_units, frequency_bins_kept)
        self.n_strided_layers = n_strided_layers
        self.n_frequency_layers = n_frequency_layers
        self.frequency_bins_kept = frequency_bins_kept

        layers: list[nn.Module] = []
        in_channels, out_channels = 1, base_channels
        for index in range(n_strided_layers):
            if index > 0:
                out_channels = in_channels * 2
            # Padding 1 with a 4x4 kernel and stride 2 halves even sizes exactly,
            # like 'same' padding.
            layers += [
                nn.Conv2d(
                    in_channels, out_channels, kernel_size=4, stride=2, padding=1
                ),
                _leaky_relu(),
            ]
            in_channels = out_channels
        for _ in range(n_frequency_layers):
            # A 2-frame kernel with stride 1 needs one extra frame to keep the frame
            # count; pad it on the right (as 'same' padding does) and one bin each
            # side of frequency.
            layers += [
                nn.ZeroPad2d((0, 1, 1, 1)),
                nn.Conv2d(
                    in_channels, in_channels, kernel_size=(4, 2), stride=(2, 1)
                ),
                _leaky_relu(),
            ]
        self.features = nn.Sequential(*layers)
        self.hidden = nn.Sequential(
            nn.Linear(in_channels * frequency_bins_kept, hidden_units),
            _leaky_relu(),
        )
        # No bias: a constant offset cancels in D(real) - D(fake) and in the
        # separator's gradient.
        self.score = nn.Linear(hidden_units, 1, bias=False)

    @property
    def min_freq(self) -> int:
        """Smallest number of frequency bins the critic accepts."""
        return 2 ** (self.n_strided_layers + self.n_frequency_layers)

    @property
    def min_frames(self) -> int:
        """Smallest number of frames the critic accepts."""
        return 2**self.n_strided_layers

    def check_input(self, spectrogram: torch.Tensor) -> None:
        """Raise ``ValueError`` unless this critic accepts ``spectrogram``."""
        _check_spectrogram(self, spectrogram)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """One unbounded score per example.

        ``(batch, 1, freq, frames) -> (batch,)``.
        """
        self.check_input(spectrogram)
        features = self.features(spectrogram)
        pooled = nn.functional.adaptive_avg_pool2d(
            features, (self.frequency_bins_kept, 1)
        )
        return self.score(self.hidden(pooled.flatten(start_dim=1))).squeeze(-1)


# ----------------------------------------------------------------------------- checks


def _check_sizes(base_channels, n_strided_layers, n_frequency_layers, hidden_units,
                 frequency_bins_kept) -> None:
    """Raise ``ValueError`` naming the first size argument of :class:`Critic` that is
    not a positive integer (``n_frequency_layers`` may be 0)."""
    for name, value in (
        ("base_channels", base_channels),
        ("n_strided_layers", n_strided_layers),
        ("hidden_units", hidden_units),
        ("frequency_bins_kept", frequency_bins_kept),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"Critic: {name} must be a positive integer, got {value!r}"
            )
    if not isinstance(n_frequency_layers, int) or n_frequency_layers < 0:
        raise ValueError(
            "Critic: n_frequency_layers must be a non-negative integer, "
            f"got {n_frequency_layers!r}"
        )


def _check_spectrogram(critic: Critic, spectrogram) -> None:
    """Raise ``ValueError`` unless ``spectrogram`` is ``(batch, 1, freq, frames)`` and
    at least ``critic.min_freq`` bins x ``critic.min_frames`` frames."""
    if (not isinstance(spectrogram, torch.Tensor) or spectrogram.dim() != 4
            or spectrogram.shape[1] != 1):
        if isinstance(spectrogram, torch.Tensor):
            shape = tuple(spectrogram.shape)
        else:
            shape = type(spectrogram).__name__
        raise ValueError(
            "Critic: input must be a tensor shaped (batch, 1, freq, frames), "
            f"got {shape}"
        )
    n_freq, n_frames = spectrogram.shape[-2:]
    if n_freq < critic.min_freq or n_frames < critic.min_frames:
        raise ValueError(
            f"Critic: input of {n_freq} bins x {n_frames} frames is too small; "
            f"this critic needs at least {critic.min_freq} bins x "
            f"{critic.min_frames} frames "
            f"(n_strided_layers={critic.n_strided_layers}, "
            f"n_frequency_layers={critic.n_frequency_layers})"
        )
