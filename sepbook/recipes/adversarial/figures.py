"""The adversarial chapter's figures: the training scheme, training curves, and the critic's
input gradient (the paper's Fig. 3).

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook.audio import log_magnitude, magnitudes, n_bins
from sepbook.book.plot import smoothed
from sepbook.losses.adversarial import critic_input_gradient
from sepbook.recipes.adversarial.data import SOURCES, Domains
from sepbook.recipes.adversarial.training import system as system_of
from sepbook.tracks import Track


def draw_training_scheme(ax=None):
    """Draw the paper's Fig. 1(b): supervised loss on paired data, one critic per source on unlabelled mixtures."""
    from functools import partial

    import matplotlib.pyplot as plt

    from sepbook.book.plot import DIAGRAM_STYLES as styles
    from sepbook.book.plot import diagram_arrow, diagram_box

    if ax is None:
        _, ax = plt.subplots(figsize=(12, 5.6))
    ax.set_xlim(0, 12.3)
    ax.set_ylim(0.4, 7.45)
    ax.axis("off")
    box, arrow = partial(diagram_box, ax), partial(diagram_arrow, ax)

    box(1.1, 5.9, "paired multitracks\n$\\mathcal{D}_m$: $(m_i, \\mathbf{s}_i)$", "data", h=0.9)
    box(3.6, 5.9, "separator $f_\\phi$\n(U-Net)", "net")
    box(6.0, 5.9, "$f_\\phi(m_i)$", "data", w=1.6)
    box(8.9, 5.9, "$L_s = \\|f_\\phi(m_i) - \\mathbf{s}_i\\|^2$", "loss", w=2.6)
    arrow((2.15, 5.9), (2.55, 5.9))
    arrow((4.65, 5.9), (5.15, 5.9))
    arrow((6.85, 5.9), (7.55, 5.9))
    arrow((1.1, 6.4), (8.9, 6.4), color="0.55", rad=-0.15)
    ax.text(5.0, 7.12, "targets $\\mathbf{s}_i$", ha="center", fontsize=8, color="0.45")

    ax.text(6.1, 4.55, "separator: $L = L_s + \\alpha L_u + \\beta L_{add}$, with $L_u = -\\sum_k \\mathbb{E}\\,D_{\\theta_k}"
            "(f_\\phi(m^u)_k)$;   critic $k$: $\\mathbb{E}\\,D(\\mathrm{fake}) - \\mathbb{E}\\,D(\\mathrm{real}) + "
            "\\lambda L_{grad}$", ha="center", fontsize=9.5, color=styles["loss"][1])
    box(1.1, 3.0, "unlabelled mixtures\n$\\mathcal{D}_u$: $m^u$", "data", h=0.9)
    box(3.6, 3.0, "separator $f_\\phi$\n(same weights)", "net")
    box(6.0, 3.8, "voice estimate", "data", w=1.8)
    box(6.0, 2.2, "accompaniment\nestimate", "data", w=1.8, h=0.8)
    box(8.6, 3.8, "voice critic $D_{\\theta_1}$", "critic")
    box(8.6, 2.2, "accomp. critic $D_{\\theta_2}$\n(VA only)", "critic", h=0.8)
    box(11.2, 3.8, "solo voices $\\mathcal{D}_s^1$\n(other songs)", "data", w=1.9, h=0.8)
    box(11.2, 2.2, "solo accomp. $\\mathcal{D}_s^2$\n(other songs)", "data", w=1.9, h=0.8)
    box(3.6, 1.0, "$L_{add}$: $\\sum_k f_\\phi(m^u)_k \\approx m^u$", "loss", w=2.8)
    arrow((2.15, 3.0), (2.55, 3.0))
    arrow((4.65, 3.15), (5.05, 3.75))
    arrow((4.65, 2.85), (5.05, 2.25))
    arrow((6.95, 3.8), (7.55, 3.8), "fake")
    arrow((6.95, 2.2), (7.55, 2.2), "fake")
    arrow((10.2, 3.8), (9.65, 3.8), "real", color=styles["critic"][1])
    arrow((10.2, 2.2), (9.65, 2.2), "real", color=styles["critic"][1])
    arrow((3.6, 2.55), (3.6, 1.45))
    return ax


