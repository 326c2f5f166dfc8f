"""The one claims rule, on synthetic rows whose answer is known."""
import math

import numpy as np
import pandas as pd
import pytest

from sepbook.experiments import claims
from sepbook.experiments.claims import HIGHER, LOWER, SAME, Claim, compare


def rows(effect, songs=12, seeds=3, song_sd=1.0, seed_sd=0.3, noise=0.2, outlier=None, base=5.0, rng=0):
    """Scores of 'new' and 'old' on the same songs: new - old = effect + song + seed noise.

    ``outlier`` = (seed, shift) moves every song of one seed of 'new' by ``shift``."""
    rng = np.random.default_rng(rng)
    song_level = rng.normal(0, 3.0, songs)  # songs differ a lot in difficulty: pairing must remove it
    song_effect = rng.normal(0, song_sd, songs)
    out = []
    for s in range(seeds):
        seed_effect = rng.normal(0, seed_sd)
        for i in range(songs):
            old = base + song_level[i] + rng.normal(0, noise)
            new = old + effect + song_effect[i] + seed_effect + rng.normal(0, noise)
            if outlier is not None and s == outlier[0]:
                new += outlier[1]
            for variant, value in (("new", new), ("old", old)):
                out.append(dict(variant=variant, seed=s, song=f"song{i}", domain="d", source="x", metric="SDR",
                                value=value))
    return pd.DataFrame(out)


def claim(expect=HIGHER, margin=0.0, **kw):
    return Claim("c", "new beats old", "the paper", compare("new", "old"), "SDR", expect, "too small", margin=margin, **kw)


def verdict_of(frame, **kw):
    return claims.judge([claim(**kw)], frame)[0]


def test_a_true_effect_is_reproduced_and_its_interval_holds_it():
    v = verdict_of(rows(1.5))
    assert v.verdict == claims.REPRODUCED
    assert v.low < 1.5 < v.high and v.low > 0
    assert v.songs == 12 and v.seeds == 3


def test_a_true_effect_against_the_papers_direction_is_contradicted():
    assert verdict_of(rows(1.5), expect=LOWER).verdict == claims.CONTRADICTED
    assert verdict_of(rows(-1.5)).verdict == claims.CONTRADICTED


def test_no_effect_is_never_reproduced_for_a_directional_claim():
    found = [verdict_of(rows(0.0, rng=r)).verdict for r in range(10)]
    assert claims.REPRODUCED not in found
    assert found.count(claims.INCONCLUSIVE) >= 8


def test_no_difference_needs_the_interval_inside_the_margin():
    assert verdict_of(rows(0.0, song_sd=0.2, seed_sd=0.05), expect=SAME, margin=0.5).verdict == claims.REPRODUCED
    # the same absence of effect, measured too noisily to bound: not reproduced for lack of power
    noisy = rows(0.0, songs=6, song_sd=3.0, seed_sd=1.0)
    assert verdict_of(noisy, expect=SAME, margin=0.5).verdict == claims.INCONCLUSIVE
    # a clear difference beyond the margin contradicts it
    assert verdict_of(rows(-2.0, song_sd=0.3), expect=SAME, margin=0.5).verdict == claims.CONTRADICTED


def test_losses_that_are_not_significant_do_not_pass_a_no_gain_claim():
    """A mostly-negative effect of about -0.4 dB cannot be called 'no difference' at a 0.25 dB margin."""
    v = verdict_of(rows(-0.4, song_sd=0.3, seed_sd=0.1), expect=SAME, margin=0.25)
    assert v.verdict != claims.REPRODUCED


def test_a_margin_is_required_for_no_difference():
    with pytest.raises(ValueError, match="equivalence margin"):
        claim(expect=SAME)


def test_a_single_outlier_seed_does_not_carry_a_claim():
    """Two seeds with no effect and one seed far ahead: the mean is positive, the evidence is one seed."""
    v = verdict_of(rows(0.0, outlier=(2, 3.0), song_sd=0.3, seed_sd=0.0))
    assert v.effect > 0.8
    assert v.verdict == claims.INCONCLUSIVE


def test_too_few_songs_or_seeds_are_inconclusive_whatever_the_effect():
    v = verdict_of(rows(3.0, songs=3))
    assert v.verdict == claims.INCONCLUSIVE and "too few songs" in v.note
    v = verdict_of(rows(3.0, seeds=1))
    assert v.verdict == claims.INCONCLUSIVE and "too few seeds" in v.note


