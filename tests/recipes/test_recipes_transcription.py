"""The score-supervision recipe end to end at tiny size: data, batches, a learning bar, evaluation, tables."""

import numpy as np
import pytest
import torch

from sepbook.audio import magnitudes
from sepbook.experiments import report
from sepbook.recipes import transcription
from sepbook.recipes.transcription import page, training
from sepbook.recipes.transcription.data import batches, training_sets

from helpers import QUIET

SMALL = dict(n_train=6, n_valid=1, n_test=2, song_seconds=3.0, transcriptor_steps=150, separator_steps=40,
             fine_tune_steps=4, valid_every=50, lr=3e-3, seeds=(0,))


@pytest.fixture(scope="module")
def cfg():
    return transcription.config("tiny", **SMALL)


@pytest.fixture(scope="module")
def splits(cfg, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEPBOOK_DATA", str(tmp_path_factory.mktemp("data")))
        return transcription.data(cfg)


@pytest.fixture(scope="module")
def sets(cfg, splits):
    return training_sets(cfg, splits)


def test_tracks_carry_their_score_on_the_stft_frames(cfg, splits):
    assert len(splits.train) == 6 and len(splits.valid) == 1 and len(splits.test) == 2
    for track in splits.train + splits.test:
        frames = magnitudes(cfg, track.mixture[0]).shape[-1]
        assert track.rolls.shape == (3, cfg["n_pitches"], frames)
        assert torch.allclose(track.mixture, track.sources.sum(0), atol=1e-6)
        assert track.domain == "independent"      # each part from another composition
        assert track.rolls.any()


def test_runs_put_critics_first_and_every_run_after_what_it_needs(cfg):
    runs = transcription.runs(cfg)
    names = {v for v, _ in runs}
    sweep = {f"{v} @ {w:g}" for v in ("fine-tune + AML", "fine-tune + ATL") for w in cfg["adversarial_weights"]}
    assert names == set(transcription.VARIANTS) | sweep
    assert len(runs) == len(names) * len(cfg["seeds"])
    assert [v for v, _ in runs[:2]] == ["transcriptor", "classifier"]
    for variant in names:
        for needed in transcription.requires(cfg, variant):
            assert needed in names and runs.index((needed, 0)) < runs.index((variant, 0)), (variant, needed)
    assert set(transcription.requires(cfg, "fine-tune + ATL")) == {*(n for n in sweep if "ATL" in n), "transcriptor"}


def test_batches_are_a_pure_function_of_seed_and_step(cfg, sets):
    first = dict(next(batches(cfg, sets, 0, start=5))[1])
    again = dict(next(batches(cfg, sets, 0, start=5))[1])
    other = dict(next(batches(cfg, sets, 1, start=5))[1])
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["mixture"], other["mixture"])
    assert first["rolls"].shape == (cfg["batch_size"], 3, cfg["n_pitches"], cfg["frames"])
    assert first["mixture"].shape == (cfg["batch_size"], 1, 256, cfg["frames"])


@pytest.fixture(scope="module")
def learning(cfg, sets):
    training.seed_everything(0)
    untrained = training.build(cfg, "transcriptor").eval()
    transcriptor, history = training.train(cfg, sets, "transcriptor", 0, **QUIET)
    frozen = {k: v.clone() for k, v in transcriptor.state_dict().items()}
    separator, sep_history = training.train(cfg, sets, "isolated c+h-mix", 0,
                                            prerequisites={"transcriptor": transcriptor}, **QUIET)
    return untrained, transcriptor, history, frozen, separator, sep_history


@pytest.mark.slow
def test_the_transcriptor_learns_and_the_best_validation_is_kept(cfg, sets, learning):
    untrained, transcriptor, history, *_ = learning
    before = training.validation_loss(training.critic_pretraining_loss, untrained, sets)["valid loss"]
    after = training.validation_loss(training.critic_pretraining_loss, transcriptor, sets)["valid loss"]
    assert after == pytest.approx(min(v["valid loss"] for v in history["valid"]))
    assert after < 0.5 * before, (before, after)


