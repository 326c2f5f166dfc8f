"""Checks a student can run on their own answers to the book's exercises.

Each ``check_*`` function calls the student's function on fresh random inputs, compares it with the
package's reference implementation and raises ``AssertionError`` with a message that says what is
wrong; on success it returns a short confirmation string.

Chapter: foundations/stft_and_masks
"""
from __future__ import annotations

from typing import Callable

import torch


def _fail(message: str) -> None:
    raise AssertionError(message)


def _complex_specs(generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    real = torch.randn(shape, generator=generator)
    imag = torch.randn(shape, generator=generator)
    return torch.complex(real, imag)


def check_ratio_mask(ideal_ratio_mask: Callable[[torch.Tensor], torch.Tensor], seed: int = 0) -> str:
    """Check a student's ideal ratio mask ``f(source_specs (K, freq, frames) complex) -> (K, freq, frames)``."""
    from sepbook.masks import ideal_ratio_mask as reference

    generator = torch.Generator().manual_seed(seed)
    specs = _complex_specs(generator, (3, 17, 11))
    specs[:, 0, 0] = 0  # a bin where every source is silent
    try:
        answer = ideal_ratio_mask(specs.clone())
    except Exception as error:  # report, don't crash the student's notebook
        _fail(f"your function raised {type(error).__name__}: {error}")
    if not torch.is_tensor(answer):
        _fail(f"expected a torch tensor, got {type(answer).__name__}")
    if answer.shape != specs.shape:
        _fail(f"expected shape {tuple(specs.shape)} (one mask per source), got {tuple(answer.shape)}")
    if answer.is_complex():
        _fail("a ratio mask is real-valued: build it from magnitudes |S_k|, not the complex values")
    if not torch.isfinite(answer).all():
        _fail("your mask has NaN or Inf where all sources are silent: guard the division (e.g. add a small eps)")
    if (answer < 0).any() or (answer > 1 + 1e-5).any():
        _fail("mask values must lie in [0, 1]")
    # compare away from the all-silent bin, where any finite convention (0 or 1/K) is fine
    expected, answer = reference(specs)[:, 1:, 1:], answer[:, 1:, 1:]
    if not torch.allclose(answer, expected, atol=1e-4):
        sums = answer.sum(0)
        if torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
            _fail("your masks sum to one but differ from |S_k| / sum_j |S_j|: did you use power 2 (a Wiener mask)?")
        _fail("your masks do not sum to one over the sources in each bin: divide by the sum of all source magnitudes")
    return "correct: your ideal ratio mask matches |S_k| / sum_j |S_j| and is safe on silent bins"


def check_si_sdr(si_sdr: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int = 0) -> str:
    """Check a student's ``si_sdr(estimate (..., time), reference (..., time)) -> (...)`` in dB."""
    from sepbook.metrics import si_sdr as reference

    generator = torch.Generator().manual_seed(seed)
    ref = torch.randn(4, 8000, generator=generator)
    est = ref + 0.3 * torch.randn(4, 8000, generator=generator)
    try:
        answer = si_sdr(est.clone(), ref.clone())
        scaled = si_sdr(2.5 * est.clone(), ref.clone())
    except Exception as error:
        _fail(f"your function raised {type(error).__name__}: {error}")
    if not torch.is_tensor(answer) or answer.shape != (4,):
        _fail(f"expected one value per signal, a tensor of shape (4,), got {getattr(answer, 'shape', type(answer))}")
    expected = reference(est, ref)
    if not torch.allclose(scaled, answer, atol=1e-3):
        _fail("scaling the estimate changed your result: project the estimate onto the reference first")
    if not torch.allclose(answer, expected, atol=1e-2):
        if torch.allclose(answer, expected / 2, atol=1e-2):
            _fail("off by a factor of 2: SI-SDR is 10 log10 of an energy ratio (20 log10 of an amplitude ratio)")
        _fail(f"expected {expected.tolist()} dB, got {answer.tolist()} dB")
    return "correct: your SI-SDR matches and is scale-invariant"
