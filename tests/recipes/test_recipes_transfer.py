"""The transfer recipe end to end at tiny size: the sets and their sources, the runs and what they
start from, a learning bar, mask-only fine-tuning, evaluation, the Wilcoxon test, the tables and
claims, the exercises' checkers, the real-data reader and bad settings."""
import importlib
import math

import numpy as np
import pytest
import scipy.stats
import soundfile
import torch

from sepbook.classroom.exercises import check_deep_clustering_loss, check_mask_only
from sepbook.data import synth
from sepbook.experiments import report
from sepbook.losses.clustering import deep_clustering_loss, naive_deep_clustering_loss
from sepbook.models.chimera import freeze_all_but_mask
from sepbook.recipes import transfer
from sepbook.recipes.transfer import evaluation, page

from helpers import QUIET

# Four Dagstuhl training songs, not two: on two, whole fine-tuning overfits within 80 steps (its
# held-out curve peaks at step 20 and ends at the mixture), a real effect but not what this bar tests.
SMALL = dict(songs={"musdb": (3, 0, 0), "slakh": (3, 0, 0), "bach10": (2, 2, 1), "dagstuhl": (4, 3, 1),
                    "remixpacks": (3, 3, 1)},
             song_seconds=4.0, pretrain_steps=200, finetune_steps=80, seeds=(0,))
transfer_data = importlib.import_module("sepbook.recipes.transfer.data")


@pytest.fixture(scope="module")
def cfg():
    return transfer.config("tiny", **SMALL)


@pytest.fixture(scope="module")
def splits(cfg):
    return transfer.data(cfg)


@pytest.fixture(scope="module")
def trained(cfg, splits):
    pre, _ = transfer.train(cfg, splits, transfer.pretrained("musdb+slakh"), 0, **QUIET)
    models = {"pre": pre}
    for mode in transfer.MODES:
        variant = transfer.finetuned("dagstuhl", "musdb+slakh", mode=mode)
        models[mode], models[f"{mode} history"] = transfer.train(
            cfg, splits, variant, 0, prerequisites={transfer.pretrained("musdb+slakh"): pre}, **QUIET)
    return models


# ----------------------------------------------------------------------------- data


def test_every_set_holds_its_sources(cfg, splits):
    for corpus, songs in splits.train.items():
        assert all(set(song) == set(transfer.SOURCES[corpus]) for song in songs), corpus
    assert len(splits.train["musdb+slakh"]) == len(splits.train["musdb"]) + len(splits.train["slakh"])


def test_choir_voices_are_grouped_into_male_and_female(cfg):
    (song,) = transfer_data._songs({**cfg, "songs": {"dagstuhl": (1, 0, 0)}}, "dagstuhl", "train")
    (track,) = transfer_data._grouped([song], "dagstuhl")
    np.testing.assert_allclose(track["male"][0], song.stems["tenor"] + song.stems["bass_voice"])
    np.testing.assert_allclose(track["female"][0], song.stems["soprano"] + song.stems["alto"])


