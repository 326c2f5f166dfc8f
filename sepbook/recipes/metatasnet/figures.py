"""The Meta-TasNet chapter's figures: the network, the four estimates, the learned instrument
embeddings, the generated first-layer filters, the encoder's basis functions and their frequency
responses, and one stage's output beside the next one's.

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from sepbook.audio import STFT
from sepbook.book import plot
from sepbook.recipes.metatasnet.evaluation import separate
from sepbook.recipes.metatasnet.page import SOURCES, over_songs
from sepbook.tracks import Track

COLORS = {"mixture": "#e0e0e0", "independent": "#90a4ae", "multi-task": "#ffcc80", "meta": "#ff8a65",
          "independent-meta-start": "#b0bec5"}


def draw_network(ax=None):
    """Meta-TasNet in one picture: a shared encoder and decoder, a masking TCN per instrument whose
    weights a generator makes from the instrument's embedding, and masks normalised across instruments."""
    import matplotlib.pyplot as plt

    from sepbook.book.plot import diagram_arrow as arrow
    from sepbook.book.plot import diagram_box as box

    if ax is None:
        _, ax = plt.subplots(figsize=(12, 4.2))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 4.4)
    ax.axis("off")
    box(ax, 1.0, 3.3, "mixture\nwaveform $x$", "data", 1.6, 0.8)
    box(ax, 3.2, 3.3, "encoder\n1-D conv, ReLU", "net", 1.9, 0.8)
    box(ax, 5.9, 3.3, "masking TCN\nfor instrument $k$", "net", 2.3, 0.8)
    box(ax, 8.5, 3.3, "softmax over $k$\n$m_k \\odot w$", "data", 2.0, 0.8)
    box(ax, 10.8, 3.3, "decoder\n$\\hat s_k$", "net", 1.6, 0.8)
    box(ax, 3.2, 1.2, "instrument\nembedding $e_k$", "critic", 1.9, 0.8)
    box(ax, 5.9, 1.2, "generator: $W_k = G\\,(A e_k) + g$\nfor every conv and norm", "critic", 3.2, 0.8)
    box(ax, 10.0, 1.2, "loss: $-$SI-SDR($\\hat s_k$, $s_k$)\nover audible targets", "loss", 3.0, 0.8)
    arrow(ax, (1.8, 3.3), (2.25, 3.3))
    arrow(ax, (4.15, 3.3), (4.75, 3.3), "$w$")
    arrow(ax, (7.05, 3.3), (7.5, 3.3))
    arrow(ax, (9.5, 3.3), (10.0, 3.3))
    arrow(ax, (4.15, 1.2), (4.3, 1.2))
    arrow(ax, (5.9, 1.6), (5.9, 2.9), "weights")
    arrow(ax, (10.8, 2.9), (10.4, 1.6))
    return ax


def _spectrum(wave: torch.Tensor, sr: int) -> torch.Tensor:
    return STFT(n_fft=512, hop=128, center=True)(wave).abs()


def estimates_figure(model, track: Track, sr: int, seconds: float = 6.0, estimates=None):
    """Waveform and spectrogram of each of the four estimates beside the true stem (first
    ``seconds`` of ``track``)."""
    import matplotlib.pyplot as plt

    n = int(seconds * sr)
    estimates = separate(model, track.mixture) if estimates is None else estimates
    fig, axes = plt.subplots(len(SOURCES), 3, figsize=(13, 2.2 * len(SOURCES)),
                             gridspec_kw={"width_ratios": [1.3, 1, 1]})
    for row, name in zip(axes, SOURCES):
        k = track.source_names.index(name)
        true, est = track.sources[k, 0, :n], estimates[k, 0, :n]
        plot.waveform(true, sr=sr, ax=row[0], label="true", color="0.6")
        plot.waveform(est, sr=sr, ax=row[0], label="estimate", color="#d84315", alpha=0.7)
        row[0].set_title(name)
        row[0].legend(fontsize=7, loc="upper right")
        plot.spectrogram(_spectrum(true, sr), sr=sr, hop=128, ax=row[1], title=f"{name}: true", db_range=70)
        plot.spectrogram(_spectrum(est, sr), sr=sr, hop=128, ax=row[2], title=f"{name}: estimate", db_range=70)
    fig.tight_layout()
    return fig


def embedding_similarity(model, ax=None, names: Sequence[str] = SOURCES):
    """Cosine similarity of the learned instrument embeddings, and of the codes ``A e_k`` the
    generator's layers make from them (averaged over layers)."""
    import matplotlib.pyplot as plt

    stage = model.stages[-1]
    embeddings = stage.instruments().detach()
    codes = [m.code(embeddings).detach() for m in stage.masker.modules() if hasattr(m, "code")]

    def cosine(x):
        x = torch.nn.functional.normalize(x, dim=-1)
        return (x @ x.T).numpy()

    panels = {"embeddings $e_k$": cosine(embeddings),
              "codes $A e_k$, mean over layers": np.mean([cosine(c) for c in codes], axis=0)}
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(9, 3.8))
    for a, (title, sim) in zip(ax, panels.items()):
        image = a.imshow(sim, vmin=-1, vmax=1, cmap="RdBu_r")
        a.set_xticks(range(len(names)), names, rotation=30)
        a.set_yticks(range(len(names)), names)
        for i in range(len(names)):
            for j in range(len(names)):
                a.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=8)
        a.set_title(title, fontsize=10)
    a.figure.colorbar(image, ax=ax, shrink=0.8, label="cosine similarity")
    return ax