def plot_critic_curves(histories: Mapping[tuple[str, int], Mapping[str, list]], variants: Sequence[str] = ("V", "VA"),
                       smooth: int = 10, axes=None):
    """Wasserstein estimates and gradient penalties of every critic over training, one line per (variant, critic, seed)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    colors = {("V", "vocals"): "C0", ("VA", "vocals"): "C1", ("VA", "accompaniment"): "C2"}
    labelled = set()
    for (variant, seed), history in trained(histories).items():
        system = system_of(variant)
        if system not in variants:
            continue
        for name in SOURCES:
            if f"{name}_wasserstein" not in history:
                continue
            color = colors.get((system, name), "C3")
            label = None if (system, name) in labelled else f"{system}: {name} critic"
            labelled.add((system, name))
            for ax, key in zip(axes, ("wasserstein", "gradient_penalty")):
                ax.plot(history["step"], smoothed(history[f"{name}_{key}"], smooth), color=color, lw=1.2,
                        alpha=0.85, label=label)
    axes[0].set(xlabel="separator step", ylabel="$E\\,D(real) - E\\,D(fake)$", title="Wasserstein estimate")
    axes[1].set(xlabel="separator step", ylabel="$L_{grad}$", title="one-sided gradient penalty")
    axes[0].legend(fontsize=8)
    return axes


def trained(histories: Mapping[tuple[str, int], Mapping[str, Any]]) -> dict:
    """The histories of runs that trained (a chosen system only records its choice)."""
    return {key: history for key, history in histories.items() if history.get("step")}


#: What each critic diagnostic is called in a history, and how the page names it.
DIAGNOSTICS = {"held-out solos": "real solos (held-out songs)", "true stems": "true stems of unlabelled songs",
               "estimates": "separator's estimates of them"}
COSINE = "cosine(grad L_u, grad L_s)"


def plot_diagnostics(histories: Mapping[tuple[str, int], Mapping[str, Any]], variants: Sequence[str] = ("V", "VA"),
                     axes=None):
    """How informative the critics are, at every validation of the candidate runs of ``variants``:
    (left) each voice critic's mean score of held-out real solos, of the unlabelled songs' true voices
    and of the separator's estimates of them; (right) the cosine between the separator's gradients of
    ``L_u`` and of the validation ``L_s``, for every run, above 0 where the critics help."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    styles = {"held-out solos": ("C2", "-"), "true stems": ("C0", "--"), "estimates": ("C3", ":")}
    labelled = set()
    for (variant, seed), history in trained(histories).items():
        if system_of(variant) not in variants or not history["valid"]:
            continue
        if COSINE not in history["valid"][0]:
            continue
        steps = history["valid_step"]
        for key, (color, line) in styles.items():
            label = None if key in labelled else DIAGNOSTICS[key]
            labelled.add(key)
            axes[0].plot(steps, [v[f"vocals: {key}"] for v in history["valid"]], line, color=color, lw=1, alpha=0.7,
                         label=label)
        axes[1].plot(steps, [v[COSINE] for v in history["valid"]], "o-", ms=2, lw=1, alpha=0.7,
                     label=f"{variant}, seed {seed}")
    axes[0].set(xlabel="separator step (after the start)", ylabel="mean critic score",
                title="what the voice critics score")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set(xlabel="separator step (after the start)", ylabel="cosine", title="$\\nabla L_u$ against "
                "$\\nabla L_s$ (validation)")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=6, ncol=2)
    return axes


