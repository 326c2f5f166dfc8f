"""The activity chapter's data: two sets of songs with per-frame instrument activity, as banks of
spectrogram and activity frames, and batches that are a pure function of ``(seed, step)``.

- ``musdb``: the four MUSDB targets, read through ``musdb`` from a MUSDB18-HQ-layout folder; the
  activity labels come from each target's frame energy (:func:`sepbook.instrument_activity.frame_activity`),
  since MUSDB has no annotations.
- ``medley``: six instruments that enter and leave by sections, in the spirit of MedleyDB and
  Mixing Secrets; the labels come from the score (a frame is active while a note of the
  instrument sounds), as MedleyDB's come from its activation annotations. The STFT's last frame,
  centred on the song's last sample, lies past the score's last frame and counts as silent.

Chapter: activity/activity_aware
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook import seeds
from sepbook.audio import magnitudes, n_bins, resample
from sepbook.banks import Bank, excerpt_batches, fixed_excerpts, song_banks
from sepbook.instrument_activity import frame_activity
from sepbook.tracks import Splits, Track, hold_out, hold_out_last

DATASETS: tuple[str, ...] = ("musdb", "medley")
#: What each set stands in for, for tables and captions.
TITLES = {"musdb": "MUSDB-layout set", "medley": "MedleyDB-like set"}
REAL_DATA_ENV = {"musdb": "MUSDB_PATH", "medley": "SEPBOOK_MEDLEY_PATH"}
REAL_DATA = {"musdb": "MUSDB18-HQ", "medley": "MedleyDB / Mixing Secrets stems"}


def sources(cfg: Mapping[str, Any], dataset: str) -> tuple[str, ...]:
    """The instruments of ``dataset``, in the order of the model's outputs."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {dataset!r}")
    return tuple(cfg[f"{dataset}_sources"])


def n_frames(cfg: Mapping[str, Any], n_samples: int) -> int:
    """STFT frames of ``n_samples`` samples (centred frames, as :class:`sepbook.audio.STFT` makes)."""
    return n_samples // cfg["hop"] + 1


def _musdb_tracks(cfg: Mapping[str, Any], subset: str) -> list[Track]:
    from sepbook.data.corpora import musdb_synth
    from sepbook.data.layouts import read_musdb

    if cfg["dataset"] == "synthetic":
        corpus = {**cfg, "n_train": cfg["n_train"] + cfg["n_valid"]}
        root = musdb_synth(corpus, name="musdb-synth-activity")
    else:
        root = _real_root("musdb")
    tracks = read_musdb(root, subset, sources(cfg, "musdb"), cfg["sr"], "musdb")
    for track in tracks:
        track.activity = frame_activity(magnitudes(cfg, track.sources[:, 0]), cfg["label_threshold_db"])
    return tracks


def _medley_tracks(cfg: Mapping[str, Any], subset: str) -> list[Track]:
    from sepbook.data.corpora import slakh_synth
    from sepbook.data.layouts import read_slakh_track

    if cfg["dataset"] != "synthetic":
        return _stem_folder_tracks(cfg, _real_root("medley") / subset)
    names = sources(cfg, "medley")
    corpus = {**cfg, "instruments": names}
    root = slakh_synth(corpus, name="medley-synth") / subset
    tracks = []
    for folder in sorted(p for p in root.iterdir() if (p / "metadata.yaml").is_file()):
        song = read_slakh_track(folder, names, frame_rate=cfg["sr"] / cfg["hop"])
        silence = np.zeros(song.mixture.shape[-1], np.float32)
        stems = np.stack([song.stems.get(name, silence) for name in names])[:, None]
        stems = resample(stems, song.sr, cfg["sr"]).astype(np.float32)
        labels = np.zeros((len(names), n_frames(cfg, stems.shape[-1])), bool)
        for k, name in enumerate(names):
            if name in song.rolls:
                active = song.rolls[name].any(axis=1)[: labels.shape[1]]
                labels[k, : len(active)] = active
        tracks.append(Track(folder.name, stems.sum(0), stems, names, "medley", activity=torch.as_tensor(labels)))
    return tracks


def _stem_folder_tracks(cfg: Mapping[str, Any], root: Path) -> list[Track]:
    """Real multitracks for ``paper``: ``root/SONG/INSTRUMENT.wav`` per song (MedleyDB or Mixing
    Secrets stems summed per instrument class); labels from frame energy, as for MUSDB."""
    from sepbook.data.layouts import read_stem_folder

    names = sources(cfg, "medley")
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        raise FileNotFoundError(f"{root}: expected one folder per song holding some of "
                                f"{', '.join(n + '.wav' for n in names)}")
    tracks, played = [], set()
    for folder in folders:
        stems = read_stem_folder(folder, names, cfg["sr"], optional=True)  # a missing instrument is silent
        played |= set(stems)
        length = len(next(iter(stems.values())))
        stems = np.stack([stems.get(name, np.zeros(length, np.float32)) for name in names])[:, None]
        labels = frame_activity(magnitudes(cfg, torch.as_tensor(stems[:, 0])), cfg["label_threshold_db"])
        tracks.append(Track(folder.name, stems.sum(0), stems, names, "medley", activity=labels))
    unplayed = [name for name in names if name not in played]
    if unplayed and root.name == "train":  # a test set may lack an instrument; training cannot
        raise ValueError(f"{root}: no song holds {', '.join(n + '.wav' for n in unplayed)}; the chapter separates "
                         f"{', '.join(names)}, so every one of them must play in some song")
    return tracks


