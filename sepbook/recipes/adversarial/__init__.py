"""The adversarial semi-supervised experiment (Stoller, Ewert and Dixon, ICASSP 2018) on synthetic domains.

Singing-voice extraction (accompaniment vs vocals) with a U-Net trained three ways: the supervised
``baseline``, ``V`` (plus a voice critic on unlabelled mixtures) and ``VA`` (voice and
accompaniment critics); and two ablations of V, with scarce (``'V (scarce)'``) and with mismatched
(``'V (mismatched)'``) unlabelled data. As in the paper, the paired songs come from one domain and
the unlabelled mixtures, solo sources, validation and test songs from others.

The recipe contract, the same in every chapter: :func:`config`, :func:`data`, :func:`build`,
:func:`train`, :func:`evaluate`, :func:`separate`, :func:`runs` and :data:`PAPER`. The pieces:
:mod:`.data` (the domains and their split), :mod:`.spectrograms` (front end and batches), :mod:`.training` (models and the adversarial step),
:mod:`.evaluation` (BSS Eval and the paper's tables) and :mod:`.figures`.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from typing import Any, Mapping

from sepbook import profiles
from sepbook.recipes.adversarial.data import (PAPER_ROLES, SOURCES, Domains, build_domains, mismatched_domains,
                                              scarce_domains)
from sepbook.recipes.adversarial.spectrograms import front_end, n_bins, spectrogram_sets
from sepbook.recipes.adversarial.evaluation import PAPER, evaluate, separate
from sepbook.recipes.adversarial import training
from sepbook.recipes.adversarial.training import VARIANTS, build, system

CHAPTER = "adversarial"
ABLATIONS: tuple[str, ...] = ("V (scarce)", "V (mismatched)")


def config(profile: str | None = None, **overrides: Any) -> dict:
    """The chapter's settings for ``profile`` with ``overrides``; bad values raise ``ValueError``."""
    cfg = profiles.settings(CHAPTER, profile, **overrides)
    if cfg["frames"] % 2 ** cfg["unet_depth"]:
        raise ValueError(f"frames: expected a multiple of 2**unet_depth = {2 ** cfg['unet_depth']}, "
                         f"got {cfg['frames']}")
    if not 0 < cfg["scarce_fraction"] <= 1:
        raise ValueError(f"scarce_fraction: expected a fraction in (0, 1], got {cfg['scarce_fraction']!r}")
    if not cfg["seeds"]:
        raise ValueError("seeds: expected at least one seed")
    return cfg


def data(cfg: Mapping[str, Any]) -> Domains:
    """The experiment's songs, split into paired, unlabelled, solo, validation and test sets."""
    return build_domains(cfg)


def runs(cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every (variant, seed) the experiment trains: all systems on every seed, ablations on theirs."""
    ablations = ABLATIONS if cfg["mismatched_style"] else ABLATIONS[:1]
    return [(v, s) for s in cfg["seeds"] for v in VARIANTS] + \
           [(v, s) for s in cfg["ablation_seeds"] for v in ablations]


def training_domains(cfg: Mapping[str, Any], domains: Domains, variant: str) -> Domains:
    """The data ``variant`` trains on: the ablations swap in scarce or mismatched unlabelled songs."""
    if variant.endswith("(scarce)"):
        return scarce_domains(domains, cfg["scarce_fraction"])
    if variant.endswith("(mismatched)"):
        return mismatched_domains(cfg, domains)
    return domains


def train(cfg: Mapping[str, Any], domains: Domains, variant: str, seed: int = 0, **options):
    """Train ``variant`` on ``seed``; -> ``(model, history)``. ``options`` go to :func:`sepbook.train.fit`."""
    sets = spectrogram_sets(cfg, training_domains(cfg, domains, variant))
    return training.train(cfg, sets, variant, seed, **options)


__all__ = ["ABLATIONS", "CHAPTER", "PAPER", "PAPER_ROLES", "SOURCES", "VARIANTS", "Domains", "build", "config",
           "data", "evaluate", "front_end", "n_bins", "runs", "separate", "system", "train", "training_domains"]
