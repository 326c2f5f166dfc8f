"""Tests for the score-driven synthesiser (sepbook.data.synth): determinism, exact stems, ground truth, errors."""
import numpy as np
import pytest

from sepbook.data.synth import INSTRUMENTS, MUSDB_GROUPS, STYLES, Song, synthesize_song, synthesize_songs

SR = 16000


@pytest.fixture(scope="module")
def song() -> Song:
    return synthesize_song(7, seconds=3.0, sr=SR)


def _arrays(song: Song) -> list[np.ndarray]:
    out = [song.mixture]
    for table in (song.stems, song.rolls, song.notes, song.activity):
        out += [table[name] for name in sorted(table)]
    return out


def test_same_seed_gives_bit_identical_arrays(song):
    again = synthesize_song(7, seconds=3.0, sr=SR)
    assert list(again.stems) == list(song.stems)
    for a, b in zip(_arrays(song), _arrays(again)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert again.meta == song.meta


def test_different_seeds_give_different_songs(song):
    other = synthesize_song(8, seconds=3.0, sr=SR)
    assert not np.allclose(other.mixture, song.mixture)
    assert any(not np.array_equal(other.notes[n], song.notes[n]) for n in song.notes)


def test_mixture_is_exactly_the_sum_of_stems_and_does_not_clip(song):
    assert song.mixture.dtype == np.float32 and song.mixture.shape == (round(3.0 * SR),)
    assert np.array_equal(song.mixture, sum(song.stems.values()))
    assert 0.5 < np.max(np.abs(song.mixture)) <= 1.0
    for name, stem in song.stems.items():
        assert stem.dtype == np.float32 and stem.shape == song.mixture.shape, name
        assert np.max(np.abs(stem)) <= 1.0
        assert abs(float(stem.mean())) < 1e-3, f"{name} has a DC offset"


@pytest.mark.parametrize("frame_rate", [50.0, 100.0])
def test_rolls_activity_and_notes_have_consistent_shapes(frame_rate):
    song = synthesize_song(3, seconds=2.5, sr=SR, frame_rate=frame_rate)
    frames = round(song.duration * frame_rate)
    assert song.frame_rate == frame_rate
    for name in song.stems:
        roll, notes, activity = song.rolls[name], song.notes[name], song.activity[name]
        assert roll.shape == (frames, 128) and roll.dtype == bool
        assert activity.shape == (frames,) and activity.dtype == bool
        assert np.array_equal(activity, roll.any(axis=1)), "activity is documented as note activity"
        assert notes.ndim == 2 and notes.shape[1] == 4 and len(notes) > 0
        onset, offset, pitch, velocity = notes.T
        assert np.all(onset >= 0) and np.all(offset <= song.duration + 1e-9) and np.all(offset > onset)
        assert np.all((pitch == np.round(pitch)) & (pitch >= 0) & (pitch < 128))
        assert np.all((velocity >= 1) & (velocity <= 127))
        assert set(np.flatnonzero(roll.any(axis=0))) <= set(pitch.astype(int))


def test_drum_roll_uses_general_midi_keys(song):
    pitches = set(song.notes["drums"][:, 2].astype(int))
    assert pitches <= {36, 38, 42, 46, 49, 51} and {36, 38} & pitches


def _recently_active(activity: np.ndarray, frames: int) -> np.ndarray:
    """True where the instrument sounded within the last ``frames`` frames (release tails)."""
    return np.convolve(activity.astype(float), np.ones(frames))[: len(activity)] > 0


@pytest.mark.parametrize("instrument", ["bass", "piano", "vocals"])
def test_stem_has_energy_at_the_fundamental_of_its_notes(instrument):
    # A song where the instrument both plays and rests, so silent frames exist for comparison.
    for seed in range(40):
        song = synthesize_song(seed, seconds=8.0, sr=SR, instruments=("vocals", "bass", "piano"))
        if (~_recently_active(song.activity[instrument], 25)).sum() > 1.5 * song.frame_rate:
            break
    n_fft, hop = 4096, 256                                                  # 3.9 Hz bins
    stem = song.stems[instrument]
    frames = 1 + (len(stem) - n_fft) // hop
    windows = np.lib.stride_tricks.sliding_window_view(stem, n_fft)[::hop][:frames] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(windows, axis=-1)) ** 2                      # (frames, bins)
    centres = (np.arange(frames) * hop + n_fft / 2) / SR
    notes = song.notes[instrument]
    onset, offset, pitch, _ = notes[np.argmax(notes[:, 1] - notes[:, 0])]   # the longest note
    assert offset - onset > 0.3
    inside = (centres - n_fft / 2 / SR > onset + 0.02) & (centres + n_fft / 2 / SR < offset)
    if not inside.any():                                                    # short note: centre frame
        inside = np.abs(centres - (onset + offset) / 2) == np.abs(centres - (onset + offset) / 2).min()
    f0_bin = int(round(440.0 * 2 ** ((pitch - 69) / 12) / (SR / n_fft)))
    at_f0 = power[inside][:, f0_bin - 1: f0_bin + 2].max(axis=1).mean()
    assert at_f0 > 30 * np.median(power[inside]), "f0 should stand far above the typical bin"
    between_harmonics = int(round(1.5 * f0_bin))                             # no partial there
    assert at_f0 > 100 * power[inside][:, between_harmonics].mean()
    # Frames whose window overlaps no note of the instrument nor its release (0.5 s).
    half = n_fft / 2 / SR
    quiet = np.ones(frames, bool)
    for start, stop in notes[:, :2]:
        quiet &= (centres + half < start) | (centres - half > stop + 0.5)
    assert quiet.any()
    assert at_f0 > 1000 * power[quiet][:, f0_bin - 1: f0_bin + 2].max(axis=1).mean() + 1e-12


