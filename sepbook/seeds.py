"""Every random number in the book comes from one seed and a few labels.

``rng(seed, "paired", step)`` is a numpy generator that depends only on its arguments, so a batch,
a song or a noise draw can be recreated anywhere (a resumed run, a test, a page) without carrying
generator state around. Labels may be strings (hashed with CRC-32, stable across Python runs,
unlike ``hash``) or integers in ``[0, 2**32)``. Seed and labels become one list of 32-bit words for
numpy's ``SeedSequence``, which pads lists shorter than four words with zeros: ``rng(s, "a", 7)``
and ``rng(s, "a", 7, 0)`` are the same stream. So give each purpose its own string label and
always the same number of labels after it.

Chapter: foundations/synthesiser
"""
from __future__ import annotations

import zlib

import numpy as np
import torch


def _entropy(seed: int, labels: tuple) -> list[int]:
    parts = [int(seed)]
    for label in labels:
        if isinstance(label, str):
            parts.append(zlib.crc32(label.encode()))
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < 2**32:
            parts.append(int(label))
        else:
            raise ValueError(f"labels: expected strings or integers in [0, 2**32), got {label!r}")
    return parts


def rng(seed: int, *labels: str | int) -> np.random.Generator:
    """A numpy generator determined by ``seed`` and ``labels`` alone."""
    return np.random.default_rng(_entropy(seed, labels))


def derive(seed: int, *labels: str | int) -> int:
    """An integer seed (below 2**62) determined by ``seed`` and ``labels`` alone."""
    return int(rng(seed, *labels).integers(2**62))


def generator(seed: int, *labels: str | int) -> torch.Generator:
    """A CPU ``torch.Generator`` determined by ``seed`` and ``labels`` alone."""
    return torch.Generator().manual_seed(derive(seed, *labels))
