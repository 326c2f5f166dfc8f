"""Write synthetic songs in the folder layouts of MUSDB18-HQ and Slakh2100, and read them back.

Code written against these layouts runs unchanged on the real data sets, so the book can teach with
songs it generates and point the same loaders at the real folders later.

Chapter: foundations/synthesiser
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import soundfile

from sepbook.audio import resample
from sepbook.checks import check_audio, check_same_length, check_sample_rate
from sepbook.data.synth import GM_PROGRAMS, MUSDB_GROUPS, Song, notes_to_roll
from sepbook.tracks import Track

MUSDB_TARGETS = ("vocals", "drums", "bass", "other")
MUSDB_FILES = ("mixture",) + MUSDB_TARGETS
MUSDB_SR = 44100
# musdb decodes WAVs through ffmpeg as 16-bit integers, so anything above full scale would clip.
MUSDB_PEAK = 0.99

# Slakh2100 numbers drum kits 128, one past the 128 melodic GM programs.
SLAKH_DRUM_PROGRAM = 128
# Ticks per beat: under 0.1 ms per tick above 40 bpm, so a note read back from MIDI lands on the
# same piano-roll frames as in the score unless it lies within microseconds of a frame boundary.
_MIDI_RESOLUTION = 15360


# --------------------------------------------------------------------------------------------
# MUSDB18-HQ
# --------------------------------------------------------------------------------------------


def write_musdb(
    root: str | Path,
    songs: Sequence[Song],
    subset: str = "train",
    sr: int = MUSDB_SR,
    grouping: Mapping[str, str] | None = None,
) -> Path:
    """Write ``songs`` as MUSDB18-HQ tracks ``root/subset/<song.name>/{mixture,vocals,drums,bass,other}.wav``.

    Files are stereo (the mono stems duplicated on both channels) 32-bit float WAV at ``sr``
    (44.1 kHz like the real set), resampled from the song rate with librosa. ``grouping`` maps stem
    names to the four targets; a stem it does not name goes to ``other`` and a target with no stem is
    written as silence. ``mixture.wav`` is the float32 sum of the four target files. A track whose peak
    would exceed 0.99 is scaled down as a whole (musdb reads 16-bit, which clips above 1).
    Returns ``root``.
    Chapter: foundations/synthesiser
    """
    import librosa

    if subset not in ("train", "test"):
        raise ValueError(f"subset: expected 'train' or 'test' (the MUSDB18 folders), got {subset!r}")
    check_sample_rate(sr, "sr")
    groups = dict(MUSDB_GROUPS) if grouping is None else dict(grouping)
    unknown = {stem: target for stem, target in groups.items() if target not in MUSDB_TARGETS}
    if unknown:
        raise ValueError(f"grouping: targets must be one of {MUSDB_TARGETS}, got {unknown}")
    songs = _check_songs(songs)

    root = Path(root)
    for song in songs:
        length = next(iter(song.stems.values())).shape[-1]
        summed = {target: np.zeros(length, dtype=np.float64) for target in MUSDB_TARGETS}
        for stem, audio in song.stems.items():
            summed[groups.get(stem, "other")] += audio
        targets = {}
        for target, audio in summed.items():
            audio = audio.astype(np.float32)
            if int(song.sr) != int(sr):
                audio = librosa.resample(audio, orig_sr=int(song.sr), target_sr=int(sr), res_type="soxr_hq")
            targets[target] = audio.astype(np.float32)
        mixture = _float32_sum(list(targets.values()))
        peak = max(float(np.abs(a).max()) for a in [mixture, *targets.values()])
        if peak > MUSDB_PEAK:
            scale = np.float32(MUSDB_PEAK / peak)
            targets = {name: audio * scale for name, audio in targets.items()}
            mixture = _float32_sum(list(targets.values()))
        track_dir = root / subset / song.name
        track_dir.mkdir(parents=True, exist_ok=True)
        for name, audio in {"mixture": mixture, **targets}.items():
            stereo = np.stack([audio, audio], axis=1)  # soundfile wants (time, channels)
            soundfile.write(str(track_dir / f"{name}.wav"), stereo, int(sr), subtype="FLOAT")
    return root


def open_musdb(root: str | Path, subsets: str | Sequence[str] = "train", split: str | None = None):
    """Open a MUSDB18-HQ style folder with ``musdb.DB(root, is_wav=True, subsets, split)``.

    Checks first that every requested subset folder holds at least one track and that every track
    has all five WAV files, so a wrong path fails with a message instead of an empty database.
    ``split`` ('train'/'valid') uses musdb's list of real validation songs, which synthetic names
    never match: 'valid' then raises ``ValueError``.
    Chapter: foundations/synthesiser
    """
    import musdb

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"MUSDB folder not found: {root} (expected {root}/train/<track>/mixture.wav and the stems)"
        )
    subset_list = [subsets] if isinstance(subsets, str) else list(subsets)
    for subset in subset_list:
        folder = root / subset
        tracks = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if not tracks:
            expected = ", ".join(f"{n}.wav" for n in MUSDB_FILES)
            raise ValueError(
                f"no MUSDB tracks in {folder}: expected one folder per track holding {expected}"
            )
        for track in tracks:
            for name in MUSDB_FILES:
                if not (track / f"{name}.wav").is_file():
                    raise FileNotFoundError(f"MUSDB track is missing a file: {track / f'{name}.wav'}")
    db = musdb.DB(root=str(root), is_wav=True, subsets=subset_list, split=split)
    if len(db) == 0:
        raise ValueError(
            f"musdb found no tracks in {root} for subsets={subset_list}, split={split!r} "
            "(split='valid' selects only musdb's real validation songs)"
        )
    return db


def musdb_validation_names() -> tuple[str, ...]:
    """The MUSDB18 training songs ``musdb`` holds out for validation (its ``split='valid'``)."""
    import musdb
    import yaml

    with open(Path(musdb.__file__).parent / "configs" / "mus.yaml") as handle:
        return tuple(yaml.safe_load(handle)["validation_tracks"])


def read_musdb(root: str | Path, subset: str, targets: Sequence[str], sr: int, domain: str = "") -> list[Track]:
    """Every song of a MUSDB18-HQ style folder's ``subset`` ('train' or 'test') as a mono
    :class:`~sepbook.tracks.Track` of ``targets`` at ``sr`` Hz, the one MUSDB reader of the book.

    The mixture is the sum of the resampled targets, so that ``mixture == sources.sum(0)`` holds exactly.
    """
    tracks = []
    for item in open_musdb(root, subsets=subset):
        _, stems, rate = musdb_track_arrays(item, targets)
        stems = resample(stems.mean(axis=-2, keepdims=True), rate, sr).astype(np.float32)
        tracks.append(Track(item.name, stems.sum(0), stems, tuple(targets), domain))
    return tracks


def musdb_track_arrays(track, targets: Sequence[str] = MUSDB_TARGETS) -> tuple[np.ndarray, np.ndarray, int]:
    """Return ``(mixture (channels, time), sources (K, channels, time), sr)`` float32 for a musdb track.

    ``targets`` are musdb target names (including 'accompaniment'). WAV tracks are read with soundfile
    at full float precision (musdb itself decodes through 16-bit integers); stem files are read
    through musdb. Each target is the gain-weighted sum of its musdb sources.
    Chapter: foundations/synthesiser
    """
    if isinstance(targets, str):
        targets = [targets]
    if not targets:
        raise ValueError("targets: expected at least one musdb target name, got none")
    if track.is_wav:  # musdb silently drops a missing stem from its targets; name the file instead
        for name in MUSDB_FILES:
            path = Path(track.path).parent / f"{name}.wav"
            if not path.is_file():
                raise FileNotFoundError(f"MUSDB track is missing a file: {path}")
    missing = [t for t in targets if t not in track.targets]
    if missing:
        raise ValueError(f"targets: {missing} not in track {track.name!r}; it has {list(track.targets)}")
    if track.is_wav:
        mixture, sr = _read_wav(Path(track.path))
        sources = []
        for target in targets:
            parts = [source.gain * _read_wav(Path(source.path), sr)[0] for source in track.targets[target].sources]
            sources.append(_float32_sum(parts))
    else:
        mixture, sr = track.audio.T, int(track.rate)
        sources = [track.targets[target].audio.T for target in targets]
    arrays = {"mixture": mixture, **{t: s for t, s in zip(targets, sources)}}
    check_same_length(arrays)
    stacked = np.stack(sources).astype(np.float32)
    return np.ascontiguousarray(mixture, dtype=np.float32), stacked, int(sr)


# --------------------------------------------------------------------------------------------
# Slakh2100
# --------------------------------------------------------------------------------------------


@dataclass
class SlakhTrack:
    """One Slakh2100 track read back: mono audio ``(time,)`` per stem and piano rolls ``(frames, 128)``.

    ``stems``, ``rolls`` (bool), ``activity`` (bool ``(frames,)``), ``notes`` (``(n, 4)``: onset_s,
    offset_s, MIDI pitch, MIDI velocity 1-127), ``programs`` and ``is_drum`` are keyed by instrument
    name. ``mixture`` is the track's mix file and includes stems left out by an instrument filter.
    Chapter: foundations/synthesiser
    """

    name: str
    sr: int
    mixture: np.ndarray
    stems: dict[str, np.ndarray]
    rolls: dict[str, np.ndarray]
    activity: dict[str, np.ndarray]
    notes: dict[str, np.ndarray]
    programs: dict[str, int]
    is_drum: dict[str, bool]
    frame_rate: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.mixture.shape[-1] / self.sr


def write_slakh(
    root: str | Path,
    songs: Sequence[Song],
    split: str = "train",
    *,
    sr: int | None = None,
    first_index: int = 1,
    programs: Mapping[str, int] | None = None,
) -> list[Path]:
    """Write ``songs`` as Slakh2100 tracks ``root/split/TrackNNNNN/`` and return the track folders.

    Each folder holds ``metadata.yaml`` (a ``stems`` entry per ``SNN`` with inst_class, program_num,
    is_drum, midi_program_name, audio_rendered, plus ``name``: the song's stem name), ``mix.wav``
    (the sum of the stems), ``stems/SNN.wav``, ``MIDI/SNN.mid`` and ``all_src.mid`` built from the
    song's notes. Audio is mono 32-bit float at ``sr`` (default: the song's rate; the real set is
    44.1 kHz FLAC). ``programs`` overrides the GM program per stem name.
    Chapter: foundations/synthesiser
    """
    import librosa
    import pretty_midi
    import yaml

    if sr is not None:
        check_sample_rate(sr, "sr")
    songs = _check_songs(songs)
    if first_index < 0:
        raise ValueError(f"first_index: expected a non-negative track number, got {first_index}")
    root = Path(root)
    track_dirs = []
    for number, song in enumerate(songs, start=first_index):
        track_dir = root / split / f"Track{number:05d}"
        (track_dir / "stems").mkdir(parents=True, exist_ok=True)
        (track_dir / "MIDI").mkdir(parents=True, exist_ok=True)
        out_sr = int(song.sr if sr is None else sr)
        tempo = float(song.meta.get("tempo", 120.0)) if isinstance(song.meta, Mapping) else 120.0
        all_midi = pretty_midi.PrettyMIDI(resolution=_MIDI_RESOLUTION, initial_tempo=tempo)
        stem_entries = {}
        written = []
        for index, (stem, audio) in enumerate(song.stems.items()):
            stem_id = f"S{index:02d}"
            audio = np.asarray(audio, dtype=np.float32)
            if out_sr != int(song.sr):
                audio = librosa.resample(audio, orig_sr=int(song.sr), target_sr=out_sr, res_type="soxr_hq")
            audio = audio.astype(np.float32)
            written.append(audio)
            soundfile.write(str(track_dir / "stems" / f"{stem_id}.wav"), audio, out_sr, subtype="FLOAT")

            program, is_drum = _gm_program(stem, programs)
            instrument = pretty_midi.Instrument(program=0 if is_drum else program, is_drum=is_drum, name=stem)
            instrument.notes = _midi_notes(song.notes.get(stem))
            single = pretty_midi.PrettyMIDI(resolution=_MIDI_RESOLUTION, initial_tempo=tempo)
            single.instruments.append(instrument)
            single.write(str(track_dir / "MIDI" / f"{stem_id}.mid"))
            all_midi.instruments.append(instrument)
            stem_entries[stem_id] = {
                "name": stem,
                "inst_class": "Drums" if is_drum else pretty_midi.program_to_instrument_class(program),
                "program_num": SLAKH_DRUM_PROGRAM if is_drum else program,
                "is_drum": is_drum,
                "midi_program_name": "Drums" if is_drum else pretty_midi.program_to_instrument_name(program),
                "audio_rendered": True,
                "midi_saved": True,
            }
        all_midi.write(str(track_dir / "all_src.mid"))
        soundfile.write(str(track_dir / "mix.wav"), _float32_sum(written), out_sr, subtype="FLOAT")
        metadata = {
            "song_name": song.name,
            "audio_dir": "stems",
            "midi_dir": "MIDI",
            "sample_rate": out_sr,
            "normalized": False,
            "stems": stem_entries,
        }
        with open(track_dir / "metadata.yaml", "w") as handle:
            yaml.safe_dump(metadata, handle, sort_keys=False)
        track_dirs.append(track_dir)
    return track_dirs


def read_slakh_track(
    track_dir: str | Path,
    instruments: Sequence[str] | None = None,
    *,
    frame_rate: float = 50.0,
) -> SlakhTrack:
    """Read one Slakh2100 track folder: stems (WAV or FLAC), MIDI notes, and piano rolls at ``frame_rate``.

    Stems are named by the metadata ``name`` when present (tracks from :func:`write_slakh`), else by
    ``inst_class`` as in the real set, where stems sharing a class are summed (audio) and merged
    (notes, rolls). ``instruments`` keeps only those names; a name the track lacks is skipped, so a
    caller can ask every track for the same list. Stems whose audio was not rendered are skipped.
    Rolls are ``(round(duration * frame_rate), 128)`` bool, built by :func:`notes_to_roll`.
    Chapter: foundations/synthesiser
    """
    import pretty_midi
    import yaml

    track_dir = Path(track_dir)
    meta_path = track_dir / "metadata.yaml"
    if not meta_path.is_file():
        raise FileNotFoundError(f"Slakh metadata not found: {meta_path} (expected a TrackNNNNN folder)")
    if frame_rate <= 0:
        raise ValueError(f"frame_rate: expected a positive number of frames per second, got {frame_rate}")
    with open(meta_path) as handle:
        metadata = yaml.safe_load(handle) or {}
    if not isinstance(metadata.get("stems"), dict):
        raise ValueError(f"{meta_path}: expected a 'stems' mapping of SNN entries")

    mixture, sr = _read_audio(_audio_file(track_dir / "mix"))
    audio_dir = track_dir / metadata.get("audio_dir", "stems")
    midi_dir = track_dir / metadata.get("midi_dir", "MIDI")
    n_frames = max(int(round(mixture.shape[-1] * frame_rate / sr)), 1)  # as the synthesiser counts
    wanted = None if instruments is None else set(instruments)

    stems: dict[str, np.ndarray] = {}
    notes: dict[str, list[np.ndarray]] = {}
    programs: dict[str, int] = {}
    is_drum: dict[str, bool] = {}
    tolerance: dict[str, float] = {}
    for stem_id, entry in sorted(metadata["stems"].items()):
        if not entry.get("audio_rendered", True):
            continue
        name = str(entry.get("name") or entry.get("inst_class") or stem_id)
        if wanted is not None and name not in wanted:
            continue
        audio, stem_sr = _read_audio(_audio_file(audio_dir / stem_id))
        if stem_sr != sr:
            raise ValueError(f"{audio_dir / stem_id}: sample rate {stem_sr} Hz differs from the mix ({sr} Hz)")
        check_same_length({"mix": mixture, f"{stem_id} ({name})": audio})
        stems[name] = stems[name] + audio if name in stems else audio
        midi_path = midi_dir / f"{stem_id}.mid"
        if midi_path.is_file():
            midi = pretty_midi.PrettyMIDI(str(midi_path))
            for instrument in midi.instruments:
                rows = [[n.start, n.end, n.pitch, n.velocity] for n in instrument.notes]
                notes.setdefault(name, []).append(np.array(rows, dtype=np.float64).reshape(-1, 4))
            # MIDI rounds note times to ticks: allow that half tick when placing them on frames
            _, tempi = midi.get_tempo_changes()
            tick = 60.0 / (min(tempi, default=120.0) * midi.resolution)
            tolerance[name] = max(tolerance.get(name, 0.0), tick / 2)
        programs.setdefault(name, int(entry.get("program_num", 0)))
        is_drum.setdefault(name, bool(entry.get("is_drum", False)))

    note_arrays = {}
    for name in stems:
        parts = notes.get(name, [])
        merged = np.concatenate(parts) if parts else np.zeros((0, 4))
        note_arrays[name] = merged[np.lexsort((merged[:, 2], merged[:, 0]))] if len(merged) else merged
    rolls = {
        name: notes_to_roll(arr, n_frames, frame_rate, tolerance=tolerance.get(name, 0.0))
        for name, arr in note_arrays.items()
    }
    return SlakhTrack(
        name=track_dir.name,
        sr=sr,
        mixture=mixture,
        stems={name: audio.astype(np.float32) for name, audio in stems.items()},
        rolls=rolls,
        activity={name: roll.any(axis=1) for name, roll in rolls.items()},
        notes=note_arrays,
        programs=programs,
        is_drum=is_drum,
        frame_rate=float(frame_rate),
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_songs(songs: Sequence[Song]) -> list[Song]:
    songs = list(songs)
    if not songs:
        raise ValueError("songs: got an empty list; expected at least one Song")
    seen = set()
    for song in songs:
        if not song.stems:
            raise ValueError(f"song {song.name!r}: has no stems")
        if not re.fullmatch(r"[^/\\\x00]+", song.name) or song.name in (".", ".."):
            raise ValueError(f"song name {song.name!r} cannot be used as a folder name")
        if song.name in seen:
            raise ValueError(f"songs: two songs are named {song.name!r}; track folders need unique names")
        seen.add(song.name)
        for stem, audio in song.stems.items():
            check_audio(audio, f"song {song.name!r} stem {stem!r}")
        check_same_length({f"{song.name}/{stem}": audio for stem, audio in song.stems.items()})
    return songs


def _float32_sum(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Sum in a fixed left-to-right order so that re-adding the same float32 files gives the same bits."""
    total = np.zeros_like(np.asarray(arrays[0], dtype=np.float32))
    for array in arrays:
        total = total + np.asarray(array, dtype=np.float32)
    return total


