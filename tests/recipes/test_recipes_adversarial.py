"""The adversarial chapter's recipe: domains, batches, training (exact resume, a learning bar), separation, tables."""
import numpy as np
import pytest
import torch
from torch import nn

from sepbook.banks import Bank
from sepbook.experiments import report
from sepbook.recipes import adversarial
from sepbook.recipes.adversarial import evaluation, page, training
from sepbook.recipes.adversarial.data import mismatched_domains, scarce_domains
from sepbook.recipes.adversarial.spectrograms import (paired_batch, random_loudness, solo_batch, spectrogram_sets,
                                                      unlabelled_batch)

from helpers import QUIET, same, snapshot

SMALL = dict(song_seconds=2.0, n_paired=2, n_paired_eval=1, songs_per_third=2, start_steps=6, steps=6, valid_every=3,
             batch_size=2, n_critic=1, critic_warmup=2, patience=None, frames=16, seeds=(0,), ablation_seeds=(0,))


@pytest.fixture(scope="module")
def cfg():
    return adversarial.config("tiny", **SMALL)


@pytest.fixture(scope="module")
def domains(cfg):
    return adversarial.data(cfg)


@pytest.fixture(scope="module")
def sets(cfg, domains):
    return spectrogram_sets(cfg, domains)


# ----------------------------------------------------------------------------- contract


def test_runs_come_after_what_they_need_and_cover_every_system_seed_and_ablation():
    cfg = adversarial.config("tiny", seeds=(0, 1), ablation_seeds=(0,), lrs=(1e-3, 5e-4),
                             alphas_V=(0.01, 0.001), alphas_VA=(0.001, 0.0001))
    runs = adversarial.runs(cfg)
    assert len(runs) == len(set(runs))
    for position, (variant, seed) in enumerate(runs):
        for needed in adversarial.requires(cfg, variant):
            assert (needed, seed) in runs[:position], (variant, needed)
    for seed in (0, 1):
        assert {v for v, s in runs if s == seed} >= {*adversarial.STARTS, *adversarial.VARIANTS}
    assert [run for run in runs if run[0] in adversarial.ABLATIONS] == [(a, 0) for a in adversarial.ABLATIONS]
    assert adversarial.requires(cfg, "V") == ("V @ alpha 0.01", "V @ alpha 0.001")
    assert adversarial.requires(cfg, "V @ alpha 0.01") == ("supervised start",)
    assert adversarial.requires(cfg, "upper bound @ lr 0.001") == ("upper start",)
    assert adversarial.requires(cfg, "V (scarce)") == ("supervised start", "V @ alpha 0.01", "V @ alpha 0.001")
    # the scored runs are the chosen systems and the ablations; starts and candidates never see a test song
    assert {v for v, _ in runs if adversarial.scored(v)} == {*adversarial.VARIANTS, *adversarial.ABLATIONS}
    # the paper profile has no mismatched style, so no mismatched ablation
    assert adversarial.runs(adversarial.config("paper", ablation_seeds=(0,)))[-1] == ("V (scarce)", 0)


def test_every_system_chooses_among_grids_of_equal_size():
    cfg = adversarial.config("book")
    sizes = {name: len(adversarial.candidates(cfg, name)) for name in adversarial.VARIANTS}
    assert len(set(sizes.values())) == 1 and sizes["V"] >= 2, sizes
    assert cfg["n_critic"] == 5  # the paper's number of critic updates per separator update
    with pytest.raises(ValueError, match="alphas_V"):
        adversarial.config("tiny", alphas_V=(0.01, 0.001))  # lrs and alphas_VA have one value each
    with pytest.raises(ValueError, match="lrs"):
        adversarial.config("tiny", lrs=())


