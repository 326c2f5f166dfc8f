"""Offline, score-driven multitrack synthesiser: seeded songs with exact stems, piano rolls and notes.

A song is made in three steps. First a *score* is drawn from the seed: key, tempo, chord
progression, a bass line, chord comping, a melody, four-part harmony lines and a drum pattern,
plus an *arrangement* that switches instruments on and off section by section. Then every part
is rendered by a small instrument model (additive plucks, an inharmonic piano, a glottal source
through vowel formants, noise drums). Finally the stems are balanced and summed into the mixture.

Because the stems are known exactly, every song carries perfect ground truth for separation,
transcription and activity detection. Styles (``STYLES``) change tempo, harmony, register and
timbre distributions, so songs of one style form a *domain* that differs from the others.

Chapter: foundations/synthesiser
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
from scipy import signal

from sepbook import seeds

# ---------------------------------------------------------------------------- instruments

INSTRUMENTS: tuple[str, ...] = (
    "vocals", "bass", "guitar", "piano", "drums",            # band
    "violin", "clarinet", "saxophone", "bassoon",             # quartet, as in Bach10
    "soprano", "alto", "tenor", "bass_voice",                 # choir ("bass" is the bass guitar)
    "electric_guitar", "acoustic_guitar",                     # the MedleyDB-like line-up
)
# Instruments whose arrangement draws come from the shared generator (the line-up of the first
# corpora); later instruments draw from their own, so adding one leaves every earlier song unchanged.
_FIRST_INSTRUMENTS: tuple[str, ...] = INSTRUMENTS[:INSTRUMENTS.index("bass_voice") + 1]
MUSDB_GROUPS: dict[str, str] = {
    "vocals": "vocals", "soprano": "vocals", "alto": "vocals", "tenor": "vocals", "bass_voice": "vocals",
    "bass": "bass", "drums": "drums",
    "guitar": "other", "piano": "other", "violin": "other", "clarinet": "other",
    "saxophone": "other", "bassoon": "other", "electric_guitar": "other", "acoustic_guitar": "other",
}
#: General MIDI program (0-based) and drum flag of each instrument, for writing MIDI files.
GM_PROGRAMS: dict[str, tuple[int, bool]] = {
    "vocals": (53, False), "bass": (33, False), "guitar": (27, False), "piano": (0, False),
    "drums": (0, True), "violin": (40, False), "clarinet": (71, False), "saxophone": (65, False),
    "bassoon": (70, False), "soprano": (52, False), "alto": (52, False), "tenor": (52, False),
    "bass_voice": (52, False), "electric_guitar": (29, False), "acoustic_guitar": (25, False),
}
#: General MIDI drum keys used in the drum roll, and how long each hit sounds (seconds).
DRUM_PITCHES: dict[str, int] = {"kick": 36, "snare": 38, "hat": 42, "open_hat": 46, "ride": 51}
_DRUM_SECONDS = {36: 0.30, 38: 0.22, 42: 0.07, 46: 0.30, 51: 0.40}
_DRUM_LEVEL = {36: 1.0, 38: 0.8, 42: 0.3, 46: 0.3, 51: 0.18}

# Which score part each instrument plays; four-part roles are upper/alto/tenor/lower.
_ROLE = {
    "vocals": "melody", "bass": "bass", "guitar": "comp", "piano": "comp", "drums": "drums",
    "violin": "upper", "clarinet": "alto", "saxophone": "tenor", "bassoon": "lower",
    "soprano": "upper", "alto": "alto", "tenor": "tenor", "bass_voice": "lower",
    "electric_guitar": "comp", "acoustic_guitar": "comp",
}
# How often a part plays relative to the style's presence: the melody rests more, and the guitars
# of the MedleyDB-like line-up come and go more than the band's other parts.
_ROLE_PRESENCE = {"melody": 0.8}
_INSTRUMENT_PRESENCE = {"electric_guitar": 0.7, "acoustic_guitar": 0.6}
_COMP_CENTER = {"guitar": 57, "electric_guitar": 55, "acoustic_guitar": 60}
_PART_RANGE = {"upper": (62, 79), "alto": (55, 72), "tenor": (48, 67), "lower": (38, 57)}
# Loudness of each stem relative to the others (dB), before a random +-2 dB.
_LEVEL_DB = {"vocals": 0.0, "bass": -2.0, "drums": -1.0, "guitar": -5.0, "piano": -5.0,
             "electric_guitar": -5.0, "acoustic_guitar": -5.0}
_SECTION_BARS = 2


# ---------------------------------------------------------------------------- styles

@dataclass(frozen=True, eq=False)
class Style:
    """Distributions shared by the songs of one style: one *domain* of training data.

    Ranges ``(low, high)`` are sampled uniformly per song. Progressions are Roman numerals, one
    chord per bar (lowercase = minor, ``b`` = flat root, suffixes ``7``, ``maj7``, ``dim``, ``sus4``;
    a progression containing ``i`` is in a minor key). Patterns have 16 sixteenth-note steps:
    drums use ``X``/``x``/``o`` for loud/normal/ghost hits, the bass uses ``r``/``f``/``o``/``w`` for
    root/fifth/octave/walking notes, comping uses ``x`` for a hit and ``-`` to hold it.

    Chapter: foundations/synthesiser
    """

    name: str
    tempo: tuple[float, float]
    progressions: tuple[str, ...]
    drums: Mapping[str, str]
    bass_pattern: str
    comp_patterns: tuple[str, ...]
    melody_density: float                  # chance that a melody note starts on an eighth note
    melody_range: tuple[int, int]          # MIDI pitches
    brightness: tuple[float, float]        # scales how much high-harmonic energy instruments have
    vibrato: tuple[float, float]           # vibrato depth of the voice, in semitones
    formant_shift: tuple[float, float]     # voice formants relative to an adult male voice
    drive: tuple[float, float] = (0.0, 0.0)  # guitar overdrive; above zero it plays power chords
    swing: float = 0.5                     # where the off-beat eighth falls within the beat
    presence: float = 0.75                 # chance that an instrument plays in a section
    humanise: float = 0.006                # timing jitter (seconds, standard deviation)
    instruments: tuple[str, ...] = ("vocals", "bass", "guitar", "piano", "drums")


_BACKBEAT = {"kick": "x.......x.......", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."}
STYLES: dict[str, Style] = {
    "pop": Style(
        "pop", (92, 120), ("I V vi IV", "vi IV I V", "I vi IV V", "i bVI bIII bVII"),
        {"kick": "x.....x.x.......", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},
        "r.....r.r...f...", ("x-------x-------", "x--x--x-x--x--x-", "x-x-x-x-x-x-x-x-"),
        0.45, (57, 76), (0.8, 1.1), (0.15, 0.35), (1.0, 1.2)),
    "rock": Style(
        "rock", (110, 150), ("I bVII IV I", "I IV V IV", "i bVII bVI bVII", "I V IV IV"),
        {"kick": "X.....x.X.x.....", "snare": "....X.......X...", "hat": "X.x.X.x.X.x.X.x."},
        "r.r.r.r.r.r.r.r.", ("x-x-x-x-x-x-x-x-", "x--x--x-x--x--x-"),
        0.4, (55, 74), (1.0, 1.4), (0.05, 0.2), (0.95, 1.1), drive=(2.0, 6.0), presence=0.8),
    "jazz": Style(
        "jazz", (100, 160), ("ii7 V7 Imaj7 Imaj7", "Imaj7 vi7 ii7 V7", "iii7 VI7 ii7 V7", "i7 iv7 V7 i7"),
        {"ride": "x...x.x.x...x.x.", "hat": "....x.......x...", "kick": "o..........o....",
         "snare": "......o.......o."},
        "w...w...w...w...", ("x-----x---------", "...x-----x------", "x-------..x-----"),
        0.55, (55, 77), (0.6, 0.9), (0.25, 0.5), (1.05, 1.25), swing=0.64, presence=0.7),
    "folk": Style(
        "folk", (80, 112), ("I IV I V", "I V IV I", "vi IV I V", "i bVII i bVII"),
        {"kick": "x.......x.......", "snare": "........o.......", "hat": "o.o.o.o.o.o.o.o."},
        "r.......f.......", ("x-x-x-x-x-x-x-x-", "x--x--x-x--x--x-", "x---x---x---x---"),
        0.4, (57, 76), (0.7, 1.0), (0.1, 0.25), (1.05, 1.25), humanise=0.01),
    "electronic": Style(
        "electronic", (118, 132), ("i bVI bIII bVII", "vi IV I V", "i i bVI bVII", "i7 iv7 bVI bVII"),
        {"kick": "X...X...X...X...", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x.",
         "open_hat": "..x...x...x...x."},
        "..r...r...r...r.", ("x--x--x---x--x--", "..x...x...x...x."),
        0.5, (60, 79), (1.1, 1.5), (0.0, 0.1), (0.95, 1.3), humanise=0.0, presence=0.7),
    "quartet": Style(
        "quartet", (60, 90), ("I IV V I", "I vi ii V", "i iv V i", "I V vi iii IV I IV V"),
        _BACKBEAT, "r.......f.......", ("x-------x-------",),
        0.4, (62, 79), (0.8, 1.2), (0.1, 0.3), (1.1, 1.2), presence=0.85,
        instruments=("violin", "clarinet", "saxophone", "bassoon")),
    "choir": Style(
        "choir", (60, 84), ("I IV I V", "I ii V I", "i iv V i", "I vi IV V"),
        _BACKBEAT, "r.......f.......", ("x-------x-------",),
        0.4, (60, 79), (0.7, 1.0), (0.1, 0.25), (1.0, 1.2), presence=0.85,
        instruments=("soprano", "alto", "tenor", "bass_voice")),
}


# ---------------------------------------------------------------------------- songs

@dataclass
class Song:
    """One synthesised song with its exact stems and score.

    ``stems[name]`` and ``mixture`` are float32 ``(time,)`` and ``mixture == sum(stems.values())``
    exactly. ``rolls[name]`` is bool ``(frames, 128)``: frame ``i`` (time ``i / frame_rate``) is on
    for pitch ``p`` when a note of pitch ``p`` sounds then (drums use General MIDI keys, see
    ``DRUM_PITCHES``). ``notes[name]`` is ``(n, 4)``: onset_s, offset_s, MIDI pitch, velocity.
    ``activity[name]`` is bool ``(frames,)`` and comes from the score, not the audio: a frame is
    active when any note of the instrument sounds (``rolls[name].any(axis=1)``).

    Chapter: foundations/synthesiser
    """

    name: str
    sr: int
    stems: dict[str, np.ndarray]
    mixture: np.ndarray
    rolls: dict[str, np.ndarray]
    notes: dict[str, np.ndarray]
    activity: dict[str, np.ndarray]
    frame_rate: float
    meta: dict

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.mixture) / self.sr

    def sources(self, names: Sequence[str] | None = None, *, missing: str = "error") -> np.ndarray:
        """Stack stems as ``(K, time)`` in the order of ``names`` (default: every stem).

        ``missing='silence'`` returns zeros for an instrument this song lacks instead of raising.
        """
        names = list(self.stems) if names is None else list(names)
        if missing not in ("error", "silence"):
            raise ValueError(f"missing must be 'error' or 'silence', got {missing!r}")
        absent = [n for n in names if n not in self.stems]
        if absent and missing == "error":
            raise ValueError(f"names: song {self.name!r} has no stem {absent}; it has {list(self.stems)}")
        silence = np.zeros_like(self.mixture)
        return np.stack([self.stems.get(n, silence) for n in names])

    def grouped(self, targets: Sequence[str] = ("vocals", "drums", "bass", "other")) -> np.ndarray:
        """Sum stems into MUSDB targets via ``MUSDB_GROUPS``: ``(K, time)``, silence for empty groups."""
        unknown = sorted(set(targets) - set(MUSDB_GROUPS.values()))
        if unknown:
            raise ValueError(f"targets: unknown {unknown}; choose from {sorted(set(MUSDB_GROUPS.values()))}")
        out = np.zeros((len(targets), len(self.mixture)), np.float32)
        for name, stem in self.stems.items():
            if MUSDB_GROUPS[name] in targets:
                out[list(targets).index(MUSDB_GROUPS[name])] += stem
        return out


# ---------------------------------------------------------------------------- score generation

_NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ROMAN = {"i": 0, "ii": 2, "iii": 4, "iv": 5, "v": 7, "vi": 9, "vii": 11}
_QUALITY = {"": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "m7": (0, 3, 7, 10),
            "maj7": (0, 4, 7, 11), "dim": (0, 3, 6), "sus4": (0, 5, 7)}
_MAJOR, _MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)


def _split_numeral(symbol: str) -> tuple[bool, str, str]:
    flat = symbol.startswith("b")
    body = symbol[1:] if flat else symbol
    k = len(body) - len(body.lstrip("ivIV"))
    return flat, body[:k], body[k:]


def _parse_chord(symbol: str, tonic: int) -> tuple[str, int, tuple[int, ...]]:
    """Roman numeral -> (chord name, root pitch class, intervals); 'bVII' in C is ('Bb', 10, (0, 4, 7))."""
    flat, numeral, suffix = _split_numeral(symbol)
    quality = suffix if suffix in ("maj7", "dim", "sus4") or numeral.isupper() else "m" + suffix
    root = (tonic + _ROMAN[numeral.lower()] - flat) % 12
    return _NOTE_NAMES[root] + quality, root, _QUALITY[quality]


@dataclass
class _Score:
    style: Style
    tonic: int
    minor: bool
    tempo: float
    chords: list[tuple[str, int, tuple[int, ...]]]   # one (name, root, intervals) per bar

    @property
    def n_bars(self) -> int:
        return len(self.chords)

    @property
    def scale(self) -> set[int]:
        return {(self.tonic + i) % 12 for i in (_MINOR if self.minor else _MAJOR)}

    def tones(self, bar: int) -> set[int]:
        _, root, intervals = self.chords[bar]
        return {(root + i) % 12 for i in intervals}

    def time(self, step: float) -> float:
        """Seconds at a sixteenth-note step; swing delays the off-beat eighth of every beat."""
        beat, frac = divmod(step / 4.0, 1.0)
        s = self.style.swing
        warped = frac * 2 * s if frac < 0.5 else s + (frac - 0.5) * 2 * (1 - s)
        return (beat + warped) * 60.0 / self.tempo


def _compose(seed: int, style: Style, seconds: float) -> _Score:
    rng = seeds.rng(seed, style.name, "score")
    tempo = float(rng.uniform(*style.tempo))
    progression = style.progressions[rng.integers(len(style.progressions))].split()
    tonic = int(rng.integers(12))
    minor = any(_split_numeral(s)[1] == "i" for s in progression)
    n_bars = math.ceil(seconds / (240.0 / tempo))
    chords = [_parse_chord(progression[bar % len(progression)], tonic) for bar in range(n_bars)]
    return _Score(style, tonic, minor, tempo, chords)


def _pick(previous: float, pitch_classes: set[int], low: int, high: int, rng, spread: float = 3.0) -> int:
    """A pitch in [low, high] from ``pitch_classes``, preferring small moves (voice leading)."""
    low, high = min(low, high), max(low, high)
    candidates = np.array([p for p in range(low, high + 1) if p % 12 in pitch_classes] or range(low, high + 1))
    weights = np.exp(-np.abs(candidates - previous) / spread)
    return int(rng.choice(candidates, p=weights / weights.sum()))


# Parts are lists of events (start_step, end_step, pitch, velocity) on the sixteenth-note grid.
def _melody(score: _Score, rng, low: int, high: int) -> list[tuple]:
    scale = np.array([p for p in range(low, high + 1) if p % 12 in score.scale])
    i, events = len(scale) // 2, []
    for bar in range(score.n_bars):
        phrase_end = bar % 2 == 1
        starts = [e for e in range(8) if rng.random() < (0.85 if e == 0 else score.style.melody_density)]
        if phrase_end:                                   # leave room to breathe before the next phrase
            starts = [e for e in starts if e < 5]
        for k, e in enumerate(starts):
            i = int(np.clip(i + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(scale) - 1))
            if e % 2 == 0:                               # chord tones on the beat
                fits = np.flatnonzero(np.isin(scale % 12, list(score.tones(bar))))
                i = int(fits[np.argmin(np.abs(fits - i))]) if len(fits) else i
            end = starts[k + 1] if k + 1 < len(starts) else (6 if phrase_end else 8)
            events.append((16 * bar + 2 * e, 16 * bar + 2 * end - 0.3, int(scale[i]), int(rng.integers(80, 110))))
    return events


def _four_part(score: _Score, rng) -> dict[str, list[tuple]]:
    """Chorale-style harmony: bass on roots, inner voices on near chord tones, a stepwise top line."""
    previous = {role: (lo + hi) / 2 for role, (lo, hi) in _PART_RANGE.items()}
    lines: dict[str, list[tuple]] = {role: [] for role in _PART_RANGE}
    for bar in range(score.n_bars):
        tones, root = score.tones(bar), score.chords[bar][1]
        for beat in range(4):
            chosen = {
                "lower": _pick(previous["lower"], {root} if beat == 0 else tones, *_PART_RANGE["lower"], rng),
                "upper": _pick(previous["upper"], tones if beat % 2 == 0 else score.scale,
                               *_PART_RANGE["upper"], rng, spread=2.0),
            }
            for inner, above in (("alto", "upper"), ("tenor", "alto")):   # no voice crossing
                low, high = _PART_RANGE[inner]
                chosen[inner] = _pick(previous[inner], tones, max(low, chosen["lower"] + 2),
                                      min(high, chosen[above] - 1), rng)
            for role, pitch in chosen.items():
                line, start = lines[role], 16 * bar + 4 * beat
                if line and line[-1][2] == pitch and line[-1][1] >= start - 0.5 and rng.random() < 0.7:
                    line[-1] = (line[-1][0], start + 3.7, pitch, line[-1][3])      # tie repeated notes
                else:
                    line.append((start, start + 3.7, pitch, int(rng.integers(70, 95))))
                previous[role] = pitch
    return lines


def _bass_line(score: _Score, rng) -> list[tuple]:
    pattern = score.style.bass_pattern
    onsets = [s for s, c in enumerate(pattern) if c != "."]
    events, previous = [], 40
    for bar in range(score.n_bars):
        root = 31 + (score.chords[bar][1] - 31) % 12              # G1 .. F#2
        next_root = 31 + (score.chords[(bar + 1) % score.n_bars][1] - 31) % 12
        for k, s in enumerate(onsets):
            kind = pattern[s]
            if kind != "w":
                pitch = root + {"r": 0, "f": 7, "o": 12}[kind]
            elif k == 0:                                          # walking: start on the root,
                pitch = root
            elif k == len(onsets) - 1:                            # approach the next root by a semitone,
                pitch = next_root + int(rng.choice([-1, 1]))
            else:                                                 # chord tones in between
                pitch = _pick(previous, score.tones(bar), root, root + 12, rng)
            end = onsets[k + 1] if k + 1 < len(onsets) else 16
            events.append((16 * bar + s, 16 * bar + end - 0.4, pitch, 100 if s % 4 == 0 else 85))
            previous = pitch
    return events


def _comp(score: _Score, rng, strum_steps: float, power_chords: bool, center: int) -> list[tuple]:
    """Chords on a rhythm pattern; a positive ``strum_steps`` spreads the notes like a strum."""
    pattern = score.style.comp_patterns[rng.integers(len(score.style.comp_patterns))]
    hits = [(s, s + 1 + len(pattern[s + 1:]) - len(pattern[s + 1:].lstrip("-")))
            for s, c in enumerate(pattern) if c == "x"]
    events = []
    for bar in range(score.n_bars):
        _, root, intervals = score.chords[bar]
        if power_chords:
            low = 40 + (root - 40) % 12
            voicing = [low, low + 7, low + 12]
        else:                                                      # close voicing around `center`
            voicing = sorted(center - 6 + (root + i - center + 6) % 12 for i in intervals)
        for n, (start, end) in enumerate(hits):
            order = voicing if n % 2 == 0 else voicing[::-1]       # down and up strums
            velocity = 92 if start % 4 == 0 else 76
            for k, pitch in enumerate(order):
                events.append((16 * bar + start + k * strum_steps, 16 * bar + end - 0.3, pitch, velocity))
    return events


def _drum_part(score: _Score, rng) -> list[tuple]:
    events = []
    for bar in range(score.n_bars):
        for piece, pattern in score.style.drums.items():
            for s, c in enumerate(pattern):
                if c in "Xxo":
                    velocity = {"X": 115, "x": 95, "o": 60}[c]
                    events.append((16 * bar + s, 16 * bar + s, DRUM_PITCHES[piece], velocity))
        if bar % _SECTION_BARS == _SECTION_BARS - 1 and rng.random() < 0.3:     # a small fill
            events += [(16 * bar + s, 16 * bar + s, DRUM_PITCHES["snare"], 40 + 10 * s) for s in (13, 14, 15)]
    return events


def _arrange(seed: int, style: Style, instruments: Sequence[str], n_sections: int) -> dict[str, np.ndarray]:
    """Which sections each instrument plays in; every instrument and every section gets someone."""
    rng = seeds.rng(seed, style.name, "arrangement")
    draws = {name: rng.random(n_sections) for name in _FIRST_INSTRUMENTS}   # independent of the line-up
    for name in INSTRUMENTS[len(_FIRST_INSTRUMENTS):]:
        draws[name] = seeds.rng(seed, style.name, "arrangement", name).random(n_sections)
    active = {}
    for name in instruments:
        presence = style.presence * _INSTRUMENT_PRESENCE.get(name, _ROLE_PRESENCE.get(_ROLE[name], 1.0))
        active[name] = draws[name] < presence
        if not active[name].any():
            active[name][int(draws[name].argmin())] = True
    for section in range(n_sections):
        if not any(active[name][section] for name in instruments):
            active[instruments[int(rng.integers(len(instruments)))]][section] = True
    return active


def _perform(score: _Score, events: list[tuple], active: np.ndarray, rng, seconds: float,
             drums: bool = False) -> np.ndarray:
    """Events on the grid -> notes ``(n, 4)`` in seconds, keeping only sections where the part plays."""
    section_steps = 16 * _SECTION_BARS
    rows = []
    for start, end, pitch, velocity in events:
        section = int(start // section_steps)
        if section >= len(active) or not active[section]:
            continue
        if section + 1 < len(active) and not active[section + 1]:
            end = min(end, (section + 1) * section_steps)
        jitter = float(np.clip(rng.normal(0, score.style.humanise), -0.02, 0.02)) if score.style.humanise else 0.0
        onset = max(score.time(start) + jitter, 0.0)
        length = _DRUM_SECONDS[pitch] if drums else max(score.time(end) - score.time(start), 0.03)
        if onset < seconds:
            rows.append((onset, min(onset + length, seconds), pitch, velocity))
    return np.array(sorted(rows), dtype=np.float64).reshape(-1, 4)


# ---------------------------------------------------------------------------- instrument models

# Adult male vowel formants F1..F3 (Hz), after Peterson & Barney (1952); F4 fixed at 3600 Hz.
_VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010),
           "o": (570, 840, 2410), "u": (300, 870, 2240)}
_FORMANT_BANDWIDTHS = (80.0, 90.0, 120.0, 150.0)


def _hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def _envelope(n_hold: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, hold, exponential release over ``4 * release`` seconds, ending at zero."""
    n = n_hold + int(4 * release * sr) + 1
    t = np.arange(n, dtype=np.float32) / sr
    env = np.minimum(1.0, t / attack) * np.exp(-np.maximum(t - n_hold / sr, 0.0) / release)
    env[-1] = 0.0
    return env.astype(np.float32)


