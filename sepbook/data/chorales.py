"""Bach's four-part chorales as songs: real compositions for the quartet and choir sets.

Bach10 (a wind-and-string quartet) and the Dagstuhl ChoirSet hold real four-part music, which
generated harmony only imitates. ``music21`` bundles Bach's chorales as scores; :func:`parts`
reads one into note lists and :func:`chorale_songs` plays them, soprano to bass, by the quartet of
Bach10 (violin, clarinet, saxophone, bassoon) or by four voices, through
:func:`sepbook.data.synth.play_score`. A chorale is in the training or the test set by its name alone
(:func:`subset`), so no chorale is ever heard in both.

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

import functools
import zlib
from typing import Sequence

import numpy as np

from sepbook import seeds
from sepbook.data.synth import Song, play_score

#: Soprano, alto, tenor and bass played by Bach10's instruments, or sung by four voices.
QUARTET: tuple[str, ...] = ("violin", "clarinet", "saxophone", "bassoon")
CHOIR: tuple[str, ...] = ("soprano", "alto", "tenor", "bass_voice")
VOICE_PARTS: tuple[str, ...] = ("soprano", "alto", "tenor", "bass")
TEST_EVERY = 5                         # one chorale in five (by its name's checksum) is a test chorale
TEMPO_RANGE = (60.0, 84.0)             # quarter notes per minute, drawn per song


@functools.lru_cache(maxsize=1)
def names() -> tuple[str, ...]:
    """The names (e.g. ``'bwv10.7'``) of the bundled Bach chorales, sorted."""
    from music21 import corpus

    return tuple(sorted({p.name.rsplit(".", 1)[0] for p in corpus.getComposer("bach")
                         if p.name.endswith((".mxl", ".xml", ".krn"))}))


def subset(name: str) -> str:
    """``'test'`` for one chorale in ``TEST_EVERY`` (by a checksum of its name), else ``'train'``."""
    return "test" if zlib.crc32(name.encode()) % TEST_EVERY == 0 else "train"


@functools.lru_cache(maxsize=512)
def parts(name: str) -> dict[str, np.ndarray] | None:
    """Chorale ``name`` as ``{voice part: (n, 3)}`` rows of onset and offset (quarter notes) and
    MIDI pitch, ties merged; ``None`` unless it has exactly the four parts soprano to bass."""
    from music21 import corpus

    score = corpus.parse(f"bach/{name}").stripTies()
    found = {}
    for part in score.parts:
        label = (part.partName or "").strip().lower()
        if label not in VOICE_PARTS or label in found:
            return None
        rows = [(float(n.offset), float(n.offset + n.quarterLength), n.pitches[-1].midi)
                for n in part.flatten().notes if n.quarterLength > 0]
        found[label] = np.array(rows, np.float64).reshape(-1, 3)
    return found if set(found) == set(VOICE_PARTS) and all(len(v) for v in found.values()) else None


def chorale_song(name: str, instruments: Sequence[str], *, seed: int, seconds: float, sr: int,
                 fonts: Sequence[str] | None = None) -> Song:
    """The first ``seconds`` of chorale ``name``, its parts soprano to bass played by
    ``instruments`` at a tempo drawn from ``seed``; a ``Song`` whose ``meta['chorale']`` names it."""
    score = parts(name)
    if score is None:
        raise ValueError(f"name: {name!r} is not a four-part chorale (soprano, alto, tenor, bass)")
    if len(instruments) != 4:
        raise ValueError(f"instruments: expected four, soprano to bass, got {list(instruments)}")
    rng = seeds.rng(seed, "chorale", name)
    beat = 60.0 / float(rng.uniform(*TEMPO_RANGE))
    notes = {}
    for inst, part in zip(instruments, VOICE_PARTS):
        rows = score[part]
        velocity = np.clip(rng.normal(80, 8, len(rows)), 40, 120).round()
        notes[inst] = np.column_stack([rows[:, 0] * beat, rows[:, 1] * beat, rows[:, 2], velocity])
    style = "choir" if set(instruments) <= set(CHOIR) else "quartet"
    return play_score(f"{name}-{style}", notes, seed=seed, style=style, seconds=seconds, sr=sr, fonts=fonts,
                      meta={"chorale": name, "tempo": 60.0 / beat})


def chorale_songs(instruments: Sequence[str], which: str, n: int, *, seconds: float, sr: int,
                  fonts: Sequence[str] | None = None, seed: int = 0) -> list[Song]:
    """The first ``n`` four-part chorales of subset ``which`` (``'train'`` or ``'test'``) in an order
    drawn from ``seed``, played by ``instruments``; raises if the subset holds fewer."""
    if which not in ("train", "test"):
        raise ValueError(f"which: expected 'train' or 'test', got {which!r}")
    pool = [c for c in names() if subset(c) == which]
    order = seeds.rng(seed, "chorales", which).permutation(len(pool))
    songs = []
    for index in order:
        if len(songs) == n:
            break
        if parts(pool[index]) is not None:
            songs.append(chorale_song(pool[index], instruments, seed=seed, seconds=seconds, sr=sr, fonts=fonts))
    if len(songs) < n:
        raise ValueError(f"n: the {which} chorales hold {len(songs)} four-part chorales, fewer than {n}")
    return songs
