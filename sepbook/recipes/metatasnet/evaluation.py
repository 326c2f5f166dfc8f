"""Separating whole songs and scoring them like the paper: BSS Eval v4 SDR (median over 1 s
frames for each song; the tables take the median over songs) and SI-SDR per stem, for the three
systems and the unprocessed mixture; and the cost side: parameters, training-step time and peak
memory of each system, measured on this machine in the run that made the results.

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook import metrics
from sepbook.experiments import report
from sepbook.experiments.train import update
from sepbook.recipes import Paper
from sepbook.recipes.metatasnet.data import at_rates
from sepbook.recipes.metatasnet.training import CONTROL, VARIANTS, build, parameters, stage_loss
from sepbook.tracks import Track

#: The reference repository's MUSDB18 test results (BSS Eval v4 SDR in dB, median of frames,
#: median of tracks) for Meta-TasNet and, beside it, Open-Unmix; and the paper's claim.
PAPER = Paper(
    source="Samuel, Ganeshan and Naradowsky (ICASSP 2020), results of the reference repository",
    numbers={
        "SDR": {"meta": {"vocals": 6.40, "drums": 5.91, "bass": 5.58, "other": 4.19},
                "Open-Unmix": {"vocals": 6.32, "drums": 5.73, "bass": 5.23, "other": 4.02}},
        "claim": "generated extractors are more effective than independent or multi-task ones",
    })
MIXTURE = "mixture"


@torch.no_grad()
def separate_stages(model: torch.nn.Module, mixture: torch.Tensor, sr: int | None = None,
                    max_seconds: float = 30.0) -> list[torch.Tensor]:
    """Every stage's estimate of a mixture ``(channels, time)`` at rate ``sr`` (one of the stages'
    rates, default the last): a list of ``(K, channels, time_i)``, stage ``i`` at its own rate.

    Each channel goes through every stage at that stage's rate. Songs longer than
    ``max_seconds`` go through in pieces of that length.
    """
    mixture = torch.as_tensor(mixture, dtype=torch.float32)
    if mixture.dim() != 2:
        raise ValueError(f"mixture: expected (channels, time), got shape {tuple(mixture.shape)}")
    rates = model.settings["stages"]
    sr = rates[-1] if sr is None else sr
    if sr not in rates:
        raise ValueError(f"sr: expected one of the stages' sample rates {list(rates)}, got {sr}")
    model.eval()
    ratio = rates[-1] // rates[0]
    piece = int(max_seconds * rates[0]) * ratio
    wave_at_last = torch.as_tensor(at_rates(mixture, sr, [rates[-1]])[0])
    length = wave_at_last.shape[-1]
    channels = []
    for wave in wave_at_last:
        wave = torch.nn.functional.pad(wave, (0, -length % ratio))  # every rate's length exact
        parts = []
        for start in range(0, wave.shape[-1], piece):
            mixes = [m[None, None] for m in at_rates(wave[start:start + piece], rates[-1], rates)]
            parts.append([estimate[0, :, 0] for estimate in model(mixes)])
        channels.append([torch.cat(stage, dim=-1) for stage in zip(*parts)])
    return [torch.stack(stage, dim=1)[..., : -(-length * rate // rates[-1])]
            for stage, rate in zip(zip(*channels), rates)]


def separate(model: torch.nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """Separate a mixture ``(channels, time)`` at the last stage's rate into ``(K, channels, time)``:
    the final estimate (:func:`separate_stages` gives every stage's)."""
    return separate_stages(model, mixture)[-1][..., : mixture.shape[-1]]


def song_rows(estimates: torch.Tensor, track: Track, sr: int, variant: str, seed: int | None,
              silence: float = 1e-6) -> list[dict]:
    """SDR (BSS Eval v4, median over 1 s frames), SI-SDR and the projection gain (whole song) per
    source of one song.

    museval skips a frame in which a target is exactly zero; a frame in which it is nearly zero
    (mean power below ``silence``, as in the loss) would score some -300 dB and is skipped too.
    """
    sdr = metrics.bss_eval(track.sources, estimates, sr)["SDR"]
    frames = track.sources[:, 0, : sdr.shape[1] * sr].reshape(len(sdr), -1, sr)
    sdr[(frames ** 2).mean(-1).numpy() < silence] = np.nan
    values = stage_values(estimates, track)
    for k, name in enumerate(track.source_names):
        frames = sdr[k][np.isfinite(sdr[k])]
        values[name]["SDR"] = float(np.median(frames)) if frames.size else float("nan")
    return report.rows_for(values, variant=variant, seed=seed, song=track.name, domain=track.domain)


def stage_values(estimates: torch.Tensor, track: Track) -> dict[str, dict[str, float]]:
    """SI-SDR and projection gain per source of ``estimates`` ``(K, 1, time)`` against the song's
    stems, over the whole song."""
    si = metrics.si_sdr(estimates[:, 0], track.sources[:, 0])
    gain = metrics.projection_gain(estimates[:, 0], track.sources[:, 0])
    return {name: {"SI-SDR": float(si[k]), "gain": float(gain[k])}
            for k, name in enumerate(track.source_names)}


def stage_name(variant: str, stage: int) -> str:
    """The row name of an earlier stage's estimate, e.g. ``'meta (stage 1)'``."""
    return f"{variant} (stage {stage})"


def evaluate(cfg: Mapping[str, Any], models: Mapping[tuple[str, int], torch.nn.Module],
             tracks: Sequence[Track]) -> list[dict]:
    """Rows (variant, seed, song, domain, source, metric, value) for every model and test song:
    the last stage's SDR, SI-SDR and gain, and each earlier stage's SI-SDR and gain, its estimate
    brought up to the last stage's rate (as ``'<variant> (stage i)'``)."""
    rates = cfg["stages"]
    rows = []
    for track in tracks:  # song by song: the models scored against one song share its BSS Eval reference solve
        for (variant, seed), model in models.items():
            *earlier, last = separate_stages(model, track.mixture)
            rows += song_rows(last[..., : track.mixture.shape[-1]], track, rates[-1], variant, seed)
            for i, (estimate, rate) in enumerate(zip(earlier, rates)):
                estimate = at_rates(estimate, rate, [rates[-1]])[0][..., : track.mixture.shape[-1]]
                estimate = torch.nn.functional.pad(estimate, (0, track.mixture.shape[-1] - estimate.shape[-1]))
                rows += report.rows_for(stage_values(estimate, track), variant=stage_name(variant, i + 1),
                                        seed=seed, song=track.name, domain=track.domain)
    return rows


def mixture_rows(cfg: Mapping[str, Any], tracks: Sequence[Track]) -> list[dict]:
    """The unprocessed mixture as every source's estimate: where the systems start from."""
    rows = []
    for track in tracks:
        rows += song_rows(track.mixture_as_estimates(), track, cfg["stages"][-1], MIXTURE, None)
    return rows


def measure_step(cfg: Mapping[str, Any], variant: str, steps: int = 5) -> dict[str, float]:
    """Parameters, seconds per training step and the peak memory the steps add (MiB), for
    ``variant`` at ``cfg``'s sizes on one CPU thread; run it in a fresh process (``cost_rows``
    does), since the peak is the process's resident high-water mark."""
    import resource  # Unix only: imported here so that the page also runs on Windows

    torch.set_num_threads(1)
    torch.manual_seed(0)
    rates, k = cfg["stages"], len(cfg["sources"])
    samples = [int(cfg["excerpt_seconds"] * rate) for rate in rates]
    batch = {"mixture": [torch.randn(cfg["batch_size"], 1, n) for n in samples],
             "sources": [torch.randn(cfg["batch_size"], k, 1, n) for n in samples]}
    model = build(cfg, variant)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not timed
        started = time.perf_counter()
        update(optimizer, stage_loss(model, batch)[0])
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"parameters": float(parameters(model)), "step seconds": float(np.median(times[1:])),
            "peak MiB": (peak - before) / 1024}