@pytest.mark.slow
def test_training_domains_swap_in_the_ablations_data(cfg, domains):
    assert adversarial.training_domains(cfg, domains, "V") is domains
    assert adversarial.training_domains(cfg, domains, "V @ alpha 0.01") is domains
    upper = adversarial.training_domains(cfg, domains, "upper bound @ lr 0.001")
    assert [t.name for t in upper.paired] == [t.name for t in domains.paired + domains.unlabelled]
    assert upper.test == domains.test and upper.valid == domains.valid
    disjoint = adversarial.training_domains(cfg, domains, "V (disjoint halves)")
    assert not {t.name for t in disjoint.unlabelled} & {t.name for t in disjoint.solo}
    scarce = adversarial.training_domains(cfg, domains, "V (scarce)")
    assert len(scarce.unlabelled) < len(domains.unlabelled) and scarce.test == domains.test
    mismatched = adversarial.training_domains(cfg, domains, "V (mismatched)")
    assert {t.domain for t in mismatched.unlabelled} == {cfg["mismatched_style"]}


@pytest.mark.parametrize("override, match", [
    (dict(stepz=3), "stepz"), (dict(frames=12), "frames"), (dict(steps=0), "steps"),
    (dict(scarce_fraction=1.5), "scarce_fraction"), (dict(seeds=()), "seeds"),
])
def test_bad_settings_are_named(override, match):
    with pytest.raises(ValueError, match=match):
        adversarial.config("tiny", **override)


def test_bad_styles_are_named(cfg):
    with pytest.raises(ValueError, match="domain_styles"):
        adversarial.data(dict(cfg, domain_styles=("rock", "jazz")))
    with pytest.raises(ValueError, match="jazzz"):
        adversarial.data(dict(cfg, domain_styles=("rock", "jazzz", "electronic")))


def test_paper_profile_without_data_names_what_is_missing(monkeypatch):
    from sepbook.recipes.adversarial.data import REAL_DATA_ENV

    monkeypatch.delenv(REAL_DATA_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=REAL_DATA_ENV):
        adversarial.data(adversarial.config("paper"))


# ----------------------------------------------------------------------------- data


def test_domains_are_disjoint_and_play_the_papers_roles(domains):
    # as in the paper, the unlabelled mixtures and the solo stems come from the same songs...
    assert [t.name for t in domains.unlabelled] == [t.name for t in domains.solo]
    # ...and no other set shares a song with another
    sets = [domains.paired, domains.unlabelled, domains.valid, domains.test]
    names = [t.name for tracks in sets for t in tracks]
    assert len(names) == len(set(names)), "a song appears in two sets"
    assert domains.roles == {"pop": "DSD100", "rock": "MedleyDB", "jazz": "CCMixter", "electronic": "iKala"}
    assert {t.domain for t in domains.paired} == {"pop"}
    for name in ("unlabelled", "solo"):
        assert {t.domain for t in domains.sets()[name]} == {"rock", "jazz", "electronic"}
    for name in ("valid", "test"):
        assert {t.domain for t in domains.sets()[name]} == set(domains.roles)
    assert list(domains.role_table()["plays the role of"]) == list(adversarial.PAPER_ROLES)
    track = domains.paired[0]
    assert track.source_names == adversarial.SOURCES and track.sources.shape == (2, *track.mixture.shape)
    torch.testing.assert_close(track.sources.sum(0), track.mixture)


def test_scarce_and_mismatched_domains(cfg, domains):
    scarce = scarce_domains(domains, 0.1)
    assert len(scarce.unlabelled) == 1 and len(scarce.solo) == 1 and scarce.test == domains.test
    mismatched = mismatched_domains(cfg, domains)
    style = cfg["mismatched_style"]
    assert {t.domain for t in mismatched.unlabelled + mismatched.solo} == {style}
    assert style not in {t.domain for t in mismatched.test + mismatched.valid}
    assert mismatched.unlabelled[0].source("vocals").abs().sum() > 0  # the quartet got a singer
    with pytest.raises(ValueError, match="fraction"):
        scarce_domains(domains, 0)
    with pytest.raises(ValueError, match="already"):
        mismatched_domains(cfg, domains, style="rock")


