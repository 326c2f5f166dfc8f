"""Time-frequency masks: the ideal (oracle) masks computed from known sources, and how to apply them.

Source spectrograms are stacked on axis -3: ``(..., K, freq, frames)``; a mixture spectrogram is
``(..., freq, frames)``. A mask has the shape of the stacked sources and multiplies the mixture.

Chapter: foundations/stft_and_masks
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sepbook.audio import STFT
from sepbook.checks import check_audio, check_same_length

ORACLE_KINDS = ("ibm", "irm", "wiener", "psm")


def ideal_binary_mask(source_specs: torch.Tensor) -> torch.Tensor:
    """Give each time-frequency bin wholly to the loudest source: ``(..., K, F, T) -> (..., K, F, T)`` of 0/1.

    Exactly one source gets 1 in every bin (the first one where all are silent), so masks sum to one.
    Chapter: foundations/stft_and_masks
    """
    magnitude = _magnitudes(source_specs, "source_specs")
    loudest = magnitude.argmax(dim=-3, keepdim=True)
    return torch.zeros_like(magnitude).scatter_(-3, loudest, 1.0)


def ideal_ratio_mask(
    source_specs: torch.Tensor, power: float = 1.0
) -> torch.Tensor:
    """Share each bin in proportion to the sources' magnitudes.

    ``|S_k|^p / sum_j |S_j|^p``, ``(..., K, F, T)``. Where every source is silent
    each gets ``1 / K``, so the masks always sum to one and never divide by zero.
    Chapter: foundations/stft_and_masks
    """
    if not power > 0:
        raise ValueError(f"power: expected a positive exponent, got {power!r}")
    weights = _magnitudes(source_specs, "source_specs") ** power
    total = weights.sum(dim=-3, keepdim=True)
    silent = total == 0
    return torch.where(
        silent, 1.0 / weights.shape[-3], weights / torch.where(silent, 1.0, total)
    )


def wiener_mask(source_specs: torch.Tensor) -> torch.Tensor:
    """Ideal Wiener-like mask, the ratio of source powers ``|S_k|^2 / sum_j |S_j|^2``, ``(..., K, F, T)``.

    It is :func:`ideal_ratio_mask` with ``power=2``: the optimal real gain when sources are
    independent Gaussians whose variances are the oracle powers.
    Chapter: foundations/stft_and_masks
    """
    return ideal_ratio_mask(source_specs, power=2.0)


def phase_sensitive_mask(
    source_specs: torch.Tensor, mixture_spec: torch.Tensor, clip: tuple[float, float] | None = (0.0, 1.0)
) -> torch.Tensor:
    """Real mask that also accounts for phase: ``|S_k| / |X| * cos(angle S_k - angle X)``, ``(..., K, F, T)``.

    ``source_specs`` is complex ``(..., K, F, T)``, ``mixture_spec`` complex ``(..., F, T)``. The value is
    clipped to ``clip`` (``None`` keeps it raw); bins where the mixture is silent get 0.
    Chapter: foundations/stft_and_masks
    """
    _check_complex(source_specs, "source_specs", min_ndim=3)
    _check_complex(mixture_spec, "mixture_spec", min_ndim=2)
    expected = source_specs.shape[:-3] + source_specs.shape[-2:]
    if mixture_spec.shape != expected:
        raise ValueError(
            f"mixture_spec: expected shape {tuple(expected)} to match source_specs, got {tuple(mixture_spec.shape)}"
        )
    mixture = mixture_spec.unsqueeze(-3)
    energy = mixture.abs() ** 2
    # Re(S conj X) / |X|^2 equals |S|/|X| cos(phase difference) without computing any angle.
    mask = (source_specs * mixture.conj()).real / torch.where(energy > 0, energy, 1.0)
    return mask if clip is None else mask.clamp(*clip)


def apply_mask(mask: torch.Tensor, mixture_spec: torch.Tensor) -> torch.Tensor:
    """Masked mixture, one spectrogram per source: ``(..., K, F, T) x (..., F, T) -> complex (..., K, F, T)``.

    Chapter: foundations/stft_and_masks
    """
    _check_complex(mixture_spec, "mixture_spec", min_ndim=2)
    fits = isinstance(mask, torch.Tensor) and mask.ndim == mixture_spec.ndim + 1
    if not fits or mask.shape[-2:] != mixture_spec.shape[-2:]:
        raise ValueError(
            f"mask: expected shape (..., K, {mixture_spec.shape[-2]}, {mixture_spec.shape[-1]}) for a mixture_spec"
            f" shaped {tuple(mixture_spec.shape)}, got {tuple(getattr(mask, 'shape', ()))}"
        )
    return mask * mixture_spec.unsqueeze(-3)


def wiener_filter(magnitudes: torch.Tensor, mixture_spec: torch.Tensor,
                  iterations: int = 1, eps: float = 1e-10) -> torch.Tensor:
    """Complex source estimates ``(..., K, F, T)`` from magnitude estimates ``(..., K, F, T)`` and the
    mixture STFT ``(..., F, T)``, refined by ``iterations`` rounds of Wiener filtering.

    The start is each magnitude with the mixture's phase. Each round gives every source the share
    ``|Y_k|^2 / sum_j |Y_j|^2`` of the mixture, where ``Y_k`` is its current estimate, so after one
    round the estimates add up to the mixture. This is the single-channel case of the expectation-
    maximisation refinement in ``norbert.wiener`` (with ``use_softmask=False``), which Open-Unmix runs
    after its network: with one channel each source's spatial covariance is 1, and a round
    re-estimates its power from its current estimate.
    Chapter: foundations/phase_and_reconstruction
    """
    _check_wiener(magnitudes, mixture_spec, iterations)
    mixture = mixture_spec.unsqueeze(-3)
    estimates = magnitudes * torch.exp(1j * mixture.angle())   # the mixture's phase
    for _ in range(iterations):
        power = estimates.abs() ** 2
        estimates = power / (power.sum(dim=-3, keepdim=True) + eps) * mixture
    return estimates


def _check_wiener(magnitudes: torch.Tensor, mixture_spec: torch.Tensor, iterations: int) -> None:
    _check_complex(mixture_spec, "mixture_spec", min_ndim=2)
    if magnitudes.ndim != mixture_spec.ndim + 1 or magnitudes.shape[-2:] != mixture_spec.shape[-2:]:
        raise ValueError(f"magnitudes: expected (..., K, {mixture_spec.shape[-2]}, {mixture_spec.shape[-1]}) "
                         f"for a mixture_spec shaped {tuple(mixture_spec.shape)}, got {tuple(magnitudes.shape)}")
    if iterations < 0:
        raise ValueError(f"iterations: expected 0 or more rounds, got {iterations}")


def oracle_separation(
    mixture: Any, sources: Any, kind: str = "irm", n_fft: int = 1024, hop: int = 256
) -> Any:
    """Separate ``mixture`` with an ideal mask computed from the true ``sources``: the best a mask can do.

    ``mixture`` is ``(channels, time)`` or ``(batch, channels, time)``; ``sources`` is ``(K, channels, time)``
    or ``(batch, K, channels, time)``. ``kind`` is one of ``'ibm'``, ``'irm'``, ``'wiener'``, ``'psm'``.
    Returns waveform estimates shaped like ``sources`` (numpy in, numpy out; torch in, torch out).
    Chapter: foundations/stft_and_masks
    """
    if kind not in ORACLE_KINDS:
        raise ValueError(f"kind: expected one of {ORACLE_KINDS}, got {kind!r}")
    mix, srcs = torch.as_tensor(mixture), torch.as_tensor(sources)
    check_audio(mix, "mixture", min_samples=2)
    check_audio(srcs, "sources", min_samples=2)
    if mix.ndim not in (2, 3) or srcs.ndim != mix.ndim + 1 or srcs.shape[:-3] != mix.shape[:-2]:
        raise ValueError(
            "sources: expected (K, channels, time) for a mixture (channels, time), or (batch, K, channels, time)"
            f" for (batch, channels, time); got sources {tuple(srcs.shape)} and mixture {tuple(mix.shape)}"
        )
    if srcs.shape[-2] != mix.shape[-2]:
        raise ValueError(f"sources: expected {mix.shape[-2]} channel(s) like the mixture, got {srcs.shape[-2]}")
    length = check_same_length({"mixture": mix, "sources": srcs})
    dtype = torch.promote_types(torch.promote_types(mix.dtype, srcs.dtype), torch.float32)
    transform = STFT(n_fft, hop)
    mixture_spec = transform(mix.to(dtype))
    # Put channels before sources so that sources sit on axis -3, where the masks expect them.
    source_specs = transform(srcs.to(dtype)).transpose(-4, -3)
    if kind == "psm":
        mask = phase_sensitive_mask(source_specs, mixture_spec)
    else:
        mask = {"ibm": ideal_binary_mask, "irm": ideal_ratio_mask, "wiener": wiener_mask}[kind](source_specs)
    estimates = transform.inverse(apply_mask(mask, mixture_spec), length).transpose(-3, -2)
    if not isinstance(sources, torch.Tensor):
        return estimates.numpy()
    return estimates.to(sources.dtype) if sources.is_floating_point() else estimates


def _magnitudes(specs: Any, name: str) -> torch.Tensor:
    if not isinstance(specs, torch.Tensor) or specs.ndim < 3:
        raise ValueError(f"{name}: expected a tensor shaped (..., K, freq, frames), got {tuple(np.shape(specs))}")
    return specs.abs() if specs.is_complex() or specs.is_floating_point() else specs.float().abs()


def _check_complex(spec: Any, name: str, min_ndim: int) -> None:
    if not isinstance(spec, torch.Tensor) or not spec.is_complex() or spec.ndim < min_ndim:
        axes = "(..., K, freq, frames)" if min_ndim == 3 else "(..., freq, frames)"
        got = f"{type(spec).__name__} {tuple(np.shape(spec))}"
        raise ValueError(f"{name}: expected a complex tensor shaped {axes}, got {got}")