@pytest.mark.slow
def test_the_separator_learns_and_its_frozen_critic_does_not_move(learning):
    _, transcriptor, _, frozen, separator, history = learning
    assert np.mean(history["loss"][-10:]) < np.mean(history["loss"][:10])
    assert all(torch.equal(frozen[k], v) for k, v in transcriptor.state_dict().items())
    assert set(separator) == {"separator"}


@pytest.mark.slow
def test_fine_tuning_starts_from_its_prerequisites_and_keeps_its_best_judged_weights(cfg, sets, learning):
    _, transcriptor, _, _, separator, _ = learning
    prerequisites = {"transcriptor": transcriptor, "isolated c+h-mix": separator}
    tuned, history = training.train(cfg, sets, "fine-tune + AML @ 0.1", 0, prerequisites=prerequisites, **QUIET)
    assert set(tuned) == {"separator", "transcriptor", "detector"}
    assert len(history["loss"]) == cfg["fine_tune_steps"] and "transcriptor loss" in history
    judge = training.judged_by(transcriptor["transcriptor"], training.template_of(cfg), cfg["mix_weight"])
    kept = training.validation_loss(judge, tuned, sets)["valid loss"]
    assert kept == pytest.approx(min(v["valid loss"] for v in history["valid"]), rel=1e-5)
    with pytest.raises(ValueError, match="isolated c\\+h-mix"):
        training.train(cfg, sets, "fine-tune", 0, prerequisites={"transcriptor": transcriptor}, **QUIET)
    with pytest.raises(ValueError, match="variant"):
        training.build(cfg, "semi-supervised")


def test_an_adversary_takes_the_candidate_with_the_best_validation_loss(cfg, sets, learning):
    _, transcriptor, _, _, separator, _ = learning
    start = {"transcriptor": transcriptor, "isolated c+h-mix": separator}
    runs = {name: training.train(cfg, sets, name, 0, prerequisites=start, **QUIET, stop_after=20)[0]
            for name in training.candidates(cfg, "fine-tune + ATL")}
    with pytest.raises(ValueError, match="chooses among"):
        training.train(cfg, sets, "fine-tune + ATL", 0, prerequisites={"transcriptor": transcriptor})
    chosen, history = training.train(cfg, sets, "fine-tune + ATL", 0, prerequisites=runs | {"transcriptor": transcriptor})
    losses = history["candidates"]
    assert set(losses) == set(runs) and history["chosen"] == min(losses, key=losses.get)
    assert chosen is runs[history["chosen"]]
    assert len(set(losses.values())) == len(losses), "different weights should train different separators"


@pytest.mark.slow
def test_evaluate_gives_report_rows_of_both_kinds(cfg, splits, learning):
    _, transcriptor, _, _, separator, _ = learning
    rows = transcription.evaluate(cfg, {("transcriptor", 0): transcriptor, ("isolated c+h-mix", 0): separator},
                                  splits.test)
    assert all(tuple(r) == report.COLUMNS for r in rows)
    metrics = {(r["variant"], r["metric"]) for r in rows}
    assert ("isolated c+h-mix", "SI-SDR") in metrics
    assert {m for v, m in metrics if v == "transcriptor"} == {
        "accuracy (mixture)", "accuracy (isolated)", "note F1 (mixture)", "note F1 (isolated)"}
    reference = transcription.reference_rows(cfg, splits.test)
    assert {r["variant"] for r in reference} == {"input mixture"} and all(r["seed"] is None for r in reference)


def test_separate_with_open_masks_returns_the_mixture(cfg, splits):
    model = training.build(cfg, "supervised")
    with torch.no_grad():
        for head in model["separator"].heads:
            head.weight.zero_()
            head.bias.fill_(30.0)                      # sigmoid(30) = 1: every mask open
    mixture = splits.test[0].mixture
    estimates = transcription.separate(model, mixture)
    assert estimates.shape == (3, 1, mixture.shape[-1])
    from sepbook.metrics import si_sdr
    assert float(si_sdr(estimates[0], mixture).min()) > 20


