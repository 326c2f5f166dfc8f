"""Transfer learning for music source separation (Bugler, Pardo and Seetharaman 2020): ChimeraNet
pre-trained with deep clustering on large sets in the roles of MUSDB, Slakh and both, fine-tuned on
small sets in the roles of Bach10, Dagstuhl ChoirSet and Remixpacks (the whole network or its mask
head alone), against the same network trained from scratch for as many steps; and, beyond the
paper, at equal steps on the small set, each at its validation plateau, on shares of the small
sets, with the deep-clustering head scored as a separator.

The recipe contract, the same in every chapter: :func:`config`, :func:`data`, :func:`build`,
:func:`train`, :func:`evaluate`, :func:`separate`, :func:`runs` and :data:`PAPER`; fine-tuning
runs name the pre-trained run they start from in :data:`REQUIRES`. The pieces: :mod:`.data`,
:mod:`.training` and :mod:`.evaluation`.

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

from typing import Any, Mapping

from sepbook.data import profiles
from sepbook.recipes.transfer.data import (AUGMENTATIONS, DOWNSTREAM, PAPER_MINUTES, PRETRAINING, SOURCES, Splits,
                                           minutes, splits, test_tracks, training_set)
from sepbook.recipes.transfer.evaluation import CPU_SENSITIVE_METRICS, MIXTURE, evaluate, mixture_rows, separate
from sepbook.recipes.transfer.page import PAPER
from sepbook.recipes.transfer.training import (BUDGETS, MODES, REQUIRES, SHARES, VARIANTS, build, finetuned, plan,
                                               pretrained, runs_of, scratch, train)

CHAPTER = "transfer"


def config(profile: str | None = None, **overrides: Any) -> dict:
    """The chapter's settings for ``profile`` with ``overrides``; bad values raise ``ValueError``."""
    cfg = profiles.settings(CHAPTER, profile, **overrides)
    for name, allowed in (("pretraining", PRETRAINING), ("augmentations", AUGMENTATIONS),
                          ("downstream", DOWNSTREAM)):
        unknown = [v for v in cfg[name] if v not in allowed]
        if unknown or not cfg[name]:
            raise ValueError(f"{name}: expected some of {list(allowed)}, got {list(cfg[name])}")
    if "none" not in cfg["augmentations"]:
        raise ValueError("augmentations: 'none' is needed, every augmentation is compared with it")
    if cfg["sweep_from"] not in cfg["pretraining"]:
        raise ValueError(f"sweep_from: expected one of the pre-training sets {list(cfg['pretraining'])}, "
                         f"got {cfg['sweep_from']!r}")
    if any(share not in SHARES for share in cfg["shares"]):
        raise ValueError(f"shares: expected some of {list(SHARES)}, got {list(cfg['shares'])}")
    if not 0.0 <= cfg["alpha"] <= 1.0:
        raise ValueError(f"alpha: expected a weight in [0, 1], got {cfg['alpha']}")
    return cfg


def data(cfg: Mapping[str, Any]) -> Splits:
    """Every set's training songs and the downstream sets' validation and test songs."""
    return splits(cfg)


def runs(cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every (variant, seed): pre-training runs first, then fine-tuning, then from scratch."""
    return [(variant, seed) for variant in runs_of(cfg) for seed in cfg["seeds"]]


def reference_rows(cfg: Mapping[str, Any], tracks) -> list[dict]:
    """The unprocessed mixture's SI-SDR on every test song."""
    return mixture_rows(cfg, tracks)


def requires(cfg: Mapping[str, Any], variant: str) -> tuple[str, ...]:
    """The runs (same seed) ``variant`` starts from: its entry in :data:`REQUIRES`."""
    return tuple(REQUIRES.get(variant, ()))


__all__ = ["requires", "AUGMENTATIONS", "BUDGETS", "CHAPTER", "CPU_SENSITIVE_METRICS", "DOWNSTREAM", "MIXTURE", "MODES", "PAPER", "PAPER_MINUTES",
           "PRETRAINING", "REQUIRES", "SHARES", "SOURCES", "Splits", "VARIANTS", "build", "config", "data",
           "evaluate", "finetuned", "minutes", "plan", "pretrained", "reference_rows", "runs", "scratch", "separate",
           "test_tracks", "train", "training_set"]
