"""The score-supervision chapter's figures: the training scheme, the score and the harmonic mask on a
spectrogram, what the transcriptor reads in separated sources, and the ablation chart.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from sepbook.audio import magnitudes
from sepbook.book import plot
from sepbook.experiments import report
from sepbook.losses.transcription import harmonic_mask
from sepbook.recipes.transcription.evaluation import masks_of, transcribe
from sepbook.recipes.transcription.page import PAPER, SEPARATION_ROWS, average_rows
from sepbook.recipes.transcription.training import template_of
from sepbook.tracks import Track

COLORS = ("#4fc3f7", "#ffb74d", "#aed581")


def draw_training_scheme(ax=None):
    """The paper's Fig. 1 as three steps: transcriptor, separator with the transcriptor as critic, fine-tuning."""
    import matplotlib.pyplot as plt

    from sepbook.book.plot import diagram_arrow as arrow
    from sepbook.book.plot import diagram_box

    if ax is None:
        _, ax = plt.subplots(figsize=(12, 5.6))
    ax.set_xlim(0, 12)
    ax.set_ylim(0.2, 5.6)
    ax.axis("off")

    def box(x, y, text, kind, w=2.2, h=0.7):
        diagram_box(ax, x, y, text, kind, w, h, fontsize=9)

    ax.text(0.1, 5.35, "1  train the transcriptor on mixtures", fontsize=10, weight="bold")
    box(1.2, 4.7, "mixture $X$", "data", w=1.6)
    box(3.8, 4.7, "transcriptor $T$", "critic")
    box(6.9, 4.7, "$L_{tr} = BCE(T(X), Y)$", "loss", w=2.8)
    box(10.3, 4.7, "score $Y$\n(piano rolls)", "data", w=1.8)
    arrow(ax, (2.0, 4.7), (2.7, 4.7))
    arrow(ax, (4.9, 4.7), (5.5, 4.7))
    arrow(ax, (9.4, 4.7), (8.3, 4.7))

    ax.text(0.1, 3.75, "2  train the separator; $T$ frozen", fontsize=10, weight="bold")
    box(1.2, 2.95, "mixture $X$", "data", w=1.6)
    box(3.8, 2.95, "separator (U-Net)\nmasks $M_k$", "net", h=0.8)
    box(6.3, 2.95, "$S_k = M_k X$", "data", w=1.7)
    box(9.6, 3.35, "$T(S_k)$: $Y_k$ for instrument $k$,\nsilence for the others: $L_{tr\\text{-}sep}$",
        "critic", w=3.6, h=0.7)
    box(9.6, 2.45, "$\\sum_k c_k S_k \\approx X$ on $H$: $L_{mix}$", "loss", w=3.6, h=0.55)
    arrow(ax, (2.0, 2.95), (2.7, 2.95))
    arrow(ax, (4.9, 2.95), (5.45, 2.95))
    arrow(ax, (7.15, 3.05), (7.8, 3.3))
    arrow(ax, (7.15, 2.85), (7.8, 2.5))

    ax.text(0.1, 1.75, "3  fine-tune both, with or without an adversary", fontsize=10, weight="bold")
    box(1.9, 0.95, "separator\n(from step 2)", "net", w=2.0, h=0.8)
    box(4.6, 0.95, "$S_k$ and $\\sum_k S_k$", "data", w=2.0)
    box(7.3, 0.95, "transcriptor\n(from step 1, learning)", "critic", w=2.4, h=0.8)
    box(10.4, 0.95, "ATL: find other instruments\nleft in $S_k$; AML: tell\n$\\sum_k S_k$ from $X$",
        "loss", w=2.9, h=1.0)
    arrow(ax, (2.9, 0.95), (3.6, 0.95))
    arrow(ax, (5.6, 0.95), (6.1, 0.95))
    arrow(ax, (8.5, 0.95), (8.95, 0.95))
    return ax


def excerpt(cfg: Mapping[str, Any], track: Track, seconds: float = 4.0, start: float = 0.0):
    """Mixture and source magnitudes ``(1 + K, F, frames)`` and rolls ``(K, P, frames)`` of a stretch of ``track``."""
    first = int(start * cfg["sr"] / cfg["hop"])
    frames = int(seconds * cfg["sr"] / cfg["hop"])
    spectra = magnitudes(cfg, torch.cat([track.mixture, track.sources[:, 0]]))
    return spectra[..., first:first + frames], track.rolls[..., first:first + frames].float()


