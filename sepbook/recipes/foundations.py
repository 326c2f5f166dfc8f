"""The Foundations experiment: a BLSTM mask estimator against the unprocessed mixture and the
oracle masks, on the synthetic MUSDB18-HQ corpus.

Each step is a function the notebook calls in turn; :func:`run` calls them all (the tests run it at
``tiny`` size, the benchmarks at ``book`` size).

Chapter: foundations/first_separator
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from sepbook import metrics, profiles
from sepbook.audio import resample
from sepbook.datasets import SongDataset, step_batches
from sepbook.masks import ORACLE_KINDS as ORACLES, oracle_separation
from sepbook.models.blstm import MaskSeparator, blstm_separator, magnitude_loss
from sepbook.train import fit, pick_device, seed_everything


@dataclass
class Track:
    """One evaluation song: ``mixture`` ``(1, time)`` and ``sources`` ``(K, 1, time)``, mono at the recipe's rate."""

    name: str
    mixture: torch.Tensor
    sources: torch.Tensor


def load_tracks(cfg: dict, subset: str) -> list[Track]:
    """Read the ``subset`` ('train' or 'test') of the MUSDB18-HQ corpus through ``musdb``; mono, at ``cfg['sr']``.

    The synthetic corpus for ``tiny`` and ``book``; the real MUSDB18-HQ from ``$MUSDB_PATH`` for ``paper``.
    """
    from sepbook.corpora import musdb_synth
    from sepbook.layouts import musdb_track_arrays, open_musdb

    if cfg.get("dataset") == "musdb18hq":
        if not os.environ.get("MUSDB_PATH"):
            raise FileNotFoundError("the paper profile reads the real MUSDB18-HQ: set $MUSDB_PATH to its folder "
                                    "(the one holding train/ and test/)")
        db = open_musdb(os.environ["MUSDB_PATH"], subsets=subset)
    else:
        db = open_musdb(musdb_synth(cfg), subsets=subset)
    tracks = []
    for track in db:
        _, sources, sr = musdb_track_arrays(track, cfg["sources"])
        sources = resample(sources.mean(axis=-2, keepdims=True), sr, cfg["sr"]).astype(np.float32)
        # re-sum after resampling so that mixture == sum of sources holds exactly
        sources = torch.from_numpy(sources)
        tracks.append(Track(track.name, sources.sum(0), sources))
    return tracks


def split_validation(tracks: Sequence[Track], fraction: float = 0.1) -> tuple[list[Track], list[Track]]:
    """Hold out the last ``fraction`` of the training songs (at least one) to monitor training."""
    n_valid = max(1, int(round(len(tracks) * fraction)))
    if n_valid >= len(tracks):
        raise ValueError(f"tracks: need at least 2 training songs to hold one out, got {len(tracks)}")
    return list(tracks[:-n_valid]), list(tracks[-n_valid:])


def training_set(tracks: Sequence[Track], cfg: dict, seed: int) -> SongDataset:
    """Random coherent segments of the training songs (``cfg['segment_seconds']`` long)."""
    songs = [{name: t.sources[k] for k, name in enumerate(cfg["sources"])} for t in tracks]
    return SongDataset(songs, cfg["sources"], cfg["sr"], segment_seconds=cfg["segment_seconds"],
                       length=cfg["steps"] * cfg["batch_size"], seed=seed, coherent=True,
                       track_names=[t.name for t in tracks])


def build_model(cfg: dict) -> MaskSeparator:
    """The Foundations BLSTM separator at the profile's size."""
    return blstm_separator(len(cfg["sources"]), cfg["n_fft"], cfg["hop"], hidden=cfg["hidden"], layers=cfg["layers"])


