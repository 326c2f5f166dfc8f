"""Figures the book draws again and again: spectrograms, masks, piano rolls, waveforms, curves, tables.

Every function draws on a given matplotlib ``ax`` (or makes one) and returns it, so pages can
compose panels freely.

Chapter: foundations/stft_and_masks
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.is_complex():
            x = x.abs()
        x = x.float().numpy()
    x = np.asarray(x)
    return np.abs(x) if np.iscomplexobj(x) else x


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 3))
    return ax


def _squeeze_2d(x: np.ndarray, name: str) -> np.ndarray:
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a (freq, frames) array (leading size-1 axes allowed), got shape {x.shape}")
    return x


def spectrogram(spec: Any, *, sr: int, hop: int, ax=None, title: str = "", db_range: float = 80.0,
                max_freq: float | None = None, cmap: str = "magma"):
    """Draw a magnitude spectrogram ``(freq, frames)`` (complex or magnitude) in dB over time and Hz."""
    mag = _squeeze_2d(_numpy(spec), "spec")
    db = 20 * np.log10(np.maximum(mag, 1e-8))
    top = db.max()
    n_freq, n_frames = mag.shape
    extent = (0, n_frames * hop / sr, 0, sr / 2)
    ax = _axes(ax)
    image = ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=top - db_range, vmax=top,
                      interpolation="nearest")
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=title)
    if max_freq:
        ax.set_ylim(0, max_freq)
    ax.figure.colorbar(image, ax=ax, label="dB", pad=0.01)
    return ax


def mask(values: Any, *, sr: int, hop: int, ax=None, title: str = "", max_freq: float | None = None):
    """Draw a time-frequency mask ``(freq, frames)`` with values in [0, 1]."""
    m = _squeeze_2d(_numpy(values), "values")
    ax = _axes(ax)
    image = ax.imshow(m, origin="lower", aspect="auto", extent=(0, m.shape[1] * hop / sr, 0, sr / 2),
                      cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=title)
    if max_freq:
        ax.set_ylim(0, max_freq)
    ax.figure.colorbar(image, ax=ax, label="mask", pad=0.01)
    return ax


def piano_roll_overlay(spec: Any, roll: Any, *, sr: int, hop: int, frame_rate: float, ax=None, title: str = "",
                       max_freq: float = 2000.0, color: str = "cyan"):
    """Draw a spectrogram with a piano roll ``(frames, 128)`` on top: each active note as a line at its f0."""
    ax = spectrogram(spec, sr=sr, hop=hop, ax=ax, title=title, max_freq=max_freq)
    r = _numpy(roll)
    if r.ndim != 2 or r.shape[1] != 128:
        raise ValueError(f"roll: expected (frames, 128), got shape {r.shape}")
    frames, pitches = np.nonzero(r > 0.5)
    hz = 440.0 * 2 ** ((pitches - 69) / 12)
    ax.scatter(frames / frame_rate, hz, s=2, c=color, marker="s", linewidths=0, label="score")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def waveform(audio: Any, *, sr: int, ax=None, title: str = "", label: str | None = None, **style):
    """Draw a waveform ``(time,)`` or ``(channels, time)`` (the first channel) against seconds."""
    x = _numpy(audio)
    while x.ndim > 1:
        x = x[0]
    ax = _axes(ax)
    ax.plot(np.arange(x.size) / sr, x, lw=0.6, label=label, **style)
    ax.set(xlabel="time (s)", ylabel="amplitude", title=title)
    return ax


def smoothed(values: Sequence[float], width: int) -> np.ndarray:
    """Moving average over ``width`` steps (over fewer at the start), for noisy training curves."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return values
    width = max(1, min(width, values.size))
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    end = np.arange(1, values.size + 1)
    start = np.maximum(0, end - width)
    return (cumulative[end] - cumulative[start]) / (end - start)