def _full_roll(cfg: Mapping[str, Any], roll: torch.Tensor) -> np.ndarray:
    """A window roll ``(P, T)`` as the ``(T, 128)`` piano roll the plotting helpers take."""
    full = np.zeros((roll.shape[-1], 128), bool)
    full[:, cfg["lowest_pitch"]:cfg["lowest_pitch"] + roll.shape[0]] = np.asarray(roll).T > 0.5
    return full


def _notes(ax, cfg, roll, color, label, size=3.0):
    frames, pitches = np.nonzero(_full_roll(cfg, roll))
    ax.scatter(frames * cfg["hop"] / cfg["sr"], 440.0 * 2 ** ((pitches - 69) / 12), s=size, c=color,
               marker="s", linewidths=0, label=label)


def score_figure(cfg: Mapping[str, Any], track: Track, instrument: str = "guitar", seconds: float = 4.0,
                 max_freq: float = 1200.0):
    """Left: the mixture with each instrument's score on it. Right: the harmonic mask of ``instrument``."""
    import matplotlib.pyplot as plt

    spectra, rolls = excerpt(cfg, track, seconds)
    k = list(cfg["instruments"]).index(instrument)
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    plot.spectrogram(spectra[0], sr=cfg["sr"], hop=cfg["hop"], ax=axes[0], max_freq=max_freq,
                     title="mixture and its score")
    for name, roll, color in zip(cfg["instruments"], rolls, COLORS):
        _notes(axes[0], cfg, roll, color, name)
    axes[0].legend(loc="upper right", fontsize=8, markerscale=3)
    mask = harmonic_mask(rolls[k], template_of(cfg)).float()
    plot.mask(mask, sr=cfg["sr"], hop=cfg["hop"], ax=axes[1], max_freq=max_freq,
              title=f"harmonic mask of the {instrument} ({cfg['n_harmonics']} harmonics)")
    fig.tight_layout()
    return fig


def readings_figure(cfg: Mapping[str, Any], systems: Mapping[str, Any], track: Track, seconds: float = 4.0,
                    max_freq: float = 1200.0):
    """Each system's separated sources (rows: instruments) with what its transcriptor reads in them.

    ``systems`` maps a title to ``(model, transcriptor)``: the separator comes from ``model``, the
    reading from ``transcriptor`` (the frozen one for an isolated system, its own after fine-tuning).
    Cyan squares: the notes the transcriptor finds for that instrument; white: the true score.
    """
    import matplotlib.pyplot as plt

    spectra, rolls = excerpt(cfg, track, seconds)
    names = list(cfg["instruments"])
    fig, axes = plt.subplots(len(names), len(systems), figsize=(6.4 * len(systems), 2.7 * len(names)),
                             squeeze=False)
    for column, (title, (model, transcriptor)) in enumerate(systems.items()):
        estimates = masks_of(model, spectra[0]) * spectra[0]
        for k, name in enumerate(names):
            ax = axes[k, column]
            heard = transcribe(transcriptor, estimates[k])[k] > 0.5
            plot.spectrogram(estimates[k], sr=cfg["sr"], hop=cfg["hop"], ax=ax, max_freq=max_freq,
                             title=f"{title}: {name}")
            _notes(ax, cfg, rolls[k], "white", "score", size=5.0)
            _notes(ax, cfg, heard, "cyan", "transcribed", size=2.0)
            ax.legend(loc="upper right", fontsize=7, markerscale=2)
    fig.tight_layout()
    return fig


def ablation_chart(cfg: Mapping[str, Any], rows, profile: str, ax=None):
    """Average SI-SDR over the instruments per system: ours (mean ± std over seeds) as bars, the paper's as dots."""
    import matplotlib.pyplot as plt

    stats = report.summary(average_rows(rows), ("variant",))
    order = [v for v in SEPARATION_ROWS if v in stats.index]
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 3.8))
    x = np.arange(len(order))
    ax.bar(x, stats.loc[order, "mean"], yerr=stats.loc[order, "std"].fillna(0), color="#90caf9",
           label=f"ours ({profile}), mean ± std over seeds", capsize=3)
    ax.plot(x, [PAPER.numbers["separation"][v][-1] for v in order], "o", color="#c62828", label="paper (Slakh2100)")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(x, order, rotation=25, ha="right")
    ax.set_ylabel("average SI-SDR (dB)")
    ax.legend(fontsize=8)
    return ax
