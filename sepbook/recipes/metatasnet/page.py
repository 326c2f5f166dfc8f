"""What the metatasnet page shows beside the scores: the paper's numbers, the tables, and the
sentences that read them (scoring itself is in :mod:`sepbook.recipes.metatasnet.evaluation`).

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from sepbook import metrics
from sepbook.experiments import report
from sepbook.recipes import Paper
from sepbook.recipes.metatasnet.data import at_rates
from sepbook.recipes.metatasnet.evaluation import MIXTURE, separate_stages, stage_name
from sepbook.recipes.metatasnet.training import CONTROL, VARIANTS
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