def _partials(cycles: np.ndarray, ratios: np.ndarray, amps: np.ndarray, sr: int,
              decays: np.ndarray | None = None) -> np.ndarray:
    """Sum of partials ``amps[m] * exp(-decays[m] t) * sin(2 pi ratios[m] cycles(t))``, band-limited.

    ``cycles`` is the running phase of the fundamental in cycles (float64). Partials that would
    pass 0.45 * sr are dropped, so the result has no aliasing however bright the spectrum.
    """
    f0_max = float(np.max(np.diff(cycles))) * sr if len(cycles) > 1 else 0.0
    keep = (ratios * f0_max < 0.45 * sr) & (amps > 1e-3 * amps.max())
    ratios, amps = ratios[keep], amps[keep].astype(np.float32)
    integer = bool(np.all(ratios == np.round(ratios)))
    # With integer ratios the fundamental can be wrapped to [0, 1), keeping float32 phases exact.
    base = (np.mod(cycles, 1.0) if integer else cycles).astype(np.float32)
    waves = np.outer(np.float32(2 * np.pi) * ratios.astype(np.float32), base)
    np.sin(waves, out=waves)
    if decays is None:
        waves *= amps[:, None]
    else:                       # amplitude and decay in one exp: amps * exp(-d t) = exp(log amps - d t)
        t = np.arange(len(cycles), dtype=np.float32) / sr
        gains = np.outer(-decays[keep].astype(np.float32), t)
        gains += np.log(amps)[:, None]
        waves *= np.exp(gains, out=gains)
    return waves.sum(axis=0)    # a plain sum, not a BLAS product: BLAS threads stall on busy machines


