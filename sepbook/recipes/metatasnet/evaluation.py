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

from sepbook import metrics, report
from sepbook.recipes.metatasnet.data import at_rates
from sepbook.recipes.metatasnet.training import VARIANTS, build, parameters, stage_loss
from sepbook.tracks import Track

#: The reference repository's MUSDB18 test results (BSS Eval v4 SDR in dB, median of frames,
#: median of tracks) for Meta-TasNet and, beside it, Open-Unmix; and the paper's claim.
PAPER: dict[str, Any] = {
    "source": "Samuel, Ganeshan and Naradowsky (ICASSP 2020), results of the reference repository",
    "SDR": {"meta": {"vocals": 6.40, "drums": 5.91, "bass": 5.58, "other": 4.19},
            "Open-Unmix": {"vocals": 6.32, "drums": 5.73, "bass": 5.23, "other": 4.02}},
    "claim": "generated extractors are more effective than independent or multi-task ones",
}
MIXTURE = "mixture"


@torch.no_grad()
def separate(model: torch.nn.Module, mixture: torch.Tensor, sr: int | None = None,
             max_seconds: float = 30.0) -> torch.Tensor:
    """Separate a mixture ``(channels, time)`` into ``(K, channels, time)`` at its rate ``sr``,
    one of the stages' rates (default: the last stage's, which gives the final estimate).

    Each channel goes through every stage at that stage's rate; the estimate of the stage at
    ``sr`` is the answer. Songs longer than ``max_seconds`` go through in pieces of that length.
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
    channels = []
    for wave in wave_at_last:
        length = wave.shape[-1]
        wave = torch.nn.functional.pad(wave, (0, -length % ratio))  # every rate's length exact
        parts = []
        for start in range(0, wave.shape[-1], piece):
            mixes = [m[None, None] for m in at_rates(wave[start:start + piece], rates[-1], rates)]
            parts.append(model(mixes)[rates.index(sr)][0, :, 0])
        channels.append(torch.cat(parts, dim=-1))
    out = torch.stack(channels, dim=1)
    return out[..., : mixture.shape[-1]]


def song_rows(estimates: torch.Tensor, track: Track, sr: int, variant: str, seed: int | None,
              silence: float = 1e-6) -> list[dict]:
    """SDR (BSS Eval v4, median over 1 s frames) and SI-SDR (whole song) per source of one song.

    museval skips a frame in which a target is exactly zero; a frame in which it is nearly zero
    (mean power below ``silence``, as in the loss) would score some -300 dB and is skipped too.
    """
    sdr = metrics.bss_eval(track.sources, estimates, sr)["SDR"]
    frames = track.sources[:, 0, : sdr.shape[1] * sr].reshape(len(sdr), -1, sr)
    sdr[(frames ** 2).mean(-1).numpy() < silence] = np.nan
    si = metrics.si_sdr(estimates[:, 0], track.sources[:, 0])
    values = {}
    for k, name in enumerate(track.source_names):
        frames = sdr[k][np.isfinite(sdr[k])]
        values[name] = {"SDR": float(np.median(frames)) if frames.size else float("nan"),
                        "SI-SDR": float(si[k])}
    return report.rows_for(values, variant=variant, seed=seed, song=track.name, domain=track.domain)


def evaluate(cfg: Mapping[str, Any], models: Mapping[tuple[str, int], torch.nn.Module],
             tracks: Sequence[Track]) -> list[dict]:
    """Rows (variant, seed, song, domain, source, metric, value) for every model and test song."""
    rows = []
    for (variant, seed), model in models.items():
        for track in tracks:
            rows += song_rows(separate(model, track.mixture), track, cfg["stages"][-1], variant, seed)
    return rows


def mixture_rows(cfg: Mapping[str, Any], tracks: Sequence[Track]) -> list[dict]:
    """The unprocessed mixture as every source's estimate: where the systems start from."""
    rows = []
    for track in tracks:
        estimates = track.mixture[None].expand_as(track.sources)
        rows += song_rows(estimates, track, cfg["stages"][-1], MIXTURE, None)
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
        optimizer.zero_grad(set_to_none=True)
        stage_loss(model, batch)[0].backward()
        optimizer.step()
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
    order = [MIXTURE, *VARIANTS]
    if metric != "SDR":
        return report.table(table, "variant", ["source"], index_order=order, column_order=[SOURCES])
    paper = {(v, s): PAPER["SDR"][v][s] for v in ("meta",) for s in SOURCES}
    ours = report.paper_table(table, "variant", ["source"], paper, profile, index_order=order,
                              column_order=[SOURCES])
    ours.loc["Open-Unmix (paper only)"] = [PAPER["SDR"]["Open-Unmix"][s] if who == "paper" else "–"
                                           for s, who in ours.columns]
    return ours


def cost_table(rows):
    """Parameters, seconds per training step and peak memory the steps add, per system."""
    import pandas as pd

    table = report.frame(rows)
    cost = table[table.domain == "cost"].pivot(index="variant", columns="metric", values="value")
    cost = cost.reindex(list(VARIANTS))
    return pd.DataFrame({"parameters": cost["parameters"].map(lambda v: f"{int(v):,}"),
                         "s / step (1 thread)": cost["step seconds"].map(lambda v: f"{v:.2f}"),
                         "peak MiB": cost["peak MiB"].map(lambda v: f"{v:.0f}")})


#: The systems the paper says generated extractors beat.
BASELINES: tuple[str, ...] = ("independent", "multi-task")


def claim_gains(rows, metric: str = "SI-SDR") -> dict:
    """Meta minus each of :data:`BASELINES` in ``metric``, averaged over stems, seed by seed on the
    same songs: per baseline, a row of :func:`sepbook.report.gains` (mean, std, wins, seeds)."""
    table = over_songs(rows)
    table = table[(table.metric == metric) & table.variant.isin(VARIANTS)]
    return {baseline: report.gains(table, "meta", baseline).iloc[0] for baseline in BASELINES}


def versus_baselines(rows, profile: str, metric: str = "SI-SDR") -> dict[str, str]:
    """Meta against independent and against multi-task, averaged over
    stems, seed by seed on the same songs (the numbers of :func:`claim_gains`)."""
    return {baseline: report.describe(gain, "meta", f"{baseline} model", metric, "averaged over the four stems",
                                     profile)
            for baseline, gain in claim_gains(rows, metric).items()}


@torch.no_grad()
def polarity_table(models: Mapping[str, torch.nn.Module], tracks: Sequence[Track]):
    """For each system and stem, on how many of ``tracks`` the estimate comes out upside down
    (negatively correlated with the true stem): SI-SDR cannot see this, BSS Eval v4 SDR can."""
    import pandas as pd

    counts = {}
    for variant, model in models.items():
        inverted = np.zeros(len(SOURCES), int)
        for track in tracks:
            estimates = separate(model, track.mixture)
            inverted += ((estimates * track.sources).sum(dim=(1, 2)) < 0).numpy()
        counts[variant] = {name: f"{n} of {len(tracks)}" for name, n in zip(track.source_names, inverted)}
    return pd.DataFrame(counts).T
