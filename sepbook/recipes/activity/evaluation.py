"""Separating whole songs three ways -- unweighted, weighted by the network's own detector, weighted
by the true activity (the oracle) -- and scoring them so that what the weighting does shows.

Every system of the 2 x 2 design ({residual U-Net, BLSTM} x {with, without an activity head}) is
scored unweighted and with the oracle weighting; the two with a head also with their detector,
at the weighting setting (hard threshold and median length, or soft) their *validation* songs
chose. Four scores per song and instrument:

- ``SDR``: the whole song's signal-to-distortion ratio, ``10 log10(|s|^2 / |s - s_hat|^2)``. An
  estimate that silences an active instrument scores 0 dB there: penalised, never dropped.
- ``framewise SDR`` and ``SIR``: BSS Eval v4 (museval) over 1 s frames, the median over the frames
  it can score (the paper's metric). It skips every frame in which any instrument is silent.
- ``leakage``: the energy an estimate puts into the frames where its instrument is silent, in dB
  relative to the instrument's own energy (:func:`sepbook.instrument_activity.leakage_db`): what the
  weighting is meant to remove.

The paper's numbers, the tables and the sentences of the page are in
:mod:`sepbook.recipes.activity.page`.

Chapter: activity/activity_aware
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook import metrics
from sepbook.audio import front_end, n_bins
from sepbook.data import profiles
from sepbook.experiments import report
from sepbook.instrument_activity import activity_weights, leakage_db, median_filter, weight_masks
from sepbook.masks import oracle_separation
from sepbook.recipes import each_channel
from sepbook.recipes.activity.data import load_tracks, validation_songs
from sepbook.recipes.activity.training import DETECTORS, MODELS, PARTS, masks_and_logits
from sepbook.tracks import Track

WEIGHTINGS: tuple[str, ...] = ("unweighted", "detector", "oracle")
SCORES: tuple[str, ...] = ("SDR", "framewise SDR", "SIR", "leakage")
#: BSS Eval's frames, as in SiSEC and the paper.
FRAME_SECONDS = 1.0


def row_name(model: str, weighting: str) -> str:
    """The rows' name of ``model`` scored with ``weighting``: a system with a detector is named
    for its weighted output ('IASS'), a system without one for its only output ('BLSTM')."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {list(WEIGHTINGS)}, got {weighting!r}")
    if weighting == "oracle":
        return f"{model} oracle"
    if weighting == "unweighted" and model in DETECTORS:
        return f"{model} unweighted"
    return model


UNWEIGHTED = row_name("IASS", "unweighted")
#: Every row name, in the order of the tables: the two networks, each without then with a head.
SYSTEMS: tuple[str, ...] = tuple(dict.fromkeys(
    row_name(m, w) for m in ("BLSTM", "BLSTM + head", "U-Net", "IASS") for w in WEIGHTINGS
    if w != "detector" or m in DETECTORS))


# ----------------------------------------------------------------------------- separating