def generated_filters(model, names: Sequence[str] = SOURCES, rows: int = 24):
    """The masking network's first convolution, generated for each instrument: ``rows`` of its
    output channels against the encoder's basis (a 1x1 convolution is a matrix), each
    instrument's own and its difference from the mean of all four."""
    import matplotlib.pyplot as plt

    stage = model.stages[-1]
    weights = stage.masker.conv_in.weights(stage.instruments()).detach()[:, :rows, :, 0]   # (K, rows, N)
    mean = weights.mean(0)
    fig, axes = plt.subplots(2, len(names), figsize=(13, 5.2), sharex=True, sharey=True)
    top = float(weights.abs().max())
    spread = float((weights - mean).abs().max())
    for k, name in enumerate(names):
        axes[0, k].imshow(weights[k], cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto")
        axes[0, k].set_title(f"{name}: $W_k$", fontsize=10)
        axes[1, k].imshow(weights[k] - mean, cmap="PuOr", vmin=-spread, vmax=spread, aspect="auto")
        axes[1, k].set_title(f"{name}: $W_k$ − mean", fontsize=10)
        axes[1, k].set_xlabel("encoder basis")
    axes[0, 0].set_ylabel("bottleneck channel")
    axes[1, 0].set_ylabel("bottleneck channel")
    fig.tight_layout()
    return fig


def encoder_basis(model, sr: int, shown: int = 8):
    """The learned encoder's basis functions, sorted by the frequency where each responds most:
    ``shown`` of them as waveforms, and the frequency response of all of them."""
    import matplotlib.pyplot as plt

    basis = model.stages[-1].encoder.conv.weight.detach()[:, 0]                    # (N, kernel)
    response = torch.fft.rfft(basis, n=256).abs()
    order = torch.argsort(response.argmax(-1))
    response = response[order]
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
    picks = order[torch.linspace(0, len(order) - 1, shown).long()]
    t = np.arange(basis.shape[1]) / sr * 1000
    for i, index in enumerate(picks):
        axes[0].plot(t, basis[index] / basis[index].abs().max() + 2 * i, lw=1)
    axes[0].set(xlabel="time (ms)", yticks=[], title=f"{shown} of {len(basis)} basis functions, low to high")
    db = 20 * np.log10(response / response.max(-1, keepdim=True).values + 1e-4)
    image = axes[1].imshow(db.T, origin="lower", aspect="auto", cmap="magma", vmin=-40, vmax=0,
                           extent=(0, len(basis), 0, sr / 2))
    axes[1].set(xlabel="basis function (sorted by peak frequency)", ylabel="frequency (Hz)",
                title="frequency response of every basis function")
    fig.colorbar(image, ax=axes[1], label="dB", pad=0.01)
    fig.tight_layout()
    return fig


def stages_figure(model, track: Track, name: str = "drums", seconds: float = 4.0):
    """Each stage's estimate of one instrument beside the true stem: the first stage works at the
    lower rate, so its spectrogram stops at half the next one's bandwidth."""
    import matplotlib.pyplot as plt

    from sepbook.recipes.metatasnet.data import at_rates

    rates = model.settings["stages"]
    k = track.source_names.index(name)
    n = int(seconds * rates[0]) * (rates[-1] // rates[0])
    with torch.no_grad():
        outputs = model([m[None] for m in at_rates(track.mixture[:, :n], rates[-1], rates)])
    fig, axes = plt.subplots(1, len(rates) + 1, figsize=(4.4 * (len(rates) + 1), 3.4), sharey=True)
    for ax, rate, estimate in zip(axes, rates, outputs):
        plot.spectrogram(_spectrum(estimate[0, k, 0], rate), sr=rate, hop=128, ax=ax, db_range=70,
                         title=f"stage at {rate / 1000:g} kHz: {name}")
    plot.spectrogram(_spectrum(track.sources[k, 0, :n], rates[-1]), sr=rates[-1], hop=128,
                     ax=axes[-1], db_range=70, title=f"true {name} at {rates[-1] / 1000:g} kHz")
    for ax in axes:
        ax.set_ylim(0, rates[-1] / 2)
    fig.tight_layout()
    return fig


def score_bars(rows, metric: str, profile: str, ax=None):
    """``metric`` per stem for the mixture and every system the rows hold: bars at the mean over
    seeds, one dot per seed."""
    import matplotlib.pyplot as plt

    table = over_songs(rows)
    table = table[table.metric == metric]
    systems = [s for s in COLORS if s in set(table.variant)]
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        for j, source in enumerate(SOURCES):
            values = table[(table.variant == system) & (table.source == source)]["value"].to_numpy()
            x = j + (i - (len(systems) - 1) / 2) * width
            ax.bar(x, values.mean(), width, color=COLORS[system], edgecolor="0.3", lw=0.5,
                   label=system if j == 0 else None)
            ax.plot(np.full(len(values), x), values, "k.", ms=3)
    ax.set_xticks(range(len(SOURCES)), SOURCES)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set(ylabel=f"{metric} (dB)", title=f"{metric} per stem ({profile} profile; dots are seeds)")
    ax.legend(fontsize=8, ncol=len(systems))
    return ax