def _cycles(f0: float, n: int, sr: int, rng, depth: float, rate: float, jitter: float) -> np.ndarray:
    """Running phase (cycles) of a tone with vibrato fading in over 0.3 s and slow random jitter."""
    t = np.arange(n) / sr
    semitones = depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)) * np.minimum(1.0, t / 0.3)
    if jitter:
        knots = np.arange(0, t[-1] + 0.05, 0.05)
        semitones = semitones + np.interp(t, knots, rng.normal(0, jitter, len(knots)))
    return np.cumsum(f0 * 2.0 ** (semitones / 12)) / sr


def _unit(amps: np.ndarray) -> np.ndarray:
    return amps / np.sqrt(np.sum(amps ** 2))


def _bass_note(pitch, n_hold, p, sr, rng, vowel=None):
    """Subtractive bass: a saw/square spectrum whose low-pass closes (high harmonics decay first)."""
    env = _envelope(n_hold, sr, 0.004, 0.02)
    m = np.arange(1.0, 41.0)
    amps = 1.0 / m
    amps[1::2] *= 1.0 - p["squareness"]
    decays = p["decay"] + p["filter_decay"] * (m - 1)
    return _partials(_hz(pitch) * np.arange(len(env)) / sr, m, _unit(amps), sr, decays) * env