def diagnostics_table(histories: Mapping[tuple[str, int], Mapping[str, Any]], digits: int = 2):
    """Per critic run, at its kept (best-validation) step: each critic's mean scores, the gradient
    cosine, and a flag where the critic scores the true stems of the unlabelled songs below held-out
    real solos (it tells songs apart, not real from separated)."""
    import pandas as pd

    records = []
    for (variant, seed), history in trained(histories).items():
        if not history["valid"] or COSINE not in history["valid"][0]:
            continue
        at = history["valid_step"].index(history["best_step"][-1]) if history.get("best_step") else -1
        kept = history["valid"][at]
        for name in SOURCES:
            if f"{name}: estimates" not in kept:
                continue
            record = {"run": variant, "seed": seed, "critic": name, "kept step": history["valid_step"][at]}
            record |= {words: round(kept[f"{name}: {key}"], digits) for key, words in DIAGNOSTICS.items()}
            record["true - held-out"] = round(kept[f"{name}: true stems"] - kept[f"{name}: held-out solos"], digits)
            record["estimates - true"] = round(kept[f"{name}: estimates"] - kept[f"{name}: true stems"], digits)
            record["cosine"] = round(kept[COSINE], 3)
            record["true stems below real solos"] = kept[f"{name}: true stems"] < kept[f"{name}: held-out solos"]
            records.append(record)
    return pd.DataFrame(records).set_index(["run", "seed", "critic"])


def plot_losses(histories: Mapping[tuple[str, int], Mapping[str, list]], smooth: int = 10, axes=None):
    """Training ``L_s`` (smoothed) and validation ``L_s`` of every (variant, seed) that trained."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    histories = trained(histories)
    variants = list(dict.fromkeys(v for v, _ in histories))
    for (variant, seed), history in histories.items():
        color = f"C{variants.index(variant) % 10}"
        label = f"{variant}" if seed == min(s for v, s in histories if v == variant) else None
        axes[0].plot(history["step"], smoothed(history["Ls"], smooth), color=color, lw=1.1, label=label)
        axes[1].plot(history["valid_step"], [v["valid L_s"] for v in history["valid"]], "o-", color=color, ms=3, lw=1.1, label=label)
    axes[0].set(xlabel="separator step", ylabel="$L_s$ (paired batches)", title="supervised loss", yscale="log")
    axes[1].set(xlabel="separator step", ylabel="$L_s$ (validation)", title="validation loss (all domains)")
    axes[0].legend(fontsize=8)
    return axes


def plot_critic_gradient(example: Mapping[str, Any], cfg: Mapping[str, Any], max_bin: int | None = None, axes=None):
    """The paper's Fig. 3: (a) the voice estimate ``x``; (b) ``grad_x D(x)`` on a diverging map centred at 0.

    Contours in (b) outline the bins where the true voice dominates, so positive gradient on them and
    negative gradient elsewhere is the paper's reading. Only bins below ``max_bin`` are shown.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    max_bin = max_bin or example["estimate"].shape[0] // 2
    hz = cfg["sr"] / cfg["n_fft"]
    seconds = cfg["hop"] / cfg["sr"]
    extent = (0, example["estimate"].shape[1] * seconds, 0, max_bin * hz)
    estimate, gradient = example["estimate"][:max_bin], example["gradient"][:max_bin]
    image = axes[0].imshow(estimate, origin="lower", aspect="auto", extent=extent, cmap="gray")
    axes[0].figure.colorbar(image, ax=axes[0], label="log(1 + |x|)", pad=0.01)
    limit = float(np.quantile(np.abs(gradient), 0.99)) or 1.0
    image = axes[1].imshow(gradient, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r",
                           norm=TwoSlopeNorm(0.0, -limit, limit))
    axes[1].contour(example["voice_dominant"][:max_bin].astype(float), levels=[0.5], colors="k", linewidths=0.5,
                    extent=extent, origin="lower")
    axes[1].figure.colorbar(image, ax=axes[1], label="$\\nabla_x D(x)$", pad=0.01)
    axes[0].set(title="(a) separator voice estimate $x$", xlabel="time (s)", ylabel="frequency (Hz)")
    axes[1].set(title="(b) $\\nabla_x D(x)$ (red > 0 > blue; black: true voice dominates)", xlabel="time (s)")
    return axes


