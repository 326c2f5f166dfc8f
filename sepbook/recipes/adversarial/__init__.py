"""The adversarial semi-supervised experiment (Stoller, Ewert and Dixon, ICASSP 2018) on synthetic domains.

Singing-voice extraction (accompaniment vs vocals) with a U-Net trained four ways: the supervised
``baseline``, its ``upper bound`` (the unlabelled songs' true pairs added), ``V`` (plus a voice
critic on unlabelled mixtures) and ``VA`` (voice and accompaniment critics); and three ablations
of V: unlabelled mixtures and solo stems from disjoint song halves (``'V (disjoint halves)'``),
scarce (``'V (scarce)'``) and mismatched (``'V (mismatched)'``) unlabelled data. As in the paper,
the paired songs come from one domain and the unlabelled mixtures, solo stems, validation and
test songs from others.

Each system is chosen on validation among candidate runs of equal number (learning rates for the
supervised systems, alpha for V and VA; :func:`.training.candidates`); a chosen system is a run of
its own that reads its candidates' weights (:func:`requires`) and scores the test songs, which
the candidates never touch.

The recipe contract, the same in every chapter: :func:`config`, :func:`data`, :func:`build`,
:func:`train`, :func:`evaluate`, :func:`separate`, :func:`runs` and :data:`PAPER`. The pieces:
:mod:`.data` (the domains and their split), :mod:`.spectrograms` (front end and batches),
:mod:`.training` (models, the adversarial step, diagnostics), :mod:`.evaluation` (BSS Eval and
the paper's tables) and :mod:`.figures`.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from typing import Any, Mapping

from sepbook.audio import front_end, n_bins
from sepbook.data import profiles
from sepbook.recipes.adversarial import training
from sepbook.recipes.adversarial.data import (PAPER_ROLES, SOURCES, Domains, build_domains, disjoint_domains,
                                              mismatched_domains, scarce_domains, upper_domains)
from sepbook.recipes.adversarial.evaluation import evaluate, reference_rows, scored, separate
from sepbook.recipes.adversarial.page import PAPER
from sepbook.recipes.adversarial.spectrograms import spectrogram_sets
from sepbook.recipes.adversarial.training import STARTS, VARIANTS, build, candidates, system

CHAPTER = "adversarial"
ABLATIONS: tuple[str, ...] = ("V (disjoint halves)", "V (scarce)", "V (mismatched)")


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
    for grid in ("lrs", "alphas_V", "alphas_VA"):
        if not cfg[grid] or any(value <= 0 for value in cfg[grid]):
            raise ValueError(f"{grid}: expected one or more positive values to choose from, got {cfg[grid]!r}")
    if len({len(cfg[grid]) for grid in ("lrs", "alphas_V", "alphas_VA")}) != 1:
        raise ValueError("lrs, alphas_V, alphas_VA: every system chooses among as many settings; got "
                         f"{cfg['lrs']!r}, {cfg['alphas_V']!r}, {cfg['alphas_VA']!r}")
    return cfg


def data(cfg: Mapping[str, Any]) -> Domains:
    """The experiment's songs, split into paired, unlabelled, solo, validation and test sets."""
    return build_domains(cfg)


def test_tracks(cfg: Mapping[str, Any]) -> list:
    """The test songs of every domain (the domains are built whole: their songs share one corpus)."""
    return data(cfg).test