def cost_rows(cfg: Mapping[str, Any], variants: Sequence[str]) -> list[dict]:
    """:func:`measure_step` of every variant, each in its own fresh process, as result rows."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    rows = []
    for variant in variants:
        with context.Pool(1) as pool:
            cost = pool.apply(measure_step, (dict(cfg), variant))
        rows += report.rows_for({"all": cost}, variant=variant, seed=None, song="", domain="cost")
    return rows


# ----------------------------------------------------------------------------- tables and claims

SOURCES = ("vocals", "drums", "bass", "other")


def over_songs(rows):
    """Per variant, seed, source and metric, one number over the test songs, as the paper counts:
    the median over songs of SDR (each song already a median over frames), the mean of SI-SDR."""
    import pandas as pd

    table = report.frame(rows)
    scores = table[table.domain != "cost"]
    keys = ["variant", "seed", "source", "metric"]
    sdr = scores[scores.metric == "SDR"].groupby(keys, dropna=False)["value"].median()
    rest = scores[scores.metric != "SDR"].groupby(keys, dropna=False)["value"].mean()
    out = pd.concat([sdr, rest]).reset_index()
    out["song"], out["domain"] = "all", "musdb"
    return out


def score_table(rows, metric: str, profile: str):
    """``metric`` per stem for the mixture and the three systems (mean ± std over seeds); for SDR,
    the paper's Meta-TasNet and Open-Unmix numbers beside ours."""
    table = over_songs(rows)
    table = table[table.metric == metric]
    order = [v for v in (MIXTURE, *VARIANTS) if v in set(table.variant)]
    if metric != "SDR":
        return report.table(table, "variant", ["source"], index_order=order, column_order=[SOURCES])
    paper = {(v, s): PAPER.numbers["SDR"][v][s] for v in ("meta",) for s in SOURCES}
    ours = report.paper_table(table, "variant", ["source"], paper, profile, index_order=order,
                              column_order=[SOURCES])
    ours.loc["Open-Unmix (paper only)"] = [PAPER.numbers["SDR"]["Open-Unmix"][s] if who == "paper" else "–"
                                           for s, who in ours.columns]
    return ours