def _guitar_note(pitch, n_hold, p, sr, rng, vowel=None):
    """Plucked string: harmonics shaped by pluck and pickup positions, higher ones dying faster."""
    env = _envelope(n_hold, sr, 0.002, 0.03)
    m = np.arange(1.0, 31.0)
    amps = np.abs(np.sin(np.pi * m * p["pluck"]) * np.sin(np.pi * m * p["pickup"])) / m ** p["tilt"]
    decays = (1 + 0.02 * m ** 2) / p["sustain"]
    return _partials(_hz(pitch) * np.arange(len(env)) / sr, m, _unit(amps), sr, decays) * env


def _piano_note(pitch, n_hold, p, sr, rng, vowel=None):
    """Struck string: stretched (inharmonic) partials, a felt-hammer low-pass, pitch-dependent decay."""
    env = _envelope(n_hold, sr, 0.002, 0.08)
    f0, m = _hz(pitch), np.arange(1.0, 25.0)
    ratios = m * np.sqrt(1 + p["inharmonicity"] * m ** 2)
    amps = 1.0 / m / (1 + (m * f0 / p["hammer"]) ** 2)
    decays = p["decay"] * 2.0 ** ((pitch - 60) / 18) * (1 + 0.15 * (m - 1))
    return _partials(f0 * np.arange(len(env)) / sr, ratios, _unit(amps), sr, decays) * env


