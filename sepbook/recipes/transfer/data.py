"""The transfer chapter's data: three pre-training sets in the roles of MUSDB, Slakh and both, and
three small downstream sets in the roles of Bach10, Dagstuhl ChoirSet and Remixpacks, grouped
into sources as the paper's Table 1 does.

The band sets are generated songs, the quartet and choir sets Bach chorales
(:mod:`sepbook.data.chorales`), all played by the profile's SoundFonts. Training examples come from
:class:`sepbook.data.datasets.SongDataset`, whose switches are the paper's augmentations:
``pitch_shift``, ``time_stretch`` and ``coherent=False`` (incoherent mixing); only pre-training
uses them. Validation and test examples are whole held-out songs, one example per song, so a
test counts songs, not overlapping excerpts of them.

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

import itertools
import os
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook.data import chorales, synth
from sepbook.data.datasets import SongDataset
from sepbook.tracks import Splits, Track

#: Each set's sources, in the order the mask head gives them (Table 1 of the paper).
SOURCES: dict[str, tuple[str, ...]] = {
    "musdb": ("vocals", "accompaniment"),
    "slakh": ("piano+guitar", "drums", "bass"),
    "musdb+slakh": ("bass", "drums", "other"),
    "bach10": ("violin", "saxophone", "bassoon", "clarinet"),
    "dagstuhl": ("male", "female"),
    "remixpacks": ("snare", "kick", "cymbals"),
}
#: Table 1 of the paper: minutes of (training, test) audio in each real set.
PAPER_MINUTES: dict[str, tuple[float, float]] = {
    "musdb": (600, 300), "slakh": (7830, 870), "musdb+slakh": (8430, 1170),
    "bach10": (5, 0.5), "dagstuhl": (70, 7), "remixpacks": (192, 96),
}
PRETRAINING: tuple[str, ...] = ("musdb", "slakh", "musdb+slakh")
DOWNSTREAM: tuple[str, ...] = ("bach10", "dagstuhl", "remixpacks")
AUGMENTATIONS: tuple[str, ...] = ("none", "pitch", "stretch", "incoherent")
#: Which sets mix stems from different songs: Bach10 in training, Remixpacks in training and test.
INCOHERENT_TRAINING = ("bach10", "remixpacks")
INCOHERENT_TEST = ("remixpacks",)
#: A reference quieter than this (mean power) is not scored: SI-SDR would have no scale to fit.
SILENCE = 1e-6
#: The order of a set's song counts in the profile's ``songs``.
SUBSETS: tuple[str, ...] = ("train", "test", "valid")

_BAND_STYLES = ("pop", "rock", "jazz", "folk", "electronic")
_GROUPS = {
    "musdb": {"vocals": "vocals", "bass": "accompaniment", "drums": "accompaniment",
              "guitar": "accompaniment", "piano": "accompaniment"},
    "slakh": {"guitar": "piano+guitar", "piano": "piano+guitar", "drums": "drums", "bass": "bass"},
    # Table 1 lists bass, drums and other for the union: MUSDB's vocals join its other
    "musdb+slakh": {"vocals": "other", "guitar": "other", "piano": "other", "drums": "drums", "bass": "bass"},
    "bach10": {},
    "dagstuhl": {"tenor": "male", "bass_voice": "male", "soprano": "female", "alto": "female"},
    "remixpacks": {},
}
#: Training songs as their stems, one ``{source: (1, time)}`` dict per song.
StemSongs = list[dict[str, np.ndarray]]


def _band(n: int, seed: int, cfg: Mapping[str, Any], vocals: bool) -> list[synth.Song]:
    states = np.random.SeedSequence(seed).generate_state(n)
    lineup = ("vocals", "bass", "guitar", "piano", "drums") if vocals else ("bass", "guitar", "piano", "drums")
    return [synth.synthesize_song(int(s), seconds=cfg["song_seconds"], sr=cfg["sr"],
                                  style=_BAND_STYLES[i % len(_BAND_STYLES)], instruments=lineup,
                                  fonts=cfg["fonts"])
            for i, s in enumerate(states)]


def _chorales(cfg: Mapping[str, Any], corpus: str, subset: str) -> list[synth.Song]:
    train, test, valid = cfg["songs"][corpus]
    players = chorales.QUARTET if corpus == "bach10" else chorales.CHOIR
    play = partial(chorales.chorale_songs, players, seconds=cfg["song_seconds"], sr=cfg["sr"],
                   fonts=cfg["fonts"], seed=list(SOURCES).index(corpus))
    if subset == "test":
        return play("test", test)
    # validation songs are training-pool chorales that no training song plays
    songs = play("train", train + valid)
    return songs[:train] if subset == "train" else songs[train:]


def _grouped(songs: Sequence[synth.Song], corpus: str) -> StemSongs:
    groups = _GROUPS[corpus]
    tracks = []
    for song in songs:
        track: dict[str, np.ndarray] = {}
        for stem, audio in song.stems.items():
            name = groups.get(stem, stem)
            track[name] = track.get(name, 0) + audio[None]
        tracks.append(track)
    return tracks


def _songs(cfg: Mapping[str, Any], corpus: str, subset: str) -> list[synth.Song]:
    if corpus == "musdb+slakh":
        return _songs(cfg, "musdb", subset) + _songs(cfg, "slakh", subset)
    if corpus in ("bach10", "dagstuhl"):
        return _chorales(cfg, corpus, subset)
    position = SUBSETS.index(subset)
    seed = 1000 * (list(SOURCES).index(corpus) + 1) + position
    return _band(cfg["songs"][corpus][position], seed, cfg, vocals=corpus == "musdb")


def minutes(cfg: Mapping[str, Any], corpus: str) -> tuple[float, float]:
    """Minutes of (training, test) audio of a synthetic set under ``cfg``."""
    if corpus == "musdb+slakh":
        a, b = minutes(cfg, "musdb"), minutes(cfg, "slakh")
        return a[0] + b[0], a[1] + b[1]
    train, test, _ = cfg["songs"][corpus]
    return train * cfg["song_seconds"] / 60, test * cfg["song_seconds"] / 60


def synthetic_tracks(cfg: Mapping[str, Any], corpus: str, subset: str) -> StemSongs:
    """The songs of ``corpus`` ('musdb', ..., 'remixpacks') and ``subset`` ('train', 'test' or 'valid')."""
    if corpus not in SOURCES:
        raise ValueError(f"corpus: expected one of {list(SOURCES)}, got {corpus!r}")
    if subset not in SUBSETS:
        raise ValueError(f"subset: expected one of {list(SUBSETS)}, got {subset!r}")
    songs = _songs(cfg, corpus, subset)
    if corpus == "remixpacks":
        return [{piece: audio[None] for piece, audio in synth.drum_pieces(song).items()} for song in songs]
    return _grouped(songs, corpus)


def check_sources(songs: StemSongs, corpus: str) -> None:
    """Every song must hold each source the mask head of ``corpus`` gives; else ``ValueError``."""
    expected = SOURCES[corpus]
    for i, song in enumerate(songs):
        missing = [s for s in expected if s not in song]
        if missing:
            raise ValueError(f"{corpus}: song {i} holds {len(song)} sources {sorted(song)}, fewer than the "
                             f"{len(expected)} the mask head expects {list(expected)} (missing {missing})")


def stem_folder_tracks(root: Path, corpus: str, subset: str, sr: int) -> StemSongs:
    """Real data: ``root/<corpus>/<subset>/<song>/<source>.wav``, one folder per song, mono at ``sr``."""
    from sepbook.data.layouts import read_stem_folder

    folder = Path(root) / corpus / subset
    songs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not songs:
        raise FileNotFoundError(f"{folder}: expected one folder per song holding "
                                f"{', '.join(s + '.wav' for s in SOURCES[corpus])}")
    return [{name: audio[None] for name, audio in read_stem_folder(song, SOURCES[corpus], sr).items()}
            for song in songs]


def tracks(cfg: Mapping[str, Any], corpus: str, subset: str) -> StemSongs:
    """``corpus``'s songs: synthesised, or read from ``$TRANSFER_DATA`` in the ``paper`` profile."""
    if cfg["dataset"] == "synthetic":
        return synthetic_tracks(cfg, corpus, subset)
    if not os.environ.get("TRANSFER_DATA"):
        raise FileNotFoundError("the paper profile reads the real sets: set $TRANSFER_DATA to a folder holding "
                                "<set>/train/<song>/<source>.wav for " + ", ".join(SOURCES))
    return stem_folder_tracks(Path(os.environ["TRANSFER_DATA"]), corpus, subset, cfg["sr"])


