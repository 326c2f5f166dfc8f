"""Instrument-activation-aware separation (Hung and Lerch, ISMIR 2020) on a MUSDB-layout set and a
MedleyDB-like set whose instruments enter and leave.

A residual U-Net estimates one mask per instrument and, from its bottleneck, whether each
instrument plays in each frame; at inference the activity is binarised, median-filtered and
multiplied onto the masks. A 2 x 2 design ({residual U-Net, BLSTM} x {with, without an activity
head}), each system scored unweighted, weighted by its own detector and by the true activity, on
the same songs and steps, beside the ideal binary mask and the unprocessed mixture.

The recipe contract, the same in every chapter: :func:`config`, :func:`data`, :func:`build`,
:func:`train`, :func:`evaluate`, :func:`separate`, :func:`runs` and :data:`PAPER`. The pieces:
:mod:`.data`, :mod:`.training` and :mod:`.evaluation`.

Chapter: activity/activity_aware
"""
from __future__ import annotations

from typing import Any, Mapping

from sepbook.data import profiles
from sepbook.recipes import from_scratch as requires
from sepbook.recipes.activity.data import DATASETS, TITLES, Splits, splits, test_tracks, training_sets
from sepbook.recipes.activity.evaluation import UNWEIGHTED, evaluate, reference_rows, separate, separate_weighted
from sepbook.recipes.activity.page import PAPER
from sepbook.recipes.activity.training import DETECTORS, MODELS, VARIANTS, build, train

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
    if not cfg["thresholds"] or not all(0 <= t <= 1 for t in cfg["thresholds"]):
        raise ValueError(f"thresholds: expected probabilities in [0, 1] to choose from, got {cfg['thresholds']}")
    if not cfg["medians"] or any(m < 1 or m % 2 == 0 for m in cfg["medians"]):
        raise ValueError(f"medians: expected odd numbers of frames to choose from, got {cfg['medians']}")
    return cfg


def data(cfg: Mapping[str, Any]) -> Splits:
    """Training, validation and test songs of both sets."""
    return splits(cfg)


def runs(cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every (variant, seed) the experiment trains: the four systems of the 2 x 2 design on each set,
    each seed."""
    return [(variant, seed) for variant in VARIANTS for seed in cfg["seeds"]]



__all__ = ["requires", "CHAPTER", "DATASETS", "DETECTORS", "MODELS", "PAPER", "TITLES", "UNWEIGHTED", "VARIANTS", "Splits", "build", "config",
           "data", "evaluate", "reference_rows", "runs", "separate", "separate_weighted", "test_tracks", "train",
           "training_sets"]
