"""Training examples cut from songs held in memory: random segments, remixing, gains and augmentation.

An item is a dict of float32 tensors: ``mixture`` ``(channels, time)``, ``sources``
``(K, channels, time)`` and, when every song has them, ``rolls`` ``(K, frames, 128)`` and
``activity`` ``(K, frames)``. The mixture is always ``sources.sum(0)``, computed after the gains.
Every item depends only on ``(seed, index)`` and every batch of :func:`step_batches` only on
``(seed, step)``, so a run resumed at step ``s`` sees exactly the batches it would have seen.

Chapter: foundations/synthesiser
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from sepbook import seeds
from sepbook.checks import check_audio, check_same_length, check_sample_rate

if TYPE_CHECKING:
    from sepbook.data.layouts import SlakhTrack
    from sepbook.data.synth import Song

# Names whose piano-roll keys mean kit pieces, not pitches: their rolls are not moved by pitch shifts.
UNPITCHED_SOURCES = ("drums",)
#: The largest pitch shift the augmentations accept: an octave either way.
MAX_SEMITONES = 12


#: Bands of the random equaliser (log-spaced from 60 Hz to Nyquist), one gain in dB each.
EQ_BANDS = 6


def equalise(wave: np.ndarray, gains_db: np.ndarray, sr: int) -> np.ndarray:
    """``wave`` ``(channels, time)`` through a smooth zero-phase equaliser: ``gains_db`` at
    log-spaced frequencies from 60 Hz to Nyquist, interpolated in between; float32, same shape.

    A timbre augmentation: the same notes with another instrument's brightness and body.
    """
    spectrum = np.fft.rfft(wave, axis=-1)
    freqs = np.fft.rfftfreq(wave.shape[-1], 1.0 / sr)
    centres = np.geomspace(60.0, sr / 2, len(gains_db))
    curve = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(centres), gains_db)
    return np.fft.irfft(spectrum * 10 ** (curve / 20), n=wave.shape[-1], axis=-1).astype(np.float32)


class SongDataset(Dataset):
    """Random segments of in-memory multitrack songs as separation examples.

    Items are dicts of float32 tensors: ``mixture`` ``(channels, time)``, ``sources``
    ``(K, channels, time)`` in the order of ``source_names``, and where available ``rolls``
    ``(K, frames, 128)`` (0/1) and ``activity`` ``(K, frames)``; ``mixture == sources.sum(0)``.
    ``tracks`` is a list of ``{source name: audio (channels, time) or (time,)}``; a track without
    one of ``source_names`` contributes silence for it (and empty rolls). ``rolls``/``activity``, when
    given, are matching lists of ``{name: (frames, 128)}`` / ``{name: (frames,)}`` at ``frame_rate``;
    they are returned only if every track has them for every source it holds.

    Item ``index`` draws from ``seeds.rng(seed, 'item', index)``: with ``coherent=True`` one
    song and one offset for all sources (the real mix), else each source from its own random song and
    offset (new mixes, no musical agreement). Each source is scaled by a gain drawn uniformly from
    ``gain_range``. ``pitch_shift=(lo, hi)`` shifts by a whole number of semitones drawn from
    ``lo..hi`` and moves the rolls by the same amount (notes moved past 0 or 127 are dropped; rolls of
    ``unpitched`` sources stay as they are); ``time_stretch=(lo, hi)`` changes tempo by a rate drawn
    from that range and resamples the roll frames in time to match. Both use ``librosa.effects`` and
    are slow, so they are off by default. In coherent mode one shift and one rate serve all sources.
    ``equalise_db=g`` passes each source through :func:`equalise` with band gains drawn from
    ``[-g, g]`` dB (in coherent mode too: each source its own, as each instrument has its own sound).
    ``length`` is the number of (virtual) items; default one per track. Songs shorter than a segment
    are never drawn; with ``skip_short=False`` (a real dataset, where that would lose songs unseen)
    one of them raises ``ValueError`` naming it.
    Chapter: foundations/synthesiser
    """

    def __init__(
        self,
        tracks: Sequence[Mapping[str, Any]],
        source_names: Sequence[str],
        sr: int,
        *,
        segment_seconds: float = 2.0,
        length: int | None = None,
        seed: int = 0,
        coherent: bool = True,
        gain_range: tuple[float, float] = (1.0, 1.0),
        pitch_shift: tuple[int, int] | None = None,
        time_stretch: tuple[float, float] | None = None,
        rolls: Sequence[Mapping[str, Any]] | None = None,
        activity: Sequence[Mapping[str, Any]] | None = None,
        frame_rate: float | None = None,
        track_names: Sequence[str] | None = None,
        unpitched: Sequence[str] = UNPITCHED_SOURCES,
        equalise_db: float | None = None,
        skip_short: bool = True,
    ):
        tracks = list(tracks)
        if not tracks:
            raise ValueError("tracks: got an empty list; expected at least one song")
        source_names = [source_names] if isinstance(source_names, str) else list(source_names)
        if not source_names:
            raise ValueError("source_names: expected at least one source name, got none")
        if len(set(source_names)) != len(source_names):
            raise ValueError(f"source_names: names must be unique, got {source_names}")
        check_sample_rate(sr)
        if not segment_seconds > 0:
            raise ValueError(f"segment_seconds: expected a positive duration, got {segment_seconds}")
        low, high = _check_range(gain_range, "gain_range", minimum=0.0)
        if pitch_shift is not None:
            pitch_shift = tuple(int(v) for v in _check_range(pitch_shift, "pitch_shift"))
            if max(map(abs, pitch_shift)) > MAX_SEMITONES:
                raise ValueError(f"pitch_shift: expected shifts within ±{MAX_SEMITONES} semitones, got {pitch_shift}")
        if time_stretch is not None:
            time_stretch = _check_range(time_stretch, "time_stretch", minimum=1e-3)
        names = [f"track {i}" for i in range(len(tracks))] if track_names is None else list(track_names)
        if len(names) != len(tracks):
            raise ValueError(f"track_names: got {len(names)} names for {len(tracks)} tracks")
        present = set().union(*(set(track) for track in tracks))
        absent = [name for name in source_names if name not in present]
        if absent:
            raise ValueError(f"source_names: {absent} appear in no track; the tracks hold {sorted(present)}")

        self.source_names = source_names
        self.sr = int(sr)
        self.segment_seconds = float(segment_seconds)
        self.segment_samples = int(round(segment_seconds * sr))
        if self.segment_samples < 1:
            raise ValueError(f"segment_seconds: {segment_seconds} s is less than one sample at {sr} Hz")
        self.seed = int(seed)
        self.coherent = bool(coherent)
        self.gain_range = (low, high)
        self.pitch_shift = pitch_shift
        self.time_stretch = time_stretch
        self.unpitched = set(unpitched)
        if equalise_db is not None and not 0 < equalise_db <= 24:
            raise ValueError(f"equalise_db: expected a boost or cut in (0, 24] dB, got {equalise_db}")
        self.equalise_db = equalise_db
        self.track_names = names
        self.sources = [self._stack_audio(track, name) for track, name in zip(tracks, names)]
        channels = {s.shape[1] for s in self.sources}
        if len(channels) > 1:
            raise ValueError(f"tracks: all songs need the same number of channels, got {sorted(channels)}")
        self.channels = channels.pop()

        self.frame_rate = None if frame_rate is None else float(frame_rate)
        self.rolls = self._stack_frames(tracks, rolls, "rolls", (128,))
        self.activity = self._stack_frames(tracks, activity, "activity", ())
        if self.activity is None and self.rolls is not None:
            self.activity = [roll.any(axis=-1) for roll in self.rolls]
        if (self.rolls is not None or self.activity is not None) and not (self.frame_rate and self.frame_rate > 0):
            raise ValueError(f"frame_rate: rolls/activity need a positive frame rate, got {frame_rate}")
        self.segment_frames = int(round(self.segment_seconds * self.frame_rate)) if self.frame_rate else 0

        lengths = np.array([s.shape[-1] for s in self.sources])
        # time-stretching by rate r consumes r times as much audio as it returns
        needed = self.segment_samples
        if time_stretch is not None:
            needed = int(np.ceil(self.segment_samples * max(time_stretch)))
        self.eligible = np.flatnonzero(lengths >= needed)
        if len(self.eligible) == 0 or (len(self.eligible) < len(tracks) and not skip_short):
            short = int(np.argmin(lengths))
            raise ValueError(
                f"segment_seconds={segment_seconds}: song {names[short]!r} lasts {lengths[short] / sr:.3f} s "
                f"({lengths[short]} samples), shorter than one segment ({needed} samples"
                + (f", as time_stretch up to {max(time_stretch)} consumes more" if time_stretch else "")
                + f"); {len(tracks) - len(self.eligible)} of {len(tracks)} songs are; use longer songs or shorter segments")
        self.length = len(tracks) if length is None else int(length)
        if self.length <= 0:
            raise ValueError(f"length: expected a positive number of items, got {length}")

    # ---- constructors -----------------------------------------------------------------------

    @classmethod
    def from_songs(
        cls,
        songs: Sequence[Song],
        source_names: Sequence[str],
        *,
        grouping: Mapping[str, str] | None = None,
        **options: Any,
    ) -> SongDataset:
        """Dataset over synthesiser ``Song`` objects (mono: items are ``(1, time)`` per source).

        ``grouping`` maps stem names to group names (e.g. ``synth.MUSDB_GROUPS``); stems it does not
        name keep their own name, and ``source_names`` then refers to groups. Grouped audio is summed,
        rolls and activity are or-ed. ``options`` go to :class:`SongDataset`.
        Chapter: foundations/synthesiser
        """
        songs = list(songs)
        if not songs:
            raise ValueError("songs: got an empty list; expected at least one Song")
        rates = {int(song.sr) for song in songs}
        if len(rates) > 1:
            raise ValueError(f"songs: all songs need one sample rate, got {sorted(rates)} Hz")
        frame_rates = {float(song.frame_rate) for song in songs}
        if len(frame_rates) > 1:
            raise ValueError(f"songs: all songs need one frame_rate, got {sorted(frame_rates)}")
        groups = dict(grouping or {})
        tracks, rolls, activity = [], [], []
        for song in songs:
            check_same_length({f"{song.name}/{stem}": audio for stem, audio in song.stems.items()})
            tracks.append(_group_sum(song.stems, groups, np.add))
            rolls.append(_group_sum(song.rolls or {}, groups, np.logical_or))
            activity.append(_group_sum(song.activity or {}, groups, np.logical_or))
        options.setdefault("track_names", [song.name for song in songs])
        return cls(
            tracks, source_names, rates.pop(), rolls=rolls, activity=activity,
            frame_rate=frame_rates.pop(), **options,
        )

    @classmethod
    def from_musdb(cls, db, targets: Sequence[str], *, mono: bool = False, **options: Any) -> SongDataset:
        """Dataset over the tracks of a ``musdb.DB`` (or any list of musdb tracks), targets by name.

        Items are stereo ``(2, time)`` like the real set, or ``(1, time)`` with ``mono=True``; there
        are no rolls. Every track is read into memory once: fine for the synthetic sets, while the
        full MUSDB18-HQ would need tens of GB, so pass a few of its tracks (``db.tracks[:n]``).
        Chapter: foundations/synthesiser
        """
        from sepbook.data.layouts import musdb_track_arrays

        tracks_in = list(db.tracks if hasattr(db, "tracks") else db)
        if not tracks_in:
            raise ValueError(f"db: the musdb database {getattr(db, 'root', db)!r} holds no tracks")
        targets = [targets] if isinstance(targets, str) else list(targets)
        tracks, rates = [], set()
        for track in tracks_in:
            _, sources, sr = musdb_track_arrays(track, targets)
            if mono:
                sources = sources.mean(axis=1, keepdims=True)
            tracks.append(dict(zip(targets, sources)))
            rates.add(sr)
        if len(rates) > 1:
            raise ValueError(f"db: tracks have different sample rates {sorted(rates)} Hz")
        options.setdefault("track_names", [track.name for track in tracks_in])
        return cls(tracks, targets, rates.pop(), **options)

    @classmethod
    def from_slakh(
        cls,
        track_dirs: str | Path | Sequence[str | Path],
        instruments: Sequence[str],
        *,
        frame_rate: float = 50.0,
        **options: Any,
    ) -> SongDataset:
        """Dataset over Slakh2100 track folders (or one folder of ``Track*`` folders), mono items.

        ``instruments`` are stem names (metadata ``name`` or, in the real set, ``inst_class``); a track
        without one contributes silence for it. Rolls come from the MIDI files at ``frame_rate``.
        Chapter: foundations/synthesiser
        """
        from sepbook.data.layouts import read_slakh_track

        dirs = _slakh_dirs(track_dirs)
        instruments = [instruments] if isinstance(instruments, str) else list(instruments)
        loaded: list[SlakhTrack] = [read_slakh_track(d, instruments, frame_rate=frame_rate) for d in dirs]
        rates = {t.sr for t in loaded}
        if len(rates) > 1:
            raise ValueError(f"track_dirs: tracks have different sample rates {sorted(rates)} Hz")
        options.setdefault("track_names", [t.name for t in loaded])
        return cls(
            [t.stems for t in loaded], instruments, rates.pop(),
            rolls=[t.rolls for t in loaded], activity=[t.activity for t in loaded],
            frame_rate=frame_rate, **options,
        )

    # ---- items ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = int(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        rng = seeds.rng(self.seed, "item", index)
        n_sources = len(self.source_names)
        # Draw every random number in a fixed order so an item depends on nothing but (seed, index).
        song_choices = self.eligible[rng.integers(len(self.eligible), size=n_sources)]
        fractions = rng.random(n_sources)
        gains = rng.uniform(*self.gain_range, size=n_sources)
        semitones = np.zeros(n_sources, dtype=int)
        if self.pitch_shift:
            semitones = rng.integers(self.pitch_shift[0], self.pitch_shift[1] + 1, size=n_sources)
        rates = rng.uniform(*self.time_stretch, size=n_sources) if self.time_stretch else np.ones(n_sources)
        curves = None
        if self.equalise_db:
            curves = rng.uniform(-self.equalise_db, self.equalise_db, size=(n_sources, EQ_BANDS))
        if self.coherent:
            song_choices[:] = song_choices[0]
            fractions[:] = fractions[0]
            semitones[:] = semitones[0]
            rates[:] = rates[0]

        audio, rolls, activity = [], [], []
        for k in range(n_sources):
            song, rate = int(song_choices[k]), float(rates[k])
            span = int(np.ceil(self.segment_samples * rate)) if self.time_stretch else self.segment_samples
            start = int(fractions[k] * (self.sources[song].shape[-1] - span + 1))
            excerpt = self.sources[song][k, :, start:start + span]
            wave = self._augment(excerpt, int(semitones[k]), rate) * np.float32(gains[k])
            audio.append(wave if curves is None else equalise(wave, curves[k], self.sr))
            if self.rolls is not None or self.activity is not None:
                frames = self._frame_indices(start, rate)
                if self.rolls is not None:
                    roll = _take_frames(self.rolls[song][k], frames)
                    if semitones[k] and self.source_names[k] not in self.unpitched:
                        roll = _shift_pitch(roll, int(semitones[k]))
                    rolls.append(roll)
                if self.activity is not None:
                    activity.append(_take_frames(self.activity[song][k], frames))

        sources = torch.from_numpy(np.stack(audio).astype(np.float32))
        item = {"mixture": sources.sum(0), "sources": sources}
        if self.rolls is not None:
            item["rolls"] = torch.from_numpy(np.stack(rolls).astype(np.float32))
        if self.activity is not None:
            item["activity"] = torch.from_numpy(np.stack(activity).astype(np.float32))
        return item

    def _augment(self, excerpt: np.ndarray, semitones: int, rate: float) -> np.ndarray:
        """Pitch-shift / time-stretch one ``(channels, span)`` excerpt to ``(channels, segment_samples)``."""
        if not semitones and not self.time_stretch:
            return excerpt.astype(np.float32, copy=True)
        import librosa

        out = excerpt.astype(np.float32)
        if self.time_stretch:
            out = time_stretch(out, rate)
        if semitones:
            out = pitch_shift(out, self.sr, semitones)
        return librosa.util.fix_length(out, size=self.segment_samples, axis=-1).astype(np.float32)

    def _frame_indices(self, start_sample: int, rate: float) -> np.ndarray:
        """Source frame for each output frame: output time ``t`` shows source time ``start + t * rate``."""
        first = start_sample / self.sr * self.frame_rate
        return np.floor(first + np.arange(self.segment_frames) * rate + 1e-9).astype(int)

    # ---- construction helpers -------------------------------------------------------------------

    def _stack_audio(self, track: Mapping[str, Any], track_name: str) -> np.ndarray:
        """``(K, channels, time)`` float32; missing sources become silence."""
        arrays = {}
        for name in self.source_names:
            if name in track:
                audio = np.asarray(track[name], dtype=np.float32)
                audio = audio[None] if audio.ndim == 1 else audio
                if audio.ndim != 2:
                    raise ValueError(
                        f"{track_name} source {name!r}: expected audio shaped (time,) or (channels, time), "
                        f"got shape {audio.shape}"
                    )
                check_audio(audio, f"{track_name} source {name!r}")
                arrays[name] = audio
        if not arrays:
            raise ValueError(f"{track_name}: holds none of the sources {self.source_names}")
        check_same_length({f"{track_name}/{name}": a for name, a in arrays.items()})
        channels = {a.shape[0] for a in arrays.values()}
        if len(channels) > 1:
            raise ValueError(f"{track_name}: sources have different channel counts {sorted(channels)}")
        template = next(iter(arrays.values()))
        return np.stack([arrays.get(name, np.zeros_like(template)) for name in self.source_names])

    def _stack_frames(self, tracks, per_track, what: str, tail: tuple[int, ...]) -> list[np.ndarray] | None:
        """``(K, frames, *tail)`` bool per track, or None unless every held source has one."""
        if per_track is None:
            return None
        per_track = list(per_track)
        if len(per_track) != len(tracks):
            raise ValueError(f"{what}: got {len(per_track)} entries for {len(tracks)} tracks")
        stacked = []
        for track, frames in zip(tracks, per_track):
            if any(name in track and name not in frames for name in self.source_names):
                return None  # a source without frame labels: leave the labels out rather than invent them
            arrays = [np.asarray(frames[name], dtype=bool) for name in self.source_names if name in frames]
            if any(a.shape[1:] != tail for a in arrays):
                raise ValueError(f"{what}: expected arrays shaped (frames, {', '.join(map(str, tail))}) ")
            n_frames = max((a.shape[0] for a in arrays), default=1)
            out = np.zeros((len(self.source_names), n_frames, *tail), dtype=bool)
            for k, name in enumerate(self.source_names):
                if name in frames:
                    a = np.asarray(frames[name], dtype=bool)
                    out[k, : a.shape[0]] = a
            stacked.append(out)
        return stacked


def pitch_shift(audio: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """``audio`` ``(..., time)`` moved by ``semitones`` (within ±12), at the same length and tempo.

    Chapter: transfer/transfer_learning
    """
    if not -MAX_SEMITONES <= semitones <= MAX_SEMITONES:
        raise ValueError(f"semitones: expected a shift within ±{MAX_SEMITONES} semitones, got {semitones}")
    import librosa

    # soxr's medium quality: the high-quality default is about 70 times slower on short excerpts
    return librosa.effects.pitch_shift(np.asarray(audio, np.float32), sr=sr, n_steps=float(semitones),
                                       n_fft=_augment_fft(audio), res_type="soxr_mq")


def time_stretch(audio: np.ndarray, rate: float) -> np.ndarray:
    """``audio`` played ``rate`` times as fast at the same pitch: ``(..., time)`` -> ``(..., ~time / rate)``.

    Chapter: transfer/transfer_learning
    """
    if not rate > 0:
        raise ValueError(f"rate: expected a stretch factor above 0, got {rate}")
    import librosa

    return librosa.effects.time_stretch(np.asarray(audio, np.float32), rate=float(rate), n_fft=_augment_fft(audio))


def _augment_fft(audio: np.ndarray) -> int:
    # librosa's 2048-point default would exceed short excerpts at low sample rates
    return int(2 ** np.floor(np.log2(min(2048, np.shape(audio)[-1]))))


def step_batches(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    num_steps: int | None = None,
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """Yield ``(step, batch)`` from ``start_step`` on (up to ``num_steps`` total, else forever).

    Batch ``step`` holds items ``step * batch_size ...`` of an endless sequence of epochs, each a
    permutation of the dataset drawn from ``seeds.rng(seed, 'epoch', epoch)``: it is a pure function of
    ``(seed, step)``, so resuming at ``start_step=s`` reproduces an uninterrupted run exactly.
    Batches are collated with ``torch.utils.data.default_collate``: ``(batch, ...)`` tensors.
    Chapter: foundations/synthesiser
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive number of items, got {batch_size}")
    if start_step < 0:
        raise ValueError(f"start_step: expected a non-negative step, got {start_step}")
    n_items = len(dataset)
    if n_items == 0:
        raise ValueError("dataset: is empty; there is nothing to batch")
    permutations: dict[int, np.ndarray] = {}

    def position(flat: int) -> int:
        epoch, offset = divmod(flat, n_items)
        if epoch not in permutations:
            permutations.clear()  # one or two epochs are ever needed at once
            permutations[epoch] = seeds.rng(seed, "epoch", epoch).permutation(n_items)
        return int(permutations[epoch][offset])

    step = start_step
    while num_steps is None or step < num_steps:
        flat = step * batch_size
        indices = [position(flat + i) for i in range(batch_size)]
        yield step, default_collate([dataset[i] for i in indices])
        step += 1


