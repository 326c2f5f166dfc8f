"""U-Net separator on log-normalised magnitude spectrograms (Stoller, Ewert and Dixon, 2018, Sec. 4.3.2).

The adversarial chapter uses it to estimate log-magnitudes directly; the score-supervision chapter
uses the same network with ``masks=True``, one sigmoid mask per source.

Chapter: adversarial/adversarial_separation, transcription/score_supervision
"""
from __future__ import annotations

import torch
from torch import nn


def _conv3x3_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 convolution with 'same' zero padding followed by ReLU; keeps (freq, frames)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU())


class UNet(nn.Module):
    """Separate a log-magnitude mixture into ``n_sources`` non-negative log-magnitude estimates.

    Input ``(batch, 1, freq, frames)`` holds ``log(1 + |X|)`` of the mixture; output
    ``(batch, n_sources, freq, frames)`` holds ``log(1 + |S_k|)`` estimates, one channel per source,
    which are fed to the critics unchanged and turned into audio with the mixture phase.

    Architecture (paper Sec. 4.3.2): a 3x3 convolution with ``base_channels`` filters; ``depth``
    down levels of 2x2 max-pooling then a 3x3 convolution doubling the filters; ``depth`` up levels
    of a stride-2 transposed convolution, concatenation with the matching down-level feature map and
    a 3x3 convolution; the last feature map concatenated with the mixture input; then one 1x1
    convolution per source and ReLU. With ``masks=True`` the heads end in a sigmoid instead and
    the output is one mask in [0, 1] per source, to be multiplied with the mixture magnitude. Each ReLU head starts as ``mixture / n_sources`` plus small random
    feature weights, because a randomly initialised ReLU head is often negative everywhere and
    never learns (the paper does not say how it initialises).

    Simplification: the paper uses *valid* convolutions and feeds extra temporal context
    (158 input frames of 350 bins for 66 output frames of 256 bins) so that every output sees its
    full receptive field. Here every convolution is zero-padded ('same'), so output and input have
    the same size, at the cost of less context near the excerpt edges. Pooling then needs ``freq``
    and ``frames`` to be multiples of ``2 ** depth`` (``required_multiple``); other sizes raise
    ``ValueError``. With a 512-point FFT, drop the Nyquist bin (257 -> 256 bins) as the paper does.

    Chapter: adversarial/adversarial_separation
    """

    def __init__(self, n_sources: int = 2, base_channels: int = 16, depth: int = 4, masks: bool = False) -> None:
        super().__init__()
        for name, value in (("n_sources", n_sources), ("base_channels", base_channels), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"UNet: {name} must be a positive integer, got {value!r}")
        self.n_sources = n_sources
        self.base_channels = base_channels
        self.depth = depth
        self.masks = masks

        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.first = _conv3x3_relu(1, widths[0])
        self.down = nn.ModuleList(_conv3x3_relu(widths[level], widths[level + 1]) for level in range(depth))
        # Up levels run from the coarsest (level depth-1) back to the finest (level 0).
        self.up = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(widths[level + 1], widths[level], kernel_size=2, stride=2), nn.ReLU())
            for level in reversed(range(depth))
        )
        self.merge = nn.ModuleList(_conv3x3_relu(2 * widths[level], widths[level]) for level in reversed(range(depth)))
        # One head per source, each seeing the finest features plus the mixture itself, so a head
        # can pass mixture energy straight through where the source dominates.
        self.heads = nn.ModuleList(nn.Conv2d(widths[0] + 1, 1, kernel_size=1) for _ in range(n_sources))
        if not masks:
            self._start_heads_as_mixture_share()

    @torch.no_grad()
    def _start_heads_as_mixture_share(self) -> None:
        # With default random weights a ReLU head is negative at every bin for roughly a quarter
        # of initialisations: it outputs zeros, gets no gradient and never recovers. Starting each
        # head near mixture / n_sources keeps every head active; the small feature weights stay
        # random so the heads still differ and learn.
        for head in self.heads:
            head.weight[:, :-1].mul_(0.1)
            head.weight[:, -1].fill_(1.0 / self.n_sources)
            head.bias.zero_()

    @property
    def required_multiple(self) -> int:
        """``freq`` and ``frames`` of the input must both be multiples of this number (``2 ** depth``)."""
        return 2**self.depth

    def check_input(self, mixture: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``mixture`` is ``(batch, 1, freq, frames)`` with sizes the U-Net accepts."""
        if not isinstance(mixture, torch.Tensor) or mixture.dim() != 4 or mixture.shape[1] != 1:
            shape = tuple(mixture.shape) if isinstance(mixture, torch.Tensor) else type(mixture).__name__
            raise ValueError(f"UNet: mixture must be a tensor shaped (batch, 1, freq, frames), got {shape}")
        n_freq, n_frames = mixture.shape[-2:]
        multiple = self.required_multiple
        if n_freq % multiple or n_frames % multiple or n_freq == 0 or n_frames == 0:
            raise ValueError(
                f"UNet: freq ({n_freq}) and frames ({n_frames}) must be positive multiples of "
                f"2**depth = {multiple} (depth={self.depth}); crop or pad the spectrogram, "
                f"e.g. drop the Nyquist bin so 257 bins become 256"
            )

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """Map a ``(batch, 1, freq, frames)`` mixture to source estimates >= 0.

        Both are log-magnitudes; the estimates are ``(batch, n_sources, freq, frames)``
        (masks in [0, 1] with ``masks=True``).
        """
        self.check_input(mixture)
        features = self.first(mixture)
        skips = [features]
        for down in self.down:
            features = down(nn.functional.max_pool2d(features, kernel_size=2))
            skips.append(features)
        # the coarsest map is the bottleneck itself, not a skip connection
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            features = merge(torch.cat([skips.pop(), up(features)], dim=1))
        features = torch.cat([features, mixture], dim=1)
        out = torch.cat([head(features) for head in self.heads], dim=1)
        if self.masks:
            return torch.sigmoid(out)
        # ReLU keeps the estimates inside the range of log(1 + |S|) >= 0.
        return torch.relu(out)
