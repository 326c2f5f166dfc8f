"""Sampled instruments: SoundFont rendering is deterministic, its stems sum to the mixture, its
rolls come from the score, a part that plays a few milliseconds stays quiet, and a missing font
or bad name says what to install or choose."""
import numpy as np
import pytest

from sepbook.data import soundfonts, synth

FONTS = soundfonts.TRAINING_FONTS
SR = 8000


@pytest.fixture(scope="module")
def song():
    return synth.synthesize_song(3, seconds=4.0, sr=SR, style="rock", fonts=FONTS)


def test_every_font_is_installed():
    assert soundfonts.missing() == [], "make setup installs the SoundFonts and tinysoundfont"


def test_same_seed_same_samples_whatever_was_rendered_before(song):
    synth.synthesize_song(4, seconds=3.0, sr=SR, style="jazz", fonts=FONTS)  # leaves voices behind
    again = synth.synthesize_song(3, seconds=4.0, sr=SR, style="rock", fonts=FONTS)
    for name in song.stems:
        np.testing.assert_array_equal(song.stems[name], again.stems[name], err_msg=name)
    assert again.meta["fonts"] == song.meta["fonts"]


def test_a_font_switched_to_a_rate_plays_what_a_font_loaded_at_that_rate_plays(monkeypatch):
    import tinysoundfont

    notes = np.array([[0.0, 0.4, 40, 100], [0.3, 0.9, 47, 70]])
    play = lambda sr: soundfonts.render_part(notes, 33, font=FONTS[0], sr=sr, n_samples=sr)  # noqa: E731
    first, switched, back = play(SR), play(2 * SR), play(SR)
    np.testing.assert_array_equal(first, back)
    fresh = tinysoundfont.Synth(samplerate=2 * SR)
    fresh = (fresh, fresh.sfload(str(soundfonts.path(FONTS[0]))))
    monkeypatch.setattr(soundfonts, "_loaded", lambda font: fresh)
    np.testing.assert_array_equal(play(2 * SR), switched)
    assert np.abs(switched).max() > 0.01


def test_stems_sum_exactly_to_the_mixture(song):
    np.testing.assert_array_equal(song.mixture, sum(song.stems.values()))
    assert np.abs(song.mixture).max() == pytest.approx(0.9, abs=1e-6)


def test_every_pitched_part_and_the_drums_are_sampled_the_voice_is_not(song):
    assert set(song.meta["fonts"]) == set(song.stems) - {"vocals"}
    assert set(song.meta["fonts"].values()) <= set(FONTS)
    for name, stem in song.stems.items():
        assert np.sqrt(np.mean(stem ** 2)) > 1e-3, name
    additive = synth.synthesize_song(3, seconds=4.0, sr=SR, style="rock")
    np.testing.assert_allclose(song.stems["vocals"] / np.abs(song.stems["vocals"]).max(),
                               additive.stems["vocals"] / np.abs(additive.stems["vocals"]).max(), atol=1e-6)
    assert not np.allclose(song.stems["bass"], additive.stems["bass"], atol=1e-3)


def test_rolls_and_activity_come_from_the_score(song):
    additive = synth.synthesize_song(3, seconds=4.0, sr=SR, style="rock")
    for name in song.stems:
        np.testing.assert_array_equal(song.notes[name], additive.notes[name])
        n_frames = len(song.activity[name])
        np.testing.assert_array_equal(song.rolls[name], synth.notes_to_roll(song.notes[name], n_frames, 50.0))
        np.testing.assert_array_equal(song.activity[name], song.rolls[name].any(axis=1))


def test_a_sampled_note_sounds_at_its_pitch():
    note = np.array([[0.1, 0.9, 57, 100]])                       # A3, 220 Hz
    for font in soundfonts.FONTS:
        stem = soundfonts.render_part(note, 0, font=font, sr=SR, n_samples=SR)
        assert not stem[:int(0.09 * SR)].any(), font             # silent before the onset
        spectrum = np.abs(np.fft.rfft(stem[int(0.2 * SR):int(0.8 * SR)]))
        freqs = np.fft.rfftfreq(int(0.6 * SR), 1 / SR)
        peaks = freqs[np.argsort(spectrum)[-3:]]
        assert np.any(np.abs(peaks / 220.0 - np.round(peaks / 220.0)) < 0.03), (font, peaks)


def test_a_part_of_a_few_milliseconds_is_not_balanced_into_a_click():
    seconds, level_db = 12.0, 0.0
    n = int(seconds * SR)
    short = np.array([[seconds - 0.02, seconds, 40, 100]])        # one note, 20 ms before the end
    whole = np.array([[t, t + 0.45, 40, 100] for t in np.arange(0, seconds, 0.5)])
    loud = {}
    for name, notes in (("short", short), ("whole", whole)):
        stem = soundfonts.render_part(notes, 33, font=FONTS[0], sr=SR, n_samples=n)
        balanced = synth.balance(stem, synth._playing_fraction(notes, seconds), level_db)
        loud[name] = float(np.abs(balanced).max())
    assert loud["short"] < 0.2 * loud["whole"], loud              # at least 14 dB below a whole part


def test_balance_plays_a_part_at_its_level_while_it_plays():
    rng = np.random.default_rng(0)
    stem = np.zeros(10_000, np.float32)
    stem[:5000] = rng.standard_normal(5000)
    out = synth.balance(stem, 0.5, 0.0)
    assert np.sqrt(np.mean(out[:5000].astype(np.float64) ** 2)) == pytest.approx(0.1, rel=1e-4)


def test_bad_fonts_are_named():
    with pytest.raises(ValueError, match="fonts: expected names"):
        synth.synthesize_song(1, seconds=1.0, fonts=("NoSuchFont",))
    with pytest.raises(ValueError, match="font: unknown SoundFont"):
        soundfonts.path("NoSuchFont")


def test_a_missing_font_file_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(soundfonts, "FONTS", {"Ghost": ("ghost-soundfont", "sf2/Ghost.sf2")})
    monkeypatch.setenv(soundfonts.SEARCH_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install ghost-soundfont"):
        soundfonts.path("Ghost")
    assert soundfonts.missing() == ["ghost-soundfont"]
