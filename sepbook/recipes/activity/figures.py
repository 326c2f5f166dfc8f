"""The activity chapter's figures: the network, predicted against true activity, a mask before and
after the weighting, SDR per instrument in the layout of the paper's Figures 3 and 4, gain against
silence, and a live control of the weighting.

Chapter: activity/activity_aware
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook.audio import magnitudes
from sepbook.book import plot
from sepbook.experiments import report
from sepbook.instrument_activity import weight_masks
from sepbook.metrics import sdr
from sepbook.recipes.activity.data import TITLES
from sepbook.recipes.activity.evaluation import UNWEIGHTED, describe, hard, separate_weighted, song_masks, weights_for
from sepbook.recipes.activity.page import gain_rows, scores
from sepbook.tracks import Track

COLORS = {"BLSTM": "#90a4ae", "BLSTM + head": "#607d8b", "U-Net": "#ffe0b2", UNWEIGHTED: "#ffcc80",
          "IASS": "#ff8a65", "IASS oracle": "#ba68c8", "IBM": "#81c784", "mixture": "#e0e0e0"}
#: The systems of the paper's Figures 3 and 4 as the book draws them.
BARS: tuple[str, ...] = ("BLSTM", "U-Net", UNWEIGHTED, "IASS", "IASS oracle", "IBM")


def label(name: str) -> str:
    """An instrument's name for a plot: ``electric_guitar`` -> ``electric guitar``."""
    return name.replace("_", " ")


def draw_network(ax=None):
    """IASS in one picture: a residual U-Net of masks, an activity head on its bottleneck, and the
    weighting that multiplies the masks at inference."""
    import matplotlib.pyplot as plt

    from sepbook.book.plot import diagram_arrow as arrow
    from sepbook.book.plot import diagram_box

    if ax is None:
        _, ax = plt.subplots(figsize=(12, 4.2))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 4.4)
    ax.axis("off")
    diagram_box(ax, 1.0, 3.2, "mixture\n$\\log(1 + |X|)$", "data", 1.7, 0.8, fontsize=9)
    diagram_box(ax, 3.5, 3.2, "encoder\nresidual blocks,\npool frequency", "net", 2.0, 1.0, fontsize=9)
    diagram_box(ax, 6.0, 3.2, "decoder\n+ skips", "net", 1.7, 1.0, fontsize=9)
    diagram_box(ax, 8.4, 3.2, "masks $M_k$\n(sigmoid)", "data", 1.7, 0.8, fontsize=9)
    diagram_box(ax, 3.5, 1.3, "activity head\nper-frame logits $a_k$", "critic", 2.2, 0.8, fontsize=9)
    diagram_box(ax, 6.4, 1.3, "$\\sigma$ > threshold,\nmedian filter: $w_k(t)$", "critic", 2.4, 0.8, fontsize=9)
    diagram_box(ax, 10.4, 2.2, "$\\hat S_k = w_k(t)\\, M_k \\odot |X|$", "data", 2.6, 0.8, fontsize=9)
    diagram_box(ax, 8.4, 0.4, "losses: MSE($M_k|X|$, $|S_k|$) + BCE($a_k$, labels)", "loss", 4.6, 0.5,
                fontsize=9)
    arrow(ax, (1.85, 3.2), (2.5, 3.2))
    arrow(ax, (4.5, 3.2), (5.15, 3.2), "bottleneck")
    arrow(ax, (6.85, 3.2), (7.55, 3.2))
    arrow(ax, (3.5, 2.7), (3.5, 1.7))
    arrow(ax, (4.6, 1.3), (5.2, 1.3))
    arrow(ax, (9.25, 3.0), (9.6, 2.5))
    arrow(ax, (7.6, 1.5), (9.3, 2.0), "at inference")
    return ax


