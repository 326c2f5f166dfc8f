"""Separating and transcribing whole songs, scored as in the paper's two tables.

The paper's numbers, the tables and the sentences of the page are in
:mod:`sepbook.recipes.transcription.page`.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook import masks, metrics
from sepbook.audio import front_end, log_magnitude, magnitudes, n_bins
from sepbook.banks import in_excerpts
from sepbook.experiments import report
from sepbook.recipes import each_channel
from sepbook.tracks import Track


def masks_of(model: torch.nn.Module, magnitude: torch.Tensor) -> torch.Tensor:
    """The separator's masks ``(K, n_bins, frames)`` for a whole song's magnitude ``(n_bins, frames)``,
    cut into excerpts of ``frames`` frames (the last one zero-padded)."""
    separator = model["separator"].eval()
    return in_excerpts(separator, log_magnitude(magnitude), model.settings["frames"])


def separate(model: torch.nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """Separate a mixture ``(channels, time)`` into ``(K, channels, time)`` with the mixture's phase."""
    stft = front_end(model.settings)

    def separate_one(wave):
        spec = stft(wave)                                                    # (n_fft / 2 + 1, frames)
        masks = masks_of(model, spec[: n_bins(model.settings)].abs())
        full = torch.nn.functional.pad(masks, (0, 0, 0, 1))                 # the Nyquist bin gets mask 0
        return stft.inverse(full * spec, len(wave))

    return each_channel(separate_one, mixture)


@torch.no_grad()
def transcribe(transcriptor: torch.nn.Module, magnitude: torch.Tensor) -> torch.Tensor:
    """Note probabilities ``(K, P, frames)`` of a whole song's magnitude ``(n_bins, frames)``."""
    transcriptor.eval()
    device = next(transcriptor.parameters()).device
    return torch.sigmoid(transcriptor(log_magnitude(magnitude)[None, None].to(device)))[0].float().cpu()


def roll_to_notes(roll: np.ndarray, frame_rate: float, lowest_pitch: int) -> np.ndarray:
    """Notes ``(n, 3)`` (onset_s, offset_s, MIDI pitch): each run of active frames of a pitch in ``roll`` ``(P, T)``."""
    notes = []
    for p, row in enumerate(np.asarray(roll, bool)):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
        notes += [(on / frame_rate, off / frame_rate, lowest_pitch + p) for on, off in edges.reshape(-1, 2)]
    return np.array(notes, dtype=float).reshape(-1, 3)


def transcription_scores(cfg: Mapping[str, Any], reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """Frame accuracy and note F1 (``mir_eval``) of a 0/1 estimate against the reference, both ``(P, T)``;
    NaN when the reference is silent (nothing to find)."""
    if not reference.any():
        return {"accuracy": math.nan, "note F1": math.nan}
    frame_rate, low = cfg["sr"] / cfg["hop"], cfg["lowest_pitch"]
    full = np.zeros((2, reference.shape[1], 128), bool)
    full[0, :, low:low + len(reference)], full[1, :, low:low + len(reference)] = reference.T, estimate.T
    with warnings.catch_warnings():  # an empty estimate is a legitimate answer: it scores 0
        warnings.simplefilter("ignore", UserWarning)
        accuracy = metrics.frame_metrics(full[0], full[1], frame_rate)["accuracy"]
        f1 = metrics.transcription_metrics(roll_to_notes(reference, frame_rate, low),
                                           roll_to_notes(estimate, frame_rate, low))["f1"]
    return {"accuracy": accuracy, "note F1": f1}


def separation_rows(cfg, model, track: Track, variant: str, seed) -> list[dict]:
    """SI-SDR (dB) of each separated instrument of ``track``; NaN for an instrument the song lacks."""
    estimates = separate(model, track.mixture)
    score = metrics.si_sdr(estimates, track.sources).squeeze(-1)
    silent = track.sources.abs().amax(dim=(1, 2)) == 0
    values = {name: {"SI-SDR": math.nan if silent[k] else float(score[k])} for k, name in enumerate(track.source_names)}
    return report.rows_for(values, variant=variant, seed=seed, song=track.name, domain=track.domain)


def transcription_rows(cfg, transcriptor, track: Track, variant: str, seed) -> list[dict]:
    """Transcription accuracy and note F1 per instrument, read from the mixture and from each true stem alone."""
    rolls = track.rolls.numpy()
    on_mixture = transcribe(transcriptor, magnitudes(cfg, track.mixture[0])).numpy() > 0.5
    values = {}
    for k, name in enumerate(track.source_names):
        alone = transcribe(transcriptor, magnitudes(cfg, track.sources[k, 0]))[k].numpy() > 0.5
        for where, estimate in (("mixture", on_mixture[k]), ("isolated", alone)):
            scores = transcription_scores(cfg, rolls[k], estimate)
            values.setdefault(name, {}).update({f"{metric} ({where})": v for metric, v in scores.items()})
    return report.rows_for(values, variant=variant, seed=seed, song=track.name, domain=track.domain)


def evaluate(cfg: Mapping[str, Any], models: Mapping[tuple[str, int], torch.nn.Module],
             tracks: Sequence[Track]) -> list[dict]:
    """Report rows of every ``(variant, seed) -> model`` on ``tracks``: SI-SDR for separators,
    transcription scores for transcriptors (the fine-tuned systems have both)."""
    rows = []
    for (variant, seed), model in models.items():
        for track in tracks:
            if "separator" in model:
                rows += separation_rows(cfg, model, track, variant, seed)
            if "transcriptor" in model:
                rows += transcription_rows(cfg, model["transcriptor"], track, variant, seed)
    return rows


def ideal_mask_rows(cfg: Mapping[str, Any], tracks: Sequence[Track]) -> list[dict]:
    """SI-SDR of the ideal ratio mask (computed from the true stems, the chapter's STFT, the
    mixture's phase) on every instrument of ``tracks``: what a mask can reach. Variant ``'ideal mask'``."""
    rows = []
    for track in tracks:
        estimates = masks.oracle_separation(track.mixture, track.sources, "irm", cfg["n_fft"], cfg["hop"])
        score = metrics.si_sdr(estimates, track.sources).squeeze(-1)
        silent = track.sources.abs().amax(dim=(1, 2)) == 0
        values = {name: {"SI-SDR": math.nan if silent[k] else float(score[k])}
                  for k, name in enumerate(track.source_names)}
        rows += report.rows_for(values, variant="ideal mask", seed=None, song=track.name, domain=track.domain)
    return rows


def reference_rows(cfg: Mapping[str, Any], tracks: Sequence[Track]) -> list[dict]:
    """The unprocessed mixture as every instrument's estimate (no seed: nothing is trained)."""
    rows = []
    for track in tracks:
        score = metrics.si_sdr(track.mixture_as_estimates(), track.sources).squeeze(-1)
        silent = track.sources.abs().amax(dim=(1, 2)) == 0
        values = {name: {"SI-SDR": math.nan if silent[k] else float(score[k])}
                  for k, name in enumerate(track.source_names)}
        rows += report.rows_for(values, variant="input mixture", seed=None, song=track.name, domain=track.domain)
    return rows


