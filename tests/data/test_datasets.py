"""SongDataset and step_batches: segments, remixing, augmentation labels, determinism and resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sepbook.data import synth
from sepbook.data.datasets import EQ_BANDS, SongDataset, equalise, step_batches
from sepbook.data.synth import Song

SR = 4000
FRAME_RATE = 50.0
STEMS = ("vocals", "bass", "drums")


def make_song(song_id: int, seconds: float = 1.0) -> Song:
    """Stems whose samples encode where they came from: value = 10 * song_id + sample_index / 1000.

    That lets a test read back which song and which offset each source of an item was cut from.
    Rolls are random, so their alignment with the audio can be checked the same way.
    """
    n = int(seconds * SR)
    n_frames = int(round(seconds * FRAME_RATE))
    rng = np.random.default_rng(song_id)
    stamp = (10 * song_id + np.arange(n) / 1000).astype(np.float32)
    stems = {name: stamp.copy() for name in STEMS}
    rolls = {name: rng.random((n_frames, 128)) < 0.05 for name in STEMS}
    return Song(
        name=f"song{song_id}", sr=SR, stems=stems, mixture=np.sum(list(stems.values()), axis=0),
        rolls=rolls, notes={name: np.zeros((0, 4)) for name in STEMS},
        activity={name: roll.any(axis=1) for name, roll in rolls.items()}, frame_rate=FRAME_RATE, meta={},
    )


def decode(source: torch.Tensor) -> tuple[int, int]:
    """(song_id, start sample) of one ``(channels, time)`` source cut from make_song audio."""
    first = float(source[0, 0])
    song_id = int(first // 10)
    return song_id, int(round((first - 10 * song_id) * 1000))


@pytest.fixture
def songs():
    return [make_song(i, seconds=1.0 + 0.25 * i) for i in range(4)]


def test_items_have_the_documented_shapes_and_the_mixture_is_the_sum(songs):
    data = SongDataset.from_songs(songs, ["vocals", "bass", "drums"], segment_seconds=0.5, length=8,
                                  gain_range=(0.25, 1.25))
    item = data[3]
    assert item["sources"].shape == (3, 1, 2000) and item["mixture"].shape == (1, 2000)
    assert item["rolls"].shape == (3, 25, 128) and item["activity"].shape == (3, 25)
    assert all(v.dtype == torch.float32 for v in item.values())
    for index in range(len(data)):
        item = data[index]
        assert torch.equal(item["mixture"], item["sources"].sum(0))
    with pytest.raises(IndexError):
        data[8]


def test_items_are_deterministic_per_index_and_seed(songs):
    first = SongDataset.from_songs(songs, STEMS, segment_seconds=0.5, length=6, seed=3, coherent=False,
                                   gain_range=(0.5, 1.5))
    again = SongDataset.from_songs(songs, STEMS, segment_seconds=0.5, length=6, seed=3, coherent=False,
                                   gain_range=(0.5, 1.5))
    other = SongDataset.from_songs(songs, STEMS, segment_seconds=0.5, length=6, seed=4, coherent=False,
                                   gain_range=(0.5, 1.5))
    for index in (5, 0, 5):
        assert all(torch.equal(first[index][k], again[index][k]) for k in first[index])
    assert not torch.equal(first[0]["mixture"], other[0]["mixture"])
    assert not torch.equal(first[0]["mixture"], first[1]["mixture"])


def test_coherent_items_cut_every_source_at_one_place_with_aligned_rolls(songs):
    data = SongDataset.from_songs(songs, STEMS, segment_seconds=0.5, length=20, coherent=True)
    for index in range(len(data)):
        item = data[index]
        origins = {decode(source) for source in item["sources"]}
        assert len(origins) == 1
        song_id, start = origins.pop()
        expected = np.arange(start, start + 2000) / 1000 + 10 * song_id
        np.testing.assert_allclose(item["sources"][0, 0].numpy(), expected, atol=1e-5)
        first_frame = int(np.floor(start / SR * FRAME_RATE + 1e-9))
        for k, name in enumerate(STEMS):
            roll = songs[song_id].rolls[name][first_frame:first_frame + 25]
            np.testing.assert_array_equal(item["rolls"][k].numpy()[: len(roll)], roll)


def test_incoherent_items_mix_sources_from_different_songs(songs):
    data = SongDataset.from_songs(songs, STEMS, segment_seconds=0.5, length=20, coherent=False)
    mixed = sum(len({decode(s)[0] for s in data[i]["sources"]}) > 1 for i in range(len(data)))
    assert mixed >= 10


def test_grouping_sums_stems_and_ors_their_rolls(songs):
    data = SongDataset.from_songs(songs[:1], ["vocals", "accompaniment"], segment_seconds=1.0,
                                  grouping={"bass": "accompaniment", "drums": "accompaniment"})
    item = data[0]
    torch.testing.assert_close(item["sources"][1], 2 * item["sources"][0])
    expected = songs[0].rolls["bass"] | songs[0].rolls["drums"]
    np.testing.assert_array_equal(item["rolls"][1].numpy().astype(bool), expected)


def test_pitch_shift_moves_pitched_rolls_and_keeps_drum_rolls(songs):
    plain = SongDataset.from_songs(songs, STEMS, segment_seconds=0.25, length=2)
    shifted = SongDataset.from_songs(songs, STEMS, segment_seconds=0.25, length=2, pitch_shift=(3, 3))
    a, b = plain[1], shifted[1]
    assert b["sources"].shape == a["sources"].shape
    assert torch.equal(b["mixture"], b["sources"].sum(0))
    assert torch.equal(b["rolls"][0, :, 3:], a["rolls"][0, :, :-3])
    assert not b["rolls"][0, :, :3].any()
    assert torch.equal(b["rolls"][2], a["rolls"][2])  # drum keys name kit pieces, not pitches


def test_time_stretch_reads_rolls_at_the_stretched_rate():
    song = make_song(0, seconds=2.0)
    data = SongDataset.from_songs([song], STEMS, segment_seconds=0.25, length=2, time_stretch=(2.0, 2.0))
    item = data[0]
    assert item["sources"].shape == (3, 1, 1000)
    assert torch.equal(item["mixture"], item["sources"].sum(0))
    # twice as fast: the item's 12 frames are every other frame of the song's roll from the cut on
    roll = item["rolls"][0].numpy().astype(bool)
    source = song.rolls["vocals"]
    assert any(np.array_equal(source[s:s + 24:2], roll) for s in range(len(source) - 23))


def test_bad_input_is_named(songs):
    with pytest.raises(ValueError, match="songs"):
        SongDataset.from_songs([], STEMS)
    broken = make_song(0)
    broken.stems["bass"] = broken.stems["bass"][:-10]
    with pytest.raises(ValueError, match="same number of samples"):
        SongDataset.from_songs([broken], STEMS)
    with pytest.raises(ValueError, match=r"segment_seconds=9: song .* lasts 1\.000 s .*shorter than one segment"):
        SongDataset.from_songs(songs, STEMS, segment_seconds=9)
    # one short song among long ones is named too: it would otherwise never be trained on
    short = make_song(1)
    short.stems = {name: audio[: len(audio) // 4] for name, audio in short.stems.items()}
    with pytest.raises(ValueError, match=r"song .* lasts 0\.250 s.*1 of 2 songs"):
        SongDataset.from_songs([songs[0], short], STEMS, segment_seconds=0.5, skip_short=False)
    with pytest.raises(ValueError, match="guitar"):
        SongDataset.from_songs(songs, ["vocals", "guitar"])
    with pytest.raises(ValueError, match="gain_range"):
        SongDataset.from_songs(songs, STEMS, gain_range=(2.0, 1.0))


def test_songs_shorter_than_the_segment_are_skipped(songs):
    data = SongDataset.from_songs(songs, STEMS, segment_seconds=1.6, length=10)
    assert {decode(data[i]["sources"][0])[0] for i in range(len(data))} == {3}


class IndexDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, index):
        return {"index": torch.tensor(index)}


def test_step_batches_are_a_pure_function_of_seed_and_step(songs):
    data = SongDataset.from_songs(songs, STEMS, segment_seconds=0.25, length=5)
    run = list(step_batches(data, batch_size=2, seed=7, num_steps=6))
    assert [step for step, _ in run] == list(range(6))
    assert run[0][1]["sources"].shape == (2, 3, 1, 1000) and run[0][1]["rolls"].shape == (2, 3, 12, 128)
    resumed = list(step_batches(data, batch_size=2, seed=7, start_step=4, num_steps=6))
    assert [step for step, _ in resumed] == [4, 5]
    for (_, batch), (_, old_batch) in zip(resumed, run[4:]):
        assert all(torch.equal(batch[k], old_batch[k]) for k in batch)
    different = next(step_batches(data, batch_size=2, seed=8))[1]
    assert not torch.equal(different["mixture"], run[0][1]["mixture"])
    with pytest.raises(ValueError, match="batch_size"):
        next(step_batches(data, batch_size=0, seed=0))


def test_step_batches_visit_every_item_once_per_epoch():
    indices = [int(i) for _, batch in step_batches(IndexDataset(), 3, seed=1, num_steps=10) for i in batch["index"]]
    for epoch in range(6):
        assert sorted(indices[5 * epoch:5 * epoch + 5]) == [0, 1, 2, 3, 4]
    assert indices[:5] != indices[5:10]


def test_from_musdb_reads_stereo_targets(tmp_path):
    from sepbook.data import layouts

    songs = [make_song(i, seconds=0.5) for i in range(2)]
    for song in songs:
        song.stems = {name: np.sin(np.arange(len(a)) * (0.01 + 0.01 * k)).astype(np.float32) * 0.2
                      for k, (name, a) in enumerate(song.stems.items())}
    root = layouts.write_musdb(tmp_path, songs, sr=8000, grouping={"vocals": "vocals", "bass": "bass", "drums": "drums"})
    db = layouts.open_musdb(root)
    data = SongDataset.from_musdb(db, ["vocals", "accompaniment"], segment_seconds=0.25, length=3)
    item = data[2]
    assert item["sources"].shape == (2, 2, 2000) and "rolls" not in item
    assert torch.equal(item["mixture"], item["sources"].sum(0))
    mono = SongDataset.from_musdb(db, ["drums"], segment_seconds=0.25, mono=True)
    assert mono[0]["sources"].shape == (1, 1, 2000)


def test_from_slakh_reads_rolls_from_midi(tmp_path):
    from sepbook.data import layouts

    songs = [make_song(i) for i in range(2)]
    for song in songs:
        song.notes = {name: np.array([[0.1, 0.5, 60 + k, 100], [0.6, 0.9, 48 + k, 90]])
                      for k, name in enumerate(STEMS)}
    del songs[0].stems["drums"]  # a track without drums contributes silence and an empty roll
    dirs = layouts.write_slakh(tmp_path / "slakh", songs)
    data = SongDataset.from_slakh(tmp_path / "slakh" / "train", ["bass", "drums"], segment_seconds=1.0, length=6)
    items = [data[i] for i in range(len(data))]
    assert all(item["sources"].shape == (2, 1, 4000) for item in items)
    silent = [item for item in items if not item["sources"][1].any()]
    assert 0 < len(silent) < len(items) and not any(item["rolls"][1].any() for item in silent)
    roll = items[0]["rolls"][0].numpy().astype(bool)
    assert roll[5:25, 61].all() and roll[30:45, 49].all() and roll.sum() == 35
    assert torch.equal(items[0]["activity"][0], items[0]["rolls"][0].amax(-1))
    with pytest.raises(ValueError, match="piano"):
        SongDataset.from_slakh(dirs, ["bass", "piano"])
    assert len(SongDataset.from_slakh(dirs[:1], ["bass"], segment_seconds=0.5)) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        SongDataset.from_slakh(tmp_path / "empty", ["bass"])


def test_synthesised_songs_make_a_dataset():
    song = synth.synthesize_song(0, seconds=2)
    names = sorted(song.stems)
    data = SongDataset.from_songs([song], names, segment_seconds=1.0, length=2)
    item = data[1]
    assert item["sources"].shape == (len(names), 1, song.sr)
    assert torch.equal(item["mixture"], item["sources"].sum(0))


# ----------------------------------------------------------------------------- the augmentations


def _peak_hz(x, sr):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=16 * len(x)))
    return np.argmax(spectrum) * sr / (16 * len(x))


@pytest.mark.parametrize("semitones", [3, -5, 12])
def test_pitch_shift_moves_the_fundamental_by_the_asked_interval(semitones):
    from sepbook.data.datasets import pitch_shift

    sr = 8000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 300 * t).astype(np.float32)
    shifted = pitch_shift(tone, sr, semitones)
    assert shifted.shape == tone.shape
    middle = slice(sr // 4, 3 * sr // 4)
    assert _peak_hz(shifted[middle], sr) == pytest.approx(300 * 2 ** (semitones / 12), rel=0.01)


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_changes_the_length_by_the_asked_factor(rate):
    from sepbook.data.datasets import time_stretch

    sr = 8000
    tone = np.sin(2 * np.pi * 300 * np.arange(2 * sr) / sr).astype(np.float32)
    stretched = time_stretch(tone, rate)
    assert len(stretched) == pytest.approx(len(tone) / rate, rel=0.01)
    assert _peak_hz(stretched[sr // 4:-sr // 4], sr) == pytest.approx(300, rel=0.01)  # same pitch


def test_incoherent_mixing_draws_stems_from_different_songs():
    # every sample of song j's stems holds j + 1, so an excerpt tells which song it came from
    tracks = [{"a": np.full((1, 800), j + 1.0, np.float32), "b": np.full((1, 800), j + 1.0, np.float32)}
              for j in range(6)]
    coherent = SongDataset(tracks, ["a", "b"], 8000, segment_seconds=0.05, length=30, seed=0)
    incoherent = SongDataset(tracks, ["a", "b"], 8000, segment_seconds=0.05, length=30, seed=0, coherent=False)
    songs = lambda item: tuple(float(item["sources"][k, 0, 0]) for k in range(2))  # noqa: E731
    assert all(len(set(songs(coherent[i]))) == 1 for i in range(30))
    assert sum(len(set(songs(incoherent[i]))) == 2 for i in range(30)) > 20
    item = incoherent[0]
    assert torch.equal(item["mixture"], item["sources"].sum(0))


def test_bad_augmentations_are_named():
    from sepbook.data.datasets import pitch_shift, time_stretch

    tone = np.zeros(800, np.float32)
    with pytest.raises(ValueError, match="semitones.*12"):
        pitch_shift(tone, 8000, 13)
    with pytest.raises(ValueError, match="rate"):
        time_stretch(tone, 0.0)
    with pytest.raises(ValueError, match="rate"):
        time_stretch(tone, -1.0)
    tracks = [{"a": np.zeros((1, 8000), np.float32)}]
    with pytest.raises(ValueError, match="pitch_shift"):
        SongDataset(tracks, ["a"], 8000, pitch_shift=(-13, 3))
    with pytest.raises(ValueError, match="time_stretch"):
        SongDataset(tracks, ["a"], 8000, segment_seconds=0.1, time_stretch=(0.0, 1.2))


def test_equalise_applies_its_band_gains_and_nothing_else():
    sr, n = 8000, 8000
    t = np.arange(n) / sr
    tones = np.stack([np.sin(2 * np.pi * 100 * t) + np.sin(2 * np.pi * 3000 * t)]).astype(np.float32)
    np.testing.assert_allclose(equalise(tones, np.zeros(EQ_BANDS), sr), tones, atol=1e-5)
    np.testing.assert_allclose(equalise(tones, np.full(EQ_BANDS, 20 * np.log10(2)), sr), 2 * tones, atol=1e-4)
    tilt = equalise(tones, np.linspace(-12, 12, EQ_BANDS), sr)                 # darker lows, brighter highs
    spectrum, flat = np.abs(np.fft.rfft(tilt[0])), np.abs(np.fft.rfft(tones[0]))
    assert spectrum[100] < 0.6 * flat[100] and spectrum[3000] > 1.6 * flat[3000]


def test_equalised_items_keep_the_mixture_the_sum_and_vary_the_sources(songs):
    plain = SongDataset.from_songs(songs, ["vocals", "bass"], grouping=synth.MUSDB_GROUPS, segment_seconds=0.5,
                                   length=4, seed=3)
    shaped = SongDataset.from_songs(songs, ["vocals", "bass"], grouping=synth.MUSDB_GROUPS, segment_seconds=0.5,
                                    length=4, seed=3, equalise_db=9.0)
    a, b = plain[1], shaped[1]
    torch.testing.assert_close(b["mixture"], b["sources"].sum(0))
    assert not torch.allclose(a["sources"], b["sources"], atol=1e-3)
    ratio = (b["sources"].square().sum(-1) / a["sources"].square().sum(-1).clamp_min(1e-12)).flatten()
    assert torch.all(ratio > 10 ** (-9 / 10) - 1e-3) and torch.all(ratio < 10 ** (9 / 10) + 1e-3)
    torch.testing.assert_close(shaped[1]["sources"], b["sources"])             # still a function of the index
    with pytest.raises(ValueError, match="equalise_db"):
        SongDataset.from_songs(songs, ["vocals"], grouping=synth.MUSDB_GROUPS, equalise_db=0.0)
