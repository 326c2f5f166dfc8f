"""sepbook.seeds (every random draw from a seed and labels) and sepbook.tracks (the shared song type)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from sepbook import seeds
from sepbook.tracks import Track, hold_out_last, track_from_stems


def test_draws_depend_only_on_seed_and_labels():
    assert np.array_equal(seeds.rng(3, "paired", 7).random(5), seeds.rng(3, "paired", 7).random(5))
    draws = {tuple(seeds.rng(*key).random(3)) for key in [(3, "paired", 7), (4, "paired", 7), (3, "solo", 7),
                                                          (3, "paired", 8), (3, "paired", 7, 1)]}
    assert len(draws) == 5
    assert seeds.derive(3, "x") == seeds.derive(3, "x") != seeds.derive(3, "y")
    assert 0 <= seeds.derive(3, "x") < 2**62
    a, b = seeds.generator(1, "penalty", 2), seeds.generator(1, "penalty", 2)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


@pytest.mark.parametrize("one, other", [((3, "a", 7), (3, "a", 8)), ((3, "a", 7, 1), (3, "a", 7, 2)),
                                        ((3, "a", 7), (3, "b", 7)), ((3, "a"), (4, "a"))])
def test_different_labels_of_the_same_length_give_different_streams(one, other):
    assert seeds.rng(*one).random() != seeds.rng(*other).random()


def test_labels_that_would_span_two_words_are_refused():
    # 2**32 would become the words (0, 1) and collide with the labels 0, 1
    with pytest.raises(ValueError, match="labels"):
        seeds.rng(3, "a", 2**32)


@pytest.mark.slow
def test_string_labels_give_the_same_numbers_in_every_python_process():
    code = "from sepbook import seeds; print(seeds.derive(0, 'adversarial', 'pop', 3))"
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=dict(os.environ, PYTHONHASHSEED=str(h))).stdout for h in (1, 2)}
    assert outputs == {f"{seeds.derive(0, 'adversarial', 'pop', 3)}\n"}


@pytest.mark.parametrize("label", [-1, 1.5, True, None])
def test_bad_labels_are_refused(label):
    with pytest.raises(ValueError, match="labels"):
        seeds.rng(0, label)


def test_track_from_stems_sums_its_sources():
    track = track_from_stems("song", [np.ones(5), 2 * np.ones(5)], ("a", "b"), domain="pop")
    assert track.sources.shape == (2, 1, 5) and track.mixture.shape == (1, 5)
    assert torch.equal(track.mixture, torch.full((1, 5), 3.0)) and track.sources.dtype == torch.float32
    assert torch.equal(track.source("b"), torch.full((1, 5), 2.0)) and track.domain == "pop"
    with pytest.raises(ValueError, match="'c'"):
        track.source("c")


@pytest.mark.parametrize("mixture, sources, names, match", [
    (np.zeros(5), np.zeros((2, 1, 5)), ("a", "b"), "mixture"),
    (np.zeros((1, 5)), np.zeros((2, 1, 4)), ("a", "b"), "do not match"),
    (np.zeros((1, 5)), np.zeros((2, 1, 5)), ("a",), "do not match"),
])
def test_track_refuses_shapes_that_do_not_fit(mixture, sources, names, match):
    with pytest.raises(ValueError, match=f"track bad: .*{match}"):
        Track("bad", mixture, sources, names)


def _tracks(n):
    return [track_from_stems(f"song {i}", [np.zeros(8), np.ones(8)], ("a", "b")) for i in range(n)]


def test_hold_out_last_keeps_the_last_songs_for_validation():
    train, valid = hold_out_last(_tracks(25), None)                 # a tenth, at least one
    assert [t.name for t in valid] == ["song 23", "song 24"] and len(train) == 23
    train, valid = hold_out_last(_tracks(5), 3)
    assert [t.name for t in train] == ["song 0", "song 1"] and [t.name for t in valid] == ["song 2", "song 3", "song 4"]
    with pytest.raises(ValueError, match="n_valid: 5 validation songs leave none of the 5"):
        hold_out_last(_tracks(5), 5)


def test_the_mixture_as_estimates_is_the_do_nothing_baseline():
    track = _tracks(1)[0]
    estimates = track.mixture_as_estimates()
    assert estimates.shape == track.sources.shape and torch.equal(estimates[0], track.mixture)
    assert torch.equal(estimates[1], track.mixture)