def test_batches_are_a_pure_function_of_seed_and_step(cfg, sets):
    bins = adversarial.n_bins(cfg)
    mixture, sources = paired_batch(cfg, sets, seed=0, step=3)
    assert mixture.shape == (cfg["batch_size"], 1, bins, cfg["frames"])
    assert sources.shape == (cfg["batch_size"], 2, bins, cfg["frames"])
    assert torch.equal(mixture, paired_batch(cfg, sets, seed=0, step=3)[0])
    assert not torch.equal(mixture, paired_batch(cfg, sets, seed=0, step=4)[0])
    assert not torch.equal(mixture, paired_batch(cfg, sets, seed=1, step=3)[0])
    solo = solo_batch(cfg, sets, seed=0, step=3)
    assert set(solo) == set(adversarial.SOURCES)
    assert all(x.shape == mixture.shape and (x >= 0).all() for x in solo.values())
    assert unlabelled_batch(cfg, sets, seed=0, step=3).shape == mixture.shape
    assert not torch.equal(unlabelled_batch(cfg, sets, 0, 3, repeat=0), unlabelled_batch(cfg, sets, 0, 3, repeat=1))


def test_step_batches_resume_anywhere_and_systems_share_paired_batches(cfg, sets):
    from itertools import islice

    def take(variant, start, n):
        return list(islice(training.step_batches(cfg, sets, variant, 0, start), n))

    straight, resumed = take("VA", 0, 4), take("VA", 2, 2)
    assert [s for s, _ in resumed] == [2, 3]
    for (_, a), (_, b) in zip(straight[2:], resumed):
        assert torch.equal(a["mixture"], b["mixture"]) and torch.equal(a["unlabelled"][0], b["unlabelled"][0])
        assert torch.equal(a["solo"][0]["vocals"], b["solo"][0]["vocals"])
        assert torch.equal(torch.rand(3, generator=a["generators"][0]), torch.rand(3, generator=b["generators"][0]))
    (_, baseline), (_, v) = take("baseline", 1, 1)[0], take("V", 1, 1)[0]
    assert torch.equal(baseline["mixture"], v["mixture"]) and torch.equal(baseline["targets"], v["targets"])
    assert baseline["unlabelled"] == [] and baseline["unlabelled_separator"] is None
    assert len(v["unlabelled"]) == len(v["solo"]) == cfg["n_critic"] and v["unlabelled_separator"] is not None


def test_random_loudness_scales_each_example_by_one_factor():
    magnitude = torch.rand(64, 1, 4, 4) + 0.5
    ratio = (random_loudness(magnitude, np.random.default_rng(0)) / magnitude).flatten(1)
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    assert ratio.min() >= 0.2 - 1e-6 and ratio.max() <= 1.2 + 1e-6 and ratio[:, 0].std() > 0.1


def test_excerpts_never_straddle_songs_of_different_lengths():
    bank = Bank(torch.cat([torch.zeros(1, 4, 20), torch.ones(1, 4, 37)], dim=-1), np.array([0, 20]), np.array([20, 37]))
    excerpts = bank.draw(200, 8, np.random.default_rng(0))
    assert excerpts.shape == (200, 1, 4, 8)
    per_excerpt = excerpts.flatten(1)
    assert bool(((per_excerpt == 0).all(1) | (per_excerpt == 1).all(1)).all())
    # positions are uniform over the 13 + 30 possible starts, so the longer song is drawn more often
    assert 0.55 < float((per_excerpt[:, 0] == 1).float().mean()) < 0.85
    assert bank.excerpts(8).shape == (2 + 4, 1, 4, 8)


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def start(cfg, domains):
    return adversarial.train(cfg, domains, "supervised start", 0, **QUIET)[0]