def _read_wav(path: Path, expected_sr: int | None = None) -> tuple[np.ndarray, int]:
    """``(channels, time)`` float32 and the rate; a missing file, or a rate other than ``expected_sr``
    (the rate of the song's other files), is named in the error."""
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    audio, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    if expected_sr is not None and int(sr) != int(expected_sr):
        raise ValueError(f"{path}: sample rate {sr} Hz, but the song's other files are at {expected_sr} Hz; "
                         f"expected every file of a song at one rate")
    return np.ascontiguousarray(audio.T), int(sr)


def read_stem_folder(folder: str | Path, names: Sequence[str], sr: int, *, optional: bool = False
                     ) -> dict[str, np.ndarray]:
    """One song's ``folder/<name>.wav`` files, mono float32 ``(time,)`` resampled to ``sr``.

    The files of a song must share one sample rate and one length (a mismatch means a conversion went
    wrong, and is named with both files). A missing file raises ``FileNotFoundError``, unless
    ``optional``: then it is left out of the result (a song without that instrument).
    Chapter: foundations/synthesiser
    """
    from sepbook.audio import resample

    folder = Path(folder)
    read: dict[str, tuple[np.ndarray, int, Path]] = {}
    for name in names:
        path = folder / f"{name}.wav"
        if not path.is_file():
            if optional:
                continue
            raise FileNotFoundError(f"{path} is missing; expected {', '.join(n + '.wav' for n in names)} in {folder}")
        audio, rate = _read_audio(path)
        read[name] = (audio, rate, path)
    if not read:
        raise FileNotFoundError(f"{folder}: none of {', '.join(n + '.wav' for n in names)} is there")
    first_audio, first_rate, first_path = next(iter(read.values()))
    for audio, rate, path in read.values():
        if rate != first_rate:
            raise ValueError(f"{path}: sample rate {rate} Hz differs from {first_path.name} ({first_rate} Hz); "
                             "expected every file of a song at one rate")
        if len(audio) != len(first_audio):
            raise ValueError(f"{path}: {len(audio)} samples, but {first_path.name} has {len(first_audio)}; "
                             "expected every file of a song to be equally long")
    return {name: resample(audio, rate, sr).astype(np.float32) for name, (audio, rate, _) in read.items()}


