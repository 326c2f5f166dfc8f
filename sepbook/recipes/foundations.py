"""The Foundations experiment: a BLSTM mask estimator against the unprocessed mixture and the
oracle masks, on the synthetic MUSDB18-HQ corpus.

The recipe contract, the same in every chapter: :func:`config`, :func:`data`, :func:`build`,
:func:`train`, :func:`evaluate`, :func:`separate`, :func:`runs` and :data:`PAPER`; the notebook
calls the pieces in turn and ``python -m sepbook.results foundations`` runs them all.

Chapter: foundations/first_separator
"""
from __future__ import annotations

import os
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import torch

from sepbook import metrics
from sepbook.data import profiles
from sepbook.data.datasets import SongDataset, step_batches
from sepbook.data.soundfonts import HELD_OUT_FONT
from sepbook.experiments import report
from sepbook.experiments.train import fit, seed_everything
from sepbook.losses.masking import magnitude_loss
from sepbook.masks import ORACLE_KINDS as ORACLES
from sepbook.masks import oracle_separation
from sepbook.models.blstm import MaskSeparator, blstm_separator
from sepbook.recipes import Paper, each_channel
from sepbook.recipes import from_scratch as requires  # noqa: F401 (the recipe contract's requires)
from sepbook.tracks import Splits, Track, hold_out, hold_out_last, track_from_stems

CHAPTER = "foundations"
VARIANTS: tuple[str, ...] = ("BLSTM",)
#: Foundations follows no single paper: the reference points are the mixture and the oracle masks.
PAPER = Paper(
    source="no paper: the BLSTM is compared with the oracle masks on the same songs",
    numbers={
        "table": {},
    })


def config(profile: str | None = None, **overrides: Any) -> dict:
    """The chapter's settings for ``profile`` with ``overrides``; bad values raise ``ValueError``."""
    return profiles.settings(CHAPTER, profile, **overrides)


def data(cfg: dict) -> Splits:
    """The corpus's training songs (the last tenth held out for validation; the real MUSDB18-HQ holds
    out musdb's own validation songs) and its test songs."""
    from sepbook.data.layouts import musdb_validation_names

    songs = load_tracks(cfg, "train")
    if cfg.get("dataset") == "musdb18hq":
        train, valid = hold_out(songs, musdb_validation_names(), f"{os.environ['MUSDB_PATH']}/train")
    else:
        train, valid = split_validation(songs)
    return Splits(train, valid, load_tracks(cfg, "test"))


def test_tracks(cfg: dict) -> list[Track]:
    """Only the test songs (what checking committed results needs), without the training songs."""
    return load_tracks(cfg, "test")


def runs(cfg: dict) -> list[tuple[str, int]]:
    """Every (variant, seed) the experiment trains: the BLSTM once per seed."""
    return [("BLSTM", seed) for seed in cfg["seeds"]]


def load_tracks(cfg: dict, subset: str) -> list[Track]:
    """Read the ``subset`` ('train' or 'test') of the MUSDB18-HQ corpus through ``musdb``; mono, at ``cfg['sr']``.

    The synthetic corpus for ``tiny`` and ``book``; the real MUSDB18-HQ from ``$MUSDB_PATH`` for ``paper``.
    """
    from sepbook.data.corpora import musdb_synth
    from sepbook.data.layouts import read_musdb

    if cfg.get("dataset") == "musdb18hq":
        if not os.environ.get("MUSDB_PATH"):
            raise FileNotFoundError("the paper profile reads the real MUSDB18-HQ: set $MUSDB_PATH to its folder "
                                    "(the one holding train/ and test/)")
        root = os.environ["MUSDB_PATH"]
    else:
        root = musdb_synth(cfg)
    return read_musdb(root, subset, cfg["sources"], cfg["sr"])