@torch.no_grad()
def separate(model: torch.nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """Run a waveform separator on one mixture ``(channels, time)``; returns ``(K, channels, time)`` on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return model(mixture.unsqueeze(0).to(device))[0].float().cpu()


def si_sdr_rows(estimate_fn: Callable[[Track], torch.Tensor], tracks: Sequence[Track], cfg: dict,
                method: str) -> list[dict]:
    """One row per track and source: SI-SDR of ``estimate_fn(track)`` and its improvement over the mixture."""
    rows = []
    for track in tracks:
        estimates = estimate_fn(track)
        score = metrics.si_sdr(estimates, track.sources).squeeze(-1)
        gain = metrics.si_sdr_improvement(estimates, track.sources, track.mixture).squeeze(-1)
        for k, name in enumerate(cfg["sources"]):
            rows.append({"method": method, "track": track.name, "source": name,
                         "SI-SDR": float(score[k]), "SI-SDRi": float(gain[k])})
    return rows


def oracle_fn(kind: str, cfg: dict) -> Callable[[Track], torch.Tensor]:
    """The oracle separation of kind ``kind`` as an ``estimate_fn`` for :func:`si_sdr_rows`."""
    if kind not in ORACLES:
        raise ValueError(f"kind={kind!r}: expected one of {ORACLES}")
    return lambda track: oracle_separation(track.mixture, track.sources, kind=kind, n_fft=cfg["n_fft"], hop=cfg["hop"])


def mixture_fn(track: Track) -> torch.Tensor:
    """The do-nothing baseline: every source estimated as the mixture itself."""
    return track.mixture.expand_as(track.sources)


def train_blstm(cfg: dict, train_tracks: Sequence[Track], valid_tracks: Sequence[Track], seed: int = 0,
                checkpoint: str | Path | None = None, progress: bool = True, **fit_options):
    """Train the BLSTM for ``cfg['steps']`` steps; returns ``(model, history)``, the model on the CPU in eval mode.

    Validation reports the mean SI-SDRi over ``valid_tracks`` every ``cfg['valid_every']`` steps.
    """
    seed_everything(seed)
    model = build_model(cfg)
    data = training_set(train_tracks, cfg, seed)

    def valid_fn(m):
        rows = si_sdr_rows(partial(_separate_track, m), valid_tracks, cfg, "BLSTM")
        return {"valid SI-SDRi": float(np.mean([r["SI-SDRi"] for r in rows]))}

    history = fit(model, magnitude_loss, partial(step_batches, data, cfg["batch_size"], seed),
                  steps=cfg["steps"], lr=cfg["lr"], seed=seed, valid_fn=valid_fn, valid_every=cfg["valid_every"],
                  checkpoint=checkpoint, progress=progress, **fit_options)
    return model.cpu().eval(), history


def _separate_track(model: torch.nn.Module, track: Track) -> torch.Tensor:
    return separate(model, track.mixture)


def bss_eval_rows(estimate_fn: Callable[[Track], torch.Tensor], tracks: Sequence[Track], cfg: dict,
                  method: str) -> list[dict]:
    """BSS Eval v4 (museval): median over 1 s frames per track, then median over tracks, per source."""
    per_track = [metrics.bss_eval(t.sources, estimate_fn(t), cfg["sr"]) for t in tracks]
    summary = metrics.bss_eval_summary(per_track, cfg["sources"])
    return [{"method": method, "source": name, **values} for name, values in summary.items()]


def run(profile: str | None = None, seeds: Sequence[int] | None = None, progress: bool = False,
        **overrides) -> dict:
    """The whole experiment: returns SI-SDR rows for the mixture, every oracle and the BLSTM (one per seed).

    ``overrides`` replace individual settings of the profile (the tests shrink ``steps`` this way).
    """
    cfg = profiles.settings("foundations", profile)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"overrides: unknown settings {sorted(unknown)}; expected some of {sorted(cfg)}")
    cfg.update(overrides)
    device = pick_device()
    train_valid, test = load_tracks(cfg, "train"), load_tracks(cfg, "test")
    train, valid = split_validation(train_valid)
    rows = si_sdr_rows(mixture_fn, test, cfg, "mixture")
    for kind in ORACLES:
        rows += si_sdr_rows(oracle_fn(kind, cfg), test, cfg, f"oracle {kind.upper()}")
    histories = {}
    for seed in seeds if seeds is not None else cfg["seeds"]:
        model, histories[seed] = train_blstm(cfg, train, valid, seed=seed, progress=progress, device=device)
        rows += [dict(r, seed=seed) for r in si_sdr_rows(partial(_separate_track, model), test, cfg, "BLSTM")]
    return {"profile": cfg["profile"], "rows": rows, "histories": histories}


def summarise(rows: Sequence[dict], value: str = "SI-SDRi"):
    """Mean of ``value`` over tracks and sources per method (and per seed), then mean and std over seeds.

    The std is the population std over seeds (as in the adversarial chapter); NaN with a single seed.
    """
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if "seed" not in frame:
        frame["seed"] = 0
    frame["seed"] = frame["seed"].fillna(0)
    per_seed = frame.groupby(["method", "seed"])[value].mean()
    return per_seed.groupby("method").agg(
        mean="mean", std=lambda v: v.std(ddof=0) if len(v) > 1 else float("nan"), seeds="count")