def test_interrupted_adversarial_run_resumes_exactly(cfg, domains, start, tmp_path):
    """Separator, critics and both optimisers: a run stopped at step 4 and resumed equals one that never stopped."""
    va, before = "VA @ alpha 0.001", {"supervised start": start}
    straight, straight_history = adversarial.train(cfg, domains, va, 0, prerequisites=before,
                                                   checkpoint=tmp_path / "straight.pt", **QUIET)
    _, partial = adversarial.train(cfg, domains, va, 0, prerequisites=before, checkpoint=tmp_path / "cut.pt",
                                   stop_after=4, **QUIET)
    assert partial["step"] == [1, 2, 3, 4]
    resumed, history = adversarial.train(cfg, domains, va, 0, prerequisites=before, checkpoint=tmp_path / "cut.pt",
                                         **QUIET)

    assert history["step"] == list(range(1, cfg["steps"] + 1))
    for key in ("Ls", "Lu", "vocals_wasserstein", "accompaniment_gradient_penalty"):
        assert history[key] == straight_history[key], key
    assert history["valid"] == straight_history["valid"]
    assert same(snapshot(straight), snapshot(resumed))  # the best weights, critics included
    a = torch.load(tmp_path / "straight.pt", weights_only=True)
    b = torch.load(tmp_path / "cut.pt", weights_only=True)
    assert {k.split(".")[0] for k in a["model"]} == {"separator", "critics"}
    assert any(k.startswith("critics.accompaniment") for k in a["model"])
    assert same(a["model"], b["model"])  # the last weights
    assert set(a["optimizers"]) == {"separator", "critics"}
    for name in a["optimizers"]:
        for p, state in a["optimizers"][name]["state"].items():
            assert same(state, b["optimizers"][name]["state"][p]), name


def test_each_system_logs_its_own_terms_and_critics_their_diagnostics(cfg, domains, start):
    before = {"supervised start": start}
    _, baseline = adversarial.train(cfg, domains, "baseline @ lr 0.001", 0, prerequisites=before, **QUIET)
    _, v = adversarial.train(cfg, domains, "V @ alpha 0.01", 0, prerequisites=before, **QUIET)
    assert "vocals_wasserstein" not in baseline and set(baseline["Lu"]) == {0.0} and set(baseline["Ladd"]) == {0.0}
    assert len(v["vocals_wasserstein"]) == cfg["steps"] and "accompaniment_wasserstein" not in v
    assert all(x != 0 for x in v["Lu"]) and all(x > 0 for x in v["Ladd"])
    assert v["valid_step"] == [3, 6] and all(np.isfinite(x["valid L_s"]) for x in v["valid"])
    assert set(baseline["valid"][0]) == {"valid L_s"}
    assert set(v["valid"][0]) == {"valid L_s", "vocals: held-out solos", "vocals: true stems", "vocals: estimates",
                                  "cosine(grad L_u, grad L_s)"}
    assert all(-1 <= x["cosine(grad L_u, grad L_s)"] <= 1 for x in v["valid"])


@pytest.fixture(scope="module")
def learning():
    """The baseline trained for 150 steps on slightly larger data, and the same separator untrained."""
    cfg = adversarial.config("tiny", **dict(SMALL, song_seconds=3.0, n_paired=3, start_steps=150, valid_every=50,
                                            batch_size=8, lr=3e-3))
    domains = adversarial.data(cfg)
    training.seed_everything(0)
    untrained = adversarial.build(cfg, "baseline").eval()
    trained, history = adversarial.train(cfg, domains, "supervised start", 0, **QUIET)
    return cfg, domains, untrained, trained, history


@pytest.mark.slow
def test_brief_baseline_training_beats_an_untrained_separator(learning):
    cfg, domains, untrained, trained, history = learning
    sets = spectrogram_sets(cfg, domains)
    before = training.validation_loss(untrained, sets)["valid L_s"]
    after = training.validation_loss(trained, sets)["valid L_s"]
    assert after == pytest.approx(min(v["valid L_s"] for v in history["valid"]))  # the best weights were kept
    assert after < 0.5 * before, (before, after)

    rows = adversarial.evaluate(cfg, {("untrained", 0): untrained, ("baseline", 0): trained}, domains.test)
    vocals_sdr = report.summary([r for r in rows if r["source"] == "vocals" and r["metric"] == "SDR"])["mean"]
    assert vocals_sdr["baseline"] > vocals_sdr["untrained"] + 2.0, vocals_sdr.to_dict()