def split_validation(tracks: Sequence[Track], fraction: float = 0.1) -> tuple[list[Track], list[Track]]:
    """Hold out the last ``fraction`` of the training songs (at least one) to monitor training."""
    if len(tracks) < 2:
        raise ValueError(f"tracks: need at least 2 training songs to hold one out, got {len(tracks)}")
    return hold_out_last(tracks, max(1, int(round(len(tracks) * fraction))))


def training_set(tracks: Sequence[Track], cfg: dict, seed: int) -> SongDataset:
    """Random coherent segments of the training songs (``cfg['segment_seconds']`` long)."""
    songs = [{name: t.sources[k] for k, name in enumerate(cfg["sources"])} for t in tracks]
    return SongDataset(songs, cfg["sources"], cfg["sr"], segment_seconds=cfg["segment_seconds"],
                       length=cfg["steps"] * cfg["batch_size"], seed=seed, coherent=True,
                       track_names=[t.name for t in tracks], equalise_db=cfg.get("equalise_db"),
                       skip_short=cfg.get("dataset") != "musdb18hq")


def build(cfg: dict, variant: str = "BLSTM") -> MaskSeparator:
    """The Foundations BLSTM separator at the profile's size."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    return blstm_separator(len(cfg["sources"]), cfg["n_fft"], cfg["hop"], hidden=cfg["hidden"], layers=cfg["layers"])


@torch.no_grad()
def separate(model: torch.nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """Run the mono separator on each channel of a mixture ``(channels, time)``; returns
    ``(K, channels, time)`` on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return each_channel(lambda wave: model(wave[None, None].to(device))[0, :, 0].float().cpu(), mixture)


def si_sdr_rows(estimate_fn: Callable[[Track], torch.Tensor], tracks: Sequence[Track], cfg: dict,
                variant: str, seed: int | None = None) -> list[dict]:
    """Report rows: SI-SDR of ``estimate_fn(track)`` and its improvement over the mixture, per song and source."""
    rows = []
    for track in tracks:
        estimates = estimate_fn(track)
        score = metrics.si_sdr(estimates, track.sources).squeeze(-1)
        gain = metrics.si_sdr_improvement(estimates, track.sources, track.mixture).squeeze(-1)
        values = {name: {"SI-SDR": float(score[k]), "SI-SDRi": float(gain[k])}
                  for k, name in enumerate(cfg["sources"])}
        rows += report.rows_for(values, variant=variant, seed=seed, song=track.name, domain=track.domain)
    return rows


def evaluate(cfg: dict, models: dict, tracks: Sequence[Track]) -> list[dict]:
    """SI-SDR rows of every ``(variant, seed) -> model`` on ``tracks``."""
    rows = []
    for (variant, seed), model in models.items():
        rows += si_sdr_rows(partial(_separate_track, model), tracks, cfg, variant, seed)
    return rows


def reference_rows(cfg: dict, tracks: Sequence[Track]) -> list[dict]:
    """The same rows for the unprocessed mixture and every oracle mask (no seed: nothing is trained)."""
    rows = si_sdr_rows(mixture_fn, tracks, cfg, "mixture")
    for kind in ORACLES:
        rows += si_sdr_rows(oracle_fn(kind, cfg), tracks, cfg, f"oracle {kind.upper()}")
    return rows


def oracle_fn(kind: str, cfg: dict) -> Callable[[Track], torch.Tensor]:
    """The oracle separation of kind ``kind`` as an ``estimate_fn`` for :func:`si_sdr_rows`."""
    if kind not in ORACLES:
        raise ValueError(f"kind={kind!r}: expected one of {ORACLES}")
    return lambda track: oracle_separation(track.mixture, track.sources, kind=kind, n_fft=cfg["n_fft"], hop=cfg["hop"])


def mixture_fn(track: Track) -> torch.Tensor:
    """The do-nothing baseline: every source estimated as the mixture itself."""
    return track.mixture_as_estimates()


