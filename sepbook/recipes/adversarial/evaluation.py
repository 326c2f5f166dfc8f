"""Separating whole songs with the U-Net and scoring them with BSS Eval, as the paper does.

The paper's numbers, the tables and the sentences of the page are in
:mod:`sepbook.recipes.adversarial.page`.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Sequence

import torch

from sepbook import metrics
from sepbook.audio import front_end, inverse_log_magnitude, log_magnitude, n_bins
from sepbook.banks import in_excerpts
from sepbook.experiments import report
from sepbook.recipes import each_channel
from sepbook.recipes.adversarial.data import SOURCES
from sepbook.tracks import Track

#: The paper's table rows: (label, metric, source).
METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("SDR Inst.", "SDR", "accompaniment"), ("SDR V.", "SDR", "vocals"),
    ("SIR Inst.", "SIR", "accompaniment"), ("SIR V.", "SIR", "vocals"),
    ("SAR Inst.", "SAR", "accompaniment"), ("SAR V.", "SAR", "vocals"),
)
TEST_SET = "Test set"
OUT_OF_DOMAIN = "out-of-domain"


def separate(model: torch.nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """Separate a mixture ``(channels, time)`` into ``(K, channels, time)`` (accompaniment, vocals).

    Each channel is separated on its own (the U-Net sees mono spectrograms), on the CPU.
    """
    return each_channel(partial(separate_channel, model), mixture)


@torch.no_grad()
def separate_channel(model: torch.nn.Module, wave: torch.Tensor) -> torch.Tensor:
    """Separate one channel ``(time,)`` into ``(K, time)``.

    The song's log-magnitude is cut into excerpts of ``frames`` frames (the last one zero-padded),
    the U-Net estimates each, and the estimates are inverted with the mixture's phase.
    """
    cfg = model.settings
    separator = model["separator"].eval()
    stft, frames, bins = front_end(cfg), cfg["frames"], n_bins(cfg)
    spec = stft(wave)                                                              # (freq, T) complex
    n_frames = spec.shape[-1]
    estimates = in_excerpts(separator, log_magnitude(spec[:bins].abs()), frames)   # (K, bins, T)
    magnitude = torch.zeros(len(SOURCES), spec.shape[0], n_frames)
    magnitude[:, :bins] = inverse_log_magnitude(estimates).clamp_min(0)
    return stft.inverse(torch.polar(magnitude, spec.angle().expand_as(magnitude)), len(wave))


def scored(variant: str) -> bool:
    """Whether a run scores the test songs: the chosen systems and the ablations do; the supervised
    starts and the candidates a system is chosen among (``'V @ alpha 0.01'``) never see them."""
    return " @ " not in variant and not variant.endswith(" start")


def evaluate(cfg: Mapping[str, Any], models: Mapping[tuple[str, int], torch.nn.Module],
             tracks: Sequence[Track]) -> list[dict]:
    """BSS Eval v4 (museval) of every ``(variant, seed) -> model`` on every track, as report rows;
    runs that are not :func:`scored` give none.

    With ``eval_window`` of ``None`` each track is scored as one frame (the paper's track-wise
    metrics); otherwise the median over windows of that many seconds.
    """
    rows = []
    for track in tracks:  # song by song: the models scored against one song share its BSS Eval reference solve
        for (variant, seed), model in models.items():
            if not scored(variant):
                continue
            scores = metrics.bss_eval(track.sources, separate(model, track.mixture), cfg["sr"],
                                      window_seconds=cfg["eval_window"], hop_seconds=cfg["eval_window"])
            rows += report.bss_rows(scores, SOURCES, variant=variant, seed=seed, song=track.name,
                                    domain=track.domain, metrics=("SDR", "SIR", "SAR"))
    return rows


MIXTURE = "mixture"


def reference_rows(cfg: Mapping[str, Any], tracks: Sequence[Track]) -> list[dict]:
    """The unprocessed mixture as the estimate of both sources, scored like the systems (no seed):
    the floor every system must clear."""
    rows = []
    for track in tracks:
        scores = metrics.bss_eval(track.sources, track.mixture_as_estimates(), cfg["sr"],
                                  window_seconds=cfg["eval_window"], hop_seconds=cfg["eval_window"])
        rows += report.bss_rows(scores, SOURCES, variant=MIXTURE, seed=None, song=track.name,
                                domain=track.domain, metrics=("SDR", "SIR", "SAR"))
    return rows