def test_instruments_enter_and_leave():
    song = synthesize_song(11, seconds=20.0, sr=8000, instruments=("vocals", "bass", "guitar", "drums"))
    sections = song.meta["sections"]
    varying = [n for n, a in song.activity.items() if 0.05 < a.mean() < 0.95 and not all(sections[n])]
    assert varying, f"activity never varied: {sections}"
    for name in varying:                      # a silent section really is silent in the audio
        section = sections[name].index(False)
        start = int((section * song.meta["section_seconds"] + 0.6) * song.sr)
        stop = int((min((section + 1) * song.meta["section_seconds"], song.duration) - 0.05) * song.sr)
        if stop > start:
            assert np.max(np.abs(song.stems[name][start:stop])) < 1e-3


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_renders_every_instrument(style):
    song = synthesize_song(1, seconds=2.0, sr=SR, style=style, instruments=INSTRUMENTS)
    lo, hi = STYLES[style].tempo
    assert lo <= song.meta["tempo"] <= hi and song.meta["style"] == style
    for name, stem in song.stems.items():
        assert np.all(np.isfinite(stem)) and np.max(np.abs(stem)) <= 1.0, name
        assert np.max(np.abs(stem)) > 1e-3, f"{name} is silent"


def test_style_defaults_and_low_sample_rate():
    quartet = synthesize_song(0, seconds=1.0, style="quartet")
    choir = synthesize_song(0, seconds=1.0, style="choir")
    assert list(quartet.stems) == ["violin", "clarinet", "saxophone", "bassoon"]
    assert list(choir.stems) == ["soprano", "alto", "tenor", "bass_voice"]
    low = synthesize_song(0, seconds=1.0, sr=8000)
    assert low.mixture.shape == (8000,) and np.all(np.isfinite(low.mixture))


def test_sources_and_musdb_groups(song):
    assert set(MUSDB_GROUPS) == set(INSTRUMENTS)
    stacked = song.sources(["bass", "vocals"])
    assert stacked.shape == (2, len(song.mixture))
    assert np.array_equal(stacked[1], song.stems["vocals"])
    with pytest.raises(ValueError, match="violin"):
        song.sources(["violin"])
    assert not song.sources(["violin"], missing="silence").any()
    grouped = song.grouped()
    assert grouped.shape == (4, len(song.mixture))
    np.testing.assert_allclose(grouped.sum(axis=0), song.mixture, atol=1e-6)


def test_synthesize_songs_uses_disjoint_derived_seeds():
    first = synthesize_songs(2, seed=0, seconds=1.0)
    again = synthesize_songs(1, seed=0, seconds=1.0)
    other = synthesize_songs(2, seed=1, seconds=1.0)
    assert [s.name for s in first] == ["pop_0_0000", "pop_0_0001"]
    assert np.array_equal(first[0].mixture, again[0].mixture)
    assert not np.allclose(first[0].mixture, first[1].mixture)
    assert all(not np.array_equal(a.mixture, b.mixture) for a in first for b in other)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seconds": 0}, "seconds must be a positive"),
        ({"seconds": -2.0}, "seconds must be a positive"),
        ({"sr": 4000}, "sr must be .* at least 8000"),
        ({"style": "metal"}, r"unknown style 'metal'.*'pop'"),
        ({"instruments": ("vocals", "kazoo")}, r"unknown \['kazoo'\].*'vocals'"),
        ({"instruments": ()}, r"instruments is empty.*'bass'"),
        ({"instruments": ("bass", "bass")}, "once"),
        ({"frame_rate": 0}, "frame_rate"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_arguments_raise_helpful_errors(kwargs, message):
    kwargs = {"seed": 0, "seconds": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        synthesize_song(kwargs.pop("seed"), **kwargs)


def test_bad_song_count_raises():
    with pytest.raises(ValueError, match="n must be a positive"):
        synthesize_songs(0, seed=0)


def test_independent_parts_take_each_part_from_another_composition_and_rest_in_some_bars():
    from sepbook.data.synth import independent_parts

    names = ("bass", "guitar", "piano")
    song = independent_parts(3, seconds=8.0, sr=8000, instruments=names, styles=("pop", "rock", "jazz"))
    again = independent_parts(3, seconds=8.0, sr=8000, instruments=names, styles=("pop", "rock", "jazz"))
    assert all(np.array_equal(song.stems[n], again.stems[n]) for n in names), "the same seed, the same song"
    assert np.allclose(song.mixture, sum(song.stems.values()), atol=1e-6)
    parts = song.meta["parts"]
    assert len({parts[n]["seed"] for n in names}) == 3 and len({parts[n]["tempo"] for n in names}) == 3
    for name in names:
        bar = 240.0 / parts[name]["tempo"]
        onsets_bar = (song.notes[name][:, 0] // bar).astype(int)
        assert not set(onsets_bar) & set(parts[name]["resting bars"]), f"{name} plays in a bar it rests in"
        assert len(song.notes[name]) and song.activity[name].any()
    assert any(parts[n]["resting bars"] for n in names), "some part rests somewhere"
    unrested = independent_parts(3, seconds=8.0, sr=8000, instruments=names, styles=("pop", "rock", "jazz"), rests=0.0)
    assert all(len(unrested.notes[n]) >= len(song.notes[n]) for n in names)
    with pytest.raises(ValueError, match="rests"):
        independent_parts(3, instruments=names, rests=1.0)
    with pytest.raises(ValueError, match="instruments"):
        independent_parts(3, instruments=("bass", "bass"))