def activity_figure(cfg: Mapping[str, Any], model: torch.nn.Module, track: Track,
                    setting: Mapping[str, Any] | None = None, axes=None):
    """Predicted activity probability, the weight it becomes at ``setting`` (the profile's threshold
    and median length by default), and the true activity, per instrument."""
    import matplotlib.pyplot as plt

    setting = setting or hard(cfg["threshold"], cfg["median_frames"])
    _, probabilities = song_masks(model, magnitudes(cfg, track.mixture[0]))
    weights = weights_for(probabilities, setting)
    names = track.source_names
    if axes is None:
        _, axes = plt.subplots(len(names), 1, figsize=(11, 1.1 * len(names) + 0.6), sharex=True)
    seconds = np.arange(probabilities.shape[-1]) * cfg["hop"] / cfg["sr"]
    for k, ax in enumerate(axes):
        ax.fill_between(seconds, 0, track.activity[k].float().numpy(), step="mid", color="0.85", label="true")
        ax.plot(seconds, probabilities[k].numpy(), color="#ff7043", lw=1, label="predicted")
        ax.plot(seconds, weights[k].numpy() * 1.05, color="#1e88e5", lw=1.2, drawstyle="steps-mid",
                label="weight")
        if not setting["soft"]:
            ax.axhline(setting["threshold"], color="0.4", lw=0.6, ls=":")
        ax.set_ylim(-0.05, 1.15)
        ax.set_yticks([])
        ax.set_ylabel(label(names[k]), rotation=0, ha="right", va="center", fontsize=9)
    axes[0].legend(loc="upper right", ncol=3, fontsize=7)
    axes[0].set_title(f"weighting: {describe(setting)}", fontsize=9)
    axes[-1].set_xlabel("time (s)")
    return axes


def weighted_masks(cfg: Mapping[str, Any], model: torch.nn.Module, track: Track,
                   setting: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """A song's masks ``(K, F, T)`` before and after the weighting at ``setting``."""
    masks, probabilities = song_masks(model, magnitudes(cfg, track.mixture[0]))
    return masks, weight_masks(masks, weights_for(probabilities, setting))


def mask_figure(cfg: Mapping[str, Any], model: torch.nn.Module, track: Track, instrument: str,
                setting: Mapping[str, Any] | None = None, axes=None):
    """One instrument's mask before and after the weighting at ``setting``, over its true activity."""
    import matplotlib.pyplot as plt

    setting = setting or hard(cfg["threshold"], cfg["median_frames"])
    k = track.source_names.index(instrument)
    before, after = weighted_masks(cfg, model, track, setting)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.2), sharey=True)
    max_freq = cfg["sr"] / 4
    plot.mask(before[k], sr=cfg["sr"], hop=cfg["hop"], ax=axes[0], title=f"{label(instrument)}: mask",
              max_freq=max_freq)
    plot.mask(after[k], sr=cfg["sr"], hop=cfg["hop"], ax=axes[1], max_freq=max_freq,
              title=f"after weighting ({describe(setting)})")
    seconds = np.arange(before.shape[-1]) * cfg["hop"] / cfg["sr"]
    for ax in axes:
        ax.fill_between(seconds, 0, track.activity[k].float().numpy() * max_freq * 0.04, step="mid",
                        color="white", alpha=0.8)
    return axes