def test_evaluate_gives_report_rows_for_every_song(learning):
    cfg, domains, _, trained, _ = learning
    rows = adversarial.evaluate(cfg, {("baseline", 0): trained}, domains.test[:2])
    assert all(tuple(r) == report.COLUMNS for r in rows)
    assert len(rows) == 2 * len(adversarial.SOURCES) * 3
    assert {r["domain"] for r in rows} == {t.domain for t in domains.test[:2]}
    assert all(np.isfinite(r["value"]) for r in rows)


# ----------------------------------------------------------------------------- separation


class SplitSeparator(nn.Module):
    """Gives 30 % of the mixture magnitude to the accompaniment and 70 % to the voice."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, log_mix):
        linear = torch.expm1(log_mix)
        return torch.log1p(torch.cat([0.3 * linear, 0.7 * linear], dim=1))


def split_model(cfg):
    model = nn.ModuleDict({"separator": SplitSeparator(), "critics": nn.ModuleDict()})
    model.settings = {k: cfg[k] for k in ("n_fft", "hop", "frames")}
    return model


def test_separate_returns_waveforms_that_sum_to_the_mixture(cfg, domains):
    mixture = domains.test[0].mixture[:, :12_345]  # not a multiple of the hop or of an excerpt
    estimates = adversarial.separate(split_model(cfg), mixture)
    assert estimates.shape == (2, 1, 12_345)
    accompaniment, voice = estimates
    error = (voice + accompaniment - mixture).pow(2).mean().sqrt() / mixture.pow(2).mean().sqrt()
    assert error < 0.02  # only the dropped Nyquist bin is missing
    torch.testing.assert_close(voice, 0.7 / 0.3 * accompaniment, atol=1e-4, rtol=1e-3)


def test_separate_with_a_unet(cfg):
    torch.manual_seed(0)
    estimates = adversarial.separate(adversarial.build(cfg, "V"), torch.randn(1, 5000))
    assert estimates.shape == (2, 1, 5000) and torch.isfinite(estimates).all()


def test_separate_keeps_channels_and_refuses_what_is_not_channels_by_time(cfg):
    model, stereo = split_model(cfg), torch.randn(2, 5000)
    estimates = adversarial.separate(model, stereo)
    assert estimates.shape == (2, 2, 5000)
    assert torch.allclose(estimates[:, 1], adversarial.separate(model, stereo[1:])[:, 0])
    with pytest.raises(ValueError, match="mixture"):
        adversarial.separate(model, torch.randn(5000))


# ----------------------------------------------------------------------------- tables


def fake_rows(gain=1.0, seeds=(0, 1, 2)):
    """Rows where V and VA beat the baseline by ``gain`` dB on every song outside the paired (pop) domain."""
    rows = []
    for seed in seeds:
        for variant in adversarial.VARIANTS:
            for domain in ("pop", "rock", "jazz", "electronic"):
                for source in adversarial.SOURCES:
                    for metric, offset in (("SDR", 0.0), ("SIR", 5.0), ("SAR", 3.0)):
                        value = 5.0 + seed + offset + (gain if variant != "baseline" and domain != "pop" else 0.0)
                        rows.append({"variant": variant, "seed": seed, "song": f"{domain}-1", "domain": domain,
                                     "source": source, "metric": metric, "value": value})
    return rows


def test_paper_table_has_the_papers_layout_with_its_numbers_beside_ours(cfg):
    table = page.paper_table(cfg, fake_rows(), "tiny")
    assert list(table.index) == [label for label, _, _ in evaluation.METRIC_ROWS]
    assert list(table.columns.get_level_values(0).unique()) == ["Test set", *adversarial.PAPER_ROLES]
    assert table.shape == (6, 5 * 3 * 2)
    assert table.loc["SDR V.", ("DSD100", "baseline", "ours (tiny)")] == "6.00 ± 1.00"
    assert table.loc["SDR V.", ("iKala", "V", "ours (tiny)")] == "7.00 ± 1.00"
    assert table.loc["SDR V.", ("iKala", "V", "paper")] == "10.47"
    assert table.loc["SIR Inst.", ("Test set", "VA", "paper")] == "12.67"


def test_gains_and_verdict_follow_the_numbers(cfg):
    gains = page.gains(cfg, fake_rows(gain=1.0), "V")
    assert gains.loc[("out-of-domain", "SDR V."), "mean"] == pytest.approx(1.0)
    assert gains.loc[("DSD100", "SDR V."), "mean"] == pytest.approx(0.0)
    assert gains.loc[("Test set", "SDR V."), "mean"] == pytest.approx(0.75)  # 3 of 4 domains gain 1 dB
    assert gains.loc[("iKala", "SAR Inst."), "wins"] == 3
    assert "V minus the baseline outside the supervised domain: +1.00 dB" in page.describe(
        cfg, fake_rows(gain=1.0), "V", "book")
    assert "V minus the baseline outside the supervised domain: -1.00 dB" in page.describe(
        cfg, fake_rows(gain=-1.0), "V", "book")
    assert "on the DSD100 songs" in page.describe(cfg, fake_rows(), "VA", "tiny", subset="DSD100")


def test_gains_table_puts_the_papers_gain_beside_ours(cfg):
    table = page.gains_table(cfg, fake_rows(gain=0.5))
    assert table.shape == (2 * 6, 6 * 2)
    assert table.loc[("V", "out-of-domain"), ("SDR V.", "ours")] == 0.5
    assert table.loc[("V", "Test set"), ("SDR V.", "paper")] == page.paper_gain("V", "SDR V.") == 0.48
    assert table.loc[("VA", "out-of-domain"), ("SDR V.", "paper")] == "–"  # the paper pools no such subset


# ----------------------------------------------------------------------------- mechanisms of the split and the choice


def test_a_critic_batch_never_pairs_a_mixture_with_its_own_stems(cfg):
    """Three songs, each unlabelled and solo (the paper's split), told apart by their magnitude: whatever the
    random loudness in [0.2, 1.2], song k's excerpts lie in [0.2, 1.2] * 100**k."""
    from sepbook.recipes.adversarial.spectrograms import SpectrogramSets, critic_batch

    levels = torch.tensor([1.0, 100.0, 10000.0])
    frames = torch.cat([torch.full((3, 4, 40), float(level)) for level in levels], dim=-1)
    bank = Bank(frames, np.array([0, 40, 80]), np.array([40, 40, 40]))
    sets = SpectrogramSets(paired=bank, unlabelled=bank, solo=Bank(frames[1:], bank.starts, bank.lengths),
                           valid=torch.zeros(0), held_out=torch.zeros(0), partner=np.array([0, 1, 2]))

    def song(excerpts):
        return torch.log10(torch.expm1(excerpts[:, 0, 0, 0]) / 0.2).floor().long() // 2

    small = dict(cfg, batch_size=64, frames=8)
    for step in range(20):
        mixtures, solos = critic_batch(small, sets, seed=0, step=step)
        assert set(song(mixtures).tolist()) == {0, 1, 2}
        for name in adversarial.SOURCES:
            assert not (song(solos[name]) == song(mixtures)).any(), (step, name)
    # without the rule, the same draws would pair some: the check can fail
    unguarded = SpectrogramSets(**{**sets.__dict__, "partner": np.array([-1, -1, -1])})
    clashes = sum(int((song(critic_batch(small, unguarded, 0, step)[1]["vocals"]) ==
                       song(critic_batch(small, unguarded, 0, step)[0])).sum()) for step in range(20))
    assert clashes > 0


@pytest.mark.slow
def test_the_choice_of_alpha_never_reads_a_test_song(cfg, domains):
    """Poison every test song with NaN: the candidates train to the same weights and the same alpha is chosen."""
    from dataclasses import replace

    grid = dict(lrs=(1e-3, 3e-4), alphas_V=(0.01, 0.001), alphas_VA=(0.001, 0.0001))
    two = adversarial.config("tiny", **dict(SMALL, **grid))
    poisoned = replace(domains, test=[replace(t, mixture=t.mixture * np.nan, sources=t.sources * np.nan)
                                      for t in domains.test])
    clean_models, clean = adversarial.train_systems(two, domains, ["V"], 0, **QUIET)
    dirty_models, dirty = adversarial.train_systems(two, poisoned, ["V"], 0, **QUIET)
    assert clean["V"]["chosen"] == dirty["V"]["chosen"] and clean["V"]["candidates"] == dirty["V"]["candidates"]
    assert all(np.isfinite(loss) for loss in clean["V"]["candidates"].values())
    assert same(snapshot(clean_models["V"]), snapshot(dirty_models["V"]))
    # the choice is the candidate with the lowest validation loss, whichever it is
    losses = clean["V"]["candidates"]
    assert clean["V"]["chosen"] == min(losses, key=losses.get) and len(losses) == 2


def test_headroom_table_is_the_upper_bound_minus_the_baseline_per_subset(cfg):
    rows = fake_rows(gain=1.0)  # every system but the baseline, the upper bound included, +1 dB outside pop
    rows += [dict(r, variant=evaluation.MIXTURE, seed=None, value=-10.0) for r in rows if r["variant"] == "baseline"
             and r["seed"] == 0]
    table = page.headroom_table(cfg, rows)
    assert list(table.index) == [*adversarial.PAPER_ROLES, evaluation.OUT_OF_DOMAIN]
    assert list(table.columns) == [evaluation.MIXTURE, "baseline", "upper bound", "V", "VA", "headroom"]
    assert table.loc["DSD100", "headroom"] == 0.0 and table.loc[evaluation.OUT_OF_DOMAIN, "headroom"] == 1.0
    assert table.loc["iKala", "baseline"] == 6.0 and table.loc["iKala", evaluation.MIXTURE] == -10.0


def test_choices_show_every_candidate_and_mark_the_one_kept():
    histories = {("V", 0): {"chosen": "V @ alpha 0.001", "candidates": {"V @ alpha 0.01": 0.3, "V @ alpha 0.001": 0.2}},
                 ("V @ alpha 0.01", 0): {"step": [1], "valid": []}}
    table = page.choices(histories)
    assert list(table.index) == [("V", 0, "alpha 0.01"), ("V", 0, "alpha 0.001")]
    assert list(table["chosen"]) == [False, True] and list(table["validation L_s"]) == [0.3, 0.2]


def test_diagnostics_table_reads_the_kept_step_and_flags_a_critic_that_scores_true_stems_low():
    from sepbook.recipes.adversarial import figures

    def at(held, true, fake, cosine):
        return {"valid L_s": 0.1, "vocals: held-out solos": held, "vocals: true stems": true,
                "vocals: estimates": fake, figures.COSINE: cosine}

    histories = {("V @ alpha 0.01", 0): {"step": [1, 2], "valid_step": [50, 100], "best_step": [50],
                                         "valid": [at(2.0, 1.0, -3.0, 0.5), at(9.0, 9.5, 0.0, -0.5)]},
                 ("baseline @ lr 0.001", 0): {"step": [1], "valid_step": [50], "valid": [{"valid L_s": 0.1}]}}
    table = figures.diagnostics_table(histories)
    (row,) = table.to_dict("records")
    assert table.index[0] == ("V @ alpha 0.01", 0, "vocals") and row["kept step"] == 50
    assert row["true stems below real solos"] and row["true - held-out"] == -1.0 and row["estimates - true"] == -4.0
    assert row["cosine"] == 0.5


def test_a_run_without_what_it_starts_from_is_refused_by_name(cfg, domains):
    with pytest.raises(ValueError, match="prerequisites.*'V @ alpha 0.01'.*supervised start"):
        adversarial.train(cfg, domains, "V @ alpha 0.01", 0, **QUIET)


def test_a_bank_of_one_song_cannot_avoid_it():
    bank = Bank(torch.zeros(1, 2, 40), np.array([0]), np.array([40]))
    assert (bank.positions(4, 8, np.random.default_rng(0), avoid=np.array([-1] * 4)) >= 0).all()
    with pytest.raises(ValueError, match="avoid"):
        bank.positions(4, 8, np.random.default_rng(0), avoid=np.zeros(4, dtype=int))
