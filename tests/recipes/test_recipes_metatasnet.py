"""The Meta-TasNet recipe end to end at tiny size: runs, data at every stage's rate, batches, a
learning bar, evaluation against the mixture, separation, the cost rows, and bad settings."""
import math

import numpy as np
import pytest
import torch

from sepbook.classroom.exercises import check_generated_conv, check_si_sdr_loss
from sepbook.experiments import report
from sepbook.recipes import metatasnet
from sepbook.recipes.metatasnet import evaluation, page
from sepbook.recipes.metatasnet.data import batches, training_banks
from sepbook.recipes.metatasnet.evaluation import separate_stages

from helpers import QUIET

SMALL = dict(n_train=4, n_valid=1, n_test=2, song_seconds=4.0, steps=100, valid_every=50, seeds=(0, 1))


@pytest.fixture(scope="module", autouse=True)
def data_dir(tmp_path_factory):
    """Every test here generates and reads its songs in a temporary folder, never data/generated."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEPBOOK_DATA", str(tmp_path_factory.mktemp("data")))
        yield


@pytest.fixture(scope="module")
def cfg():
    return metatasnet.config("tiny", **SMALL)


@pytest.fixture(scope="module")
def splits(cfg):
    return metatasnet.data(cfg)


@pytest.fixture(scope="module")
def banks(cfg, splits):
    return training_banks(cfg, splits)


def test_runs_list_every_variant_and_seed(cfg):
    variants = ("independent", "multi-task", "meta", "independent-meta-start")
    assert metatasnet.runs(cfg) == [(v, s) for v in variants for s in (0, 1)]


def test_tiny_and_book_have_two_stages_and_book_the_paper_rates():
    assert metatasnet.config("tiny")["stages"] == (4000, 8000)
    assert metatasnet.config("book")["stages"] == (8000, 16000)
    assert metatasnet.config("paper")["stages"] == (8000, 16000, 32000)


def test_songs_load_mono_at_the_last_stage_rate(cfg, splits):
    assert len(splits.train) == 4 and len(splits.valid) == 1 and len(splits.test) == 2
    for track in splits.train + splits.test:
        assert track.sources.shape == (4, 1, int(4.0 * 8000))
        assert track.source_names == ("vocals", "drums", "bass", "other")
        assert torch.allclose(track.sources.sum(0), track.mixture, atol=1e-5)
    assert not {t.name for t in splits.train} & {t.name for t in splits.test}


def test_batches_hold_every_stage_cut_at_the_same_moments(cfg, banks):
    (_, first), (_, again) = next(batches(cfg, banks, 3, 7)), next(batches(cfg, banks, 3, 7))
    (_, other), = [next(batches(cfg, banks, 4, 7))]
    assert [tuple(m.shape) for m in first["mixture"]] == [(4, 1, 4000), (4, 1, 8000)]
    assert [tuple(s.shape) for s in first["sources"]] == [(4, 4, 1, 4000), (4, 4, 1, 8000)]
    assert torch.equal(first["sources"][1], again["sources"][1])
    assert not torch.equal(first["sources"][1], other["sources"][1])
    low, high = first["mixture"]
    # the 4 kHz excerpt is the 8 kHz one resampled: their spectra agree below 2 kHz
    spectrum = lambda x, n: torch.fft.rfft(x[0, 0]).abs()[:n]  # noqa: E731
    correlation = np.corrcoef(spectrum(low, 1500), spectrum(high, 1500))[0, 1]
    assert correlation > 0.9


@pytest.fixture(scope="module")
def learning(cfg, banks, splits):
    torch.manual_seed(0)
    untrained = metatasnet.build(cfg, "meta")
    model, history = metatasnet.train_on(cfg, banks, "meta", seed=0, **QUIET)
    return untrained, model, history


@pytest.mark.slow
def test_meta_learns_to_separate(cfg, splits, learning):
    untrained, model, history = learning
    assert len(history["loss"]) == 100 and "stage 1" in history and "stage 2" in history
    first, last = np.mean(history["loss"][:10]), np.mean(history["loss"][-10:])
    assert last < first - 3, (first, last)
    rows = report.frame(metatasnet.evaluate(cfg, {("meta", 0): model, ("untrained", 0): untrained},
                                            splits.test[:1]))
    mixture = report.frame(metatasnet.mixture_rows(cfg, splits.test[:1]))
    si = rows[rows.metric == "SI-SDR"].groupby("variant").value.mean()
    assert si["meta"] > si["untrained"] + 3
    assert si["meta"] > mixture[mixture.metric == "SI-SDR"].value.mean() + 3


@pytest.mark.slow
def test_evaluate_scores_the_last_stage_and_the_first(cfg, splits, learning):
    """The last stage gets SDR, SI-SDR and gain; the first stage, brought up to the last stage's
    rate, SI-SDR and gain, under its own name; both from one pass through the model."""
    model = learning[1]
    song = splits.test[0]
    rows = metatasnet.evaluate(cfg, {("meta", 0): model}, [song])
    stems = ("vocals", "drums", "bass", "other")
    last = {(r["source"], r["metric"]) for r in rows if r["variant"] == "meta"}
    first = {(r["source"], r["metric"]) for r in rows if r["variant"] == "meta (stage 1)"}
    assert last == {(s, m) for s in stems for m in ("SDR", "SI-SDR", "gain")}
    assert first == {(s, m) for s in stems for m in ("SI-SDR", "gain")}
    assert len(rows) == len(last) + len(first)
    assert all(r["seed"] == 0 and r["domain"] == "musdb" for r in rows)
    assert all(math.isfinite(r["value"]) for r in rows)
    first = evaluation.separate_stages(model, song.mixture)[0]
    up = torch.as_tensor(evaluation.at_rates(first, 4000, [8000])[0])[..., : song.mixture.shape[-1]]
    scores = evaluation.stage_values(up, song)
    value = {(r["source"], r["metric"]): r["value"] for r in rows if r["variant"] == "meta (stage 1)"}
    for source, metric in value:
        assert value[(source, metric)] == pytest.approx(scores[source][metric], abs=1e-4)
    in_band = page.in_band_table({"meta": model}, [song])
    assert in_band.loc["meta", "last − first"] == pytest.approx(
        in_band.loc["meta", "last stage"] - in_band.loc["meta", "stage 1"], abs=0.02)


def test_the_level_diagnostic_reads_a_hand_made_gain_and_sign(cfg, splits):
    """A stem at half its level reads 0.5, one upside down -1, and the tables count the
    inverted ones and name both stages."""
    song = splits.test[0]
    estimates = song.sources.clone()
    estimates[0] *= 0.5
    estimates[1] *= -1
    values = evaluation.stage_values(estimates, song)
    assert values["vocals"]["gain"] == pytest.approx(0.5, abs=1e-4)
    assert values["drums"]["gain"] == pytest.approx(-1.0, abs=1e-4)
    assert values["bass"]["gain"] == pytest.approx(1.0, abs=1e-4)
    assert values["vocals"]["SI-SDR"] > 40 and values["drums"]["SI-SDR"] > 40  # SI-SDR cannot tell
    rows = report.rows_for(values, variant="meta", seed=0, song=song.name, domain="musdb")
    rows += report.rows_for({k: {"SI-SDR": v["SI-SDR"] - 3} for k, v in values.items()},
                            variant="meta (stage 1)", seed=0, song=song.name, domain="musdb")
    levels = page.level_table(rows)
    assert levels.loc["meta", "vocals"] == "0.50 (0 of 1 inverted)"
    assert levels.loc["meta", "drums"] == "-1.00 (1 of 1 inverted)"
    stages = page.stage_table(rows)
    assert stages.loc["meta", "last − first"] == pytest.approx(3.0, abs=0.01)


def test_the_control_starts_as_the_meta_model_of_its_seed(cfg):
    torch.manual_seed(3)
    meta = metatasnet.build(cfg, "meta")
    torch.manual_seed(3)
    control = metatasnet.build(cfg, "independent-meta-start")
    mixtures = [torch.randn(1, 1, 4000), torch.randn(1, 1, 8000)]
    for ours, theirs in zip(control(mixtures), meta(mixtures)):
        assert torch.allclose(ours, theirs, atol=1e-5)
    independent = metatasnet.build(cfg, "independent")
    assert set(control.state_dict()) == set(independent.state_dict())


@pytest.mark.slow
def test_separate_returns_every_source_at_the_mixture_length(cfg, splits, learning):
    model = learning[1]
    song = splits.test[0]
    estimates = metatasnet.separate(model, song.mixture[:, :20001])
    assert estimates.shape == (4, 1, 20001)
    low = separate_stages(model, song.mixture[:, :8000:2], sr=4000)
    assert [stage.shape for stage in low] == [(4, 1, 4000), (4, 1, 8000)]
    stereo = metatasnet.separate(model, song.mixture.expand(2, -1)[:, :8000])
    assert stereo.shape == (4, 2, 8000) and torch.allclose(stereo[:, 0], stereo[:, 1], atol=1e-5)
    pieces = separate_stages(model, song.mixture[:, :16000], max_seconds=1.0)[-1]
    whole = separate_stages(model, song.mixture[:, :16000])[-1]
    assert pieces.shape == (4, 1, 16000) and not torch.equal(pieces, whole)  # cut into 1 s pieces


@pytest.mark.slow
def test_separate_refuses_a_rate_that_no_stage_has(cfg, learning):
    with pytest.raises(ValueError, match=r"sr: expected one of the stages' sample rates \[4000, 8000\], got 44100"):
        separate_stages(learning[1], torch.randn(1, 44100), sr=44100)
    with pytest.raises(ValueError, match="mixture: expected"):
        metatasnet.separate(learning[1], torch.randn(44100))


def test_near_silent_frames_are_skipped_like_silent_ones(cfg, splits):
    song = splits.test[0]
    quiet = song.sources.clone()
    quiet[2, :, 8000:16000] *= 1e-6
    from sepbook.tracks import Track
    track = Track("quiet", quiet.sum(0), quiet, song.source_names, "musdb")
    rows = evaluation.song_rows(quiet + 0.01 * torch.randn_like(quiet), track, 8000, "x", 0)
    bass = [r for r in rows if r["source"] == "bass" and r["metric"] == "SDR"][0]["value"]
    assert bass > 0


@pytest.mark.slow
def test_cost_rows_measure_each_variant(cfg):
    rows = metatasnet.cost_rows(dict(cfg, batch_size=1, excerpt_seconds=0.25), ["independent", "meta"])
    table = {(r["variant"], r["metric"]): r["value"] for r in rows}
    assert set(table) == {(v, m) for v in ("independent", "meta") for m in ("parameters", "step seconds", "peak MiB")}
    assert table[("meta", "parameters")] == metatasnet.parameters(metatasnet.build(cfg, "meta"))
    assert all(table[(v, "step seconds")] > 0 for v in ("independent", "meta"))
    assert all(r["domain"] == "cost" and r["seed"] is None for r in rows)


@pytest.mark.parametrize("overrides, message", [
    (dict(stages=(4000, 12000)), "stages: expected sample rates that double"),
    (dict(kernel=15), "kernel: expected an even number"),
    (dict(excerpt_seconds=0.001), "excerpt_seconds"),
])
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        metatasnet.config("tiny", **overrides)


def test_a_bad_variant_lists_the_variants(cfg, splits):
    with pytest.raises(ValueError, match=r"variant: expected one of \['independent', 'multi-task', 'meta', "):
        metatasnet.build(cfg, "shared")
    with pytest.raises(ValueError, match="variant: expected one of"):
        metatasnet.train(cfg, splits, "shared")


def test_the_paper_profile_names_its_variable(monkeypatch):
    monkeypatch.delenv("MUSDB_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match=r"\$MUSDB_PATH"):
        metatasnet.data(metatasnet.config("paper"))


# ----------------------------------------------------------------------------- exercises


def test_the_reference_answers_pass_their_checkers():
    import torch.nn.functional as F

    from sepbook.losses.waveform import si_sdr_loss

    def generated_conv(x, embeddings, code, generator, c_out, kernel):
        b, k, c_in, t = x.shape
        weights = generator(code(embeddings)).reshape(k * c_out, c_in, kernel)
        return F.conv1d(x.reshape(b, k * c_in, t), weights, padding=kernel // 2, groups=k).reshape(b, k, c_out, t)

    assert check_generated_conv(generated_conv).startswith("correct")
    assert check_si_sdr_loss(si_sdr_loss).startswith("correct")


def test_a_shared_kernel_fails_with_a_hint():
    import torch.nn.functional as F

    def one_kernel(x, embeddings, code, generator, c_out, kernel):
        b, k, c_in, t = x.shape
        weights = generator(code(embeddings)).reshape(k, c_out, c_in, kernel)[0]
        return F.conv1d(x.reshape(b * k, c_in, t), weights, padding=kernel // 2).reshape(b, k, c_out, t)

    with pytest.raises(AssertionError, match="groups=K"):
        check_generated_conv(one_kernel)


def test_a_detached_kernel_fails():
    import torch.nn.functional as F

    def detached(x, embeddings, code, generator, c_out, kernel):
        b, k, c_in, t = x.shape
        weights = generator(code(embeddings.detach())).reshape(k * c_out, c_in, kernel)
        return F.conv1d(x.reshape(b, k * c_in, t), weights, padding=kernel // 2, groups=k).reshape(b, k, c_out, t)

    with pytest.raises(AssertionError, match="no gradient reaches the embeddings"):
        check_generated_conv(detached)


def test_si_sdr_loss_mistakes_fail_with_hints():
    from sepbook.losses.waveform import si_sdr_loss

    with pytest.raises(AssertionError, match="wrong sign"):
        check_si_sdr_loss(lambda e, t: -si_sdr_loss(e, t))

    from sepbook.metrics import si_sdr

    def counts_silence(e, t):
        return -si_sdr(e, t).mean()

    with pytest.raises(AssertionError, match="silent target is counted"):
        check_si_sdr_loss(counts_silence)
    with pytest.raises(AssertionError, match="your function raised"):
        check_si_sdr_loss(lambda e, t: 1 / 0)


def _rows(variant, seed, song, values):
    return report.rows_for(values, variant=variant, seed=seed, song=song, domain="musdb")


def test_the_summaries_read_hand_made_rows():
    """Level summary, gain against SI-SDR, and the systems' order in SDR and in SI-SDR."""
    rows = []
    for song, quality in enumerate((1.0, 5.0, 9.0)):
        for variant, shift, sdr_shift in (("meta", 1.0, 0.0), ("independent", 0.0, 1.0)):
            gain = 0.5 + quality / 20 + (-2.0 if variant == "independent" and song == 0 else 0.0)
            rows += _rows(variant, 0, f"s{song}", {"vocals": {"SI-SDR": quality + shift, "gain": gain,
                                                               "SDR": quality + sdr_shift}})
    summary = page.level_summary(rows)
    assert "meta 0.75 (0 of 3 inverted)" in summary and "independent 0.75 (1 of 3 inverted)" in summary
    assert page.ranking(rows, "SI-SDR") == ["meta", "independent"]
    assert page.ranking(rows, "SDR") == ["independent", "meta"]
    assert page.rankings_agree(rows).startswith("rank the systems differently")
    assert page.gain_and_quality(rows) > 0.5  # gain rises with SI-SDR in every system


def test_end_slopes_measure_the_last_quarter():
    flat_then_rising = {"valid_step": [100, 200, 300, 400, 500, 600, 700, 800],
                        "valid": [{"valid SI-SDR": v} for v in (0, 1, 2, 3, 4, 4, 5, 6)]}
    flat = {"valid_step": [100, 200, 300, 400], "valid": [{"valid SI-SDR": 2.0}] * 4}
    slopes = page.end_slopes({("meta", 0): flat_then_rising, ("meta", 1): flat,
                                    ("independent", 0): flat})
    assert slopes.loc["independent", "dB per 1000 steps (mean)"] == 0
    assert slopes.loc["meta", "highest"] == pytest.approx(10.0)  # 1 dB per 100 steps at the end
    assert slopes.loc["meta", "lowest"] == 0