def sdr_bars(rows, dataset: str, profile: str, systems: Sequence[str] = BARS, ax=None):
    """The paper's Figure 3 / 4: SDR per instrument and system, mean over seeds with the seed std."""
    import matplotlib.pyplot as plt

    rows = scores(rows, "SDR", dataset)
    stats = report.summary(rows, ("source", "variant"))
    names = list(dict.fromkeys(rows["source"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 3.6))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        means = [stats["mean"].get((n, system), np.nan) for n in names]
        spread = [np.nan_to_num(stats["std"].get((n, system), np.nan)) for n in names]
        ax.bar(np.arange(len(names)) + (i - (len(systems) - 1) / 2) * width, means, width, yerr=spread,
               color=COLORS.get(system), label=system, edgecolor="0.3", linewidth=0.4, capsize=2)
    ax.axhline(0, color="0.4", lw=0.6)
    ax.set_xticks(np.arange(len(names)), [label(n) for n in names])
    ax.set_ylabel("SDR (dB)")
    ax.set_title(f"{TITLES[dataset]}, {profile} profile")
    ax.legend(fontsize=8, ncol=len(systems))
    return ax


def gain_against_silence(rows, ax=None):
    """What the weighting adds to IASS (its detector, and the true activity) against how often each
    instrument is silent in the test songs; one point per set and instrument, seed std as bars."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2))
    for variant, marker in (("IASS", "o"), ("IASS oracle", "s")):
        gain = gain_rows(rows, variant, UNWEIGHTED)
        ax.errorbar(gain["silent"], gain["mean"], yerr=np.nan_to_num(gain["std"]), fmt=marker, capsize=2,
                    color=COLORS[variant], label=f"{variant} − {UNWEIGHTED}")
        if variant == "IASS":
            for (dataset, name), row in gain.iterrows():
                ax.annotate(f"{label(name)} ({dataset})", (row["silent"], row["mean"]), fontsize=7,
                            xytext=(4, 3), textcoords="offset points")
    ax.axhline(0, color="0.4", lw=0.6)
    ax.set(xlabel="fraction of silent frames in the test songs", ylabel="SDR gain (dB)")
    ax.legend(fontsize=8)
    return ax


def explore_weighting(cfg: Mapping[str, Any], model: torch.nn.Module, track: Track, instrument: str):
    """An ipywidgets control: threshold and median-filter length re-apply the weighting, re-plot the
    mask and re-score the song's SDR. Returns the widget (a static figure in the built book)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    output = widgets.Output()
    unweighted = song_sdr(cfg, separate_weighted(model, track.mixture, weighted=False), track)
    threshold = widgets.FloatSlider(value=cfg["threshold"], min=0.0, max=1.0, step=0.05, description="threshold")
    median = widgets.IntSlider(value=cfg["median_frames"], min=1, max=61, step=2, description="median")

    def redraw(*_):
        with output:
            output.clear_output(wait=True)
            weighting_panel(cfg, model, track, instrument, threshold.value, median.value, unweighted)
            plt.show()

    threshold.observe(redraw, names="value")
    median.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([threshold, median]), output])
    display(box)
    return box


def song_sdr(cfg: Mapping[str, Any], estimates: torch.Tensor, track: Track) -> dict[str, float]:
    """SDR per instrument of ``estimates`` ``(K, channels, time)`` of one song."""
    values = sdr(estimates[:, 0], track.sources[:, 0])
    return {name: float(values[k]) for k, name in enumerate(track.source_names)}


def weighting_panel(cfg: Mapping[str, Any], model: torch.nn.Module, track: Track, instrument: str,
                    threshold: float, median_frames: int, unweighted: Mapping[str, float] | None = None):
    """What :func:`explore_weighting` draws: the mask after weighting and the song's SDR per
    instrument with this weighting, beside the ``unweighted`` SDR (scored here when not given)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1.6, 1]})
    k = track.source_names.index(instrument)
    _, after = weighted_masks(cfg, model, track, hard(threshold, median_frames))
    plot.mask(after[k], sr=cfg["sr"], hop=cfg["hop"], ax=axes[0], max_freq=cfg["sr"] / 4,
              title=f"{label(instrument)} after weighting ({threshold:.2f}, {median_frames} frames)")
    if unweighted is None:
        unweighted = song_sdr(cfg, separate_weighted(model, track.mixture, weighted=False), track)
    weighted = song_sdr(cfg, separate_weighted(model, track.mixture, True, threshold, median_frames), track)
    scores = {"weighted": weighted, "unweighted": unweighted}
    x = np.arange(len(track.source_names))
    for i, (name, values) in enumerate(scores.items()):
        axes[1].bar(x + (i - 0.5) * 0.4, [values[n] for n in track.source_names], 0.4, label=name,
                    color=COLORS["IASS" if name == "weighted" else UNWEIGHTED])
    axes[1].set_xticks(x, [label(n) for n in track.source_names], rotation=30, ha="right", fontsize=8)
    axes[1].set(ylabel="SDR (dB)", title="this song")
    axes[1].axhline(0, color="0.4", lw=0.6)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