def _check_range(values: Sequence[float], name: str, minimum: float | None = None) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a pair (low, high), got {values!r}") from None
    if low > high or (minimum is not None and low < minimum):
        bound = f" and low >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{name}: expected low <= high{bound}, got {values!r}")
    return low, high


def _group_sum(arrays: Mapping[str, Any], groups: Mapping[str, str], combine) -> dict[str, np.ndarray]:
    """Combine the arrays of stems mapped to the same group name (unmapped stems keep their name)."""
    out: dict[str, np.ndarray] = {}
    for stem, array in arrays.items():
        group = groups.get(stem, stem)
        array = np.asarray(array)
        if group not in out:
            out[group] = array.copy()
        else:
            # audio lengths were checked equal; frame counts may differ by one, so keep the overlap
            common = min(out[group].shape[0], array.shape[0])
            out[group] = combine(out[group][:common], array[:common])
    return out


def _take_frames(frames: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``frames[indices]`` with indices past the end giving all-False frames."""
    out = np.zeros((len(indices), *frames.shape[1:]), dtype=bool)
    valid = (indices >= 0) & (indices < frames.shape[0])
    out[valid] = frames[indices[valid]]
    return out


def _shift_pitch(roll: np.ndarray, semitones: int) -> np.ndarray:
    """Move a ``(frames, 128)`` roll up by ``semitones``; notes pushed off the keyboard are dropped."""
    shifted = np.zeros_like(roll)
    if semitones > 0:
        shifted[:, semitones:] = roll[:, :-semitones]
    else:
        shifted[:, :semitones] = roll[:, -semitones:]
    return shifted


def _slakh_dirs(track_dirs: str | Path | Sequence[str | Path]) -> list[Path]:
    """A list of Slakh track folders, or the ``Track*`` folders inside one split folder."""
    if isinstance(track_dirs, (str, Path)):
        folder = Path(track_dirs)
        if (folder / "metadata.yaml").is_file():
            return [folder]
        if not folder.is_dir():
            raise FileNotFoundError(f"track_dirs: folder not found: {folder}")
        dirs = sorted(p for p in folder.iterdir() if (p / "metadata.yaml").is_file())
        if not dirs:
            raise ValueError(f"track_dirs: no Slakh tracks (TrackNNNNN/metadata.yaml) in {folder}")
        return dirs
    dirs = [Path(d) for d in track_dirs]
    if not dirs:
        raise ValueError("track_dirs: got an empty list; expected Slakh track folders")
    return dirs
