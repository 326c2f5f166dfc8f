"""Conv-TasNet (Luo and Mesgarani 2019) and Meta-TasNet (Samuel, Ganeshan and Naradowsky, ICASSP
2020): separation on waveforms with a learned encoder, a masking TCN and a learned decoder.

The encoder and decoder are source-agnostic. The masking network runs one *stream* per
instrument, all streams at once as grouped convolutions on ``(batch, streams, channels, frames)``.
Where a stream's weights come from is the whole difference between the chapter's three systems:

- **independent**: each instrument's layers hold their own weights (:class:`StaticConv`);
- **multi-task**: one stream, wider, shared by all instruments, with K masks out;
- **meta**: each instrument's weights are *generated* from a learned instrument embedding
  (:class:`GeneratedConv`, :class:`GeneratedNorm`).

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Encoder(nn.Module):
    """Waveform ``(batch, 1, time)`` -> non-negative latent ``(batch, n_basis, frames)``.

    A strided 1-D convolution (``kernel`` samples, hop ``kernel // 2``) and a ReLU. The waveform is
    zero-padded at the end so that the decoder gives back at least ``time`` samples.
    """

    def __init__(self, n_basis: int, kernel: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, kernel // 2
        self.conv = nn.Conv1d(1, n_basis, kernel, stride=self.stride, bias=False)

    def frames(self, time: int) -> int:
        """Latent frames of a waveform of ``time`` samples."""
        return -(-max(time - self.kernel, 0) // self.stride) + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.shape[-1] < self.kernel:
            raise ValueError(f"wave: expected at least the encoder's kernel of "
                             f"{self.kernel} samples, got {wave.shape[-1]}")
        padded = (self.frames(wave.shape[-1]) - 1) * self.stride + self.kernel
        return F.relu(self.conv(F.pad(wave, (0, padded - wave.shape[-1]))))


class Decoder(nn.Module):
    """Latent ``(..., n_basis, frames)`` -> waveform ``(..., 1, time)``: a transposed convolution,
    the encoder's overlap-add inverse, cut to ``time`` samples."""

    def __init__(self, n_basis: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(n_basis, 1, kernel, stride=kernel // 2,
                                       bias=False)

    def forward(self, latent: torch.Tensor, time: int) -> torch.Tensor:
        lead = latent.shape[:-2]
        wave = self.conv(latent.reshape(-1, *latent.shape[-2:]))[..., :time]
        return wave.reshape(*lead, 1, wave.shape[-1])


def stream_conv(x: torch.Tensor, weight: torch.Tensor, groups: int = 1,
                dilation: int = 1,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """Every stream's convolution in one grouped ``conv1d``, 'same' padding.

    ``x`` ``(batch, S, C_in, T)``, ``weight`` ``(S * C_out, C_in // groups, kernel)``
    (stream by stream), ``bias`` ``(S * C_out,)`` -> ``(batch, S, C_out, T)``.
    """
    batch, streams, _, frames = x.shape
    padding = dilation * (weight.shape[-1] - 1) // 2
    y = F.conv1d(x.reshape(batch, -1, frames), weight, bias, padding=padding,
                 dilation=dilation, groups=streams * groups)
    return y.reshape(batch, streams, -1, frames)


def stream_norm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                eps: float = 1e-8) -> torch.Tensor:
    """Global layer norm of each stream over its channels and frames, then a per-channel affine.

    ``x`` ``(batch, S, C, T)``; ``scale`` and ``shift`` ``(S * C,)``.
    """
    batch, streams, channels, frames = x.shape
    y = F.group_norm(x.reshape(batch, -1, frames), streams, scale, shift, eps)
    return y.reshape(batch, streams, channels, frames)


class StaticConv(nn.Module):
    """Each stream's own weights: ``(batch, S, C_in, T)`` -> ``(batch, S, C_out, T)``; ``forward``
    takes the instrument embeddings only to share :class:`GeneratedConv`'s signature."""

    def __init__(self, streams: int, c_in: int, c_out: int, kernel: int = 1,
                 dilation: int = 1, depthwise: bool = False) -> None:
        super().__init__()
        self.groups, self.dilation = (c_in if depthwise else 1), dilation
        weight = torch.empty(streams * c_out, c_in // self.groups, kernel)
        fan_in = c_in // self.groups * kernel
        self.weight = nn.Parameter(nn.init.uniform_(weight, -fan_in ** -0.5, fan_in ** -0.5))

    def forward(self, x: torch.Tensor, embeddings: torch.Tensor | None = None) -> torch.Tensor:
        return stream_conv(x, self.weight, self.groups, self.dilation)


class GeneratedConv(nn.Module):
    """Convolution weights generated per instrument: embedding -> rank-``rank`` code -> weights.

    ``forward(x, embeddings)``: ``x`` ``(batch, K, C_in, T)``, ``embeddings`` ``(K, E)`` ->
    ``(batch, K, C_out, T)``. Two linear maps make the weights: ``code = A e_k`` (``E -> rank``),
    then ``W_k = reshape(G code + g)``; the bias ``g`` is what all instruments share.
    """

    def __init__(self, embedding_dim: int, rank: int, c_in: int, c_out: int,
                 kernel: int = 1, dilation: int = 1,
                 depthwise: bool = False) -> None:
        super().__init__()
        self.groups, self.dilation = (c_in if depthwise else 1), dilation
        self.shape = (c_out, c_in // self.groups, kernel)
        self.code = nn.Linear(embedding_dim, rank)
        self.generator = nn.Linear(rank, c_out * c_in // self.groups * kernel)
        fan_in = c_in // self.groups * kernel
        nn.init.uniform_(self.generator.bias, -fan_in ** -0.5, fan_in ** -0.5)
        nn.init.normal_(self.generator.weight, std=0.1 * fan_in ** -0.5)

    def weights(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Every instrument's kernel, ``(K, C_out, C_in // groups, kernel)``."""
        return self.generator(self.code(embeddings)).reshape(-1, *self.shape)

    def forward(self, x: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        weight = self.weights(embeddings).flatten(0, 1)
        return stream_conv(x, weight, self.groups, self.dilation)


class StaticNorm(nn.Module):
    """Global layer norm per stream with each stream's own affine."""

    def __init__(self, streams: int, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(streams * channels))
        self.shift = nn.Parameter(torch.zeros(streams * channels))

    def forward(self, x: torch.Tensor, embeddings: torch.Tensor | None = None) -> torch.Tensor:
        return stream_norm(x, self.scale, self.shift)


class GeneratedNorm(nn.Module):
    """Global layer norm per instrument with an affine generated from its embedding."""

    def __init__(self, embedding_dim: int, rank: int, channels: int) -> None:
        super().__init__()
        self.code = nn.Linear(embedding_dim, rank)
        self.generator = nn.Linear(rank, 2 * channels)
        nn.init.normal_(self.generator.weight, std=0.01)  # starts near the identity affine
        with torch.no_grad():
            self.generator.bias.copy_(torch.cat([torch.ones(channels), torch.zeros(channels)]))

    def affine(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every instrument's scale and shift, each ``(K, channels)``."""
        scale, shift = self.generator(self.code(embeddings)).chunk(2, dim=-1)
        return scale, shift

    def forward(self, x: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        scale, shift = self.affine(embeddings)
        return stream_norm(x, scale.flatten(), shift.flatten())


class Layers:
    """Makes a masking network's convolutions and norms: static per stream, or generated.

    ``Layers(streams)`` gives static layers for ``streams`` streams; ``Layers(K, embedding_dim=E,
    rank=r)`` gives layers generated from K instruments' embeddings.
    """

    def __init__(self, streams: int, embedding_dim: int | None = None, rank: int | None = None) -> None:
        self.streams, self.embedding_dim, self.rank = streams, embedding_dim, rank
        self.generated = embedding_dim is not None

    def conv(self, c_in: int, c_out: int, kernel: int = 1, dilation: int = 1,
             depthwise: bool = False) -> nn.Module:
        if self.generated:
            return GeneratedConv(self.embedding_dim, self.rank, c_in, c_out, kernel, dilation, depthwise)
        return StaticConv(self.streams, c_in, c_out, kernel, dilation, depthwise)

    def norm(self, channels: int) -> nn.Module:
        if self.generated:
            return GeneratedNorm(self.embedding_dim, self.rank, channels)
        return StaticNorm(self.streams, channels)


class TCNBlock(nn.Module):
    """One dilated block: 1x1 conv, PReLU, norm, depthwise dilated conv, PReLU, norm, then a
    residual and a skip 1x1 conv. ``(batch, S, B, T)`` -> residual and skip, both ``(batch, S, B, T)``;
    the last block of a network has no residual (``None``), since nothing would read it."""

    def __init__(self, layers: Layers, bottleneck: int, hidden: int, kernel: int,
                 dilation: int, residual: bool = True) -> None:
        super().__init__()
        self.expand = layers.conv(bottleneck, hidden)
        self.act1, self.norm1 = nn.PReLU(), layers.norm(hidden)
        self.depthwise = layers.conv(hidden, hidden, kernel, dilation,
                                     depthwise=True)
        self.act2, self.norm2 = nn.PReLU(), layers.norm(hidden)
        self.residual = layers.conv(hidden, bottleneck) if residual else None
        self.skip = layers.conv(hidden, bottleneck)

    def forward(self, x: torch.Tensor, e: torch.Tensor | None):
        h = self.norm1(self.act1(self.expand(x, e)), e)
        h = self.norm2(self.act2(self.depthwise(h, e)), e)
        residual = None if self.residual is None else self.residual(h, e)
        return residual, self.skip(h, e)


class MaskTCN(nn.Module):
    """The masking network: ``(batch, S, C_in, T)`` -> ``(batch, S, masks * n_basis, T)`` logits.

    A norm and 1x1 conv to ``bottleneck`` channels, ``stacks`` repeats of ``blocks`` blocks with
    dilations 1, 2, 4, ..., the skip paths summed, then PReLU and a 1x1 conv to ``masks`` masks of
    ``n_basis`` channels per stream.
    """

    def __init__(self, layers: Layers, c_in: int, n_basis: int, masks: int, bottleneck: int,
                 hidden: int, blocks: int, stacks: int, kernel: int = 3) -> None:
        super().__init__()
        self.norm_in, self.conv_in = layers.norm(c_in), layers.conv(c_in, bottleneck)
        dilations = [2 ** b for _ in range(stacks) for b in range(blocks)]
        self.blocks = nn.ModuleList(TCNBlock(layers, bottleneck, hidden, kernel, d, residual=i < len(dilations) - 1)
                                    for i, d in enumerate(dilations))
        self.act_out, self.conv_out = nn.PReLU(), layers.conv(bottleneck, masks * n_basis)
        self.kernel = kernel

    def receptive_field(self) -> int:
        """How many latent frames one output frame sees through the convolutions (the global
        layer norms' statistics span every frame)."""
        return 1 + sum((self.kernel - 1) * block.depthwise.dilation for block in self.blocks)

    def forward(self, x: torch.Tensor, e: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv_in(self.norm_in(x, e), e)
        skips = 0
        for block in self.blocks:
            residual, skip = block(x, e)
            x, skips = (x if residual is None else x + residual), skips + skip
        return self.conv_out(self.act_out(skips), e)


def mixture_consistency(estimates: torch.Tensor,
                        mixture: torch.Tensor) -> torch.Tensor:
    """Estimates ``(batch, K, 1, time)`` moved, each by an equal share of what they miss, so that
    they add up to ``mixture`` ``(batch, 1, time)`` exactly (Wisdom et al., ICASSP 2019).

    SI-SDR is blind to an estimate's gain and sign, and the masks alone tie the estimates to
    the *decoded* mixture, whose level the decoder may set at will. Once the estimates must add
    up to the mixture itself, a stem at the wrong level, or upside down, leaves the rest of
    itself in the other stems, and that leakage the loss does see. It makes an inversion costly,
    not impossible to reach: the estimates start as shares of the mixture, the right way up.
    """
    missing = mixture - estimates.sum(dim=1)  # (B, 1, T)
    return estimates + missing[:, None] / estimates.shape[1]


class Stage(nn.Module):
    """One sample rate: encoder, masking network, decoder.

    ``forward(mixture, previous=None)``: ``mixture`` ``(batch, 1, time)`` and, from a previous
    stage, its masked latents ``(batch, K, n_prev, frames)`` -> estimates ``(batch, K, 1, time)``
    and this stage's masked latents ``(batch, K, n_basis, frames)``. The masks are a softmax over
    the K instruments, so the estimates' latents add up to the mixture's, and
    :func:`mixture_consistency` makes the estimates add up to the mixture itself. ``streams`` is
    K, or 1 for a multi-task masker that serves every instrument from one stream.
    """

    def __init__(self, n_sources: int, streams: int, n_basis: int, kernel: int, masker: MaskTCN,
                 embeddings: nn.Embedding | None = None) -> None:
        super().__init__()
        self.n_sources, self.streams, self.n_basis = n_sources, streams, n_basis
        self.encoder, self.decoder = Encoder(n_basis, kernel), Decoder(n_basis, kernel)
        self.masker, self.embeddings = masker, embeddings

    def instruments(self) -> torch.Tensor | None:
        """The instrument embeddings ``(K, E)`` (meta only; ``None`` otherwise)."""
        return None if self.embeddings is None else self.embeddings.weight

    def embedding(self, instrument: int) -> torch.Tensor:
        """Instrument ``instrument``'s learned embedding ``(E,)`` (meta only)."""
        if self.embeddings is None:
            raise ValueError("embedding: only a meta stage learns instrument embeddings")
        if not 0 <= instrument < self.n_sources:
            raise IndexError(f"instrument: expected an index in [0, {self.n_sources}), got {instrument}")
        return self.embeddings.weight[instrument]

    def forward(self, mixture: torch.Tensor, previous: torch.Tensor | None = None):
        latent = self.encoder(mixture)                        # (B, N, T')
        batch, _, frames = latent.shape
        inputs = latent[:, None].expand(batch, self.streams, -1, -1)
        if previous is not None:
            # each stream also sees what the last stage gave its instruments
            before = previous.reshape(batch, self.streams, -1, frames)
            inputs = torch.cat([inputs, before], dim=2)
        logits = self.masker(inputs, self.instruments())
        logits = logits.reshape(batch, self.n_sources, self.n_basis, frames)
        masks = logits.softmax(dim=1)
        masked = latent[:, None] * masks                      # (B, K, N, T')
        estimates = self.decoder(masked, mixture.shape[-1])
        return mixture_consistency(estimates, mixture), masked


class MultiStage(nn.Module):
    """Stages at rising sample rates (e.g. 8, 16, 32 kHz), each fed the previous one's estimate.

    Stage ``i`` has ``2**i`` times the first stage's kernel and basis, so every stage has the same
    number of latent frames. ``forward(mixtures)`` takes one mixture ``(batch, 1, time_i)`` per
    stage, each at that stage's rate -> one estimate ``(batch, K, 1, time_i)`` per stage.
    """

    def __init__(self, stages: list[Stage], sample_rates: tuple[int, ...]) -> None:
        super().__init__()
        self.stages, self.sample_rates = nn.ModuleList(stages), tuple(sample_rates)

    def forward(self, mixtures: list[torch.Tensor]) -> list[torch.Tensor]:
        self._check(mixtures)
        estimates, previous = [], None
        for stage, mixture in zip(self.stages, mixtures):
            estimate, previous = stage(mixture, previous)
            estimates.append(estimate)
        return estimates

    def _check(self, mixtures: list[torch.Tensor]) -> None:
        if len(mixtures) != len(self.stages):
            raise ValueError(f"mixtures: expected one per stage ({len(self.stages)}, at "
                             f"{self.sample_rates} Hz), got {len(mixtures)}")
        first = mixtures[0].shape[-1]
        for i, mixture in enumerate(mixtures):
            if mixture.shape[-1] != first * 2 ** i:
                raise ValueError(f"mixtures[{i}]: expected {first * 2 ** i} samples at "
                                 f"{self.sample_rates[i]} Hz ({first} at {self.sample_rates[0]} Hz), "
                                 f"got {mixture.shape[-1]}")


def build_tasnet(masking: str, n_sources: int, sample_rates: tuple[int, ...], n_basis: int,
                 kernel: int, bottleneck: int, hidden: int, blocks: int, stacks: int,
                 embedding_dim: int = 8, rank: int = 3) -> MultiStage:
    """The chapter's three systems, alike in all but the masking network's weights.

    ``masking``: ``'independent'`` (K streams of static weights), ``'multi-task'`` (one stream,
    ``K * hidden`` wide, K masks out) or ``'meta'`` (K streams generated from embeddings).
    """
    stages = []
    for i, _ in enumerate(sample_rates):
        m = 2 ** i
        previous = n_basis * m // 2 if i else 0
        if masking == "multi-task":
            masker = MaskTCN(Layers(1), m * n_basis + n_sources * previous, m * n_basis,
                             n_sources, bottleneck, n_sources * hidden, blocks, stacks)
            stages.append(Stage(n_sources, 1, m * n_basis, m * kernel, masker))
            continue
        generated = masking == "meta"
        if not generated and masking != "independent":
            raise ValueError(f"masking: expected 'independent', 'multi-task' or 'meta', got {masking!r}")
        layers = Layers(n_sources, embedding_dim, rank) if generated else Layers(n_sources)
        masker = MaskTCN(layers, m * n_basis + previous, m * n_basis, 1, bottleneck, hidden,
                         blocks, stacks)
        embeddings = nn.Embedding(n_sources, embedding_dim) if generated else None
        stages.append(Stage(n_sources, n_sources, m * n_basis, m * kernel, masker, embeddings))
    return MultiStage(stages, sample_rates)


@torch.no_grad()
def start_as_generated(independent: MultiStage, meta: MultiStage) -> MultiStage:
    """``independent``'s weights set to those ``meta`` generates, layer by layer: the control that
    starts both systems as one function, so that training alone tells them apart.

    At the start, a meta model's K streams are one shared kernel plus a small per-instrument
    spread, where independent streams would be K unrelated random draws. Both models must have
    the same stages and sizes; ``independent`` is changed in place and returned.
    """
    if len(independent.stages) != len(meta.stages):
        raise ValueError(f"meta: expected {len(independent.stages)} stages, as independent has, "
                         f"got {len(meta.stages)}")
    for ours, theirs in zip(independent.stages, meta.stages):
        e = theirs.instruments()
        static = [m for m in ours.modules() if isinstance(m, (StaticConv, StaticNorm))]
        made = [m for m in theirs.modules() if isinstance(m, (GeneratedConv, GeneratedNorm))]
        if e is None or len(static) != len(made):
            raise ValueError("meta: expected a meta model with independent's stages and layers")
        for layer, generated in zip(static, made):
            if isinstance(layer, StaticConv) != isinstance(generated, GeneratedConv):
                raise ValueError("meta: its layers do not pair with independent's, conv with conv")
            if isinstance(generated, GeneratedConv):
                weights, targets = [generated.weights(e).flatten(0, 1)], [layer.weight]
            else:
                weights, targets = [w.flatten() for w in generated.affine(e)], [layer.scale, layer.shift]
            for target, weight in zip(targets, weights):
                if target.shape != weight.shape:
                    raise ValueError(f"meta: a layer of {tuple(weight.shape)} weights where independent "
                                     f"has {tuple(target.shape)}; build both at the same sizes")
                target.copy_(weight)
        rest = {k: v for k, v in theirs.state_dict().items() if k in ours.state_dict()}
        ours.load_state_dict(rest, strict=False)  # encoder, decoder and PReLU slopes
    return independent
