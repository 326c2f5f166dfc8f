"""The activity recipe end to end at tiny size: runs, data, batches, a learning bar, evaluation,
separation with and without the weighting, and bad settings.

BSS Eval v4 costs about 5 s per call whatever the song length (its 512-tap filters), so the
evaluation tests score one song each.
"""
import math
import time

import numpy as np
import pytest
import torch

from sepbook.audio import log_magnitude, magnitudes
from sepbook.experiments import report
from sepbook.models.blstm import BLSTMMasker
from sepbook.models.iass import IASS
from sepbook.recipes import activity
from sepbook.recipes.activity import training
from sepbook.recipes.activity.data import batches, load_tracks, n_frames, training_sets

from helpers import QUIET

SMALL = dict(n_train=5, n_valid=1, n_test=2, song_seconds=4.0, steps=150, valid_every=50, batch_size=4,
             seeds=(0, 1))
MUSDB = ("vocals", "drums", "bass", "other")
MEDLEY = ("vocals", "bass", "drums", "piano", "electric_guitar", "acoustic_guitar")


@pytest.fixture(scope="module", autouse=True)
def data_dir(tmp_path_factory):
    """Every test here generates and reads its songs in a temporary folder, never data/generated."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEPBOOK_DATA", str(tmp_path_factory.mktemp("data")))
        yield


@pytest.fixture(scope="module")
def cfg():
    return activity.config("tiny", **SMALL)


@pytest.fixture(scope="module")
def splits(cfg):
    return activity.data(cfg)


@pytest.fixture(scope="module")
def sets(cfg, splits):
    return training_sets(cfg, splits, "medley")


# ----------------------------------------------------------------------------- runs and build


def test_runs_list_every_variant_and_seed(cfg):
    runs = activity.runs(cfg)
    assert len(runs) == len(set(runs)) == 16 and {s for _, s in runs} == {0, 1}
    assert set(activity.VARIANTS) == {f"{model} {dataset}" for model in ("IASS", "U-Net", "BLSTM", "BLSTM + head")
                                      for dataset in ("musdb", "medley")}


def test_the_two_by_two_design_builds_a_head_where_it_is_trained(cfg):
    """IASS and U-Net are the same network (U-Net trains it without the head's loss); the BLSTM with a
    head gives activity logits, the plain one none; only the two with a trained head detect."""
    from sepbook.models.iass import ActivityBLSTM

    mixture = torch.rand(2, 1, training.n_bins(cfg), 16)
    logits = {}
    for model in activity.MODELS:
        network = training.build(cfg, f"{model} medley")
        masks, logits[model] = training.masks_and_logits(network, mixture)
        assert masks.shape == (2, len(MEDLEY), training.n_bins(cfg), 16)
    assert type(training.build(cfg, "U-Net medley")) is type(training.build(cfg, "IASS medley")) is IASS
    assert isinstance(training.build(cfg, "BLSTM + head medley"), ActivityBLSTM)
    assert logits["BLSTM"] is None and logits["BLSTM + head"].shape == (2, len(MEDLEY), 16)
    assert set(activity.DETECTORS) == {"IASS", "BLSTM + head"}


@pytest.mark.parametrize("variant", ["IASS musdb", "BLSTM musdb", "IASS medley", "BLSTM medley"])
def test_build_sizes_each_variant_for_its_set(cfg, variant):
    torch.manual_seed(0)
    model = activity.build(cfg, variant)
    k = len(MUSDB if variant.endswith("musdb") else MEDLEY)
    assert isinstance(model, IASS if variant.startswith("IASS") else BLSTMMasker)
    assert model.settings == {key: cfg[key] for key in ("n_fft", "hop", "sr", "threshold", "median_frames")}
    mixture = torch.rand(2, 1, cfg["n_fft"] // 2, 21)
    masks, logits = training.masks_and_logits(model.eval(), mixture)
    assert masks.shape == (2, k, cfg["n_fft"] // 2, 21)
    assert (masks >= 0).all() and (masks <= 1).all()
    if variant.startswith("IASS"):
        assert logits.shape == (2, k, 21)
    else:
        assert logits is None


def test_a_bad_variant_lists_the_variants(cfg, splits):
    with pytest.raises(ValueError, match="IASS medley") as error:
        activity.build(cfg, "IASS slakh")
    assert all(v in str(error.value) for v in activity.VARIANTS)
    with pytest.raises(ValueError, match="BLSTM musdb"):
        activity.train(cfg, splits, "Open-Unmix musdb", 0, **QUIET)


# ----------------------------------------------------------------------------- data


def test_both_sets_load_with_activity_on_the_stft_frames(cfg, splits):
    for dataset, names in (("musdb", MUSDB), ("medley", MEDLEY)):
        assert len(splits.train[dataset]) == 5 and len(splits.valid[dataset]) == 1
        for track in splits.train[dataset] + splits.valid[dataset]:
            assert track.domain == dataset and track.source_names == names
            assert track.sources.shape == (len(names), 1, track.mixture.shape[-1])
            assert torch.allclose(track.mixture, track.sources.sum(0), atol=1e-5)
            frames = n_frames(cfg, track.mixture.shape[-1])
            assert frames == magnitudes(cfg, track.mixture[0]).shape[-1]
            assert track.activity.shape == (len(names), frames) and track.activity.dtype == torch.bool
            assert track.activity.any()
    # test songs are other songs (the Slakh layout numbers each split's tracks from 1, so compare audio)
    for test in splits.test:
        for track in splits.train[test.domain] + splits.valid[test.domain]:
            assert not torch.equal(track.mixture[:, :4096], test.mixture[:, :4096]), (track.name, test.name)


def test_medley_labels_follow_the_stems(cfg, splits):
    """Score labels: a stem is louder in its active frames than in its silent ones."""
    checked = 0
    for track in splits.train["medley"]:
        energy = magnitudes(cfg, track.sources[:, 0]).pow(2).sum(-2)           # (K, frames)
        for k in range(len(track.source_names)):
            active = track.activity[k]
            if active.any() and (~active).any():
                assert energy[k][active].mean() > 1.5 * energy[k][~active].mean(), track.source_names[k]
                checked += 1
    assert checked >= 10


def test_test_tracks_alternate_between_the_sets(cfg, splits):
    assert [t.domain for t in splits.test] == ["musdb", "medley", "musdb", "medley"]
    again = activity.test_tracks(cfg)
    assert [t.name for t in again] == [t.name for t in splits.test]
    for track in splits.test:
        assert track.activity.shape == (len(track.source_names), n_frames(cfg, track.mixture.shape[-1]))


def test_load_tracks_rejects_unknown_sets_and_subsets(cfg):
    with pytest.raises(ValueError, match="dataset"):
        load_tracks(cfg, "slakh", "train")
    with pytest.raises(ValueError, match="subset"):
        load_tracks(cfg, "medley", "valid")


def test_batches_have_the_shapes_and_are_a_pure_function_of_seed_and_step(cfg, sets):
    first = next(batches(cfg, sets, 0, start=5))
    again = next(batches(cfg, sets, 0, start=5))
    walked = dict(zip(range(6), (b for _, b in batches(cfg, sets, 0))))[5]
    other = next(batches(cfg, sets, 1, start=5))[1]
    assert first[0] == 5
    first = first[1]
    assert set(first) == {"mixture", "sources", "activity"}
    assert all(torch.equal(first[k], again[1][k]) and torch.equal(first[k], walked[k]) for k in first)
    assert not torch.equal(first["mixture"], other["mixture"])
    b, f, t = cfg["batch_size"], cfg["n_fft"] // 2, cfg["frames"]
    assert first["mixture"].shape == (b, 1, f, t)
    assert first["sources"].shape == (b, len(MEDLEY), f, t)
    assert first["activity"].shape == (b, len(MEDLEY), t)
    assert set(first["activity"].unique().tolist()) <= {0.0, 1.0}
    assert (first["mixture"] >= 0).all() and (first["sources"] >= 0).all()        # linear magnitudes
    assert sets.positive_weight.shape == (len(MEDLEY),) and (sets.positive_weight > 0).all()
    assert len(sets.valid) == 4 and sets.valid[0]["mixture"].shape == (b, 1, f, t)


# ----------------------------------------------------------------------------- learning bar


def activity_accuracy(model, sets):
    model.eval()
    with torch.no_grad():
        right = [((model(log_magnitude(b["mixture"]))[1] > 0).float() == b["activity"]).float().mean()
                 for b in sets.valid]
    return float(torch.stack(right).mean())


@pytest.fixture(scope="module")
def learning(cfg, sets):
    training.seed_everything(0)
    untrained = training.build(cfg, "IASS medley").eval()          # train_on starts from this same init
    start = time.perf_counter()
    model, history = training.train_on(cfg, sets, "IASS medley", 0, **QUIET)
    seconds = time.perf_counter() - start
    return untrained, model, history, seconds


@pytest.mark.slow
def test_iass_learns_to_separate_and_to_detect(cfg, sets, learning):
    untrained, model, history, seconds = learning
    print(f"IASS medley: {cfg['steps']} steps in {seconds:.1f} s")
    assert len(history["loss"]) == cfg["steps"]
    before = training.validation_loss(untrained, sets)["valid separation"]
    after = training.validation_loss(model, sets)["valid separation"]
    assert after == pytest.approx(min(v["valid separation"] for v in history["valid"]))   # best weights kept
    assert after < 0.8 * before, (before, after)
    # the activity BCE fell in training, and the head detects held-out frames better than chance did
    assert np.mean(history["activity"][-10:]) < 0.5 * np.mean(history["activity"][:10]), history["activity"]
    assert activity_accuracy(model, sets) > activity_accuracy(untrained, sets) + 0.1
    assert all(math.isfinite(v) for v in history["loss"])


@pytest.mark.slow
def test_blstm_learns_on_the_same_batches(cfg, sets):
    training.seed_everything(0)
    untrained = training.build(cfg, "BLSTM medley")
    model, history = training.train_on(cfg, sets, "BLSTM medley", 0, **QUIET)
    assert set(history) >= {"loss", "valid"} and "activity" not in history
    before = training.validation_loss(untrained, sets)["valid separation"]
    after = training.validation_loss(model, sets)["valid separation"]
    assert after < 0.8 * before, (before, after)


# ----------------------------------------------------------------------------- evaluation


@pytest.mark.slow
def test_models_scored_together_score_as_they_do_alone(cfg, splits, learning):
    """make verify scores a seed's models song by song, together; make results one model at a time."""
    model, untrained = learning[1], training.build(cfg, "IASS musdb").eval()
    songs = [next(t for t in splits.test if t.domain == d) for d in ("medley", "musdb")]
    models = {("IASS medley", 0): model, ("IASS musdb", 0): untrained}
    together = activity.evaluate(cfg, models, songs)
    alone = [r for key, m in models.items() for r in activity.evaluate(cfg, {key: m}, songs)]
    key = lambda r: (r["variant"], r["seed"], r["song"], r["source"], r["metric"])
    assert sorted(map(key, together)) == sorted(map(key, alone))
    values = {key(r): r["value"] for r in alone}
    assert all(r["value"] == pytest.approx(values[key(r)], abs=1e-9, nan_ok=True) for r in together)


@pytest.mark.slow
def test_evaluate_scores_every_weighting_of_a_detector(cfg, splits, learning):
    model = learning[1]
    medley_song = next(t for t in splits.test if t.domain == "medley")
    musdb_song = next(t for t in splits.test if t.domain == "musdb")
    rows = activity.evaluate(cfg, {("IASS medley", 0): model}, [musdb_song, medley_song])
    assert rows and all(tuple(r) == report.COLUMNS for r in rows)
    assert {r["song"] for r in rows} == {medley_song.name, "medley validation songs"}, "a model is scored on its own set only"
    assert {r["variant"] for r in rows} == {"IASS", activity.UNWEIGHTED, "IASS oracle"}
    scored = {(r["variant"], r["metric"]) for r in rows if not r["metric"].startswith("weighting")}
    assert scored == {(v, m) for v in ("IASS", activity.UNWEIGHTED, "IASS oracle")
                      for m in ("SDR", "framewise SDR", "SIR", "leakage")} | {
        ("IASS", "activity accuracy"), ("IASS", "activity F1")}
    assert all(math.isfinite(r["value"]) for r in rows if r["metric"] in ("SDR", "activity accuracy"))
    for metric in ("SDR", "activity accuracy", "activity F1"):
        assert {r["source"] for r in rows if r["metric"] == metric and r["variant"] == "IASS"} == set(MEDLEY)
    assert all(0 <= r["value"] <= 1 for r in rows if r["metric"].startswith("activity"))
    assert all(r["seed"] == 0 and r["domain"] == "medley" for r in rows)
    chosen = {r["metric"]: r["value"] for r in rows if r["metric"].startswith("weighting")}
    assert set(chosen) == {"weighting threshold", "weighting median frames", "weighting soft"}
    assert chosen["weighting median frames"] in cfg["medians"]


@pytest.mark.slow
def test_the_weighting_is_chosen_on_validation_songs_never_on_test_songs(cfg, splits, learning):
    """Poisoning the test songs (their mixtures replaced by noise) leaves the chosen setting alone; the
    validation songs alone decide it, as the best of the grid on them."""
    from sepbook.recipes.activity import evaluation
    from sepbook.tracks import Track

    model = learning[1]
    song = next(t for t in splits.test if t.domain == "medley")
    poisoned = Track(song.name, torch.randn_like(song.mixture), song.sources, song.source_names, song.domain,
                     activity=~song.activity)

    def chosen(track):
        rows = activity.evaluate(cfg, {("IASS medley", 0): model}, [track])
        return {r["metric"]: r["value"] for r in rows if r["metric"].startswith("weighting")}

    assert chosen(poisoned) == pytest.approx(chosen(song), nan_ok=True)
    valid = evaluation.validation_tracks(cfg, "medley")
    assert [t.name for t in valid] == [t.name for t in splits.valid["medley"]]
    best = evaluation.choose_weighting(cfg, model, valid)
    separations = [evaluation.Separation(model, t.mixture[0]) for t in valid]

    def score(setting):
        values = [evaluation.metrics.sdr(s.estimates(evaluation.weights_for(s.probabilities, setting)),
                                         t.sources[:, 0]) for s, t in zip(separations, valid)]
        return float(np.nanmean(torch.stack(values).numpy()))

    assert all(score(best) >= score(other) for other in evaluation.settings_grid(cfg))


@pytest.mark.slow
def test_reference_rows_ibm_beats_the_mixture(cfg, splits):
    song = next(t for t in splits.test if t.domain == "musdb")
    rows = activity.reference_rows(cfg, [song])
    assert {r["variant"] for r in rows} == {"IBM", "mixture", "labels"}
    assert all(r["seed"] is None for r in rows)
    assert all(math.isfinite(r["value"]) for r in rows if r["metric"] in ("SDR", "silent fraction"))
    sdr = {v: np.mean([r["value"] for r in rows if r["variant"] == v and r["metric"] == "SDR"])
           for v in ("IBM", "mixture")}
    assert sdr["IBM"] > sdr["mixture"] + 5, sdr
    leak = {v: np.nanmean([r["value"] for r in rows if r["variant"] == v and r["metric"] == "leakage"])
            for v in ("IBM", "mixture")}
    assert leak["IBM"] < leak["mixture"] - 10, leak
    silent = {r["source"]: r["value"] for r in rows if r["variant"] == "labels"}
    assert set(silent) == set(MUSDB) and all(0 <= v <= 1 for v in silent.values())
    expected = 1 - song.activity.float().mean(-1)
    assert np.allclose([silent[n] for n in MUSDB], expected.numpy())


# ----------------------------------------------------------------------------- separate


def test_separate_shapes_and_the_weighting(cfg, splits):
    torch.manual_seed(0)
    model = activity.build(cfg, "IASS medley")
    mixture = next(t for t in splits.test if t.domain == "medley").mixture[:, : 2 * cfg["sr"]]
    weighted = activity.separate(model, mixture)
    unweighted = activity.separate_weighted(model, mixture, weighted=False)
    assert weighted.shape == unweighted.shape == (len(MEDLEY), 1, mixture.shape[-1])
    assert torch.isfinite(weighted).all() and unweighted.abs().max() > 0
    # every frame below a threshold of 1: everything silent, so every estimate is zero
    silent = activity.separate_weighted(model, mixture, threshold=1.0)
    assert torch.equal(silent, torch.zeros_like(silent))
    assert not torch.allclose(silent, unweighted)
    # a threshold of 0 keeps every frame: the same as no weighting
    assert torch.allclose(activity.separate_weighted(model, mixture, threshold=0.0), unweighted, atol=1e-6)
    # two channels are separated one by one
    stereo = activity.separate_weighted(model, torch.cat([mixture, 0.5 * mixture]), weighted=False)
    assert stereo.shape == (len(MEDLEY), 2, mixture.shape[-1])
    assert torch.allclose(stereo[:, :1], unweighted, atol=1e-6)
    with pytest.raises(ValueError, match="mixture"):
        activity.separate(model, mixture[0])


def test_separate_with_the_blstm_ignores_the_weighting(cfg, splits):
    torch.manual_seed(0)
    model = activity.build(cfg, "BLSTM musdb")
    mixture = next(t for t in splits.test if t.domain == "musdb").mixture[:, : cfg["sr"]]
    estimates = activity.separate_weighted(model, mixture, threshold=1.0)
    assert estimates.shape == (len(MUSDB), 1, mixture.shape[-1])
    assert torch.equal(estimates, activity.separate_weighted(model, mixture, weighted=False))
    assert estimates.abs().max() > 0


# ----------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize("overrides, name", [
    (dict(threshold=1.5), "threshold"),
    (dict(median_frames=4), "median_frames"),
    (dict(median_frames=-3), "median_frames"),
    (dict(n_fft=400), "n_fft"),
    (dict(unet_deepth=3), "unet_deepth"),
])
def test_bad_settings_are_named(overrides, name):
    with pytest.raises(ValueError, match=name):
        activity.config("tiny", **overrides)


def test_the_paper_profile_names_the_missing_data(monkeypatch, tmp_path):
    cfg = activity.config("paper")
    monkeypatch.delenv("MUSDB_PATH", raising=False)
    monkeypatch.delenv("SEPBOOK_MEDLEY_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match="MUSDB_PATH"):
        activity.data(cfg)
    with pytest.raises(FileNotFoundError, match="SEPBOOK_MEDLEY_PATH"):
        load_tracks(cfg, "medley", "train")
    monkeypatch.setenv("SEPBOOK_MEDLEY_PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train"):
        load_tracks(cfg, "medley", "train")