def training_set(cfg: Mapping[str, Any], songs: StemSongs, corpus: str, seed: int,
                 augmentation: str = "none", share: float = 1.0) -> SongDataset:
    """Training excerpts of ``corpus``: item ``i`` depends only on ``(seed, i)``.

    ``augmentation`` is 'none', 'pitch' (±3 semitones), 'stretch' (0.8-1.2 times the tempo) or
    'incoherent' (every stem from its own song and moment); Bach10 and Remixpacks always mix
    incoherently, as in the paper. ``share`` keeps that fraction of every song, from its start
    (the data-size sweep).
    """
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation: expected one of {list(AUGMENTATIONS)}, got {augmentation!r}")
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share: expected a fraction of each song in (0, 1], got {share!r}")
    check_sources(songs, corpus)
    if share < 1.0:
        songs = [{name: audio[..., :int(audio.shape[-1] * share)] for name, audio in song.items()} for song in songs]
    return SongDataset(
        songs, SOURCES[corpus], cfg["sr"], segment_seconds=cfg["excerpt_seconds"], length=100_000, seed=seed,
        coherent=augmentation != "incoherent" and corpus not in INCOHERENT_TRAINING,
        gain_range=tuple(cfg["gain_range"]),
        pitch_shift=tuple(cfg["pitch_shift"]) if augmentation == "pitch" else None,
        time_stretch=tuple(cfg["time_stretch"]) if augmentation == "stretch" else None,
        skip_short=cfg["dataset"] == "synthetic")