def _resonator(freq: float, bandwidth: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-pole resonator with unity gain at 0 Hz, the building block of cascade formant synthesis."""
    r = math.exp(-math.pi * bandwidth / sr)
    a = np.array([1.0, -2 * r * math.cos(2 * math.pi * freq / sr), r * r])
    return np.array([a.sum()]), a


def _vowel_filter(
    x: np.ndarray, vowel: str, shift: float, f0: float, sr: int
) -> np.ndarray:
    formants = [f * shift for f in _VOWELS[vowel]] + [3600.0 * shift]
    formants[0] = max(formants[0], 1.1 * f0)  # singers raise F1 above a high f0
    for freq, bandwidth in zip(formants, _FORMANT_BANDWIDTHS):
        if freq < 0.45 * sr:
            b, a = _resonator(freq, bandwidth * shift, sr)
            x = signal.lfilter(b, a, x)
    return x


def _body(freqs: np.ndarray, resonances: tuple, floor: float = 0.3) -> np.ndarray:
    """Gain of an instrument body at ``freqs``: a floor plus one bump per (freq, bandwidth) resonance."""
    return floor + sum(1 / (1 + ((freqs - f) / (0.5 * bw)) ** 2) for f, bw in resonances)


def _sustained_note(pitch, n_hold, p, sr, rng, vowel=None):
    """Voice, bowed string or reed: a harmonic source with vibrato and jitter, shaped by formants.

    Voices use a band-limited glottal source: harmonics falling as ``m ** -tilt`` (tilt 1 is a
    sawtooth, steeper tilts approach the spectrum of a Rosenberg glottal pulse), filtered by the
    formant resonators of the note's vowel. Instruments shape their harmonics by body resonances.
    """
    env = _envelope(n_hold, sr, p["attack"], p["release"])
    f0, m = _hz(pitch), np.arange(1.0, 61.0)
    cycles = _cycles(f0, len(env), sr, rng, p["vibrato_depth"], p["vibrato_rate"], p["jitter"])
    amps = m ** -p["tilt"]
    amps[1::2] *= np.where(m[1::2] * f0 < 1500, p["even"], 1.0)      # clarinet: weak low even harmonics
    if p["body"]:
        amps *= _body(m * f0, p["body"], floor=0.15)
    wave = _partials(cycles, m, _unit(amps), sr)
    if p["breath"]:                       # breath noise, low-passed unless formants will shape it
        noise = rng.standard_normal(len(env))
        wave += p["breath"] * (noise if vowel is not None else signal.lfilter([0.3], [1, -0.7], noise))
    if vowel is not None:
        wave = _vowel_filter(wave, vowel, p["formant_shift"], f0, sr)
    return wave * env


@functools.lru_cache(maxsize=64)
def _highpass(cutoff: float, sr: int, order: int) -> np.ndarray:
    return signal.butter(order, min(cutoff, 0.4 * sr), "highpass", fs=sr, output="sos")


def _drum_hit(pitch: int, p: dict, sr: int, rng) -> np.ndarray:
    """Kick: a sine sweeping down; snare: a tone plus noise; hats and ride: high-passed noise."""
    n = int(_DRUM_SECONDS[pitch] * 1.5 * sr)
    t = np.arange(n) / sr
    noise = rng.standard_normal(n)
    if pitch == DRUM_PITCHES["kick"]:
        sweep = p["kick_low"] + (p["kick_high"] - p["kick_low"]) * np.exp(-t / 0.03)
        click = 0.2 * noise * np.exp(-t / 0.003)
        wave = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / p["kick_decay"]) + click
    elif pitch == DRUM_PITCHES["snare"]:
        rattle = signal.sosfilt(_highpass(1200.0, sr, 2), noise) * np.exp(-t / p["snare_decay"])
        wave = 0.6 * np.sin(2 * np.pi * p["snare_tone"] * t) * np.exp(-t / 0.05) + rattle
    else:
        decay = {42: p["hat_decay"], 46: 0.12, 51: 0.3}[pitch]
        wave = signal.sosfilt(_highpass(p["hat_cutoff"] * (0.6 if pitch == 51 else 1.0), sr, 4), noise)
        wave = wave * np.exp(-t / decay)
    wave *= np.linspace(1.0, 0.0, n) ** 0.5                     # close the tail without a click
    return (_DRUM_LEVEL[pitch] * wave / np.max(np.abs(wave))).astype(np.float32)


_MODELS = {"bass": _bass_note, "guitar": _guitar_note, "piano": _piano_note,
           "electric_guitar": _guitar_note, "acoustic_guitar": _guitar_note}


def _timbre(name: str, style: Style, rng) -> dict[str, float]:
    """Random timbre parameters of one instrument in one song, drawn from the style's ranges."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))                # noqa: E731
    bright = u(*style.brightness)
    if name == "bass":
        return {"squareness": u(0.0, 0.7), "decay": u(0.3, 1.5), "filter_decay": u(3.0, 12.0) / bright}
    if name == "guitar":
        return {"pluck": u(0.1, 0.3), "pickup": u(0.04, 0.2), "sustain": u(1.5, 4.0),
                "tilt": u(0.8, 1.3) / bright, "drive": u(*style.drive), "strum": u(0.006, 0.018)}
    if name == "electric_guitar":                                # always overdriven, bridge pickup
        return {"pluck": u(0.1, 0.3), "pickup": u(0.04, 0.12), "sustain": u(2.0, 4.0),
                "tilt": u(0.8, 1.1) / bright, "drive": u(2.0, 6.0), "strum": u(0.006, 0.012)}
    if name == "acoustic_guitar":                                # clean, bright, wide strums
        return {"pluck": u(0.15, 0.35), "pickup": u(0.15, 0.3), "sustain": u(0.8, 2.0),
                "tilt": u(0.6, 0.9) / bright, "drive": 0.0, "strum": u(0.015, 0.03)}
    if name == "piano":
        return {"inharmonicity": u(0.5e-4, 4e-4), "hammer": u(1200, 3000) * bright, "decay": u(0.4, 1.0)}
    if name == "drums":
        return {"kick_high": u(110, 220), "kick_low": u(42, 60), "kick_decay": u(0.12, 0.3),
                "snare_tone": u(160, 240), "snare_decay": u(0.06, 0.15), "hat_decay": u(0.015, 0.04),
                "hat_cutoff": u(5000, 9000)}
    voice = name in ("vocals", "soprano", "alto", "tenor", "bass_voice")
    p = {"tilt": u(1.1, 1.5) / bright if voice else 1.0, "even": 1.0, "body": (), "breath": 0.0,
         "jitter": 0.04 if voice else 0.01, "vibrato_depth": u(*style.vibrato) if voice else u(0.0, 0.05),
         "vibrato_rate": u(4.5, 6.5), "attack": u(0.03, 0.06), "release": u(0.04, 0.08)}
    if voice:
        shift = {"vocals": u(*style.formant_shift), "soprano": u(1.15, 1.22), "alto": u(1.1, 1.17),
                 "tenor": u(1.0, 1.05), "bass_voice": u(0.92, 0.98)}[name]
        p.update(formant_shift=shift, breath=u(0.01, 0.03))
        if name != "vocals":
            p["vibrato_depth"] *= 0.5
    elif name == "violin":
        p.update(tilt=u(1.0, 1.2) / bright, body=((280, 120), (460, 200), (2800, 1500)),
                 vibrato_depth=u(0.1, 0.25), attack=u(0.06, 0.1))
    elif name == "clarinet":
        p.update(tilt=u(1.2, 1.5) / bright, even=u(0.05, 0.2))
    elif name == "saxophone":
        p.update(tilt=u(1.0, 1.2) / bright, body=((u(500, 650), 300), (u(1500, 2000), 700)),
                 vibrato_depth=u(0.05, 0.15), breath=0.01)
    elif name == "bassoon":
        p.update(tilt=u(1.2, 1.5) / bright, body=((u(430, 500), 200), (1150, 300)), attack=u(0.04, 0.07))
    return p


# ---------------------------------------------------------------------------- rendering

def _render(name: str, notes: np.ndarray, vowels: list[str] | None, timbre: dict, sr: int,
            n_samples: int, rng) -> np.ndarray:
    """Render one stem, float32 ``(time,)``: every note's waveform added at its onset."""
    out = np.zeros(n_samples + 3 * sr, np.float32)               # room for release tails
    model = _MODELS.get(name, _sustained_note)
    cache: dict[tuple, np.ndarray] = {}          # strums and chords repeat: render each note once
    for k, (onset, offset, pitch, velocity) in enumerate(notes):
        start = int(round(onset * sr))
        if name == "drums":
            wave = _drum_hit(int(pitch), timbre, sr, rng)
        else:
            n_hold = max(int(round((offset - onset) * sr)), 1)
            key = (int(pitch), n_hold, vowels[k] if vowels else None)
            if key not in cache or model is _sustained_note:
                cache[key] = model(pitch, n_hold, timbre, sr, rng, key[2])
            wave = cache[key]
        segment = out[start:start + len(wave)]
        segment += np.float32((velocity / 127) ** 1.5) * wave[:len(segment)]
    stem = out[:n_samples]
    if timbre.get("drive"):                                      # overdriven electric guitar
        stem = np.tanh(timbre["drive"] * stem / (np.max(np.abs(stem)) + 1e-9))
    # A DC blocker (one-pole high-pass near 15 Hz): sweeps and glottal pulses leave an offset.
    pole = math.exp(-2 * math.pi * 15.0 / sr)
    stem = signal.lfilter([1.0, -1.0], [1.0, -pole], stem).astype(np.float32)
    stem[np.abs(stem) < 1e-20] = 0.0                             # no denormals: they slow later maths
    return stem


def notes_to_roll(
    notes: np.ndarray, n_frames: int, frame_rate: float, *, tolerance: float = 0.0
) -> np.ndarray:
    """Piano roll ``(n_frames, 128)`` bool from notes ``(n, >=3)`` (onset_s, offset_s, pitch, ...).

    Frame ``i`` stands for time ``i / frame_rate`` and is on while a note sounds then, the
    synthesiser's convention; every note lights at least one frame, so short drum hits survive.
    Times up to ``tolerance`` seconds after a frame count as on it, so that rounding note times to
    MIDI ticks does not move them by a frame.
    Chapter: foundations/synthesiser
    """
    roll = np.zeros((n_frames, 128), dtype=bool)
    notes = np.asarray(notes, dtype=np.float64)
    if notes.size == 0:
        return roll
    slack = tolerance * frame_rate + 1e-9
    for onset, offset, pitch in notes.reshape(len(notes), -1)[:, :3]:
        first = max(int(np.ceil(onset * frame_rate - slack)), 0)
        last = max(int(np.ceil(offset * frame_rate - slack)), first + 1)
        if 0 <= pitch < 128 and first < n_frames:
            roll[first:min(last, n_frames), int(round(pitch))] = True
    return roll


# ---------------------------------------------------------------------------- public API

def _check_fonts(fonts: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if fonts is None:
        return None
    from sepbook.data import soundfonts

    fonts = (fonts,) if isinstance(fonts, str) else tuple(fonts)
    unknown = [f for f in fonts if f not in soundfonts.FONTS]
    if not fonts or unknown:
        raise ValueError(f"fonts: expected names from {sorted(soundfonts.FONTS)}, got {list(fonts)}")
    return fonts


def _check_arguments(seed, seconds, sr, instruments, style, frame_rate) -> tuple[Style, tuple[str, ...]]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(seconds, (int, float, np.number)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be a positive number of seconds, got {seconds!r}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr < 8000:
        raise ValueError(f"sr must be an integer sample rate of at least 8000 Hz, got {sr!r}")
    if not isinstance(frame_rate, (int, float, np.number)) or not 0 < frame_rate <= sr:
        raise ValueError(f"frame_rate must be in (0, sr={sr}] frames per second, got {frame_rate!r}")
    if isinstance(style, str):
        if style not in STYLES:
            raise ValueError(f"style: unknown style {style!r}; choose one of {sorted(STYLES)} or pass a Style")
        style = STYLES[style]
    elif not isinstance(style, Style):
        raise ValueError(f"style must be a style name {sorted(STYLES)} or a Style, got {type(style).__name__}")
    names = style.instruments if instruments is None else instruments
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names:
        raise ValueError(f"instruments is empty; choose one or more of {list(INSTRUMENTS)}")
    unknown = [n for n in names if n not in INSTRUMENTS]
    if unknown:
        raise ValueError(f"instruments: unknown {unknown}; valid instruments are {list(INSTRUMENTS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"instruments: each instrument may appear once, got {list(names)}")
    return style, names


VOICES: tuple[str, ...] = ("vocals", "soprano", "alto", "tenor", "bass_voice")
#: A part that plays less than this fraction of the song is balanced as if it played this much,
#: so one short note is not raised to the loudness of a whole part (a click).
MIN_PLAYING = 0.1


def _playing_fraction(notes: np.ndarray, seconds: float) -> float:
    """The fraction of the song during which some note of the part sounds, from the score."""
    roll = notes_to_roll(notes, max(int(round(seconds * 100)), 1), 100.0)
    return float(roll.any(axis=1).mean())


def balance(stem: np.ndarray, playing: float, level_db: float) -> np.ndarray:
    """Scale ``stem`` so that it sounds at ``level_db`` (re 0.1 RMS) while it plays.

    Sparse parts are thus not drowned by busy ones. ``playing`` is the fraction of
    the song the score has the part sounding; a part that plays less than
    ``MIN_PLAYING`` of it is made quieter in proportion, so that one short note does
    not come out as a click at full loudness.
    """
    playing = max(float(playing), 1e-6)
    power = float(np.mean(stem.astype(np.float64) ** 2))
    loudness = math.sqrt(power / playing) + 1e-12
    sparse = math.sqrt(min(1.0, playing / MIN_PLAYING))
    target = 0.1 * 10 ** (level_db / 20) * sparse
    return (stem * np.float32(target / loudness)).astype(np.float32)


def _play_sampled(inst: str, notes: np.ndarray, fonts: Sequence[str], sr: int, n_samples: int,
                  rng) -> tuple[np.ndarray, dict]:
    """One part through a SoundFont drawn from ``fonts``, on a program drawn for its instrument."""
    from sepbook.data import soundfonts

    font = str(fonts[int(rng.integers(len(fonts)))])
    drums = inst == "drums"
    choices = soundfonts.DRUM_KITS if drums else soundfonts.PROGRAMS[inst]
    program = int(choices[int(rng.integers(len(choices)))])
    stem = soundfonts.render_part(notes, program, drums=drums, font=font, sr=sr, n_samples=n_samples)
    return stem, {"font": font, "program": program}


def synthesize_song(seed: int, *, seconds: float = 8.0, sr: int = 16000,
                    instruments: Sequence[str] | None = None, style: str | Style = "pop",
                    frame_rate: float = 50.0, name: str | None = None,
                    fonts: Sequence[str] | None = None) -> Song:
    """Compose and render one song; the same arguments give bit-identical arrays.

    Returns a ``Song`` whose stems and mixture are float32 ``(time,)`` with ``time = round(seconds * sr)``
    and whose rolls/activity have ``round(time * frame_rate / sr)`` frames. ``instruments=None``
    uses the style's line-up (``('vocals', 'bass', 'guitar', 'piano', 'drums')`` for the band styles).
    Any instrument can join any style. The mixture peaks at 0.9 and stems keep their relative levels.

    ``fonts=None`` renders every part with the additive models. Names of SoundFonts
    (:data:`sepbook.data.soundfonts.FONTS`) play every pitched part and the drums as sampled
    instruments instead, each part through a font and program drawn from the seed; the voices
    keep the formant model (a General-MIDI font has only wordless "aah" and "ooh" pads).

    Chapter: foundations/synthesiser
    """
    style, names = _check_arguments(seed, seconds, sr, instruments, style, frame_rate)
    fonts = _check_fonts(fonts)
    seed = int(seed)
    n_samples = max(int(round(seconds * sr)), 1)
    score = _compose(seed, style, seconds)
    active = _arrange(seed, style, names, math.ceil(score.n_bars / _SECTION_BARS))
    harmony = _four_part(score, seeds.rng(seed, style.name, "four-part"))

    stems, notes, vowels, timbres, gains, sounds = {}, {}, {}, {}, {}, {}
    for inst in names:
        rng = seeds.rng(seed, style.name, "part", inst)
        timbre = _timbre(inst, style, rng)
        role = _ROLE[inst]
        if role == "melody":
            events = _melody(score, rng, *style.melody_range)
        elif role == "bass":
            events = _bass_line(score, rng)
        elif role == "comp":
            strum = timbre.get("strum", 0.0) * score.tempo / 15.0          # seconds -> sixteenth steps
            power_chords = timbre.get("drive", 0.0) > 0
            events = _comp(score, rng, strum, power_chords, center=_COMP_CENTER.get(inst, 64))
        elif role == "drums":
            events = _drum_part(score, rng)
        else:
            events = harmony[role]
        notes[inst] = _perform(score, events, active[inst], rng, n_samples / sr, drums=role == "drums")
        if inst in VOICES:
            vowels[inst] = [str(v) for v in rng.choice(list("aaeioou"), len(notes[inst]))]
        gains[inst] = _LEVEL_DB.get(inst, -3.0) + float(rng.uniform(-2, 2))
        # the additive corpora keep their first balance until their chapters retrain
        stems[inst], sounds[inst] = _play_part(inst, notes[inst], vowels.get(inst), timbre, gains[inst],
                                               fonts, sr, n_samples, (seed, style.name), fonts is None)
        timbres[inst] = timbre
    meta = {
        "style": style.name, "seed": seed, "tempo": score.tempo,
        "key": f"{_NOTE_NAMES[score.tonic]} {'minor' if score.minor else 'major'}",
        "chords": [chord[0] for chord in score.chords], "bar_seconds": 240.0 / score.tempo,
        "section_seconds": _SECTION_BARS * 240.0 / score.tempo,
        "sections": {inst: active[inst].tolist() for inst in names},
        "vowels": vowels, "gains_db": gains, "timbre": timbres,
    }
    return _song(name or f"{style.name}_{seed}", sr, stems, notes, sounds, frame_rate, meta)


def _play_part(inst: str, notes: np.ndarray, vowels: list[str] | None, timbre: dict, gain_db: float,
               fonts: Sequence[str] | None, sr: int, n_samples: int, labels: tuple,
               first_rule: bool = False) -> tuple[np.ndarray, dict]:
    """One part rendered (sampled if ``fonts``, else by its additive model) and balanced (by
    :func:`balance`, or by the first corpora's rule); -> ``(stem, sound)``."""
    sound = {}
    if fonts and inst not in VOICES:
        stem, sound = _play_sampled(inst, notes, fonts, sr, n_samples, seeds.rng(*labels, "font", inst))
    else:
        stem = _render(inst, notes, vowels, timbre, sr, n_samples, seeds.rng(*labels, "render", inst))
    if not first_rule:
        return balance(stem, _playing_fraction(notes, n_samples / sr), gain_db), sound
    active_fraction = max(float(np.mean(np.abs(stem) > 1e-4)), 1e-3)
    rms = math.sqrt(float(np.mean(stem.astype(np.float64) ** 2)) / active_fraction) + 1e-12
    return stem * np.float32(0.1 * 10 ** (gain_db / 20) / rms), sound


def _song(name: str, sr: int, stems: dict, notes: dict, sounds: dict, frame_rate: float, meta: dict) -> Song:
    """Stems scaled by one factor so that nothing peaks above 0.9, summed; rolls from the notes."""
    mixture = sum(stems.values())
    peak = max(float(np.max(np.abs(mixture))), *(float(np.max(np.abs(s))) for s in stems.values()))
    scale = np.float32(0.9 / peak) if peak > 0 else np.float32(1.0)
    stems = {inst: (stem * scale).astype(np.float32) for inst, stem in stems.items()}
    mixture = sum(stems.values())
    n_frames = max(int(round(len(mixture) * frame_rate / sr)), 1)
    rolls = {inst: notes_to_roll(notes[inst], n_frames, frame_rate) for inst in stems}
    meta = meta | {"programs": {inst: (sounds[inst]["program"], inst == "drums") if sounds.get(inst)
                                else GM_PROGRAMS[inst] for inst in stems},
                   "fonts": {inst: sound["font"] for inst, sound in sounds.items() if sound}}
    return Song(name, sr, stems, mixture, rolls, notes, {inst: roll.any(axis=1) for inst, roll in rolls.items()},
                float(frame_rate), meta)


def play_score(name: str, notes: Mapping[str, np.ndarray], *, seed: int, style: str, seconds: float,
               sr: int = 16000, fonts: Sequence[str] | None = None, frame_rate: float = 50.0,
               meta: Mapping | None = None) -> Song:
    """Play a given score, as :func:`synthesize_song` plays the scores it writes: a ``Song``.

    ``notes[instrument]`` is ``(n, 4)``: onset_s, offset_s, MIDI pitch, velocity. Timbres and levels
    are drawn from ``seed`` and ``style``'s ranges; ``fonts`` as in :func:`synthesize_song`, but every
    part is balanced by the score's rule (``MIN_PLAYING``). ``meta`` is kept in the song's ``meta``.

    Chapter: foundations/synthesiser
    """
    style, names = _check_arguments(seed, seconds, sr, tuple(notes), style, frame_rate)
    fonts = _check_fonts(fonts)
    n_samples = max(int(round(seconds * sr)), 1)
    stems, vowels, timbres, gains, sounds, kept = {}, {}, {}, {}, {}, {}
    for inst in names:
        rng = seeds.rng(seed, style.name, "score", inst)
        timbres[inst] = _timbre(inst, style, rng)
        kept[inst] = np.asarray(notes[inst], np.float64).reshape(-1, 4)
        kept[inst] = kept[inst][kept[inst][:, 0] < n_samples / sr]
        kept[inst][:, 1] = np.minimum(kept[inst][:, 1], n_samples / sr)
        if inst in VOICES:
            vowels[inst] = [str(v) for v in rng.choice(list("aaeioou"), len(kept[inst]))]
        gains[inst] = _LEVEL_DB.get(inst, -3.0) + float(rng.uniform(-2, 2))
        stems[inst], sounds[inst] = _play_part(inst, kept[inst], vowels.get(inst), timbres[inst], gains[inst],
                                               fonts, sr, n_samples, (seed, style.name, "score"))
    info = dict(meta or {}) | {"style": style.name, "seed": int(seed), "vowels": vowels, "gains_db": gains,
                               "timbre": timbres}
    return _song(name, sr, stems, kept, sounds, frame_rate, info)


def independent_parts(seed: int, *, seconds: float = 8.0, sr: int = 16000, instruments: Sequence[str],
                      styles: Sequence[str] = ("pop",), rests: float = 1 / 3, frame_rate: float = 50.0,
                      name: str | None = None, fonts: Sequence[str] | None = None) -> Song:
    """A song whose parts come from different compositions, each resting in some of its bars.

    ``instruments[k]`` plays the part it would play in the song of seed ``(seed, k)`` and style
    ``styles[k % len(styles)]``, without the notes that start in bars it rests in (each bar with
    probability ``rests``; every part keeps at least one bar). No part can be guessed from another
    (in a composed song the bass follows the chords the piano plays), so a model has to hear each
    instrument; and instruments enter and leave, as in Slakh2100, so that a clip's labels say
    something. The parts are played together by :func:`play_score`.

    Chapter: transcription/score_supervision
    """
    names = tuple(instruments)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"instruments: expected distinct instrument names, got {instruments!r}")
    if not 0 <= rests < 1:
        raise ValueError(f"rests: expected a probability in [0, 1), got {rests!r}")
    part_seeds = np.random.SeedSequence([int(seed), 7]).generate_state(len(names))
    notes, parts = {}, {}
    for k, inst in enumerate(names):
        part = synthesize_song(int(part_seeds[k]), seconds=seconds, sr=8000, instruments=(inst,),
                               style=styles[k % len(styles)], frame_rate=frame_rate)
        bar = part.meta["bar_seconds"]
        bars = math.ceil(seconds / bar)
        rng = seeds.rng(seed, "rests", inst)
        resting = rng.random(bars) < rests
        resting[rng.integers(bars)] = False
        kept = part.notes[inst]
        notes[inst] = kept[~resting[np.minimum((kept[:, 0] // bar).astype(int), bars - 1)]]
        parts[inst] = {key: part.meta[key] for key in ("style", "seed", "tempo", "key")} | {
            "resting bars": np.flatnonzero(resting).tolist()}
    return play_score(name or f"independent_{seed}", notes, seed=int(seed), style=styles[0], seconds=seconds,
                      sr=sr, fonts=fonts, frame_rate=frame_rate, meta={"parts": parts})


def synthesize_songs(n: int, seed: int = 0, **kwargs) -> list[Song]:
    """``n`` songs with seeds derived from ``(seed, i)``; names ``{style}_{seed}_{i:04d}``.

    Song seeds come from ``numpy.random.SeedSequence``, so sets made with different ``seed`` values
    do not share songs (``seed=0`` for training and ``seed=1`` for testing is safe).
    Keyword arguments go to ``synthesize_song``.

    Chapter: foundations/synthesiser
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive number of songs, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seeds = np.random.SeedSequence(int(seed)).generate_state(int(n))
    songs = []
    for i, song_seed in enumerate(seeds):
        song = synthesize_song(int(song_seed), **kwargs)
        songs.append(replace(song, name=f"{song.meta['style']}_{seed}_{i:04d}"))
    return songs


#: Kit pieces that can be rendered as stems of their own, and the drum keys each one plays.
DRUM_KIT: dict[str, tuple[int, ...]] = {
    "kick": (DRUM_PITCHES["kick"],), "snare": (DRUM_PITCHES["snare"],),
    "cymbals": (DRUM_PITCHES["hat"], DRUM_PITCHES["open_hat"], DRUM_PITCHES["ride"]),
}


def drum_pieces(song: Song, pieces: Mapping[str, Sequence[int]] = DRUM_KIT) -> dict[str, np.ndarray]:
    """The song's drum part rendered one kit piece at a time: ``{piece: float32 (time,)}``.

    Each piece plays its own hits of the song's drum notes with the song's kit (the SoundFont kit
    that played them, for a sampled song), scaled to the same RMS (0.05, a piece that never plays
    stays silent), as the stems of a remix pack are balanced. A song without drums raises
    ``ValueError``.

    Chapter: transfer/transfer_learning
    """
    if "drums" not in song.notes:
        raise ValueError(f"song: {song.name!r} has no drum part; its stems are {sorted(song.stems)}")
    notes, timbre = song.notes["drums"], song.meta["timbre"]["drums"]
    n_samples = len(song.mixture)
    font = song.meta.get("fonts", {}).get("drums")
    out = {}
    for piece, keys in pieces.items():
        hits = notes[np.isin(notes[:, 2], keys)]
        if font:
            from sepbook.data import soundfonts

            kit = song.meta["programs"]["drums"][0]
            out[piece] = soundfonts.render_part(hits, kit, drums=True, font=font, sr=song.sr, n_samples=n_samples)
        else:
            rng = seeds.rng(song.meta["seed"], song.meta["style"], "render", "drums", piece)
            out[piece] = _render("drums", hits, None, timbre, song.sr, n_samples, rng)
    rms = {piece: math.sqrt(float(np.mean(stem.astype(np.float64) ** 2))) for piece, stem in out.items()}
    return {piece: (stem * np.float32(0.05 / rms[piece] if rms[piece] > 0 else 1.0)).astype(np.float32)
            for piece, stem in out.items()}