def _rows():
    rows = []
    for seed in (0, 1, 2):
        for variant, level in (("supervised", 8.0), ("isolated c+h-mix", 4.0), ("classifier baseline", 2.0),
                               ("fine-tune", 4.5), ("fine-tune + ATL", 4.0)):
            for name in ("bass", "guitar", "piano"):
                bump = 1.5 if (variant, name) == ("fine-tune + ATL", "bass") else 0.0
                rows.append(dict(variant=variant, seed=seed, song="s", domain="pop", source=name, metric="SI-SDR",
                                 value=level + 0.1 * seed + bump))
        for variant, accuracy in (("transcriptor", 0.6), ("fine-tune", 0.7), ("fine-tune + ATL", 0.65)):
            for name in ("bass", "guitar", "piano"):
                for where in ("mixture", "isolated"):
                    for metric in ("accuracy", "note F1"):
                        value = accuracy + (0.2 if where == "isolated" else 0.0) - (0.1 if metric == "note F1" else 0)
                        rows.append(dict(variant=variant, seed=seed, song="s", domain="pop", source=name,
                                         metric=f"{metric} ({where})", value=value))
    rows += [dict(variant="input mixture", seed=None, song="s", domain="pop", source=name, metric="SI-SDR",
                  value=-3.0) for name in ("bass", "guitar", "piano")]
    return rows


def test_tables_put_the_papers_numbers_beside_ours(cfg):
    table = page.separation_table(cfg, _rows(), "tiny")
    assert list(table.index) == ["supervised", "isolated c+h-mix", "fine-tune", "fine-tune + ATL", "input mixture",
                                 "classifier baseline"]
    assert table.loc["supervised", ("Avg", "paper")] == "8.2"
    assert table.loc["input mixture", ("Avg", "ours (tiny)")] == "-3.0"
    notes = page.transcription_table(cfg, _rows(), "tiny")
    assert notes.loc[[("transcriptor", "mixture")], ("bass", "paper")].iloc[0] == "0.85"
    assert notes.loc[[("transcriptor", "mixture")], ("bass", "ours (tiny)")].iloc[0].startswith("0.50")
    frames = page.transcription_table(cfg, _rows(), "tiny", metric="accuracy")
    assert frames.loc[[("transcriptor", "mixture")], ("bass", "ours (tiny)")].iloc[0].startswith("0.60")
    paper_cells = frames.xs("paper", axis=1, level=1).stack().tolist()
    assert not any(str(cell).strip("–— ") for cell in paper_cells), "the paper reports note accuracy only"


def test_versus_and_verdicts_follow_the_numbers(cfg):
    ahead = page.versus(cfg, _rows(), "classifier baseline", "input mixture", "tiny")
    behind = page.versus(cfg, _rows(), "classifier baseline", "supervised", "tiny")
    assert "classifier baseline minus the input mixture" in ahead and ": +" in ahead
    assert "classifier baseline minus the supervised" in behind and ": -" in behind
    sentences = page.transcription_differences(cfg, _rows(), "tiny")
    assert "fine-tune minus the transcriptor" in sentences[0] and "+0.100" in sentences[0]
    assert "fine-tune + ATL minus the fine-tune" in sentences[1] and "-0.050" in sentences[1]


def test_adversaries_are_read_against_plain_fine_tuning(cfg):
    table = page.against_plain_fine_tuning(cfg, _rows())
    atl = table.loc["fine-tune + ATL"]
    assert atl["SI-SDR bass (dB)"].startswith("+1.00") and atl["SI-SDR guitar (dB)"].startswith("-0.50")
    assert atl["SI-SDR Avg (dB)"].startswith("+0.00") and atl["note F1 (mixture)"].startswith("-0.050")
    assert atl["SI-SDR bass (dB)"].endswith("(3/3)") and atl["SI-SDR guitar (dB)"].endswith("(0/3)")
    assert (table.loc["fine-tune + AML"] == "–").all(), "a variant without rows is shown as missing"