def train(cfg: dict, splits: Splits, variant: str = "BLSTM", seed: int = 0, model: torch.nn.Module | None = None,
          **options):
    """Train the BLSTM for ``cfg['steps']`` steps; -> ``(model, history)``, the model on the CPU in eval mode.

    Validation reports the mean SI-SDRi over the validation songs every ``cfg['valid_every']``
    steps, and the weights of the best validation are kept. Pass ``model`` to train a modified
    separator instead of :func:`build`'s. ``options`` go to :func:`sepbook.experiments.train.fit`.
    """
    seed_everything(seed)
    model = model if model is not None else build(cfg, variant)
    segments = training_set(splits.train, cfg, seed)

    def valid_fn(m):
        rows = si_sdr_rows(partial(_separate_track, m), splits.valid, cfg, variant)
        return {"valid SI-SDRi": float(np.mean([r["value"] for r in rows if r["metric"] == "SI-SDRi"]))}

    options.setdefault("label", f"{variant} seed {seed}")
    history = fit(model, magnitude_loss, partial(step_batches, segments, cfg["batch_size"], seed),
                  steps=cfg["steps"], lr=cfg["lr"], seed=seed, valid_fn=valid_fn, valid_every=cfg["valid_every"],
                  keep_best=("valid SI-SDRi", "max"), **options)
    return model.cpu().eval(), history


def _separate_track(model: torch.nn.Module, track: Track) -> torch.Tensor:
    return separate(model, track.mixture)


def bss_eval_rows(estimate_fn: Callable[[Track], torch.Tensor], tracks: Sequence[Track], cfg: dict,
                  method: str) -> list[dict]:
    """BSS Eval v4 (museval): median over 1 s frames per track, then median over tracks, per source."""
    per_track = [metrics.bss_eval(t.sources, estimate_fn(t), cfg["sr"]) for t in tracks]
    summary = metrics.bss_eval_summary(per_track, cfg["sources"])
    return [{"method": method, "source": name, **values} for name, values in summary.items()]


# ---------------------------------------------------------------------------- carry-over (synthesiser page)

def rendered_test_tracks(cfg: dict, fonts: Sequence[str] | None) -> list[Track]:
    """The test songs' scores (same seeds and styles) played by ``fonts`` (``None``: the additive
    models), grouped into ``cfg['sources']``; mono ``Track``s at ``cfg['sr']``."""
    from sepbook.data.corpora import TEST_SEED, synth_songs

    songs = synth_songs(cfg["n_test"], TEST_SEED, cfg["song_seconds"], cfg["sr"], fonts)
    return [track_from_stems(song.name, song.grouped(cfg["sources"]), cfg["sources"], song.meta["style"])
            for song in songs]


def carry_over(cfg: dict, models: dict):
    """SI-SDRi (dB) of ``models`` and of the oracle IRM on the test scores played three ways (by
    ``cfg['fonts']``, by the SoundFont no model heard, by the additive models), and the share of
    the oracle's gain each model keeps: ``(rendering, variant)`` rows, columns
    ``SI-SDRi`` and ``share of oracle IRM`` (means over songs, sources and seeds)."""
    import pandas as pd

    renderings = {"the book's fonts": cfg["fonts"], f"unheard font ({HELD_OUT_FONT})": (HELD_OUT_FONT,),
                  "additive models": None}
    rows = []
    for rendering, fonts in renderings.items():
        tracks = rendered_test_tracks(cfg, fonts)
        found = evaluate(cfg, models, tracks) + si_sdr_rows(oracle_fn("irm", cfg), tracks, cfg, "oracle IRM")
        rows += [dict(r, rendering=rendering) for r in found if r["metric"] == "SI-SDRi"]
    table = pd.DataFrame(rows).groupby(["rendering", "variant"], sort=False)["value"].mean()
    oracle = table.xs("oracle IRM", level="variant")
    share = table / oracle.reindex(table.index.get_level_values("rendering")).to_numpy()
    return pd.DataFrame({"SI-SDRi": table, "share of oracle IRM": share})