def cost_table(rows):
    """Parameters, seconds per training step and peak memory the steps add, per system."""
    import pandas as pd

    table = report.frame(rows)
    cost = table[table.domain == "cost"].pivot(index="variant", columns="metric", values="value")
    cost = cost.reindex([v for v in VARIANTS if v in cost.index])
    return pd.DataFrame({"parameters": cost["parameters"].map(lambda v: f"{int(v):,}"),
                         "s / step (1 thread)": cost["step seconds"].map(lambda v: f"{v:.2f}"),
                         "peak MiB": cost["peak MiB"].map(lambda v: f"{v:.0f}")})


#: The systems the paper says generated extractors beat, and the control.
BASELINES: tuple[str, ...] = ("independent", "multi-task", CONTROL)


def claim_gains(rows, metric: str = "SI-SDR") -> dict:
    """Meta minus each of :data:`BASELINES` in ``metric``, averaged over stems, seed by seed on the
    same songs: per baseline, a row of :func:`sepbook.experiments.report.gains` (mean, std, wins, seeds)."""
    table = over_songs(rows)
    table = table[(table.metric == metric) & table.variant.isin(VARIANTS)]
    return {baseline: report.gains(table, "meta", baseline).iloc[0] for baseline in BASELINES}


def versus_baselines(rows, profile: str, metric: str = "SI-SDR") -> dict[str, str]:
    """Meta against each of :data:`BASELINES`, averaged over stems, seed by seed on the same songs
    (the numbers of :func:`claim_gains`)."""
    return {baseline: report.describe(gain, "meta", f"{baseline} model", metric, "averaged over the four stems",
                                     profile)
            for baseline, gain in claim_gains(rows, metric).items()}


def level_table(rows):
    """Each system's projection gain per stem (:func:`sepbook.metrics.projection_gain`): the median
    over test songs and seeds, and on how many songs x seeds the estimate came out upside down."""
    import pandas as pd

    table = report.frame(rows)
    table = table[(table.metric == "gain") & table.variant.isin(VARIANTS)]
    cells = {}
    for (variant, source), gains in table.groupby(["variant", "source"])["value"]:
        inverted = int((gains < 0).sum())
        cells.setdefault(variant, {})[source] = f"{gains.median():.2f} ({inverted} of {len(gains)} inverted)"
    return pd.DataFrame(cells).T.reindex(index=[v for v in VARIANTS if v in cells], columns=list(SOURCES))


def stage_table(rows, metric: str = "SI-SDR"):
    """Each system's first and last stage in ``metric``, mean over stems, songs and seeds (the
    first stage's estimate brought up to the last stage's rate), and the last minus the first."""
    import pandas as pd

    table = report.frame(rows)
    table = table[table.metric == metric]
    means = table.groupby("variant")["value"].mean()
    out = {}
    for variant in VARIANTS:
        first = stage_name(variant, 1)
        if variant in means and first in means:
            out[variant] = {"stage 1": means[first], "last stage": means[variant],
                            "last − first": means[variant] - means[first]}
    return pd.DataFrame(out).T.round(2)