@torch.no_grad()
def song_masks(model: torch.nn.Module, magnitude: torch.Tensor, max_frames: int = 4096
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Masks ``(K, F, T)`` of a whole song's magnitude ``(F, T)`` and, for a network with a head,
    activity probabilities ``(K, T)``. Songs longer than ``max_frames`` go through in pieces of that
    many frames, so that a full-length song at the ``paper`` size fits in memory."""
    model.eval()
    device = next(model.parameters()).device
    masks, probabilities = [], []
    for start in range(0, magnitude.shape[-1], max_frames):
        piece, logits = masks_and_logits(model, magnitude[None, None, :, start:start + max_frames].to(device))
        masks.append(piece[0].float().cpu())
        probabilities.append(None if logits is None else torch.sigmoid(logits[0]).float().cpu())
    if probabilities[0] is None:
        return torch.cat(masks, dim=-1), None
    return torch.cat(masks, dim=-1), torch.cat(probabilities, dim=-1)


def weights_for(probabilities: torch.Tensor, setting: Mapping[str, Any]) -> torch.Tensor:
    """Frame weights ``(K, T)`` from activity ``probabilities`` at one weighting ``setting``: hard
    (``threshold``, then the median filter) or, with ``soft``, the median-filtered probability."""
    if setting["soft"]:
        return median_filter(probabilities, setting["median_frames"])
    return activity_weights(probabilities, setting["threshold"], setting["median_frames"])


def hard(threshold: float, median_frames: int) -> dict[str, Any]:
    """A hard weighting setting (binarise at ``threshold``, then the median filter), as
    :func:`weights_for` takes it."""
    return {"threshold": threshold, "median_frames": median_frames, "soft": False}


def describe(setting: Mapping[str, Any]) -> str:
    """``'threshold 0.50, median 15 frames'`` or ``'soft, median 7 frames'``."""
    kind = "soft" if setting["soft"] else f"threshold {setting['threshold']:.2f}"
    return f"{kind}, median {int(setting['median_frames'])} frames"


def settings_grid(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every weighting setting validation chooses from: each threshold with each median length, and
    the soft weighting with each median length."""
    hards = [hard(t, m) for t in cfg["thresholds"] for m in cfg["medians"]]
    return hards + [{"threshold": math.nan, "median_frames": m, "soft": True} for m in cfg["medians"]]


class Separation:
    """One song through one network: its STFT, masks and (with a head) activity probabilities;
    :meth:`estimates` inverts the masks with the mixture's phase, weighted by frame weights or not."""

    def __init__(self, model: torch.nn.Module, wave: torch.Tensor) -> None:
        self.stft = front_end(model.settings)
        self.length = wave.shape[-1]
        self.spec = self.stft(wave)                                            # (n_fft / 2 + 1, frames)
        self.masks, self.probabilities = song_masks(model, self.spec[: n_bins(model.settings)].abs())

    def estimates(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``(K, time)``; ``weights`` ``(K, frames)`` multiply each instrument's mask frame by frame."""
        masks = self.masks if weights is None else weight_masks(self.masks, weights)
        full = torch.nn.functional.pad(masks, (0, 0, 0, 1))                    # the Nyquist bin gets mask 0
        return self.stft.inverse(full * self.spec, self.length)


def separate(model: torch.nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """Separate a mixture ``(channels, time)`` into ``(K, channels, time)`` as the chapter scores
    it: weighted by the activity a head detects, at the setting the model carries."""
    return separate_weighted(model, mixture)


def separate_weighted(model: torch.nn.Module, mixture: torch.Tensor, weighted: bool = True,
                      threshold: float | None = None, median_frames: int | None = None) -> torch.Tensor:
    """Separate a mixture ``(channels, time)`` into ``(K, channels, time)`` with the mixture's phase.

    A network with a head and ``weighted=True`` multiplies every mask frame by its binarised,
    median-filtered activity (``threshold`` and ``median_frames`` default to the model's setting).
    """
    setting = hard(model.settings["threshold"] if threshold is None else threshold,
                   model.settings["median_frames"] if median_frames is None else median_frames)

    def separate_one(wave):
        song = Separation(model, wave)
        use = weighted and song.probabilities is not None
        return song.estimates(weights_for(song.probabilities, setting) if use else None)

    return each_channel(separate_one, mixture)


# ----------------------------------------------------------------------------- choosing on validation


def choose_weighting(cfg: Mapping[str, Any], model: torch.nn.Module, songs: Sequence[Track]) -> dict[str, Any]:
    """The weighting setting of :func:`settings_grid` with the best mean SDR over the instruments of
    ``songs`` (validation songs: the test songs never choose); ties go to the earlier setting."""
    separations = [Separation(model, song.mixture[0]) for song in songs]
    if separations[0].probabilities is None:
        raise ValueError("model: expected a network with an activity head; it has no detector to weight with")
    best, best_score = None, -math.inf
    for setting in settings_grid(cfg):
        scores = [metrics.sdr(s.estimates(weights_for(s.probabilities, setting)), song.sources[:, 0])
                  for s, song in zip(separations, songs)]
        score = float(np.nanmean(torch.stack(scores).numpy()))
        if score > best_score:
            best, best_score = setting, score
    return best


_VALIDATION: dict[tuple[str, str], list[Track]] = {}


def validation_tracks(cfg: Mapping[str, Any], dataset: str) -> list[Track]:
    """The validation songs of ``dataset`` (those training held out), read once per setting."""
    key = (profiles.digest(cfg), dataset)
    if key not in _VALIDATION:
        _VALIDATION[key] = validation_songs(cfg, load_tracks(cfg, dataset, "train"))
    return _VALIDATION[key]


# ----------------------------------------------------------------------------- scoring


def score_rows(estimates: torch.Tensor, track: Track, cfg: Mapping[str, Any], variant: str,
               seed: int | None) -> list[dict]:
    """The four :data:`SCORES` of ``estimates`` ``(K, time)`` of a mono ``track``, per instrument."""
    references = track.sources[:, 0]
    sdr = metrics.sdr(estimates, references)
    framed = metrics.bss_eval(references, estimates, cfg["sr"], window_seconds=FRAME_SECONDS)
    stft = front_end(cfg)
    leak = leakage_db(stft(estimates).abs(), stft(references).abs(), track.activity)
    values = {}
    for k, name in enumerate(track.source_names):
        scored = np.isfinite(framed["SDR"][k])
        values[name] = {"SDR": float(sdr[k]), "leakage": float(leak[k]),
                        "framewise SDR": float(np.median(framed["SDR"][k][scored])) if scored.any() else math.nan,
                        "SIR": float(np.median(framed["SIR"][k][scored])) if scored.any() else math.nan}
    return report.rows_for(values, variant=variant, seed=seed, song=track.name, domain=track.domain)


def detection_scores(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Frame accuracy and F1 per instrument of 0/1 ``predicted`` against ``labels``, both ``(K, T)``.

    F1 is NaN for an instrument that is silent in the labels and never predicted: there is no
    active frame to find, so neither a hit nor a miss."""
    predicted, labels = predicted.bool(), labels.bool()
    true_positive = (predicted & labels).sum(-1).double()
    precision = true_positive / predicted.sum(-1).clamp(min=1)
    recall = true_positive / labels.sum(-1).clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(precision))
    f1[~predicted.any(-1) & ~labels.any(-1)] = float("nan")
    return {"accuracy": (predicted == labels).double().mean(-1).numpy(), "F1": f1.numpy()}


def activity_rows(weights: torch.Tensor, track: Track, variant: str, seed: int | None) -> list[dict]:
    """Activity-detection accuracy and F1 on ``track`` of frame ``weights`` ``(K, T)`` (read as
    active where the weight is at least one half)."""
    scores = detection_scores(weights >= 0.5, track.activity)
    values = {name: {f"activity {m}": float(scores[m][k]) for m in scores} for k, name in enumerate(track.source_names)}
    return report.rows_for(values, variant=variant, seed=seed, song=track.name, domain=track.domain)


def setting_rows(setting: Mapping[str, Any], variant: str, seed: int | None, dataset: str) -> list[dict]:
    """The chosen weighting setting as rows (song ``'<set> validation songs'``, source 'all'; the set
    is in the song's name so that the two sets' rows never share a key)."""
    values = {"all": {"weighting threshold": setting["threshold"], "weighting median frames": setting["median_frames"],
                      "weighting soft": float(setting["soft"])}}
    return report.rows_for(values, variant=variant, seed=seed, song=f"{dataset} validation songs", domain=dataset)


def _settings(rows):
    rows = report.frame(rows)
    return rows[rows["metric"].str.startswith("weighting ")]


def evaluate(cfg: Mapping[str, Any], models: Mapping[tuple[str, int], torch.nn.Module],
             tracks: Sequence[Track]) -> list[dict]:
    """Rows of every ``(variant, seed) -> model`` on the test songs of its set: each system
    unweighted and oracle-weighted, a system with a head also weighted by its detector at the
    setting its validation songs chose, plus that detector's accuracy."""
    rows, settings = [], {}
    for (variant, seed), model in models.items():
        name, dataset = PARTS[variant]
        if name in DETECTORS:
            settings[variant, seed] = choose_weighting(cfg, model, validation_tracks(cfg, dataset))
            rows += setting_rows(settings[variant, seed], name, seed, dataset)
    # song by song, so that the models scored against one song share its BSS Eval reference solve
    for track in tracks:
        for (variant, seed), model in models.items():
            name, dataset = PARTS[variant]
            if track.domain != dataset:
                continue
            song = Separation(model, track.mixture[0])
            rows += score_rows(song.estimates(), track, cfg, row_name(name, "unweighted"), seed)
            oracle = track.activity.float()
            rows += score_rows(song.estimates(oracle), track, cfg, row_name(name, "oracle"), seed)
            if (variant, seed) in settings:
                weights = weights_for(song.probabilities, settings[variant, seed])
                rows += score_rows(song.estimates(weights), track, cfg, row_name(name, "detector"), seed)
                rows += activity_rows(weights, track, name, seed)
    return rows


def reference_rows(cfg: Mapping[str, Any], tracks: Sequence[Track]) -> list[dict]:
    """Rows that need no training: the ideal binary mask and the mixture itself (the input), scored
    like the systems, and the fraction of silent frames of every instrument (variant 'labels')."""
    rows = []
    for track in tracks:
        ibm = oracle_separation(track.mixture, track.sources, kind="ibm", n_fft=cfg["n_fft"], hop=cfg["hop"])
        rows += score_rows(ibm[:, 0], track, cfg, "IBM", None)
        rows += score_rows(track.mixture_as_estimates()[:, 0], track, cfg, "mixture", None)
        silent = 1 - track.activity.float().mean(-1)
        values = {name: {"silent fraction": float(silent[k])} for k, name in enumerate(track.source_names)}
        rows += report.rows_for(values, variant="labels", seed=None, song=track.name, domain=track.domain)
    return rows


# ----------------------------------------------------------------------------- tables


__all__ = ["FRAME_SECONDS", "SCORES", "SYSTEMS", "UNWEIGHTED", "WEIGHTINGS", "MODELS", "Separation",
           "separate_weighted", "activity_rows", "choose_weighting", "detection_scores", "describe",
           "evaluate", "reference_rows", "row_name", "score_rows", "separate", "hard", "setting_rows",
           "settings_grid", "validation_tracks", "weights_for"]


