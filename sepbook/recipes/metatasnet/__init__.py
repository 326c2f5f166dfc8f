"""Meta-TasNet (Samuel, Ganeshan and Naradowsky, ICASSP 2020) on four MUSDB-layout stems: one
Conv-TasNet encoder and decoder per stage, and a masking network whose weights are independent per
instrument, shared by all (multi-task), or generated from instrument embeddings (meta), compared
on the same songs, batches, steps and loss, with a control for how the generated weights start.

The recipe contract, the same in every chapter: :func:`config`, :func:`data`, :func:`build`,
:func:`train`, :func:`evaluate`, :func:`separate`, :func:`runs` and :data:`PAPER`. The pieces:
:mod:`.data`, :mod:`.training` and :mod:`.evaluation`.

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

from typing import Any, Mapping

from sepbook.data import profiles
from sepbook.recipes import from_scratch as requires
from sepbook.recipes.metatasnet.data import Splits, splits, test_tracks, training_banks
from sepbook.recipes.metatasnet.evaluation import MIXTURE, cost_rows, evaluate, mixture_rows, separate
from sepbook.recipes.metatasnet.page import PAPER
from sepbook.recipes.metatasnet.training import CONTROL, SYSTEMS, VARIANTS, build, parameters, train, train_on

CHAPTER = "metatasnet"


def config(profile: str | None = None, **overrides: Any) -> dict:
    """The chapter's settings for ``profile`` with ``overrides``; bad values raise ``ValueError``."""
    cfg = profiles.settings(CHAPTER, profile, **overrides)
    rates = tuple(cfg["stages"])
    if not rates or any(rate != rates[0] * 2 ** i for i, rate in enumerate(rates)):
        raise ValueError(f"stages: expected sample rates that double from stage to stage, got {rates}")
    if cfg["kernel"] % 2:
        raise ValueError(f"kernel: expected an even number of samples (the hop is half), got {cfg['kernel']}")
    if cfg["excerpt_seconds"] * rates[0] < cfg["kernel"]:
        raise ValueError(f"excerpt_seconds: {cfg['excerpt_seconds']} s is shorter than the encoder's kernel")
    return cfg


def data(cfg: Mapping[str, Any]) -> Splits:
    """Training, validation and test songs."""
    return splits(cfg)


def runs(cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every (variant, seed) the experiment trains: each system and the control on each seed."""
    return [(variant, seed) for variant in VARIANTS for seed in cfg["seeds"]]


def reference_rows(cfg: Mapping[str, Any], tracks) -> list[dict]:
    """The unprocessed mixture's scores, and each system's cost measured on this machine."""
    return mixture_rows(cfg, tracks) + cost_rows(cfg, SYSTEMS)  # the control costs what independent does



__all__ = ["requires", "CHAPTER", "CONTROL", "MIXTURE", "PAPER", "SYSTEMS", "VARIANTS", "Splits", "build", "config", "data", "evaluate",
           "parameters", "reference_rows", "runs", "separate", "test_tracks", "train", "train_on",
           "training_banks"]
