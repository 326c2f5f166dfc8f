"""Separating whole songs and scoring them like the paper: BSS Eval v4 SDR (median over 1 s
frames for each song; the tables take the median over songs) and SI-SDR per stem, for the three
systems and the unprocessed mixture; and the cost side: parameters, training-step time and peak
memory of each system, measured on this machine in the run that made the results.

The paper's numbers, the tables and the sentences of the page are in
:mod:`sepbook.recipes.metatasnet.page`.

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
from sepbook.recipes.metatasnet.data import at_rates
from sepbook.recipes.metatasnet.training import build, parameters, stage_loss
from sepbook.tracks import Track

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


