"""U-Net separator on log-normalised magnitude spectrograms (Stoller, Ewert and Dixon, 2018, Sec. 4.3.2).

The adversarial chapter uses it to estimate log-magnitudes directly; the score-supervision chapter
uses the same network with ``masks=True``, one sigmoid mask per source; the activity chapter builds
it from :class:`ResidualBlock` s, pooled along frequency only, and reads its bottleneck.

Chapter: adversarial/adversarial_separation, transcription/score_supervision, activity/activity_aware
"""
from __future__ import annotations

import torch
from torch import nn


def _conv3x3_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 convolution with 'same' zero padding followed by ReLU; keeps (freq, frames)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU())


class ResidualBlock(nn.Module):
    """Two 3x3 convolution - batch norm - LeakyReLU layers, and a 1x1 convolution as the skip.

    ``(batch, in_channels, freq, frames)`` -> ``(batch, out_channels, freq, frames)``. The skip
    lets each level pass its input on where the two convolutions have nothing to add, so a
    deeper network stays as easy to train as a shallow one (Hung and Lerch 2020, after He et
    al. 2016).

    Chapter: activity/activity_aware
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2),
        )
        self.skip = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


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
    the output is one mask in [0, 1] per source, to be multiplied with the mixture magnitude.
    Each ReLU head starts as ``mixture / n_sources`` plus small random feature weights, because a
    randomly initialised ReLU head is often negative everywhere and never learns (the paper does
    not say how it initialises).

    Simplification: the paper uses *valid* convolutions and feeds extra temporal context
    (158 input frames of 350 bins for 66 output frames of 256 bins) so that every output sees its
    full receptive field. Here every convolution is zero-padded ('same'), so output and input have
    the same size, at the cost of less context near the excerpt edges. Pooling then needs ``freq``
    and ``frames`` to be multiples of ``2 ** depth`` (``multiples``); other sizes raise
    ``ValueError``. With a 512-point FFT, drop the Nyquist bin (257 -> 256 bins) as the paper does.

    Two choices make the activity chapter's residual U-Net from the same code: ``block`` builds each
    level's layers (``block(in_channels, out_channels)``, default a 3x3 convolution and ReLU) and
    ``pool`` is the (freq, frames) factor of every down level. With ``pool=(2, 1)`` the network
    pools along frequency only, so frames keep their full resolution down to the bottleneck and
    any number of frames is accepted. Each level then halves only the frequency axis, so while
    the filters double it costs twice the level above; ``max_channels`` stops the doubling.

    Chapter: adversarial/adversarial_separation, transcription/score_supervision,
    activity/activity_aware
    """

    def __init__(self, n_sources: int = 2, base_channels: int = 16, depth: int = 4, masks: bool = False,
                 block=None, pool: tuple[int, int] = (2, 2), max_channels: int | None = None) -> None:
        super().__init__()
        if not isinstance(pool, (tuple, list)) or tuple(pool) not in ((2, 2), (2, 1)):
            raise ValueError(f"UNet: pool must be (2, 2) or (2, 1), got {pool!r}")
        if max_channels is not None and (not isinstance(max_channels, int) or max_channels < base_channels):
            raise ValueError(f"UNet: max_channels must be an integer >= base_channels ({base_channels}), "
                             f"got {max_channels!r}")
        block = block or _conv3x3_relu
        self.pool = tuple(pool)
        for name, value in (("n_sources", n_sources), ("base_channels", base_channels), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"UNet: {name} must be a positive integer, got {value!r}")
        self.n_sources = n_sources
        self.base_channels = base_channels
        self.depth = depth
        self.masks = masks

        self.widths = widths = [min(base_channels * 2**level, max_channels or base_channels * 2**depth)
                                for level in range(depth + 1)]
        self.first = block(1, widths[0])
        self.down = nn.ModuleList(block(widths[level], widths[level + 1]) for level in range(depth))
        # Up levels run from the coarsest (level depth-1) back to the finest (level 0).
        self.up = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(widths[level + 1], widths[level], self.pool, stride=self.pool),
                          nn.ReLU())
            for level in reversed(range(depth))
        )
        self.merge = nn.ModuleList(block(2 * widths[level], widths[level]) for level in reversed(range(depth)))
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
    def multiples(self) -> tuple[int, int]:
        """What ``freq`` and ``frames`` of the input must be multiples of: ``pool ** depth`` each."""
        return self.pool[0] ** self.depth, self.pool[1] ** self.depth

    def check_input(self, mixture: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``mixture`` is ``(batch, 1, freq, frames)`` with sizes the U-Net accepts."""
        if not isinstance(mixture, torch.Tensor) or mixture.dim() != 4 or mixture.shape[1] != 1:
            shape = tuple(mixture.shape) if isinstance(mixture, torch.Tensor) else type(mixture).__name__
            raise ValueError(f"UNet: mixture must be a tensor shaped (batch, 1, freq, frames), got {shape}")
        n_freq, n_frames = mixture.shape[-2:]
        freq_multiple, frame_multiple = self.multiples
        if n_freq % freq_multiple or n_frames % frame_multiple or n_freq == 0 or n_frames == 0:
            raise ValueError(
                f"UNet: freq ({n_freq}) and frames ({n_frames}) must be positive multiples of "
                f"{freq_multiple} and {frame_multiple} (pool {self.pool}, depth={self.depth}); crop or pad "
                f"the spectrogram, e.g. drop the Nyquist bin so 257 bins become 256"
            )

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """Map a ``(batch, 1, freq, frames)`` mixture to source estimates >= 0.

        Both are log-magnitudes; the estimates are
        ``(batch, n_sources, freq, frames)`` (masks in [0, 1] with ``masks=True``).
        """
        return self.forward_with_bottleneck(mixture)[0]

    def forward_with_bottleneck(self, mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward`'s estimates and the bottleneck,
        ``(batch, widths[-1], freq / pool[0]**depth, frames / pool[1]**depth)``."""
        self.check_input(mixture)
        features = self.first(mixture)
        skips = [features]
        for down in self.down:
            features = down(nn.functional.max_pool2d(features, kernel_size=self.pool))
            skips.append(features)
        # the coarsest map is the bottleneck itself, not a skip connection
        bottleneck = skips.pop()
        for up, merge in zip(self.up, self.merge):
            features = merge(torch.cat([skips.pop(), up(features)], dim=1))
        features = torch.cat([features, mixture], dim=1)
        out = torch.cat([head(features) for head in self.heads], dim=1)
        if self.masks:
            return torch.sigmoid(out), bottleneck
        # ReLU keeps the estimates inside the range of log(1 + |S|) >= 0.
        return torch.relu(out), bottleneck
