"""The score-supervision chapter's data: Slakh-layout songs of bass, guitar and piano with their scores,
as spectrogram and piano-roll banks, and batches that are a pure function of ``(seed, step)``.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from sepbook import seeds
from sepbook.audio import resample
from sepbook.banks import Bank, excerpt_batches, fixed_excerpts, song_banks
from sepbook.tracks import Splits, Track, hold_out_last

REAL_DATA_ENV = "SLAKH_PATH"


def window(roll: np.ndarray, lowest_pitch: int, n_pitches: int, name: str = "roll") -> np.ndarray:
    """The pitches ``lowest_pitch ... lowest_pitch + n_pitches - 1`` of a ``(frames, 128)`` roll, as ``(n_pitches, frames)``.

    A note outside the window raises ``ValueError``: the transcriptor could never learn it.
    """
    roll = np.asarray(roll, dtype=bool)
    if roll.ndim != 2 or roll.shape[1] != 128:
        raise ValueError(f"{name}: expected a piano roll shaped (frames, 128), got {roll.shape}")
    outside = np.flatnonzero(roll.any(axis=0) & ~np.isin(np.arange(128), range(lowest_pitch, lowest_pitch + n_pitches)))
    if len(outside):
        raise ValueError(f"{name}: MIDI pitches {outside.tolist()} are outside the transcriptor's range "
                         f"{lowest_pitch} to {lowest_pitch + n_pitches - 1}")
    return roll[:, lowest_pitch:lowest_pitch + n_pitches].T


def corpus(cfg: Mapping[str, Any]) -> Path:
    """The root of the Slakh2100-layout corpus: the synthetic one, or ``$SLAKH_PATH`` for ``paper``."""
    from sepbook.data.corpora import slakh_synth

    if cfg["dataset"] == "synthetic":
        return slakh_synth(dict(cfg))
    if not os.environ.get(REAL_DATA_ENV):
        raise FileNotFoundError(f"the paper profile reads the real Slakh2100: set ${REAL_DATA_ENV} to its folder "
                                "(the one holding train/, validation/ and test/)")
    return Path(os.environ[REAL_DATA_ENV])


def load_tracks(cfg: Mapping[str, Any], split: str) -> list[Track]:
    """Every track of ``split`` as a :class:`Track` of ``cfg['instruments']``, mono, with rolls on the STFT frames.

    An instrument a song lacks is silent with an empty roll, so every track has the same K sources.
    """
    from sepbook.data.layouts import read_slakh_track

    root = corpus(cfg) / split
    folders = sorted(p for p in root.iterdir() if (p / "metadata.yaml").is_file()) if root.is_dir() else []
    if not folders:
        raise FileNotFoundError(f"{root}: expected Slakh2100's {split}/ holding TrackNNNNN folders with metadata.yaml")
    limit = cfg["n_train"] if split == "train" and cfg["dataset"] != "synthetic" else None
    folders = folders[:limit]  # the paper profile can cap how many real tracks it holds in memory
    tracks = []
    for folder in folders:
        song = read_slakh_track(folder, cfg["instruments"], frame_rate=cfg["sr"] / cfg["hop"])
        silence = np.zeros(song.mixture.shape[-1], np.float32)
        sources = np.stack([song.stems.get(name, silence) for name in cfg["instruments"]])[:, None]
        sources = resample(sources, song.sr, cfg["sr"]).astype(np.float32)      # real Slakh is 44.1 kHz
        n_frames = sources.shape[-1] // cfg["hop"] + 1                          # the STFT's frames
        rolls = np.zeros((len(cfg["instruments"]), cfg["n_pitches"], n_frames), bool)
        for k, name in enumerate(cfg["instruments"]):
            if name in song.rolls:
                part = window(song.rolls[name], cfg["lowest_pitch"], cfg["n_pitches"], f"{folder.name} {name}")
                rolls[k, :, :part.shape[1]] = part[:, :n_frames]
        style = str(song.metadata.get("song_name", "")).split("_")[0]
        # the mixture is re-summed from the kept stems: in real Slakh the mix holds other instruments too
        tracks.append(Track(folder.name, sources.sum(0), sources, tuple(cfg["instruments"]), style,
                            rolls=torch.as_tensor(rolls), activity=torch.as_tensor(rolls.any(axis=1))))
    unplayed = [name for k, name in enumerate(cfg["instruments"]) if not any(t.sources[k].any() for t in tracks)]
    if unplayed:
        raise ValueError(f"{root}: no track has a rendered stem of {', '.join(map(repr, unplayed))} (Slakh's "
                         f"inst_class); expected each of {', '.join(cfg['instruments'])} in some track")
    return tracks


def splits(cfg: Mapping[str, Any]) -> Splits:
    """The corpus's training songs (the last ``n_valid`` held out for validation; the real Slakh2100
    has its own ``validation/`` songs) and its test songs, each track with ``rolls``
    ``(K, n_pitches, frames)`` on the STFT's frames."""
    if cfg["dataset"] != "synthetic":
        return Splits(load_tracks(cfg, "train"), load_tracks(cfg, "validation"), load_tracks(cfg, "test"))
    return Splits(*hold_out_last(load_tracks(cfg, "train"), cfg["n_valid"]), load_tracks(cfg, "test"))


@dataclass
class Sets:
    """Training songs as banks: ``spectra`` ``(1 + K, F, frames)`` (mixture, then each source) and
    ``rolls`` ``(K, P, frames)``; ``valid`` holds fixed validation batches (as :func:`batch` makes)."""

    spectra: Bank
    rolls: Bank
    valid: list[dict[str, torch.Tensor]]


def as_batch(spectra: torch.Tensor, rolls: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{'mixture': (B, 1, F, T), 'sources': (B, K, F, T), 'rolls': (B, K, P, T)}``; magnitudes are linear."""
    return {"mixture": spectra[:, :1], "sources": spectra[:, 1:], "rolls": rolls}


def training_sets(cfg: Mapping[str, Any], data: Splits, valid_batches: int = 4) -> Sets:
    """:class:`Sets` of the training songs; validation batches cut at fixed places from the validation songs."""
    spectra, rolls = song_banks(cfg, data.train, _rolls)
    rng = seeds.rng(0, "transcription", "valid")
    valid = fixed_excerpts(song_banks(cfg, data.valid, _rolls), cfg, valid_batches, rng)
    return Sets(spectra, rolls, [as_batch(*batch) for batch in valid])


def batches(cfg: Mapping[str, Any], sets: Sets, seed: int, start: int = 0):
    """Yield ``(step, batch)`` from ``start`` on, each batch a pure function of ``(seed, step)``."""
    for step, excerpts in excerpt_batches((sets.spectra, sets.rolls), cfg, seed, "transcription", start):
        yield step, as_batch(*excerpts)


def _rolls(track: Track) -> torch.Tensor:
    return track.rolls.float()
