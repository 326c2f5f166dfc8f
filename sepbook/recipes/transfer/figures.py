"""The transfer chapter's figures: the training scheme, the paper's Figs. 1-3 from our rows and
histories, the deep-clustering embeddings projected to 2-D, and a downstream example's masks.

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook.book import plot
from sepbook.experiments import report
from sepbook.losses.clustering import ideal_assignments
from sepbook.masks import ideal_ratio_mask
from sepbook.recipes.transfer.data import SOURCES
from sepbook.recipes.transfer.page import P_THRESHOLD, curve, gain_rows
from sepbook.recipes.transfer.training import finetuned, scratch
from sepbook.tracks import Track

COLORS = {"scratch": "#90a4ae", "musdb": "#ffb74d", "slakh": "#4fc3f7", "musdb+slakh": "#81c784",
          "pitch": "#ba68c8", "stretch": "#4db6ac", "incoherent": "#f06292"}


def draw_scheme(ax=None):
    """Pre-train the trunk and embedding head with deep clustering on a large set; fine-tune on a
    small set with a new mask head, the whole network or the mask head alone."""
    import matplotlib.pyplot as plt

    from sepbook.book.plot import diagram_arrow as arrow
    from sepbook.book.plot import diagram_box as box

    if ax is None:
        _, ax = plt.subplots(figsize=(12, 4.4))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 4.6)
    ax.axis("off")
    ax.text(0.1, 4.35, "1. pre-training: large set, any number of sources", fontsize=10, weight="bold")
    box(ax, 1.2, 3.5, "mixture\nlog |X|", "data", 1.7, 0.8)
    box(ax, 3.7, 3.5, "BLSTM trunk", "net", 2.0, 0.8)
    box(ax, 6.6, 3.5, "embedding head\nV: unit vector per bin", "net", 2.6, 0.8)
    box(ax, 9.9, 3.5, "$L_{DC} = \\|W^{1/2}(VV^T - YY^T)W^{1/2}\\|^2$", "loss", 3.6, 0.8)
    arrow(ax, (2.05, 3.5), (2.7, 3.5))
    arrow(ax, (4.7, 3.5), (5.3, 3.5))
    arrow(ax, (7.9, 3.5), (8.1, 3.5))
    ax.text(0.1, 2.2, "2. fine-tuning: small set, K sources", fontsize=10, weight="bold")
    box(ax, 1.2, 1.3, "mixture\nlog |X|", "data", 1.7, 0.8)
    box(ax, 3.7, 1.3, "BLSTM trunk\n(copied)", "net", 2.0, 0.8)
    box(ax, 6.6, 0.55, "embedding head\n(copied)", "net", 2.6, 0.7)
    box(ax, 6.6, 1.75, "new mask head\nK masks", "critic", 2.6, 0.7)
    box(ax, 9.9, 1.75, "$L_{MI} = \\frac{1}{N}\\| |M X| - |S| \\|_1$", "loss", 3.6, 0.7)
    box(ax, 9.9, 0.55, "whole: $\\alpha L_{DC} + (1-\\alpha) L_{MI}$\nmask only: $L_{MI}$, all else frozen",
        "loss", 3.6, 0.8)
    arrow(ax, (2.05, 1.3), (2.7, 1.3))
    arrow(ax, (4.7, 1.45), (5.3, 1.75))
    arrow(ax, (4.7, 1.15), (5.3, 0.6))
    arrow(ax, (7.9, 1.75), (8.1, 1.75))
    arrow(ax, (3.7, 3.1), (3.7, 1.7), "weights", rad=0.0)
    return ax


def _seed_means(rows, domain: str, variant: str) -> np.ndarray:
    table = report.frame(rows)
    chosen = table[(table["domain"] == domain) & (table["variant"] == variant) & (table["metric"] == "SI-SDR")]
    return chosen.groupby("seed")["value"].mean().to_numpy()


def pretraining_bars(rows, cfg: Mapping[str, Any], ax=None):
    """Fig. 1: SI-SDR per downstream set, from scratch and from each pre-training set (whole-model,
    no augmentation); bars are means over seeds, ticks their spread, ``*`` p < 0.001 over scratch."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.6))
    systems = ["scratch", *cfg["pretraining"]]
    width = 0.8 / len(systems)
    significant = {(g["downstream"], g["pretraining"]) for g in gain_rows(rows, cfg, "scratch")
                   if g["augmentation"] == "none" and g["gain"] > 0 and g["p"] < P_THRESHOLD}
    for i, system in enumerate(systems):
        for j, down in enumerate(cfg["downstream"]):
            values = _seed_means(rows, down, scratch(down) if system == "scratch" else finetuned(down, system))
            x = j + (i - (len(systems) - 1) / 2) * width
            ax.bar(x, values.mean(), width, yerr=values.std(ddof=1) if len(values) > 1 else None,
                   color=COLORS[system], label=system if j == 0 else None, capsize=2)
            if (down, system) in significant:
                top = values.mean() + (values.std(ddof=1) if len(values) > 1 else 0)
                ax.text(x, max(top, 0) + 0.15, "*", ha="center", fontsize=13)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(range(len(cfg["downstream"])), cfg["downstream"])
    ax.set(ylabel="SI-SDR (dB)", title=f"from scratch vs pre-trained ({cfg['profile']}, whole-model)")
    ax.legend(fontsize=8)
    return ax


