"""Bach chorales as the quartet and choir sets: real four-part scores, split by chorale, played
soprano to bass by the right instruments, with rolls from the score."""
import numpy as np
import pytest

from sepbook.data import chorales, soundfonts, synth

SR = 8000


@pytest.fixture(scope="module")
def quartet():
    return chorales.chorale_songs(chorales.QUARTET, "train", 2, seconds=6.0, sr=SR, fonts=soundfonts.TRAINING_FONTS)


def test_no_chorale_is_in_both_sets():
    train = {c for c in chorales.names() if chorales.subset(c) == "train"}
    test = {c for c in chorales.names() if chorales.subset(c) == "test"}
    assert not train & test and train | test == set(chorales.names())
    assert 0.1 < len(test) / len(chorales.names()) < 0.3 and len(chorales.names()) > 300
    songs = chorales.chorale_songs(chorales.CHOIR, "test", 2, seconds=3.0, sr=SR)
    assert all(chorales.subset(s.meta["chorale"]) == "test" for s in songs)


def test_parts_are_the_scores_four_voices():
    score = chorales.parts("bwv10.7")
    assert list(score) == list(chorales.VOICE_PARTS)
    lowest = {part: rows[:, 2].min() for part, rows in score.items()}
    assert lowest["soprano"] > lowest["alto"] >= lowest["tenor"] - 5 and lowest["tenor"] > lowest["bass"]
    for rows in score.values():
        assert np.all(rows[:, 1] > rows[:, 0]) and np.all(np.diff(rows[:, 0]) >= 0)


def test_soprano_to_bass_are_played_by_the_quartet_in_order(quartet):
    song = quartet[0]
    score = chorales.parts(song.meta["chorale"])
    beat = 60.0 / song.meta["tempo"]
    assert list(song.stems) == list(chorales.QUARTET)
    for inst, part in zip(chorales.QUARTET, chorales.VOICE_PARTS):
        shown = song.notes[inst]
        np.testing.assert_array_equal(shown[:, 2], score[part][:len(shown), 2])
        np.testing.assert_allclose(shown[:, 0], score[part][:len(shown), 0] * beat)
        assert shown[:, 0].max() < 6.0 and shown[:, 1].max() <= 6.0


def test_songs_are_exact_and_repeatable(quartet):
    song = quartet[0]
    np.testing.assert_array_equal(song.mixture, sum(song.stems.values()))
    for inst in song.stems:
        np.testing.assert_array_equal(song.activity[inst], song.rolls[inst].any(axis=1))
        np.testing.assert_array_equal(song.rolls[inst],
                                      synth.notes_to_roll(song.notes[inst], len(song.activity[inst]), 50.0))
    again = chorales.chorale_song(song.meta["chorale"], chorales.QUARTET, seed=0, seconds=6.0, sr=SR,
                                  fonts=soundfonts.TRAINING_FONTS)
    for inst in song.stems:
        np.testing.assert_array_equal(song.stems[inst], again.stems[inst])


def test_bad_requests_are_named(monkeypatch):
    with pytest.raises(ValueError, match="which"):
        chorales.chorale_songs(chorales.QUARTET, "valid", 1, seconds=1.0, sr=SR)
    with pytest.raises(ValueError, match="instruments"):
        chorales.chorale_song("bwv10.7", ("violin",), seed=0, seconds=1.0, sr=SR)
    monkeypatch.setattr(chorales, "names", lambda: ("bwv6.6", "bwv291"))       # two test chorales
    with pytest.raises(ValueError, match="n: the test chorales hold 2 four-part chorales, fewer than 3"):
        chorales.chorale_songs(chorales.CHOIR, "test", 3, seconds=0.5, sr=SR)