def song_examples(songs: StemSongs, corpus: str, subset: str = "test") -> list[Track]:
    """One :class:`~sepbook.tracks.Track` per song (``domain`` = its set), the whole song, named ``'<corpus> NNN'`` (``'<corpus> valid NNN'``
    for validation). Remixpacks' test mixtures are incoherent, as its stems come from different
    packs: example ``i`` takes its ``k``-th source from song ``i + k``."""
    check_sources(songs, corpus)
    incoherent = corpus in INCOHERENT_TEST
    prefix = corpus if subset == "test" else f"{corpus} {subset}"
    examples = []
    for i in range(len(songs)):
        stems = [songs[(i + k) % len(songs) if incoherent else i][source] for k, source in enumerate(SOURCES[corpus])]
        length = min(stem.shape[-1] for stem in stems)
        sources = torch.as_tensor(np.stack([stem[..., :length] for stem in stems]), dtype=torch.float32)
        examples.append(Track(f"{prefix} {i:03d}", sources.sum(0), sources, SOURCES[corpus], corpus))
    return examples


def splits(cfg: Mapping[str, Any]) -> Splits:
    """Every set's training songs, ``{set: [{source: (1, time)}]}``, and the downstream sets'
    validation and test songs as tracks, interleaved."""
    train = {corpus: tracks(cfg, corpus, "train") for corpus in (*cfg["pretraining"], *cfg["downstream"])}
    test = test_tracks(cfg)
    return Splits(train=train, valid=test_tracks(cfg, "valid"), test=test)


def test_tracks_of(cfg: Mapping[str, Any], corpus: str, subset: str = "test") -> list[Track]:
    """The test (or validation) songs of one downstream set."""
    return song_examples(tracks(cfg, corpus, subset), corpus, subset)


def test_tracks(cfg: Mapping[str, Any], subset: str = "test") -> list[Track]:
    """Every downstream set's test (or validation) songs, interleaved so the first few cover every set."""
    per_set = [test_tracks_of(cfg, corpus, subset) for corpus in cfg["downstream"]]
    return [example for group in itertools.zip_longest(*per_set) for example in group if example is not None]
