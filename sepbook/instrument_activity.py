"""Instrument activity: labels from a stem's frame energy, and the inference weighting of IASS
(Hung and Lerch 2020): predicted activity, binarised, median-filtered over time, multiplied onto
each instrument's mask frame by frame.

Shapes: activity is ``(..., K, frames)``; masks are ``(..., K, freq, frames)``.

Chapter: activity/activity_aware
"""
from __future__ import annotations

import torch


def frame_activity(magnitudes: torch.Tensor, threshold_db: float = -30.0) -> torch.Tensor:
    """Activity labels ``(..., frames)`` bool from a stem's magnitudes ``(..., freq, frames)``.

    A frame is active when its energy is within ``threshold_db`` of the stem's loudest frame; a
    stem that is silent throughout is inactive everywhere.
    """
    _check_magnitudes(magnitudes)
    if not threshold_db < 0:
        raise ValueError(f"threshold_db: expected a negative level below the loudest frame, got {threshold_db}")
    energy = magnitudes.pow(2).sum(dim=-2)
    loudest = energy.amax(dim=-1, keepdim=True)
    return (energy > 0) & (energy >= loudest * 10 ** (threshold_db / 10))


def median_filter(values: torch.Tensor, length: int) -> torch.Tensor:
    """Running median over the last axis, ``length`` frames wide (odd); edges repeat the end frames."""
    _check_length(length, "length")
    half = length // 2
    padded = torch.cat([values[..., :1].expand(*values.shape[:-1], half), values,
                        values[..., -1:].expand(*values.shape[:-1], half)], dim=-1)
    return padded.unfold(-1, length, 1).median(dim=-1).values


def activity_weights(probabilities: torch.Tensor, threshold: float = 0.5,
                     median_frames: int = 15) -> torch.Tensor:
    """The weight of every frame, 0 or 1: ``probabilities >= threshold``, median-filtered.

    ``probabilities`` ``(..., K, frames)`` in [0, 1] -> float weights of the same shape. The
    median filter removes on/off blips shorter than half its length, which a real instrument
    does not make; at the two ends, where the filter repeats the end frames, a run that touches
    the first or last frame is kept.
    """
    _check_threshold(threshold)
    _check_length(median_frames)
    return median_filter((probabilities >= threshold).float(), median_frames)


def weight_masks(masks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Multiply each instrument's mask ``(..., K, freq, frames)`` by its frame weights ``(..., K, frames)``."""
    _check_frames(masks, weights)
    return masks * weights.unsqueeze(-2)


def leakage_db(estimate: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Energy an estimate puts where its instrument is silent, in dB relative to the instrument's own.

    ``estimate``, ``reference``: magnitudes ``(K, freq, frames)``; ``labels``: activity ``(K, frames)``.
    Per instrument, ``10 log10(sum of |estimate|^2 over the silent frames / sum of |reference|^2)``
    -> ``(K,)``; lower is better. NaN for an instrument with no silent frame (nothing can leak) or no
    energy of its own; an estimate that leaks nothing scores -120 dB.
    """
    _check_magnitudes(estimate)
    _check_magnitudes(reference)
    if estimate.shape != reference.shape or labels.shape != estimate.shape[:-2] + estimate.shape[-1:]:
        raise ValueError(f"labels: expected (K, frames) = {tuple(estimate.shape[:-2] + estimate.shape[-1:])} for "
                         f"estimate and reference {tuple(estimate.shape)}, got estimate {tuple(estimate.shape)}, "
                         f"reference {tuple(reference.shape)} and labels {tuple(labels.shape)}")
    silent = ~labels.bool()
    leaked = (estimate.double().pow(2).sum(-2) * silent).sum(-1)
    own = reference.double().pow(2).sum((-2, -1))
    ratio = 10 * torch.log10(leaked / own.clamp(min=1e-30) + 1e-12)
    undefined = ~silent.any(-1) | (own == 0)
    return torch.where(undefined, torch.full_like(ratio, float("nan")), ratio).float()


def _check_magnitudes(magnitudes) -> None:
    if not torch.is_tensor(magnitudes) or magnitudes.dim() < 2:
        raise ValueError(f"magnitudes: expected a tensor shaped (..., freq, frames), got "
                         f"{getattr(magnitudes, 'shape', type(magnitudes).__name__)}")
    if magnitudes.is_complex() or bool((magnitudes < 0).any()):
        raise ValueError("magnitudes: expected non-negative real magnitudes (take .abs() of the STFT)")


def _check_threshold(threshold) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold: expected a probability in [0, 1], got {threshold!r}")


def _check_length(length, name: str = "median_frames") -> None:
    if isinstance(length, bool) or not isinstance(length, int) or length < 1 or length % 2 == 0:
        raise ValueError(f"{name}: expected a positive odd number of frames, got {length!r}")


def _check_frames(masks: torch.Tensor, weights: torch.Tensor) -> None:
    if masks.dim() < 3 or weights.shape != masks.shape[:-2] + masks.shape[-1:]:
        raise ValueError(f"weights: expected (..., K, frames) = {tuple(masks.shape[:-2] + masks.shape[-1:])} "
                         f"for masks {tuple(masks.shape)}, got {tuple(weights.shape)}")