def test_gap_closed_and_what_the_critic_reads(cfg):
    ours, paper = page.gap_closed(_rows())
    assert ours == pytest.approx((4.1 + 3.0) / (8.1 + 3.0)) and paper == pytest.approx(7.3 / 10.5)
    reads = page.critic_reads(cfg, _rows())
    assert reads.loc["accuracy (isolated)", "bass"] == pytest.approx(0.8)
    assert reads.loc["note F1 (mixture)", "piano"] == pytest.approx(0.5)


def test_adversary_choices_list_every_candidate_and_mark_the_choice():
    histories = {("fine-tune + ATL", 1): {"candidates": {"fine-tune + ATL @ 0.1": 0.5, "fine-tune + ATL @ 0.3": 0.4},
                                          "chosen": "fine-tune + ATL @ 0.3"},
                 ("fine-tune", 0): {"loss": [1.0]}}
    table = page.adversary_choices(histories)
    assert list(table["w"]) == [0.1, 0.3] and list(table["chosen"]) == ["", "✓"]


def test_bad_settings_and_missing_data_are_named(monkeypatch):
    with pytest.raises(ValueError, match="frames"):
        transcription.config("tiny", frames=60)
    monkeypatch.delenv("SLAKH_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match="SLAKH_PATH"):
        transcription.data(transcription.config("paper"))


def test_first_and_last_averages_the_ends_of_every_seeds_curve():
    histories = {("a", 0): {"L": [4.0, 2.0, 1.0]}, ("a", 1): {"L": [2.0, 3.0]}, ("b", 0): {"L": [9.0]}}
    assert page.first_and_last(histories, "a", "L") == (3.0, 2.0)
    with pytest.raises(ValueError, match="no run of 'c'"):
        page.first_and_last(histories, "c", "L")


def test_the_ceiling_table_puts_the_ideal_mask_above_the_mixture(cfg, splits):
    tracks = splits.test
    rows = [*transcription.reference_rows(cfg, tracks)]
    rows += [dict(r, variant="supervised", seed=0, value=r["value"] + 5.0) for r in rows]
    table = page.ceiling_table(cfg, report.frame(rows), tracks)     # a page passes the committed frame
    assert page.ceiling_table(cfg, rows, tracks).equals(table)
    assert list(table.index) == ["input mixture", "supervised", "ideal mask", f"supervised ≥ {page.CEILING_AIM:g} dB"]
    for name in cfg["instruments"]:
        mixture, supervised, ideal = (float(table.loc[row, name]) for row in ("input mixture", "supervised", "ideal mask"))
        assert ideal > mixture + 3 and supervised == pytest.approx(mixture + 5.0, abs=0.06)
        assert table.loc[table.index[-1], name] == ("yes" if supervised >= page.CEILING_AIM else "no")


def test_a_poster_conclusion_holds_only_when_every_claim_under_it_reproduced():
    from types import SimpleNamespace

    from sepbook.recipes.transcription.claims import CLAIMS, POSTER

    def verdicts(**special):
        return [SimpleNamespace(claim=c, verdict=special.get(c.id, "reproduced")) for c in CLAIMS]

    assert set(page.poster_verdicts(verdicts(), POSTER)["at this size"]) == {"held"}
    mixed = page.poster_verdicts(verdicts(**{"T1 fine-tune + ATL > fine-tune": "inconclusive",
                                             "T1 isolated c+h-mix > isolated h-mix": "contradicted"}), POSTER)
    assert list(mixed["at this size"]) == ["held", "contradicted", "not shown at this size", "held"]
    with pytest.raises(ValueError, match="no verdict"):
        page.poster_verdicts(verdicts()[1:], POSTER)
