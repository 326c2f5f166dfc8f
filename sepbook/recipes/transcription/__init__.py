"""Score as supervision (Hung, Wichern and Le Roux, ICASSP 2021) on a Slakh-layout synthetic set.

A transcriptor learns the scores of bass, guitar and piano from mixtures (step 1); a U-Net of
masks learns to separate with the frozen transcriptor as its critic and the mixture loss (step 2);
then both are fine-tuned together, with or without an adversary (step 3). Compared on the same
songs and budget with the supervised U-Net, the unprocessed mixture and a clip-level classifier
as the critic (the weak-supervision baseline).

Each adversary trains once per candidate weight ``w`` (``'fine-tune + ATL @ 0.1'``); the variant
itself takes the candidate with the best score-only validation loss.

The recipe contract, the same in every chapter: :func:`config`, :func:`data`, :func:`build`,
:func:`train`, :func:`evaluate`, :func:`separate`, :func:`runs`, :func:`requires` (the runs a run
starts from or chooses among) and :data:`PAPER`. The pieces: :mod:`.data`, :mod:`.training`,
:mod:`.evaluation`, :mod:`.page` and :mod:`.figures`.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

from typing import Any, Mapping

from sepbook.data import profiles
from sepbook.recipes.transcription import training
from sepbook.recipes.transcription.data import Splits, load_tracks, splits, training_sets
from sepbook.recipes.transcription.evaluation import evaluate, reference_rows, separate
from sepbook.recipes.transcription.page import PAPER
from sepbook.recipes.transcription.training import REQUIRES, VARIANTS, build

CHAPTER = "transcription"


def config(profile: str | None = None, **overrides: Any) -> dict:
    """The chapter's settings for ``profile`` with ``overrides``; bad values raise ``ValueError``."""
    cfg = profiles.settings(CHAPTER, profile, **overrides)
    if cfg["frames"] % 2 ** cfg["unet_depth"] or (cfg["n_fft"] // 2) % 2 ** cfg["unet_depth"]:
        raise ValueError(f"frames and n_fft // 2: expected multiples of 2**unet_depth = {2 ** cfg['unet_depth']}, "
                         f"got {cfg['frames']} and {cfg['n_fft'] // 2}")
    if not (0 <= cfg["lowest_pitch"] and cfg["lowest_pitch"] + cfg["n_pitches"] <= 128):
        raise ValueError(f"lowest_pitch, n_pitches: the window must lie within MIDI 0..127, got "
                         f"{cfg['lowest_pitch']} + {cfg['n_pitches']}")
    return cfg


def data(cfg: Mapping[str, Any]) -> Splits:
    """Training, validation and test songs with their scores."""
    return splits(cfg)


def test_tracks(cfg: Mapping[str, Any]):
    """Only the test songs (what checking committed results needs)."""
    return load_tracks(cfg, "test")


def runs(cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every (variant, seed) the experiment trains, each after what it needs (:func:`requires`):
    the critics, the separators, then fine-tuning with each adversary's candidate weights."""
    return [(variant, seed) for variant in training.run_names(cfg) for seed in cfg["seeds"]]


def train(cfg: Mapping[str, Any], data: Splits, variant: str, seed: int = 0, **options):
    """Train ``variant`` on ``seed``; -> ``(model, history)``. ``options`` go to :func:`training.train`
    (``prerequisites``) and on to :func:`sepbook.experiments.train.fit`."""
    return training.train(cfg, training_sets(cfg, data), variant, seed, **options)


def requires(cfg: Mapping[str, Any], variant: str) -> tuple[str, ...]:
    """The runs (same seed) ``variant`` starts from or chooses among."""
    return training.requires(cfg, variant)


__all__ = ["requires", "CHAPTER", "PAPER", "REQUIRES", "VARIANTS", "Splits", "build", "config", "data", "evaluate",
           "reference_rows", "runs", "separate", "test_tracks", "train"]