def test_pairing_removes_song_difficulty():
    """Song levels differ by 3 dB; a 0.5 dB paired effect with little song spread is still found."""
    assert verdict_of(rows(0.5, song_sd=0.2, seed_sd=0.05, songs=20)).verdict == claims.REPRODUCED


def test_holm_adjusts_a_family():
    assert claims.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert claims.holm([0.2, math.nan]) == [0.2, math.nan] or math.isnan(claims.holm([0.2, math.nan])[1])
    # a claim that passes alone fails among many that carry no effect
    frame = rows(0.45, songs=12, song_sd=0.8, seed_sd=0.2, rng=3)
    alone = claims.judge([claim()], frame)[0]
    family = [claim()] + [Claim(f"n{i}", "", "", compare("new", "old"), "SDR", HIGHER, "", domains=("none",))
                          for i in range(3)]
    assert alone.verdict == claims.REPRODUCED
    noise = [rows(0.0, rng=10 + i).assign(domain="d", variant=lambda f: f["variant"] + str(i)) for i in range(6)]
    others = [Claim(f"n{i}", "", "", compare(f"new{i}", f"old{i}"), "SDR", HIGHER, "") for i in range(6)]
    together = claims.judge([claim(), *others], pd.concat([frame, *noise]))[0]
    assert together.p_holm > alone.p_holm
    assert family  # the family without paired scores is allowed and judged inconclusive
    assert all(v.verdict == claims.INCONCLUSIVE for v in claims.judge(family, frame)[1:])


def test_a_collapsed_reference_is_not_comparable():
    frame = rows(5.0)
    mixture = frame[frame["variant"] == "old"].assign(variant="mixture", seed=math.nan)
    mixture = mixture.drop_duplicates("song").assign(value=lambda f: f["value"] + 4.0)
    v = verdict_of(pd.concat([frame, mixture]), floor="mixture")
    assert v.verdict == claims.NOT_COMPARABLE and "collapsed" in v.note
    healthy = mixture.assign(value=lambda f: f["value"] - 8.0)
    assert verdict_of(pd.concat([frame, healthy]), floor="mixture").verdict == claims.REPRODUCED


def test_a_reference_without_seeds_stands_beside_every_seed():
    frame = rows(1.0)
    mixture = frame[(frame["variant"] == "old") & (frame["seed"] == 0)].assign(variant="old", seed=math.nan)
    frame = pd.concat([frame[frame["variant"] == "new"], mixture])
    v = verdict_of(frame)
    assert v.seeds == 3 and v.songs == 12


def test_pooled_pairs_average_per_song():
    a = rows(1.0)
    b = rows(-1.0, rng=5).assign(variant=lambda f: f["variant"].map({"new": "new2", "old": "old2"}))
    pooled = Claim("p", "", "", (("new", "old"), ("new2", "old2")), "SDR", HIGHER, "")
    paired = claims.differences(pooled, pd.concat([a, b]))
    single = claims.differences(claim(), a)
    assert paired.shape == single.shape
    assert abs(float(paired.to_numpy().mean())) < abs(float(single.to_numpy().mean()))


def test_bootstrap_resamples_songs_and_seeds():
    d = np.array([[1.0, 1.0, 1.0]] * 10)
    assert np.allclose(claims.bootstrap(d, draws=100), 1.0)
    varied = np.arange(30.0).reshape(10, 3)
    draws = claims.bootstrap(varied, draws=4000)
    assert abs(draws.mean() - varied.mean()) < 0.3
    within_only = np.tile([[0.0, 1.0, 2.0]], (10, 1))  # songs identical, seeds differ: seeds must be resampled
    assert claims.bootstrap(within_only, draws=2000).std() > 0.05
    with pytest.raises(ValueError, match="differences"):
        claims.bootstrap(np.zeros((0, 3)))


def test_the_interval_covers_the_truth_about_95_percent_of_the_time():
    hits = [(lambda v: v.low <= 0.7 <= v.high)(verdict_of(rows(0.7, rng=r))) for r in range(40)]
    assert 0.8 <= np.mean(hits) <= 1.0


def test_bad_claims_are_rejected():
    with pytest.raises(ValueError, match="expect"):
        claim(expect=2)
    with pytest.raises(ValueError, match="versus"):
        Claim("x", "", "", (("a",),), "SDR", HIGHER, "")
    with pytest.raises(ValueError, match="unique"):
        claims.judge([claim(), claim()], rows(1.0))