def showcase_track(domains: Domains) -> Track:
    """The test song outside the paired domain whose voice is active longest: the one to look at and listen to."""
    candidates = [t for t in domains.test if t.domain != domains.paired_domain] or list(domains.test)
    if not candidates:
        raise ValueError("domains.test: no test songs")

    def voice_activity(track: Track) -> float:
        voice = track.source("vocals")[0].numpy()
        frames = voice[: len(voice) // 1024 * 1024].reshape(-1, 1024)
        return float(np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 0.01 * np.abs(voice).max()))

    return max(candidates, key=voice_activity)


def critic_gradient_example(cfg: Mapping[str, Any], separator: torch.nn.Module, critic: torch.nn.Module,
                            track: Track, start_frame: int | None = None) -> dict[str, np.ndarray]:
    """The paper's Fig. 3 on one excerpt: the separator's voice estimate ``x`` and the critic's ``grad_x D(x)``.

    Returns ``estimate`` and ``gradient`` ``(freq, frames)``, and ``voice_dominant``: True where the
    true voice is louder than the true accompaniment (so that energy in the estimate is voice, not
    leakage). ``start_frame`` defaults to the excerpt where the voice is most active.
    """
    frames, bins = cfg["frames"], n_bins(cfg)
    spec = magnitudes(cfg, torch.cat([track.mixture, track.sources[:, 0]]))   # (3, bins, T): m, a, v
    if spec.shape[-1] < frames:
        raise ValueError(f"track: {spec.shape[-1]} frames is shorter than one excerpt of {frames}")
    if start_frame is None:
        energy = torch.nn.functional.avg_pool1d(spec[2].sum(0)[None, None], frames, 1)[0, 0]
        start_frame = int(energy.argmax())
    excerpt = spec[..., start_frame:start_frame + frames]
    mixture = log_magnitude(excerpt[:1]).unsqueeze(0)                         # (1, 1, bins, frames)
    with torch.no_grad():
        estimate = separator(mixture)[:, SOURCES.index("vocals"):SOURCES.index("vocals") + 1]
    gradient = critic_input_gradient(critic, estimate)
    return {"estimate": estimate[0, 0].numpy(), "gradient": gradient[0, 0].numpy(),
            "voice_dominant": (excerpt[2] > excerpt[1]).numpy(), "start_frame": start_frame, "bins": bins}


def gradient_on_voice_and_leakage(example: Mapping[str, np.ndarray], level: float = 0.25) -> dict[str, float]:
    """Mean critic gradient on the estimate's energetic bins, split by which true source owns them.

    Energetic bins hold at least ``level`` times the excerpt's largest log-magnitude. ``voice``: those
    where the true voice dominates; ``leakage``: those where the accompaniment dominates, i.e.
    accompaniment energy that leaked into the voice estimate. The paper's Fig. 3 reading predicts
    ``voice > 0 > leakage``.
    """
    estimate, gradient, voice = (np.asarray(example[k]) for k in ("estimate", "gradient", "voice_dominant"))
    loud = estimate >= level * estimate.max() if estimate.max() > 0 else np.zeros_like(voice)
    pick = lambda mask: float(gradient[mask].mean()) if mask.any() else float("nan")
    return {"voice": pick(loud & voice), "leakage": pick(loud & ~voice),
            "voice bins": int((loud & voice).sum()), "leakage bins": int((loud & ~voice).sum())}


def gradient_reading(stats: Mapping[str, float]) -> str:
    """Words for :func:`gradient_on_voice_and_leakage`'s numbers against the paper's Fig. 3 reading."""
    if stats["voice"] > 0 > stats["leakage"]:
        return "matches the paper's reading"
    if not stats["voice"] > stats["leakage"]:
        return "does not match the paper's reading"
    return "points the right way only in relative terms (voice above leakage, not opposite signs)"


def final_wasserstein(histories: Mapping[tuple[str, int], Mapping[str, list]]) -> tuple[float, float]:
    """The smallest and largest last Wasserstein estimate over every critic of every run."""
    ends = [history[f"{name}_wasserstein"][-1] for history in trained(histories).values()
            for name in SOURCES if f"{name}_wasserstein" in history]
    return min(ends), max(ends)