def ablations(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The ablations ``cfg`` can run (no mismatched style: no mismatched ablation)."""
    return tuple(a for a in ABLATIONS if cfg["mismatched_style"] or not a.endswith("(mismatched)"))


def runs(cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every (run, seed) the experiment trains, each after the runs it starts from (:func:`requires`):
    per seed the two supervised starts, every system's candidates and the chosen systems, then the
    ablations on their seeds."""
    per_seed = list(STARTS)
    for name in VARIANTS:
        per_seed += [*candidates(cfg, name), name]
    return [(v, s) for s in cfg["seeds"] for v in per_seed] + \
           [(v, s) for s in cfg["ablation_seeds"] for v in ablations(cfg)]


def requires(cfg: Mapping[str, Any], variant: str) -> tuple[str, ...]:
    """The runs (same seed) that ``variant`` starts from or chooses among."""
    if variant in STARTS:
        return ()
    name = system(variant)
    start = STARTS[1] if name == "upper bound" else STARTS[0]
    if " @ " in variant:
        return (start,)
    if variant in VARIANTS:
        return tuple(candidates(cfg, name))
    return (start, *candidates(cfg, name))  # an ablation trains at the alpha chosen for V


def training_domains(cfg: Mapping[str, Any], domains: Domains, variant: str) -> Domains:
    """The data a run trains on: the upper bound adds the true pairs; the ablations swap the unlabelled data."""
    if system(variant) == "upper bound":
        return upper_domains(domains)
    if variant.endswith("(disjoint halves)"):
        return disjoint_domains(domains)
    if variant.endswith("(scarce)"):
        return scarce_domains(domains, cfg["scarce_fraction"])
    if variant.endswith("(mismatched)"):
        return mismatched_domains(cfg, domains)
    return domains


def train(cfg: Mapping[str, Any], domains: Domains, variant: str, seed: int = 0, *,
          prerequisites: Mapping[str, Any] | None = None, **options):
    """Train run ``variant`` on ``seed``; -> ``(model, history)``. ``prerequisites`` are the trained
    runs of :func:`requires` (name -> model); ``options`` go to :func:`sepbook.experiments.train.fit`.

    A chosen system (``'V'``) trains nothing: it takes the candidate with the lowest validation
    ``L_s`` and records every candidate's loss and its choice in its history.
    """
    needed = requires(cfg, variant)
    prerequisites = dict(prerequisites or {})
    missing = [name for name in needed if name not in prerequisites]
    if missing:
        raise ValueError(f"prerequisites: run {variant!r} starts from or chooses among {list(needed)}; "
                         f"missing {missing}")
    sets = spectrogram_sets(cfg, training_domains(cfg, domains, variant))
    if variant in VARIANTS:
        chosen, losses = training.choose(sets, {n: prerequisites[n] for n in needed})
        return prerequisites[chosen], {"step": [], "valid_step": [], "valid": [], "chosen": chosen,
                                       "candidates": losses}
    if variant in STARTS:
        return training.train(cfg, sets, variant, seed, **options)
    grid = candidates(cfg, system(variant))
    if " @ " in variant:
        setting = grid[variant]
    else:  # every run validates on the same songs, so the ablation re-makes V's choice
        setting = grid[training.choose(sets, {n: prerequisites[n] for n in grid})[0]]
    return training.train(cfg, sets, variant, seed, start=prerequisites[needed[0]], setting=setting, **options)


def train_systems(cfg: Mapping[str, Any], domains: Domains, names, seed: int = 0, **options):
    """Train the systems ``names`` on ``seed`` as ``make results`` does, each run once and after
    the runs it needs; -> ``(models, histories)``, both keyed by run name (the starts, every
    candidate and the chosen systems). ``options`` go to :func:`sepbook.experiments.train.fit`."""
    models, histories = {}, {}

    def run(variant: str) -> None:
        for needed in requires(cfg, variant):
            if needed not in models:
                run(needed)
        done = {name: models[name] for name in requires(cfg, variant)}
        models[variant], histories[variant] = train(cfg, domains, variant, seed, prerequisites=done, **options)

    for name in names:
        if name not in models:
            run(name)
    return models, histories


__all__ = ["ABLATIONS", "CHAPTER", "PAPER", "PAPER_ROLES", "SOURCES", "STARTS", "VARIANTS", "Domains", "ablations",
           "build", "candidates", "config", "data", "evaluate", "front_end", "n_bins", "reference_rows", "requires", "runs",
           "scored", "separate", "system", "test_tracks", "train", "train_systems", "training_domains"]
