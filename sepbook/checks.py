"""Input checks shared by every module: bad input fails early, with a message that names it.

Chapter: foundations/stft_and_masks
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch


def check_audio(
    x: Any,
    name: str,
    *,
    sr: int | None = None,
    expected_sr: int | None = None,
    channels: int | None = None,
    min_samples: int = 1,
) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` is finite audio of the expected form.

    ``x`` is a numpy array or torch tensor shaped ``(..., channels, time)`` or ``(time,)``.
    Checks, in order: numeric, at least ``min_samples`` samples, the channel count (axis -2)
    when ``channels`` is given, the sample rate when both ``sr`` and ``expected_sr`` are given,
    and that no sample is NaN or infinite. Tensors are checked where they live (no copy to the CPU).
    """
    is_tensor = torch.is_tensor(x)
    arr = x.detach() if is_tensor else np.asarray(x)
    if (arr.dtype == torch.bool) if is_tensor else (arr.dtype.kind not in "fiuc"):
        raise ValueError(f"{name}: expected numeric audio samples, got dtype {arr.dtype}")
    shape = tuple(arr.shape)
    if len(shape) == 0:
        raise ValueError(f"{name}: expected audio shaped (..., channels, time), got a scalar")
    n = shape[-1]
    if n == 0:
        raise ValueError(f"{name}: audio is empty (0 samples along the time axis)")
    if n < min_samples:
        raise ValueError(f"{name}: audio is too short: {n} samples, expected at least {min_samples}")
    if channels is not None:
        got = shape[-2] if len(shape) >= 2 else 1
        if got != channels:
            raise ValueError(
                f"{name}: expected {channels} channel(s) on axis -2 of shape (..., channels, time), "
                f"got {got} (shape {shape})"
            )
    if sr is not None and expected_sr is not None and int(sr) != int(expected_sr):
        raise ValueError(f"{name}: sample rate is {sr} Hz, expected {expected_sr} Hz (resample first)")
    if is_tensor:
        finite = torch.isfinite(arr)
        if not bool(finite.all()):
            raise ValueError(f"{name}: contains {int((~finite).sum())} NaN or infinite sample(s)")
    elif not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains {int((~np.isfinite(arr)).sum())} NaN or infinite sample(s)")


def check_sample_rate(sr: Any, name: str = "sr") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``sr`` is a positive whole number of Hz."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer, float)) or sr <= 0 or int(sr) != sr:
        raise ValueError(f"{name}: expected a positive integer sample rate in Hz, got {sr!r}")


def check_same_length(arrays: Mapping[str, Any]) -> int:
    """Return the common length (last axis) of ``arrays`` or raise ``ValueError`` listing every length."""
    lengths = {key: int(np.shape(value)[-1]) for key, value in arrays.items()}
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"sources must all have the same number of samples; got {listing}")
    return next(iter(lengths.values()))