def test_remixpacks_pieces_are_the_drum_part_split_by_kit_piece():
    song = synth.synthesize_song(5, seconds=4.0, sr=8000, style="rock", instruments=("bass", "drums"))
    pieces = synth.drum_pieces(song)
    assert set(pieces) == {"kick", "snare", "cymbals"}
    assert all(p.shape == song.mixture.shape for p in pieces.values())
    spectra = {k: np.abs(np.fft.rfft(v)) for k, v in pieces.items()}
    low = {k: s[: len(s) // 40].sum() / s.sum() for k, s in spectra.items()}   # below 100 Hz
    assert low["kick"] > low["snare"] > low["cymbals"]
    with pytest.raises(ValueError, match="no drum part"):
        synth.drum_pieces(synth.synthesize_song(5, seconds=2.0, sr=8000, style="choir"))


def test_remixpacks_pieces_of_a_sampled_song_play_through_its_soundfont_kit():
    from sepbook.data.soundfonts import TRAINING_FONTS

    song = synth.synthesize_song(5, seconds=4.0, sr=8000, style="rock", instruments=("bass", "drums"),
                                 fonts=TRAINING_FONTS[:1])
    pieces = synth.drum_pieces(song)
    additive = synth.drum_pieces(synth.synthesize_song(5, seconds=4.0, sr=8000, style="rock",
                                                       instruments=("bass", "drums")))
    assert set(pieces) == {"kick", "snare", "cymbals"}
    for piece, audio in pieces.items():
        assert audio.shape == song.mixture.shape
        assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) == pytest.approx(0.05, rel=1e-3)
        assert not np.allclose(audio, additive[piece])              # sampled, not the additive kit
    spectra = {k: np.abs(np.fft.rfft(v)) for k, v in pieces.items()}
    low = {k: s[: len(s) // 40].sum() / s.sum() for k, s in spectra.items()}   # below 100 Hz
    assert low["kick"] > low["cymbals"]


def test_test_examples_are_whole_songs_interleaved_and_mixed_as_the_paper_says(cfg, splits):
    domains = [e.domain for e in splits.test]
    assert domains[:3] == list(cfg["downstream"])
    for corpus in cfg["downstream"]:
        assert domains.count(corpus) == cfg["songs"][corpus][1]          # one example per test song
        assert [e.domain for e in splits.valid].count(corpus) == cfg["songs"][corpus][2]
    names = [e.name for e in splits.test + splits.valid]
    assert len(set(names)) == len(names)
    for example in splits.test + splits.valid:
        torch.testing.assert_close(example.mixture, example.sources.sum(0))
        assert example.mixture.shape[-1] == round(cfg["song_seconds"] * cfg["sr"])
    # Remixpacks mixes its k-th piece from the k-th next song; the others keep each song whole
    songs = transfer_data.tracks(cfg, "remixpacks", "test")
    remix = [e for e in splits.test if e.domain == "remixpacks"]
    for i, example in enumerate(remix):
        for k, piece in enumerate(transfer.SOURCES["remixpacks"]):
            np.testing.assert_array_equal(example.sources[k].numpy(), songs[(i + k) % len(songs)][piece])
    # the validation chorales are never training or test chorales
    heard = {name: [s.meta["chorale"] for s in transfer_data._songs(cfg, "dagstuhl", name)]
             for name in ("train", "test", "valid")}
    assert not set(heard["valid"]) & (set(heard["train"]) | set(heard["test"]))
    assert transfer_data.INCOHERENT_TEST == ("remixpacks",)
    assert set(transfer_data.INCOHERENT_TRAINING) == {"bach10", "remixpacks"}
    assert not transfer.training_set(cfg, splits.train["bach10"], "bach10", 0).coherent
    assert transfer.training_set(cfg, splits.train["dagstuhl"], "dagstuhl", 0).coherent
    assert not transfer.training_set(cfg, splits.train["slakh"], "slakh", 0, "incoherent").coherent
    pitched = transfer.training_set(cfg, splits.train["slakh"], "slakh", 0, "pitch")
    assert pitched.pitch_shift == (-3, 3) and pitched.time_stretch is None
    assert transfer.training_set(cfg, splits.train["slakh"], "slakh", 0, "stretch").time_stretch == (0.8, 1.2)


def test_a_set_with_fewer_sources_than_the_mask_head_is_refused(cfg, splits):
    songs = [{k: v for k, v in song.items() if k != "female"} for song in splits.train["dagstuhl"]]
    with pytest.raises(ValueError, match="dagstuhl.*fewer than the 2 the mask head expects"):
        transfer.training_set(cfg, songs, "dagstuhl", 0)
    with pytest.raises(ValueError, match="augmentation"):
        transfer.training_set(cfg, splits.train["dagstuhl"], "dagstuhl", 0, "reverse")


# ----------------------------------------------------------------------------- runs and training


def test_runs_pretrain_before_fine_tuning_and_name_what_they_start_from(cfg):
    names = [v for v, _ in transfer.runs(cfg)]
    for variant in names:
        run = transfer.plan(variant)
        if run.kind == "finetune":
            start = transfer.REQUIRES[variant][0]
            assert start == transfer.pretrained(run.pretraining, run.augmentation)
            assert names.index(start) < names.index(variant)
    assert set(transfer.VARIANTS) <= set(names)
    extra = 3 + 2 * len(cfg["shares"])          # scratch short and long, fine-tune long, the size sweep
    expected = (len(cfg["pretraining"]) * len(cfg["augmentations"]) * (1 + 2 * len(cfg["downstream"]))
                + len(cfg["downstream"]) * (1 + extra)) * len(cfg["seeds"])
    assert len(transfer.runs(cfg)) == expected
    with pytest.raises(ValueError, match="variant"):
        transfer.plan("bach10-imagenet-none-whole")


def test_scratch_trains_as_many_steps_as_pretraining_and_fine_tuning(cfg, splits):
    short = {**cfg, "pretrain_steps": 3, "finetune_steps": 2, "long_steps": 4, "valid_every": 1}
    _, history = transfer.train(short, splits, transfer.scratch("remixpacks"), 0, **QUIET)
    assert history["step"][-1] == 5 and {"DC", "MI"} <= set(history)
    _, history = transfer.train(short, splits, transfer.scratch("remixpacks", "short"), 0, **QUIET)
    assert history["step"][-1] == 2 and "valid SI-SDR" in history["valid"][0]
    _, history = transfer.train(short, splits, transfer.scratch("remixpacks", "long"), 0, **QUIET)
    assert history["step"][-1] == 4
    _, history = transfer.train(short, splits, transfer.pretrained("slakh"), 0, **QUIET)
    assert history["step"][-1] == 3 and history["valid"] == []


def test_only_pretraining_sees_augmented_data(splits):
    """The paper augments pre-training alone: every fine-tuning and scratch run trains on the small
    set as it is (coherent unless the set is mixed incoherently anyway), whatever its pre-training saw."""
    book = transfer.config("tiny", augmentations=transfer.AUGMENTATIONS, shares=transfer.SHARES)
    seen = set()
    for variant in transfer.training._RUNS:
        run = transfer.plan(variant)
        data = transfer.training.training_data(book, splits, run, 0)
        if run.kind == "pretrain":
            seen.add((data.pitch_shift is not None, data.time_stretch is not None, data.coherent))
            continue
        assert data.pitch_shift is None and data.time_stretch is None, variant
        assert data.coherent == (run.downstream not in transfer_data.INCOHERENT_TRAINING), variant
    assert seen == {(False, False, True), (True, False, True), (False, True, True), (False, False, False)}


def test_the_size_sweep_keeps_the_start_of_every_song(cfg, splits):
    songs = splits.train["dagstuhl"]
    half = transfer.training_set(cfg, songs, "dagstuhl", 0, share=0.5)
    assert [t.shape[-1] for t in half.sources] == [s["male"].shape[-1] // 2 for s in songs]
    female = songs[0]["female"]
    np.testing.assert_array_equal(np.asarray(half.sources[0][1]), female[..., :female.shape[-1] // 2])
    with pytest.raises(ValueError, match="share"):
        transfer.training_set(cfg, songs, "dagstuhl", 0, share=0.0)
    assert transfer.plan(transfer.scratch("dagstuhl", share=0.25)).share == 0.25


def test_fine_tuning_needs_its_pretrained_network(cfg, splits):
    with pytest.raises(ValueError, match="prerequisites.*pre-slakh-none"):
        transfer.train(cfg, splits, transfer.finetuned("bach10", "slakh"), 0, **QUIET)


@pytest.mark.slow
def test_mask_only_fine_tuning_changes_only_the_mask_head(trained):
    before, after = trained["pre"].state_dict(), trained["mask"].state_dict()
    changed = {k for k in after if k in before and before[k].shape == after[k].shape
               and not torch.equal(before[k], after[k])}
    assert changed == set()                                   # the trunk and embedding head are frozen
    assert after["masker.mask.weight"].shape[0] == 2 * (transfer.build({**transfer.config("tiny")},
                                                                      "dagstuhl-scratch").masker.n_freq)
    whole = trained["whole"].state_dict()
    assert not torch.equal(whole["masker.trunk.lstm.weight_hh_l0"], before["masker.trunk.lstm.weight_hh_l0"])


@pytest.mark.slow
def test_fine_tuned_models_learn_to_separate(cfg, splits, trained):
    """The learning bar: after tiny pre-training and fine-tuning, better than the mixture itself."""
    models = {(transfer.finetuned("dagstuhl", "musdb+slakh", mode=m), 0): trained[m] for m in transfer.MODES}
    rows = report.frame(transfer.evaluate(cfg, models, splits.test) + transfer.reference_rows(cfg, splits.test))
    scores = rows[rows["domain"] == "dagstuhl"].groupby("variant")["value"].mean()
    for variant, _ in models:
        assert scores[variant] > scores[evaluation.MIXTURE] + 0.5, scores
    curve = trained["whole history"]["valid"]
    assert len(curve) == cfg["finetune_steps"] // cfg["valid_every"] and "valid SI-SDR" in curve[0]


@pytest.mark.slow
def test_evaluation_rows_and_separation(cfg, splits, trained):
    pre_rows = transfer.evaluate(cfg, {(transfer.pretrained("musdb+slakh"), 0): trained["pre"]}, splits.test)
    # its mask head never learned: only its deep-clustering head is scored, on every small set
    assert {r["metric"] for r in pre_rows} == {evaluation.DC_METRIC}
    assert {r["domain"] for r in pre_rows} == set(cfg["downstream"])
    variant = transfer.finetuned("dagstuhl", "musdb+slakh")
    rows = transfer.evaluate(cfg, {(variant, 0): trained["whole"]}, splits.test)
    assert {r["domain"] for r in rows} == {"dagstuhl"}
    assert {r["metric"] for r in rows} == {"SI-SDR", evaluation.DC_METRIC}
    mask_rows = transfer.evaluate(cfg, {(transfer.finetuned("dagstuhl", "musdb+slakh", mode="mask"), 0):
                                        trained["mask"]}, splits.test)
    assert {r["metric"] for r in mask_rows} == {"SI-SDR"}
    assert {r["source"] for r in rows} <= {"male", "female"} and all(math.isfinite(r["value"]) for r in rows)
    assert set(rows[0]) == set(report.COLUMNS)
    example = next(e for e in splits.test if e.domain == "dagstuhl")
    estimate = transfer.separate(trained["whole"], example.mixture)
    assert estimate.shape == example.sources.shape


# ----------------------------------------------------------------------------- statistics, tables, claims


def test_signed_rank_matches_scipy_and_a_known_case():
    g = np.random.default_rng(0)
    a, b = g.normal(size=30), g.normal(size=30) - 0.5
    assert report.signed_rank(a, b) == pytest.approx(scipy.stats.wilcoxon(a, b, alternative="greater").pvalue)
    better = np.arange(10) + 1.0
    assert report.signed_rank(better, better - np.arange(1, 11) * 0.1) == pytest.approx(1 / 2 ** 10)
    assert report.signed_rank(better - 5, better) == pytest.approx(1.0)              # worse: no evidence
    with_nan = np.append(better, np.nan)
    assert report.signed_rank(with_nan, np.append(better - 1, 0.0)) == pytest.approx(1 / 2 ** 10)
    with pytest.raises(ValueError, match="better, worse"):
        report.signed_rank(better, better[:5])


def _rows(gain_of):
    """Rows for every variant of a small grid: example i of variant v scores gain_of(v) + noise."""
    cfg = transfer.config("tiny", pretraining=("slakh", "musdb"), augmentations=("none", "pitch"),
                          downstream=("dagstuhl",), sweep_from="slakh")
    g = np.random.default_rng(1)
    rows = []
    for variant, seed in transfer.runs(cfg):
        if transfer.plan(variant).kind == "pretrain":
            continue
        for i in range(20):
            rows.append({"variant": variant, "seed": seed, "song": f"dagstuhl {i:03d}", "domain": "dagstuhl",
                         "source": "male", "metric": "SI-SDR", "value": gain_of(variant) + 0.01 * g.normal()})
    return cfg, rows


def test_tables_and_claims_read_the_rows():
    cfg, rows = _rows(lambda v: 0.0 if v.endswith("scratch") else 2.0 - v.endswith("mask") + v.count("pitch"))
    table = page.pretraining_table(rows, cfg)
    assert float(table.loc["dagstuhl", "scratch"].split()[0]) == pytest.approx(0, abs=0.01)
    assert table.loc["dagstuhl", "slakh"].endswith("*") and not table.loc["dagstuhl", "scratch"].endswith("*")
    table2 = page.mask_minus_whole_table(rows, cfg, "tiny")
    assert float(table2.loc[("none", "slakh"), ("dagstuhl", "ours (tiny)")].split()[0]) == pytest.approx(-1, abs=0.01)
    assert table2.loc[("none", "slakh"), ("dagstuhl", "paper")] == "-1.76"
    said = page.in_words(rows, cfg, "tiny")
    assert said["H1"].startswith("In the tiny profile, 2 of 2 pre-trained")
    assert "median of +1.00 dB" in said["H2"] and "2 of them are significant" in said["H2"]
    assert "below the whole-model in 4 of 4" in said["R2"]


def test_curve_means_over_seeds():
    histories = {("v", s): {"valid_step": [10, 20], "valid": [{"valid SI-SDR": s}, {"valid SI-SDR": 2 * s}]}
                 for s in (1, 3)}
    steps, mean, std = page.curve(histories, "v")
    assert steps.tolist() == [10, 20] and mean.tolist() == [2, 4]
    assert std[0] == pytest.approx(np.std([1, 3], ddof=1))


# ----------------------------------------------------------------------------- exercises


def test_the_deep_clustering_checker_accepts_both_forms_and_rejects_mistakes():
    assert "correct" in check_deep_clustering_loss(deep_clustering_loss)
    assert "correct" in check_deep_clustering_loss(naive_deep_clustering_loss)
    with pytest.raises(AssertionError, match="weights"):
        check_deep_clustering_loss(lambda v, y, w: deep_clustering_loss(v, y, torch.ones_like(w)))
    with pytest.raises(AssertionError, match="total weight"):
        check_deep_clustering_loss(lambda v, y, w: deep_clustering_loss(v, y, w) * w.flatten(1).sum(1).square().mean())
    with pytest.raises(AssertionError, match="expand the square"):
        check_deep_clustering_loss(lambda v, y, w: -deep_clustering_loss(v, y, w))
    with pytest.raises(AssertionError, match="gradient"):
        check_deep_clustering_loss(lambda v, y, w: deep_clustering_loss(v.detach(), y, w))


def test_the_mask_only_checker():
    assert "correct" in check_mask_only(freeze_all_but_mask)

    def frozen_everything(net):
        for p in net.parameters():
            p.requires_grad_(False)
        return 0

    def forgot_the_embedding(net):
        for p in net.trunk.parameters():
            p.requires_grad_(False)
        return sum(p.numel() for p in net.mask.parameters())

    def wrong_count(net):
        freeze_all_but_mask(net)
        return net.mask.weight.numel()

    for answer, message in ((frozen_everything, "nothing learns"), (forgot_the_embedding, "embedding"),
                            (wrong_count, "holds")):
        with pytest.raises(AssertionError, match=message):
            check_mask_only(answer)


# ----------------------------------------------------------------------------- real data and settings


def test_paper_profile_names_its_variable(monkeypatch):
    monkeypatch.delenv("TRANSFER_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="TRANSFER_DATA"):
        transfer_data.tracks(transfer.config("paper"), "bach10", "train")


def test_stem_folders_are_read_and_gaps_named(tmp_path):
    song = tmp_path / "dagstuhl" / "train" / "song1"
    song.mkdir(parents=True)
    soundfile.write(song / "male.wav", np.full(1600, 0.1, np.float32), 16000)
    with pytest.raises(FileNotFoundError, match="female.wav"):
        transfer_data.stem_folder_tracks(tmp_path, "dagstuhl", "train", 8000)
    soundfile.write(song / "female.wav", np.full(1600, 0.2, np.float32), 16000)
    (track,) = transfer_data.stem_folder_tracks(tmp_path, "dagstuhl", "train", 8000)
    assert track["male"].shape == (1, 800)
    with pytest.raises(FileNotFoundError, match="one folder per song"):
        transfer_data.stem_folder_tracks(tmp_path, "bach10", "train", 8000)


@pytest.mark.parametrize("overrides, name", [
    (dict(pretraining=("imagenet",)), "pretraining"), (dict(augmentations=("pitch",)), "augmentations"),
    (dict(downstream=()), "downstream"), (dict(alpha=1.5), "alpha"), (dict(sweep_from="bach10"), "sweep_from"),
    (dict(shares=(0.3,)), "shares")])
def test_bad_settings_are_named(overrides, name):
    with pytest.raises(ValueError, match=name):
        transfer.config("tiny", **overrides)


@pytest.mark.slow
def test_embedding_projection_and_masks_are_drawn_from_the_models(cfg, splits, trained):
    from sepbook.recipes.transfer import figures

    example = next(e for e in splits.test if e.domain == "dagstuhl")
    points, owner = figures.embedding_points(trained["whole"], example, keep=0.25)
    assert points.shape == (len(owner), 2) and set(owner.tolist()) <= {0, 1}
    n_bins = trained["whole"].stft(example.mixture).shape[-2:].numel()
    assert abs(len(owner) - 0.25 * n_bins) <= 2
    fig = figures.masks_figure({"whole": trained["whole"], "mask": trained["mask"]}, example, cfg["sr"], cfg["hop"])
    assert len([ax for ax in fig.axes if ax.images]) == 1 + 2 * 3     # the mixture, then 2 sources x 3 columns


@pytest.mark.slow
def test_embedding_contrast_is_one_for_orthogonal_sources_and_near_zero_for_noise(trained, splits):
    from types import SimpleNamespace

    from sepbook.losses.clustering import ideal_assignments
    from sepbook.recipes.transfer import figures

    example = next(e for e in splits.test if e.domain == "dagstuhl")
    stft = trained["whole"].stft

    def fake(embed):
        return SimpleNamespace(stft=stft, masker=SimpleNamespace(embed_and_mask=lambda mag: (embed(mag), None)))

    owner = ideal_assignments(stft(example.sources[None]).abs())
    perfect = fake(lambda mag: torch.cat([owner, torch.zeros(*owner.shape[:-1], 3)], -1))
    assert figures.embedding_contrast(perfect, example) == pytest.approx(1.0)
    noise = fake(lambda mag: torch.nn.functional.normalize(torch.randn(*owner.shape[:-1], 20), dim=-1))
    assert abs(figures.embedding_contrast(noise, example)) < 0.05


def test_minutes_count_each_set_and_add_up_for_the_union():
    cfg = transfer.config("tiny", songs={"musdb": (3, 0, 0), "slakh": (6, 0, 0), "dagstuhl": (2, 1, 1)},
                          song_seconds=10.0)
    assert transfer.minutes(cfg, "musdb") == pytest.approx((0.5, 0.0))
    assert transfer.minutes(cfg, "dagstuhl") == pytest.approx((2 / 6, 1 / 6))
    assert transfer.minutes(cfg, "musdb+slakh") == pytest.approx((1.5, 0.0))


def test_first_reaching_finds_the_first_step_of_the_seed_mean_curve():
    histories = {("v", s): {"valid_step": [20, 40, 60], "valid": [{"valid SI-SDR": x + s} for x in (0, 2, 1)]}
                 for s in (0, 2)}                                   # seed mean: 1, 3, 2
    assert page.first_reaching(histories, "v", 2.5) == 40
    assert page.first_reaching(histories, "v", 0.5) == 20
    assert math.isnan(page.first_reaching(histories, "v", 3.5))


def test_the_papers_charts_draw_every_set_and_mark_significance():
    import matplotlib.pyplot as plt

    from sepbook.recipes.transfer import figures

    cfg, rows = _rows(lambda v: 0.0 if v.endswith("scratch") else 2.0 + v.count("pitch"))
    ax = figures.pretraining_bars(rows, cfg)
    assert len(ax.patches) == 1 + len(cfg["pretraining"])            # one bar per system on one set
    assert sum(t.get_text() == "*" for t in ax.texts) == len(cfg["pretraining"])
    axes = figures.augmentation_bars(rows, cfg)
    assert [a.get_title() for a in axes] == list(cfg["downstream"])
    assert sum(t.get_text() == "*" for t in axes[0].texts) == len(cfg["pretraining"])   # pitch: +1 dB
    histories = {(v, s): {"valid_step": [1, 2], "valid": [{"valid SI-SDR": 0.0}, {"valid SI-SDR": 1.0}]}
                 for v, s in transfer.runs(cfg)}
    assert len(figures.curves(histories, cfg, "dagstuhl").lines) == 1 + len(cfg["pretraining"]) + 1  # + marker
    figures.draw_scheme()
    plt.close("all")


def test_clustering_perfect_embeddings_gives_the_ideal_binary_masks():
    from sepbook.models.chimera import cluster_masks

    g = torch.Generator().manual_seed(0)
    owner = torch.randint(3, (40, 30), generator=g)                        # (frames, freq)
    embeddings = torch.nn.functional.one_hot(owner, 5).float()             # (frames, freq, D)
    mag = torch.rand(30, 40, generator=g) + 0.1                           # (freq, frames)
    masks = cluster_masks(embeddings, mag, 3)
    assert masks.shape == (3, 30, 40) and torch.equal(masks.sum(0), torch.ones(30, 40))
    ideal = torch.nn.functional.one_hot(owner.T, 3).permute(2, 0, 1).float()
    assert sorted(tuple(m.flatten().tolist()) for m in masks) == sorted(tuple(m.flatten().tolist()) for m in ideal)
    with pytest.raises(ValueError, match="embeddings"):
        cluster_masks(embeddings, mag.T, 3)


@pytest.mark.slow
def test_the_deep_clustering_head_is_scored_with_its_best_matching(trained, splits):
    from types import SimpleNamespace

    from sepbook.losses.clustering import ideal_assignments

    example = next(e for e in splits.test if e.domain == "dagstuhl")
    stft = trained["whole"].stft
    owner = ideal_assignments(stft(example.sources[None]).abs())            # (1, frames, freq, K)
    # embeddings that put each bin at its dominant source, in the reverse order of the sources
    perfect = SimpleNamespace(stft=stft, masker=SimpleNamespace(embed_and_mask=lambda mag: (owner.flip(-1), None)))
    estimate = evaluation.separate_by_clustering(perfect, example)
    spec = stft(example.mixture[None])[0]
    ideal = stft.inverse(owner[0].permute(2, 1, 0)[:, None] * spec, length=example.mixture.shape[-1])
    torch.testing.assert_close(estimate, ideal)


def test_budget_sweep_and_clustering_tables_read_their_runs():
    value = {"dagstuhl-scratch-short": 1.0, "dagstuhl-slakh-none-whole": 2.0, "dagstuhl-scratch": 3.0,
             "dagstuhl-scratch-long": 4.0, "dagstuhl-slakh-none-whole-long": 5.0,
             "dagstuhl-scratch-x0.5": 6.0, "dagstuhl-slakh-none-whole-x0.5": 7.0}
    cfg, rows = _rows(lambda v: value.get(v, -9.0))
    rows += [{**r, "variant": "pre-slakh-none", "metric": evaluation.DC_METRIC, "value": 8.0}
             for r in rows if r["variant"] == "dagstuhl-scratch"]
    rows += [{**r, "metric": evaluation.DC_METRIC, "value": r["value"] + 10} for r in rows
             if r["variant"] in ("dagstuhl-slakh-none-whole", "dagstuhl-scratch") and r["metric"] == "SI-SDR"]

    def number(text):
        return float(text.split()[0])

    budgets = page.budget_table(rows, cfg).loc["dagstuhl"]
    assert [round(number(v)) for v in budgets] == [1, 2, 3, 4, 5]
    sweep = page.sweep_table(rows, cfg).loc["dagstuhl"]
    assert [round(number(v)) for v in sweep] == [1, -1]                     # 0.5 of the songs, then all
    clustering = page.clustering_table(rows, cfg).loc["dagstuhl"]
    assert [round(number(v)) for v in clustering] == [8, 12, 13, 2, 3]
    # the deep-clustering rows never leak into the mask head's tables
    assert round(number(page.pretraining_table(rows, cfg).loc["dagstuhl", "scratch"])) == 3


def test_budget_gains_subtract_scratch_at_the_same_budget():
    value = {"dagstuhl-scratch-short": 1.0, "dagstuhl-slakh-none-whole": 2.0, "dagstuhl-scratch": 3.0,
             "dagstuhl-scratch-long": 4.0, "dagstuhl-slakh-none-whole-long": 5.0}
    cfg, rows = _rows(lambda v: value.get(v, -9.0))
    gains = page.budget_gains(rows, cfg)["dagstuhl"]
    assert {k: round(g["mean"]) for k, g in gains.items()} == {"fine-tuning steps": 1, "total steps": -1,
                                                              "plateau": 1}
    assert gains["plateau"]["wins"] == gains["plateau"]["seeds"] == 2 and gains["total steps"]["wins"] == 0


# ----------------------------------------------------------------------------- the page's sentences


@pytest.fixture(scope="module")
def committed():
    from sepbook import results

    return results.load("transfer", check=False)


def test_the_h1_sentence_names_each_sets_best_pretraining(committed):
    cfg = committed.cfg
    sentence = page.best_pretraining(committed.rows, cfg)
    gains = [g for g in page.gain_rows(committed.rows, cfg, "scratch") if g["augmentation"] == "none"]
    for down in cfg["downstream"]:
        ours = [g for g in gains if g["downstream"] == down]
        best = max(ours, key=lambda g: g["gain"])
        assert all(g["gain"] <= best["gain"] for g in ours)
        assert f"on {down} the best pre-training ({best['pretraining']}) gives {best['gain']:+.2f} dB" in sentence


def test_the_scratch_sentences_read_the_validation_curves(committed):
    cfg, histories = committed.cfg, committed.histories
    peaks, same = page.scratch_peaks(histories, cfg), page.at_equal_steps(histories, cfg)
    for down in cfg["downstream"]:
        steps, mean, _ = page.curve(histories, transfer.scratch(down))
        assert f"on {down} its best is {mean.max():.2f} dB at step {steps[int(np.argmax(mean))]}" in peaks
        ends = {p: page.curve(histories, transfer.finetuned(down, p))[1][-1] for p in cfg["pretraining"]}
        assert f"fine-tuned from {max(ends, key=ends.get)}" in same.split("; ")[cfg["downstream"].index(down)]
    level, reach = page.reaching_scratch(histories, cfg, "dagstuhl")
    assert level == page.curve(histories, transfer.scratch("dagstuhl"))[1][-1]
    for p in cfg["pretraining"]:
        steps, mean, _ = page.curve(histories, transfer.finetuned("dagstuhl", p))
        said = "not within fine-tuning" if mean.max() < level else "after"
        assert f"from {p}, {said}" in reach