def _audio_file(stem_path: Path) -> Path:
    """The ``.flac`` (real Slakh) or ``.wav`` (written here) file for an extension-less path."""
    for suffix in (".flac", ".wav"):
        candidate = stem_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"audio file not found: {stem_path}.flac or {stem_path}.wav")


def _read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono ``(time,)`` float32: Slakh files are mono, and any extra channels are averaged."""
    audio, sr = _read_wav(path)
    mono = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]
    check_audio(mono, str(path))
    return mono.astype(np.float32), sr


def _gm_program(stem: str, overrides: Mapping[str, int] | None) -> tuple[int, bool]:
    """``(GM program, is_drum)`` for a stem; an unknown melodic stem falls back to piano (program 0)."""
    if overrides and stem in overrides:
        return int(overrides[stem]), "drum" in stem.lower()
    if stem in GM_PROGRAMS:
        program, is_drum = GM_PROGRAMS[stem]
        return int(program), bool(is_drum)
    if "drum" in stem.lower():
        return 0, True
    return 0, False


def _midi_notes(notes: np.ndarray | None) -> list:
    """pretty_midi notes from ``(n, 4)`` onset_s, offset_s, pitch, velocity.

    Velocities at most 1 are read as a fraction of full scale, larger ones as MIDI values. A MIDI
    channel cannot hold two sounding notes of one pitch, so a note overlapped by the next of its
    pitch is cut where that one starts (the piano roll, a union, is unchanged) and notes starting
    together are merged. Notes last at least 1 ms: a note-off on its note-on tick ends nothing.
    """
    import pretty_midi

    if notes is None or len(notes) == 0:
        return []
    notes = np.asarray(notes, dtype=np.float64).reshape(len(notes), -1)
    velocities = notes[:, 3] if notes.shape[1] > 3 else np.full(len(notes), 100.0)
    if velocities.max() <= 1.0:
        velocities = velocities * 127
    rows = [
        [onset, max(offset, onset + 1e-3), int(round(pitch)), int(np.clip(round(velocity), 1, 127))]
        for (onset, offset, pitch), velocity in zip(notes[:, :3], velocities)
    ]
    rows.sort(key=lambda row: (row[2], row[0]))
    kept: list[list] = []
    for row in rows:
        previous = kept[-1] if kept and kept[-1][2] == row[2] else None
        if previous is not None and row[0] - previous[0] < 1e-3:
            previous[1] = max(previous[1], row[1])
            continue
        if previous is not None:
            previous[1] = min(previous[1], row[0])
        kept.append(row)
    kept.sort(key=lambda row: (row[0], row[2]))
    return [pretty_midi.Note(velocity=v, pitch=p, start=float(on), end=float(off)) for on, off, p, v in kept]
