"""Separating and transcribing whole songs, scored like the paper's two tables.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook import metrics
from sepbook.audio import front_end, log_magnitude, magnitudes, n_bins
from sepbook.banks import in_excerpts
from sepbook.experiments import report
from sepbook.recipes import Paper, each_channel
from sepbook.tracks import Track

#: The poster's tables. In the copy the book ships their captions are swapped: the dB values
#: are separation SI-SDR, the values between 0 and 1 transcription accuracy.
PAPER = Paper(
    source="Hung, Wichern and Le Roux (ICASSP 2021), Table 1 (separation SI-SDR, dB) and Table 2 "
           "(transcription accuracy) on Slakh2100 bass, guitar and piano",
    numbers={
        "separation": {
            "supervised": (11.1, 5.7, 7.7, 8.2),
            "isolated c-mix": (7.5, 1.2, 4.2, 4.3), "isolated h-mix": (7.8, 0.4, 4.1, 4.1),
            "isolated c+h-mix": (8.4, 1.6, 5.0, 5.0), "fine-tune": (9.0, 2.7, 5.3, 5.6),
            "fine-tune + AML": (9.1, 2.8, 5.4, 5.8), "fine-tune + ATL": (9.0, 2.5, 5.7, 5.7),
            "input mixture": (1.2, -5.8, -2.3, -2.3), "classifier baseline": (7.3, 0.5, 3.5, 3.8),
        },
        "transcription": {
            ("transcriptor", "mixture"): (0.85, 0.44, 0.58), ("fine-tune", "mixture"): (0.84, 0.42, 0.54),
            ("fine-tune + AML", "mixture"): (0.86, 0.51, 0.61), ("fine-tune + ATL", "mixture"): (0.85, 0.50, 0.60),
            ("transcriptor", "isolated"): (0.91, 0.52, 0.66), ("fine-tune", "isolated"): (0.90, 0.53, 0.63),
            ("fine-tune + AML", "isolated"): (0.91, 0.58, 0.68), ("fine-tune + ATL", "isolated"): (0.91, 0.57, 0.66),
        },
    })
#: Table 1's rows, in the paper's order, with the losses each used (c-mix, h-mix, AML, ATL).
SEPARATION_ROWS: dict[str, str] = {
    "supervised": "stems", "isolated c-mix": "c", "isolated h-mix": "h", "isolated c+h-mix": "c h",
    "fine-tune": "c h", "fine-tune + AML": "c h AML", "fine-tune + ATL": "c h ATL",
    "input mixture": "", "classifier baseline": "c, classifier critic",
}
TRANSCRIPTION_ROWS: tuple[str, ...] = ("transcriptor", "fine-tune", "fine-tune + AML", "fine-tune + ATL")


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


def average_rows(rows):
    """SI-SDR rows with one more ``source``, ``'Avg'``: the mean over instruments per song (the paper's Avg)."""
    frame = report.frame(rows)
    frame = frame[frame["metric"] == "SI-SDR"]
    mean = frame.groupby(["variant", "seed", "song"], dropna=False)["value"].mean().reset_index()
    return report.frame([*frame.to_dict("records"),
                         *mean.assign(source="Avg", metric="SI-SDR", domain="").to_dict("records")])


def separation_table(cfg: Mapping[str, Any], rows, profile: str, digits: int = 1):
    """Table 1's layout: SI-SDR per instrument and their average, ours (mean ± std over seeds) beside the paper's."""
    names = [*cfg["instruments"], "Avg"]
    paper = {(variant, name): values[i] for variant, values in PAPER.numbers["separation"].items()
             for i, name in enumerate(names)}
    frame = average_rows(rows)
    present = [v for v in SEPARATION_ROWS if v in set(frame["variant"])]
    return report.paper_table(frame, index="variant", columns=("source",), paper=paper, profile=profile,
                              index_order=present, column_order=[names], digits=digits)


#: The paper's claims about Table 1, as (better, worse) pairs of rows.
ORDERING: tuple[tuple[str, str], ...] = (
    ("classifier baseline", "input mixture"), ("isolated c+h-mix", "classifier baseline"),
    ("supervised", "isolated c+h-mix"), ("isolated c+h-mix", "isolated c-mix"), ("isolated c+h-mix", "isolated h-mix"),
    ("fine-tune", "isolated c+h-mix"), ("fine-tune + AML", "fine-tune"), ("fine-tune + ATL", "fine-tune"),
)


def versus_gain(cfg: Mapping[str, Any], rows, better: str, worse: str):
    """``better - worse`` in average SI-SDR, seed by seed: a row of :func:`sepbook.experiments.report.gains`
    (mean, std, wins, seeds), and the paper's difference of the two rows' Avg (dB)."""
    import pandas as pd

    frame = average_rows(rows)
    frame = frame[frame["source"] == "Avg"]
    seeds = sorted(frame["seed"].dropna().unique())
    # the mixture has one score per song and no seed: it stands beside every seed unchanged
    untrained = frame[frame["seed"].isna()]
    frame = pd.concat([frame[frame["seed"].notna()], *(untrained.assign(seed=s) for s in seeds)])
    gain = report.gains(frame, better, worse).iloc[0]
    paper = PAPER.numbers["separation"][better][-1] - PAPER.numbers["separation"][worse][-1]
    return gain, paper


def versus(cfg: Mapping[str, Any], rows, better: str, worse: str, profile: str) -> str:
    """Does ``better`` beat ``worse`` on average SI-SDR, seed by seed? One sentence, with the paper's
    difference (the numbers of :func:`versus_gain`)."""
    gain, paper = versus_gain(cfg, rows, better, worse)
    sentence = report.describe(gain, better, worse, "average SI-SDR", "on the test songs", profile)
    return f"{sentence} The paper: {paper:+.1f} dB."


def ordering(cfg: Mapping[str, Any], rows, profile: str) -> list[str]:
    """One :func:`versus` sentence per claim of :data:`ORDERING`."""
    return [versus(cfg, rows, better, worse, profile) for better, worse in ORDERING]


def transcription_table(cfg: Mapping[str, Any], rows, profile: str, digits: int = 2):
    """Table 2's layout: frame accuracy on mixtures and on isolated tracks, ours beside the paper's."""
    frame = report.frame(rows)
    frame = frame[frame["metric"].str.startswith("accuracy")].copy()
    frame["evaluated on"] = frame["metric"].str.extract(r"\((\w+)\)")[0]
    frame = frame[frame["variant"].isin(TRANSCRIPTION_ROWS)]
    paper = {((variant, where), name): values[i] for (variant, where), values in PAPER.numbers["transcription"].items()
             for i, name in enumerate(cfg["instruments"])}
    frame["row"] = list(zip(frame["variant"], frame["evaluated on"]))
    order = [(v, where) for where in ("mixture", "isolated") for v in TRANSCRIPTION_ROWS]
    return report.paper_table(frame, index="row", columns=("source",), paper=paper, profile=profile,
                              index_order=order, column_order=[list(cfg["instruments"])], digits=digits)


def transcription_gains(cfg: Mapping[str, Any], rows, where: str = "mixture") -> list[tuple[str, Any, float]]:
    """How fine-tuning (plain, AML, ATL) changes the transcriptor's frame accuracy on ``where``
    ('mixture' or 'isolated'), averaged over the instruments: ``(variant, gain, paper)`` for every
    fine-tuned variant in ``rows``, ``gain`` a row of :func:`sepbook.experiments.report.gains` against the
    pre-trained transcriptor and ``paper`` the paper's change of the mean over instruments."""
    frame = report.frame(rows)
    frame = frame[frame["metric"] == f"accuracy ({where})"]
    found = []
    for variant in [v for v in TRANSCRIPTION_ROWS[1:] if v in set(frame["variant"])]:
        paper = np.mean(PAPER.numbers["transcription"][(variant, where)]) - np.mean(PAPER.numbers["transcription"][("transcriptor", where)])
        found.append((variant, report.gains(frame, variant, "transcriptor").iloc[0], paper))
    return found


def transcription_differences(cfg: Mapping[str, Any], rows, profile: str, where: str = "mixture") -> list[str]:
    """Does fine-tuning (plain, AML, ATL) change the transcriptor's frame accuracy on ``where``
    ('mixture' or 'isolated'), averaged over the instruments? One sentence each, beside the paper's
    change (the numbers of :func:`transcription_gains`)."""
    sentences = []
    for variant, gain, paper in transcription_gains(cfg, rows, where):
        sentence = report.describe(gain, variant, "pre-trained transcriptor", f"frame accuracy on {where} tracks"
                                  if where == "isolated" else "frame accuracy on mixtures", "", profile, unit="",
                                  digits=3).replace(" :", ":").replace("  ", " ")
        sentences.append(f"{sentence} The paper: {paper:+.3f}.")
    return sentences