def _real_root(dataset: str) -> Path:
    variable = REAL_DATA_ENV[dataset]
    if not os.environ.get(variable):
        raise FileNotFoundError(f"the paper profile reads the real {REAL_DATA[dataset]}: set "
                                f"${variable} to its folder (the one holding train/ and test/)")
    return Path(os.environ[variable])


def load_tracks(cfg: Mapping[str, Any], dataset: str, subset: str) -> list[Track]:
    """Every song of ``subset`` ('train' or 'test') of ``dataset``, mono at ``cfg['sr']``, with activity."""
    if subset not in ("train", "test"):
        raise ValueError(f"subset: expected 'train' or 'test', got {subset!r}")
    sources(cfg, dataset)  # names the sets there are when ``dataset`` is not one
    tracks = _musdb_tracks(cfg, subset) if dataset == "musdb" else _medley_tracks(cfg, subset)
    for track in tracks:
        if track.activity.shape != (len(track.source_names), n_frames(cfg, track.mixture.shape[-1])):
            raise ValueError(f"track {track.name}: activity {tuple(track.activity.shape)} does not match its "
                             f"{n_frames(cfg, track.mixture.shape[-1])} STFT frames")
    return tracks


def validation_songs(cfg: Mapping[str, Any], songs: Sequence[Track]) -> list[Track]:
    """The validation songs among all training ``songs``: the last ``n_valid`` ones
    (:func:`sepbook.tracks.hold_out_last`), or in the real MUSDB18-HQ musdb's own validation songs."""
    from sepbook.data.layouts import musdb_validation_names

    if cfg["dataset"] != "synthetic" and songs and songs[0].domain == "musdb":
        return hold_out(songs, musdb_validation_names(), f"{_real_root('musdb')}/train")[1]
    return hold_out_last(songs, cfg["n_valid"])[1]


def splits(cfg: Mapping[str, Any]) -> Splits:
    """Both sets; the last ``n_valid`` training songs of each (or MUSDB's own list) are held out for
    validation. ``train`` and ``valid`` are keyed by set; every track has ``activity`` ``(K, frames)``
    on the STFT's frames and ``domain`` = its set."""
    train, valid = {}, {}
    for dataset in DATASETS:
        songs = load_tracks(cfg, dataset, "train")
        valid[dataset] = validation_songs(cfg, songs)
        held = {t.name for t in valid[dataset]}
        train[dataset] = [t for t in songs if t.name not in held]
    return Splits(train, valid, test_tracks(cfg))


def test_tracks(cfg: Mapping[str, Any]) -> list[Track]:
    """The test songs of both sets, alternating, so that the first few cover both."""
    by_set = [load_tracks(cfg, dataset, "test") for dataset in DATASETS]
    shortest = min(map(len, by_set))
    return [track for group in zip(*by_set) for track in group] + [
        track for songs in by_set for track in songs[shortest:]]


@dataclass
class Sets:
    """One set's training songs as banks: ``spectra`` ``(1 + K, F, frames)`` (mixture, then each
    source, linear magnitudes) and ``activity`` ``(K, 1, frames)``; ``valid`` fixed validation batches;
    ``positive_weight`` ``(K,)`` balances active and silent frames in the activity loss."""

    spectra: Bank
    activity: Bank
    valid: list[dict[str, torch.Tensor]]
    positive_weight: torch.Tensor


def as_batch(spectra: torch.Tensor, activity: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{'mixture': (B, 1, F, T), 'sources': (B, K, F, T), 'activity': (B, K, T)}``."""
    return {"mixture": spectra[:, :1], "sources": spectra[:, 1:], "activity": activity[:, :, 0]}


def training_sets(cfg: Mapping[str, Any], data: Splits, dataset: str, valid_batches: int = 4) -> Sets:
    """:class:`Sets` of ``dataset``'s training songs; validation batches cut at fixed places."""
    from sepbook.losses.activity import positive_weights

    spectra, activity = song_banks(cfg, data.train[dataset], _activity)
    rng = seeds.rng(0, "activity", dataset, "valid")
    valid = fixed_excerpts(song_banks(cfg, data.valid[dataset], _activity), cfg, valid_batches, rng)
    return Sets(spectra, activity, [as_batch(*batch) for batch in valid], positive_weights(activity.frames[:, 0]))


def batches(cfg: Mapping[str, Any], sets: Sets, seed: int, start: int = 0):
    """Yield ``(step, batch)`` from ``start`` on, each batch a pure function of ``(seed, step)``."""
    for step, excerpts in excerpt_batches((sets.spectra, sets.activity), cfg, seed, "activity", start):
        yield step, as_batch(*excerpts)


def _activity(track: Track) -> torch.Tensor:
    return track.activity.float()[:, None]

__all__ = ["DATASETS", "TITLES", "Sets", "Splits", "as_batch", "batches", "load_tracks", "n_bins", "n_frames",
           "sources", "splits", "test_tracks", "training_sets", "validation_songs"]