def augmentation_bars(rows, cfg: Mapping[str, Any], axes=None):
    """Fig. 2: the SI-SDR change of the whole-model from each augmentation during pre-training, one
    panel per downstream set; ``*`` marks a significant gain."""
    import matplotlib.pyplot as plt

    augs = [a for a in cfg["augmentations"] if a != "none"]
    if axes is None:
        _, axes = plt.subplots(1, len(cfg["downstream"]), figsize=(4.6 * len(cfg["downstream"]), 3.2),
                               sharey=True, squeeze=False)
        axes = axes[0]
    gains = [g for g in gain_rows(rows, cfg, "none") if g["mode"] == "whole"]
    width = 0.8 / max(len(augs), 1)
    for ax, down in zip(axes, cfg["downstream"]):
        for g in (g for g in gains if g["downstream"] == down):
            i, j = augs.index(g["augmentation"]), list(cfg["pretraining"]).index(g["pretraining"])
            x = j + (i - (len(augs) - 1) / 2) * width
            ax.bar(x, g["gain"], width, yerr=g["std"], color=COLORS[g["augmentation"]], capsize=2,
                   label=g["augmentation"] if j == 0 else None)
            if g["gain"] > 0 and g["p"] < P_THRESHOLD:
                ax.text(x, g["gain"] + g["std"] + 0.05, "*", ha="center", fontsize=12)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(range(len(cfg["pretraining"])), cfg["pretraining"], fontsize=8)
        ax.set(title=down, xlabel="pre-training set")
    axes[0].set_ylabel("SI-SDR change (dB)")
    axes[0].legend(fontsize=8)
    return axes