def training_curve(history: Mapping[str, list], *, ax=None, metric: str | None = None, title: str = "training",
                   smooth: int = 20):
    """Plot the training loss (smoothed over ``smooth`` steps) and, on a twin axis, one validation metric."""
    ax = _axes(ax)
    loss = np.asarray(history["loss"], dtype=float)
    if loss.size == 0:
        raise ValueError("history: holds no training steps yet")
    steps = np.asarray(history["step"])
    ax.plot(steps, loss, color="0.8", lw=0.5)
    ax.plot(steps, smoothed(loss, smooth), color="C0", label="train loss")
    ax.set(xlabel="step", ylabel="loss", title=title, yscale="log")
    if history.get("valid"):
        metric = metric or next(iter(history["valid"][0]))
        twin = ax.twinx()
        twin.plot(history["valid_step"], [v[metric] for v in history["valid"]], "o-", color="C1", label=metric)
        twin.set_ylabel(metric, color="C1")
    return ax


def results_table(rows: Sequence[Mapping[str, Any]], *, index: str | None = None, digits: int = 2):
    """A pandas DataFrame of result rows (dicts), rounded for display, indexed by ``index`` when given."""
    import pandas as pd

    if not rows:
        raise ValueError("rows: expected at least one result row")
    frame = pd.DataFrame(list(rows))
    if index is not None:
        frame = frame.set_index(index)
    return frame.round(digits)


class LiveCurve:
    """A training curve that redraws in place in a live notebook (used by :func:`sepbook.experiments.train.fit`).

    Outside a running Jupyter kernel, or while the book is built to static HTML, it does nothing: the
    page then shows the final curve drawn after training.
    """

    def __init__(self, title: str = "training"):
        from sepbook.book import static_build

        self.title, self.handle = title, None
        try:
            from IPython import get_ipython

            self.enabled = not static_build() and get_ipython() is not None and \
                type(get_ipython()).__name__ == "ZMQInteractiveShell"
        except ImportError:
            self.enabled = False

    def update(self, history: Mapping[str, list]) -> None:
        if not self.enabled or not history.get("loss"):
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig, ax = plt.subplots(figsize=(7, 2.6))
        training_curve(history, ax=ax, title=self.title)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


#: Colours of the training-scheme diagrams: (face, edge) per kind of box.
DIAGRAM_STYLES = {"data": ("#e8f1fb", "#2b6cb0"), "net": ("#fdf0e6", "#c05621"), "loss": ("#edf7ed", "#2f855a"),
                  "critic": ("#f6ecfb", "#6b46c1")}


def diagram_box(ax, x: float, y: float, text: str, kind: str, w: float = 2.0, h: float = 0.75,
                fontsize: float = 9.5) -> None:
    """A rounded box of a training-scheme diagram centred at ``(x, y)``; ``kind`` is a key of :data:`DIAGRAM_STYLES`."""
    from matplotlib.patches import FancyBboxPatch

    face, edge = DIAGRAM_STYLES[kind]
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=face, ec=edge, lw=1.5))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def diagram_arrow(ax, a: tuple[float, float], b: tuple[float, float], text: str = "", color: str = "0.25",
                  rad: float = 0.0) -> None:
    """An arrow from ``a`` to ``b`` in a training-scheme diagram, with an optional label above its middle."""
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=color, lw=1.2,
                                 connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.15, text, ha="center", fontsize=8, color=color)


def plot_curves(histories: Mapping[tuple[str, int], Mapping[str, Sequence[float]]], variants: Sequence[str],
                key: str = "loss", axes=None):
    """Training ``key`` of each variant, one panel per variant and one line per seed."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(variants), figsize=(4 * len(variants), 3), squeeze=False)
        axes = axes[0]
    for ax, variant in zip(axes, variants):
        for (name, seed), history in histories.items():
            if name == variant and key in history:
                ax.plot(history["step"], smoothed(history[key], 5), lw=1, label=f"seed {seed}")
        ax.set(title=variant, xlabel="step", ylabel=key)
        ax.legend(fontsize=7)
    return axes
