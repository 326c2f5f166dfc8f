"""MUSDB18-HQ and Slakh2100 layouts: write tiny songs, read them back through the real readers."""
from __future__ import annotations

import numpy as np
import pytest

from sepbook.data import layouts, synth
from sepbook.data.synth import Song

SR = 8000
FRAME_RATE = 50.0
# stem -> (MIDI pitch, note onsets in seconds); drums use GM kit keys
PARTS = {"vocals": (67, [0.1, 0.55]), "bass": (40, [0.0, 0.5]), "piano": (60, [0.2537]), "drums": (36, [0.0, 0.25, 0.5])}


def make_song(name: str, seconds: float = 1.0, seed: int = 0) -> Song:
    """Sine stems playing the notes of PARTS, with matching notes, rolls and activity."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    n_frames = int(round(seconds * FRAME_RATE))
    stems, notes, rolls, activity = {}, {}, {}, {}
    for stem, (pitch, onsets) in PARTS.items():
        audio = np.zeros(n, dtype=np.float32)
        rows = []
        for onset in onsets:
            offset = min(onset + 0.2, seconds)
            span = (t >= onset) & (t < offset)
            freq = 440.0 * 2 ** ((pitch - 69) / 12)
            audio[span] += (0.3 * rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * freq * t[span])).astype(np.float32)
            rows.append([onset, offset, pitch, 0.8])
        stems[stem] = audio
        notes[stem] = np.array(rows)
        rolls[stem] = layouts.notes_to_roll(notes[stem], n_frames, FRAME_RATE)
        activity[stem] = rolls[stem].any(axis=1)
    mixture = np.sum(list(stems.values()), axis=0).astype(np.float32)
    return Song(
        name=name, sr=SR, stems=stems, mixture=mixture, rolls=rolls, notes=notes,
        activity=activity, frame_rate=FRAME_RATE, meta={"tempo": 96.0, "style": "pop"},
    )


@pytest.fixture
def songs():
    return [make_song("Synth Band - Song A", seed=1), make_song("Synth Band - Song B", seconds=0.75, seed=2)]


GROUPS = {"vocals": "vocals", "bass": "bass", "drums": "drums", "piano": "other"}


def test_musdb_round_trip(tmp_path, songs):
    root = layouts.write_musdb(tmp_path / "musdb", songs, subset="train", grouping=GROUPS)
    db = layouts.open_musdb(root, subsets="train")
    assert sorted(track.name for track in db) == sorted(song.name for song in songs)

    for track in db:
        song = next(s for s in songs if s.name == track.name)
        mixture, sources, sr = layouts.musdb_track_arrays(track, layouts.MUSDB_TARGETS)
        assert sr == 44100
        assert sources.shape == (4, 2, int(np.ceil(song.stems["bass"].shape[-1] * 44100 / SR)))
        np.testing.assert_allclose(mixture, sources.sum(0), atol=1e-6)  # float WAVs: exact up to rounding
        np.testing.assert_array_equal(sources[:, 0], sources[:, 1])  # mono duplicated to stereo

        # the resampled vocals keep the song's energy and the piano went to 'other'
        vocals = sources[0, 0]
        assert np.isclose(np.sum(vocals**2) / 44100, np.sum(song.stems["vocals"] ** 2) / SR, rtol=0.02)
        assert np.isclose(np.sum(sources[3, 0] ** 2) / 44100, np.sum(song.stems["piano"] ** 2) / SR, rtol=0.02)

        # musdb's own decoder (16-bit through ffmpeg) agrees within its quantisation step
        np.testing.assert_allclose(track.audio.T, mixture, atol=2 / 2**15)
        np.testing.assert_allclose(track.targets["vocals"].audio.T, sources[0], atol=2 / 2**15)


def test_musdb_accompaniment_target_and_loud_tracks_are_scaled(tmp_path):
    loud = make_song("Loud - Track")
    loud.stems = {k: v * 4 for k, v in loud.stems.items()}  # sum peaks far above full scale
    root = layouts.write_musdb(tmp_path, [loud], sr=16000, grouping=GROUPS)
    track = layouts.open_musdb(root)[0]
    mixture, sources, sr = layouts.musdb_track_arrays(track, ["vocals", "accompaniment"])
    assert sr == 16000 and sources.shape[0] == 2
    assert np.abs(mixture).max() <= layouts.MUSDB_PEAK + 1e-6
    np.testing.assert_allclose(mixture, sources.sum(0), atol=1e-6)


def test_open_musdb_errors_name_the_folder_and_file(tmp_path, songs):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        layouts.open_musdb(tmp_path / "nowhere")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"empty.*mixture\.wav"):
        layouts.open_musdb(tmp_path / "empty")
    root = layouts.write_musdb(tmp_path / "db", songs[:1], grouping=GROUPS)
    track = layouts.open_musdb(root)[0]
    with pytest.raises(ValueError, match="guitar"):
        layouts.musdb_track_arrays(track, ["guitar"])
    (root / "train" / songs[0].name / "bass.wav").unlink()
    with pytest.raises(FileNotFoundError, match="bass.wav"):
        layouts.open_musdb(root)
    with pytest.raises(FileNotFoundError, match="bass.wav"):  # deleted after opening
        layouts.musdb_track_arrays(track, ["vocals"])
    with pytest.raises(ValueError, match="songs"):
        layouts.write_musdb(tmp_path / "none", [])
    with pytest.raises(ValueError, match="subset"):
        layouts.write_musdb(tmp_path / "bad", songs, subset="valid")


def test_slakh_round_trip(tmp_path, songs):
    dirs = layouts.write_slakh(tmp_path / "slakh", songs, split="train")
    assert [d.name for d in dirs] == ["Track00001", "Track00002"]
    for name in ("metadata.yaml", "mix.wav", "all_src.mid", "stems/S00.wav", "MIDI/S03.mid"):
        assert (dirs[0] / name).is_file(), name

    import yaml

    meta = yaml.safe_load((dirs[0] / "metadata.yaml").read_text())
    assert meta["audio_dir"] == "stems" and meta["midi_dir"] == "MIDI"
    drums = next(e for e in meta["stems"].values() if e["name"] == "drums")
    assert drums["is_drum"] is True and drums["inst_class"] == "Drums" and drums["audio_rendered"] is True

    for song, track_dir in zip(songs, dirs):
        track = layouts.read_slakh_track(track_dir, frame_rate=FRAME_RATE)
        assert track.sr == SR and set(track.stems) == set(song.stems)
        np.testing.assert_allclose(track.mixture, np.sum(list(song.stems.values()), axis=0), atol=1e-6)
        assert track.is_drum["drums"] and not track.is_drum["bass"]
        for stem in song.stems:
            np.testing.assert_array_equal(track.stems[stem], song.stems[stem])
            expected = song.notes[stem][np.argsort(song.notes[stem][:, 0], kind="stable")]
            got = track.notes[stem]
            np.testing.assert_array_equal(got[:, 2], expected[:, 2])
            np.testing.assert_allclose(got[:, 0], expected[:, 0], atol=1e-3)
            np.testing.assert_allclose(got[:, 1], expected[:, 1], atol=1e-3)
            np.testing.assert_array_equal(track.rolls[stem], song.rolls[stem])
            np.testing.assert_array_equal(track.activity[stem], track.rolls[stem].any(axis=1))

    # all_src.mid holds every part, drums flagged as such
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(dirs[0] / "all_src.mid"))
    assert sorted(i.name for i in midi.instruments) == sorted(songs[0].stems)
    assert [i.is_drum for i in midi.instruments if i.name == "drums"] == [True]


def test_slakh_reads_flac_filters_instruments_and_merges_classes(tmp_path, songs):
    import soundfile
    import yaml

    (track_dir,) = layouts.write_slakh(tmp_path, songs[:1], first_index=7)
    assert track_dir.name == "Track00007"
    # make it look like the real set: FLAC audio, stems named only by inst_class
    for wav in [track_dir / "mix.wav", *sorted((track_dir / "stems").glob("*.wav"))]:
        audio, sr = soundfile.read(str(wav))
        soundfile.write(str(wav.with_suffix(".flac")), audio, sr, subtype="PCM_24")
        wav.unlink()
    meta_path = track_dir / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    for entry in meta["stems"].values():
        entry.pop("name")
        if entry["inst_class"] == "Piano":
            entry["inst_class"] = "Bass"  # two stems of one class are merged, as in real Slakh
    meta_path.write_text(yaml.safe_dump(meta))

    track = layouts.read_slakh_track(track_dir, instruments=["Bass", "Drums", "Guitar"])
    assert set(track.stems) == {"Bass", "Drums"}
    song = songs[0]
    np.testing.assert_allclose(track.stems["Bass"], song.stems["bass"] + song.stems["piano"], atol=1e-5)
    assert sorted(track.notes["Bass"][:, 2]) == sorted([40, 40, 60])
    assert track.rolls["Bass"][:, 60].any() and track.rolls["Bass"][:, 40].any()


def test_slakh_errors_name_the_file(tmp_path, songs):
    with pytest.raises(FileNotFoundError, match="metadata.yaml"):
        layouts.read_slakh_track(tmp_path / "Track00001")
    (track_dir,) = layouts.write_slakh(tmp_path, songs[:1])
    (track_dir / "stems" / "S01.wav").unlink()
    with pytest.raises(FileNotFoundError, match="S01"):
        layouts.read_slakh_track(track_dir)


def test_synthesised_song_round_trips_through_slakh(tmp_path):
    song = synth.synthesize_song(3, seconds=2)
    (track_dir,) = layouts.write_slakh(tmp_path, [song])
    track = layouts.read_slakh_track(track_dir, frame_rate=song.frame_rate)
    for stem, notes in song.notes.items():
        np.testing.assert_array_equal(track.stems[stem], song.stems[stem])
        assert track.rolls[stem].shape == song.rolls[stem].shape
        if len(notes) == 0:
            continue
        order = np.lexsort((notes[:, 2], notes[:, 0]))
        np.testing.assert_array_equal(track.notes[stem][:, 2], np.round(notes[order, 2]))
        np.testing.assert_allclose(track.notes[stem][:, 0], notes[order, 0], atol=1e-3)
        # a note within microseconds of a frame boundary may land on either side once rounded to ticks
        assert (track.rolls[stem] != song.rolls[stem]).sum() <= 2