def level_summary(rows) -> str:
    """One sentence: each system's median projection gain over stems, songs and seeds, and how
    many of its stem estimates came out upside down."""
    table = report.frame(rows)
    table = table[(table.metric == "gain") & table.variant.isin(VARIANTS)]
    parts = []
    for variant in VARIANTS:
        gains = table[table.variant == variant]["value"]
        if len(gains):
            parts.append(f"{variant} {gains.median():.2f} ({int((gains < 0).sum())} of {len(gains)} inverted)")
    return "median gain " + "; ".join(parts)


def gain_and_quality(rows) -> float:
    """The rank correlation (Spearman) between the projection gain and the SI-SDR of the same
    stem estimates, over every system, seed, song and stem: whether a gain below 1 goes with an
    estimate the system is less sure of, as a Wiener-like estimate would be."""
    table = report.frame(rows)
    table = table[table.variant.isin(VARIANTS) & table.metric.isin(["gain", "SI-SDR"])]
    paired = table.pivot_table(index=["variant", "seed", "song", "source"], columns="metric", values="value")
    return float(paired["gain"].corr(paired["SI-SDR"], method="spearman"))


def ranking(rows, metric: str) -> list[str]:
    """The systems from best to worst in ``metric``, mean over stems, songs and seeds (SDR as the
    paper counts it, :func:`over_songs`)."""
    table = over_songs(rows)
    table = table[(table.metric == metric) & table.variant.isin(VARIANTS)]
    return list(table.groupby("variant")["value"].mean().sort_values(ascending=False).index)


def rankings_agree(rows) -> str:
    """Whether SDR and SI-SDR order the systems alike, in words."""
    by_sdr, by_si = ranking(rows, "SDR"), ranking(rows, "SI-SDR")
    if by_sdr == by_si:
        return "rank the systems in the same order (" + " > ".join(by_si) + ")"
    return ("rank the systems differently: SDR " + " > ".join(by_sdr) + ", SI-SDR " + " > ".join(by_si))


@torch.no_grad()
def in_band_table(models: Mapping[str, torch.nn.Module], tracks: Sequence[Track]):
    """Within the first stage's band: SI-SDR (dB, mean over stems and ``tracks``) of the first
    stage's estimate and of the last stage's brought down to the first stage's rate, both against
    the stems at that rate, per system; what the last stage adds where both can reach."""
    import pandas as pd

    out = {}
    for variant, model in models.items():
        rates = model.settings["stages"]
        first, last = [], []
        for track in tracks:
            estimates = separate_stages(model, track.mixture)
            stems = at_rates(track.sources[:, 0], rates[-1], [rates[0]])[0]
            low = at_rates(estimates[-1][:, 0], rates[-1], [rates[0]])[0]
            n = min(stems.shape[-1], low.shape[-1], estimates[0].shape[-1])
            first.append(metrics.si_sdr(estimates[0][:, 0, :n], stems[..., :n]).mean())
            last.append(metrics.si_sdr(low[..., :n], stems[..., :n]).mean())
        out[variant] = {"stage 1": float(np.mean(first)), "last stage": float(np.mean(last)),
                        "last − first": float(np.mean(last) - np.mean(first))}
    return pd.DataFrame(out).T.round(2)


def end_slopes(histories, share: float = 0.25):
    """How fast validation SI-SDR was still rising at the end: per system, the slope (dB per
    1000 steps) of a straight line through the last ``share`` of its validation points, mean and
    range over seeds."""
    import pandas as pd

    slopes = {}
    for (variant, seed), history in histories.items():
        steps = np.asarray(history["valid_step"], float)
        scores = np.asarray([v["valid SI-SDR"] for v in history["valid"]], float)
        last = steps >= steps[-1] - share * steps[-1]
        if last.sum() >= 2:
            slopes.setdefault(variant, []).append(1000 * np.polyfit(steps[last], scores[last], 1)[0])
    return pd.DataFrame({v: {"dB per 1000 steps (mean)": np.mean(s), "lowest": np.min(s), "highest": np.max(s)}
                         for v, s in slopes.items()}).T.reindex([v for v in VARIANTS if v in slopes]).round(2)

