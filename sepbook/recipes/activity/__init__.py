"""Instrument-activation-aware separation (Hung and Lerch, ISMIR 2020) on a MUSDB-layout set and a
MedleyDB-like set whose instruments enter and leave.

A residual U-Net estimates one mask per instrument and, from its bottleneck, whether each
instrument plays in each frame; at inference the activity is binarised, median-filtered and
multiplied onto the masks. Compared on the same songs and budget with the Foundations BLSTM, the
ideal binary mask and the unprocessed mixture.

The recipe contract, the same in every chapter: :func:`config`, :func:`data`, :func:`build`,
:func:`train`, :func:`evaluate`, :func:`separate`, :func:`runs` and :data:`PAPER`. The pieces:
:mod:`.data`, :mod:`.training` and :mod:`.evaluation`.

Chapter: activity/activity_aware
"""
from __future__ import annotations

from typing import Any, Mapping

from sepbook import profiles
from sepbook.recipes.activity.data import DATASETS, TITLES, Splits, splits, test_tracks, training_sets
from sepbook.recipes.activity.evaluation import PAPER, UNWEIGHTED, evaluate, reference_rows, separate
from sepbook.recipes.activity.training import VARIANTS, build, train

CHAPTER = "activity"


def config(profile: str | None = None, **overrides: Any) -> dict:
    """The chapter's settings for ``profile`` with ``overrides``; bad values raise ``ValueError``."""
    cfg = profiles.settings(CHAPTER, profile, **overrides)
    if (cfg["n_fft"] // 2) % 2 ** cfg["unet_depth"]:
        raise ValueError(f"n_fft // 2: expected a multiple of 2**unet_depth = {2 ** cfg['unet_depth']}, "
                         f"got {cfg['n_fft'] // 2}")
    if not 0 <= cfg["threshold"] <= 1:
        raise ValueError(f"threshold: expected a probability in [0, 1], got {cfg['threshold']}")
    if cfg["median_frames"] % 2 == 0:
        raise ValueError(f"median_frames: expected an odd number of frames, got {cfg['median_frames']}")
    return cfg


def data(cfg: Mapping[str, Any]) -> Splits:
    """Training, validation and test songs of both sets."""
    return splits(cfg)


def runs(cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every (variant, seed) the experiment trains: IASS and the BLSTM on each set, each seed."""
    return [(variant, seed) for variant in VARIANTS for seed in cfg["seeds"]]


__all__ = ["CHAPTER", "DATASETS", "PAPER", "TITLES", "UNWEIGHTED", "VARIANTS", "Splits", "build", "config",
           "data", "evaluate", "reference_rows", "runs", "separate", "test_tracks", "train", "training_sets"]