def curves(histories, cfg: Mapping[str, Any], downstream: str = "dagstuhl", ax=None):
    """Fig. 3: validation SI-SDR over the steps of training on ``downstream``, from scratch and from
    each pre-training set; lines are means over seeds, bands their spread."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6))
    for system in ["scratch", *cfg["pretraining"]]:
        variant = scratch(downstream) if system == "scratch" else finetuned(downstream, system)
        steps, mean, std = curve(histories, variant)
        if not len(steps):
            continue
        ax.plot(steps, mean, color=COLORS[system], label=system)
        if np.isfinite(std).all():
            ax.fill_between(steps, mean - std, mean + std, color=COLORS[system], alpha=0.25, lw=0)
    ax.axvline(cfg["finetune_steps"], color="0.5", ls=":", lw=1)
    ax.set(xlabel="training steps on the downstream set", ylabel="validation SI-SDR (dB)", title=downstream)
    ax.legend(fontsize=8)
    return ax


def plateau_curves(histories, cfg: Mapping[str, Any], axes=None):
    """The ``long`` runs: validation SI-SDR over the steps of a whole-model fine-tuned from
    ``cfg['sweep_from']`` and of training from scratch, one panel per small set; each run keeps
    the weights of its best point, marked."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(cfg["downstream"]), figsize=(10, 3.2), sharey=True)
    systems = {"scratch": lambda d: scratch(d, "long"),
               cfg["sweep_from"]: lambda d: finetuned(d, cfg["sweep_from"], budget="long")}
    for ax, down in zip(np.atleast_1d(axes), cfg["downstream"]):
        for system, name in systems.items():
            steps, mean, std = curve(histories, name(down))
            if not len(steps):
                continue
            ax.plot(steps, mean, color=COLORS[system], label="scratch" if system == "scratch" else "fine-tuned")
            if np.isfinite(std).all():
                ax.fill_between(steps, mean - std, mean + std, color=COLORS[system], alpha=0.25, lw=0)
            ax.plot(steps[np.argmax(mean)], mean.max(), "o", color=COLORS[system], ms=4)
        ax.set(title=down, xlabel="training steps on the small set")
    np.atleast_1d(axes)[0].set_ylabel("validation SI-SDR (dB)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    return axes


@torch.no_grad()
def _loud_embeddings(model, example: Track, keep: float):
    """The embeddings of ``example``'s loudest ``keep`` fraction of bins ``(n, D)``, and the index of
    the source that dominates each ``(n,)``."""
    mixture_mag = model.stft(example.mixture[None]).abs()
    embeddings, _ = model.masker.embed_and_mask(mixture_mag)
    owner = ideal_assignments(model.stft(example.sources[None]).abs()).argmax(-1)     # (1, frames, freq)
    weight = mixture_mag[:, 0].transpose(1, 2)
    loud = weight >= torch.quantile(weight.flatten(), 1 - keep)
    return embeddings[loud], owner[loud]


@torch.no_grad()
def embedding_points(model, example: Track, keep: float = 0.3):
    """The deep-clustering embeddings of ``example``'s loudest ``keep`` fraction of bins, projected on
    their two principal axes; -> ``(points (n, 2), dominant source index (n,))``."""
    points, owner = _loud_embeddings(model, example, keep)
    points = points - points.mean(0)
    _, _, axes = torch.linalg.svd(points, full_matrices=False)
    return (points @ axes[:2].T).numpy(), owner.numpy()


@torch.no_grad()
def embedding_contrast(model, example: Track, keep: float = 0.3) -> float:
    """Mean cosine similarity of the loudest bins' embeddings within a source minus across sources:
    1 for sources on orthogonal axes, 0 when the embeddings ignore the sources."""
    v, k = _loud_embeddings(model, example, keep)
    # sums of cosines over all pairs from per-source sums, never the (n, n) matrix of a whole song
    sums = torch.zeros(int(k.max()) + 1, v.shape[-1], dtype=torch.float64).index_add_(0, k, v.double())
    counts = torch.bincount(k, minlength=len(sums)).double()
    pairs, pair_counts = sums @ sums.T, counts[:, None] * counts[None, :]
    same = torch.eye(len(sums), dtype=torch.bool)
    return float(pairs[same].sum() / pair_counts[same].sum() - pairs[~same].sum() / pair_counts[~same].sum())


def embedding_projection(models: Mapping[str, Any], example: Track, axes=None):
    """One panel per model: its embeddings of ``example`` in 2-D, coloured by the source that
    dominates each bin."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
        axes = axes[0]
    palette = ["#1e88e5", "#e53935", "#43a047", "#fb8c00"]
    for ax, (title, model) in zip(axes, models.items()):
        points, owner = embedding_points(model, example)
        for k, source in enumerate(SOURCES[example.domain]):
            chosen = owner == k
            ax.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=0.4, color=palette[k], label=source)
        ax.set(title=title, xticks=[], yticks=[])
        ax.legend(markerscale=4, fontsize=8)
    return axes


@torch.no_grad()
def masks_figure(models: Mapping[str, Any], example: Track, sr: int, hop: int):
    """The mixture's spectrogram, then each source's mask from each model, beside the ideal ratio mask."""
    import matplotlib.pyplot as plt

    names = SOURCES[example.domain]
    first = next(iter(models.values()))
    spec = first.stft(example.mixture[None])
    ideal = ideal_ratio_mask(first.stft(example.sources[:, 0]))[:, None]          # (K, 1, freq, frames)
    columns = {"ideal ratio mask": ideal, **{t: m.masker(spec.abs())[0] for t, m in models.items()}}
    fig, axes = plt.subplots(len(names) + 1, len(columns), figsize=(4.2 * len(columns), 2.6 * (len(names) + 1)),
                             squeeze=False)
    plot.spectrogram(spec[0, 0], sr=sr, hop=hop, ax=axes[0, 0], title="mixture")
    for ax in axes[0, 1:]:
        ax.axis("off")
    for j, (title, masks) in enumerate(columns.items()):
        for k, name in enumerate(names):
            plot.mask(masks[k, 0], sr=sr, hop=hop, ax=axes[k + 1, j], title=f"{name}: {title}")
    fig.tight_layout()
    return fig
