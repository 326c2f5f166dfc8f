"""The Foundations recipe end to end at a tiny size: data, training, evaluation, the contract every chapter keeps."""
import numpy as np
import pytest
import torch

from sepbook.experiments import report
from sepbook.recipes import foundations

TINY = dict(n_train=6, n_test=2, song_seconds=4.0, steps=300, valid_every=100, batch_size=8, hidden=32, seeds=(0,))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Generated corpora go to a temporary folder, never to the checkout's data/generated."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SEPBOOK_DATA", str(tmp_path_factory.mktemp("data")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def cfg():
    return foundations.config("tiny", **TINY)


@pytest.fixture(scope="module")
def splits(data_root, cfg):
    return foundations.data(cfg)


@pytest.fixture(scope="module")
def trained(splits, cfg):
    return foundations.train(cfg, splits, "BLSTM", 0, progress=False, live=False)


@pytest.fixture(scope="module")
def rows(trained, splits, cfg):
    model, _ = trained
    return foundations.evaluate(cfg, {("BLSTM", 0): model}, splits.test) + foundations.reference_rows(cfg, splits.test)


@pytest.mark.slow
def test_trained_blstm_beats_the_mixture_and_stays_below_the_oracle(rows):
    gains = report.summary([r for r in rows if r["metric"] == "SI-SDRi"])["mean"]
    assert set(gains.index) == {"mixture", "BLSTM"} | {f"oracle {k.upper()}" for k in foundations.ORACLES}
    assert gains["mixture"] == pytest.approx(0.0, abs=1e-4)
    # a few hundred steps give a clear gain over doing nothing; the oracle ratio mask is still far above
    assert gains["oracle IRM"] > gains["BLSTM"] > 4.0
    per_source = report.summary([r for r in rows if r["metric"] == "SI-SDRi" and r["variant"] == "BLSTM"],
                                by=("source",))["mean"]
    # every source gains; the sampled guitars and pianos of 'other' gain least at this size
    assert (per_source > 1.0).all() and per_source.drop("other").min() > 2.0, per_source.to_dict()


def test_training_history_and_best_validation_weights(trained, splits, cfg):
    model, history = trained
    assert len(history["loss"]) == cfg["steps"] and history["valid_step"] == [100, 200, 300]
    assert np.mean(history["loss"][-20:]) < 0.5 * np.mean(history["loss"][:20])
    best = max(v["valid SI-SDRi"] for v in history["valid"])
    again = foundations.si_sdr_rows(lambda t: foundations.separate(model, t.mixture), splits.valid, cfg, "BLSTM")
    assert np.mean([r["value"] for r in again if r["metric"] == "SI-SDRi"]) == pytest.approx(best, abs=1e-3)
    assert not model.training and next(model.parameters()).device.type == "cpu"


def test_rows_follow_the_report_columns(rows, splits, cfg):
    assert all(tuple(r) == report.COLUMNS for r in rows)
    blstm = [r for r in rows if r["variant"] == "BLSTM"]
    assert len(blstm) == len(splits.test) * len(cfg["sources"]) * 2  # SI-SDR and SI-SDRi
    assert {r["seed"] for r in blstm} == {0} and {r["seed"] for r in rows if r["variant"] == "mixture"} == {None}
    assert all(np.isfinite(r["value"]) for r in rows)


def test_splits_hold_out_validation_songs(splits, cfg):
    names = [[t.name for t in part] for part in (splits.train, splits.valid, splits.test)]
    assert len(names[0]) + len(names[1]) == cfg["n_train"] and len(names[2]) == cfg["n_test"]
    assert not set(names[0]) & set(names[1]) and not (set(names[0]) | set(names[1])) & set(names[2])
    track = splits.test[0]
    assert track.sources.shape[:2] == (len(cfg["sources"]), 1) and track.source_names == cfg["sources"]
    torch.testing.assert_close(track.sources.sum(0), track.mixture)
    with pytest.raises(ValueError, match="2 training songs"):
        foundations.split_validation(splits.test[:1])


def test_recipe_contract(trained, splits, cfg):
    model, _ = trained
    assert foundations.runs(foundations.config("tiny", seeds=(3, 4))) == [("BLSTM", 3), ("BLSTM", 4)]
    track = splits.test[0]
    estimates = foundations.separate(model, track.mixture)
    assert estimates.shape == track.sources.shape and estimates.device.type == "cpu"
    assert isinstance(foundations.build(cfg), foundations.MaskSeparator)


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="stepz"):
        foundations.config("tiny", stepz=3)
    with pytest.raises(ValueError, match="'LSTM'"):
        foundations.build(foundations.config("tiny"), "LSTM")
    with pytest.raises(ValueError, match="kind"):
        foundations.oracle_fn("nmf", {})


def test_paper_profile_without_musdb_names_the_variable(monkeypatch):
    monkeypatch.delenv("MUSDB_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match="MUSDB_PATH"):
        foundations.load_tracks(foundations.config("paper"), "train")


def test_corpus_is_rebuilt_when_its_recipe_changes(tmp_path, monkeypatch):
    from sepbook.data import corpora, profiles

    monkeypatch.setenv("SEPBOOK_DATA", str(tmp_path))
    cfg = dict(profiles.settings("foundations", "tiny"), n_train=1, n_test=1, song_seconds=1.0)
    root = corpora.musdb_synth(cfg)
    assert root.parent == tmp_path
    first = (root / "corpus.json").stat().st_mtime_ns
    assert corpora.musdb_synth(cfg) == root and (root / "corpus.json").stat().st_mtime_ns == first
    monkeypatch.setattr(corpora, "_synth_digest", lambda: "changed")
    corpora.musdb_synth(cfg)
    assert (root / "corpus.json").stat().st_mtime_ns != first
    assert len(list((root / "train").iterdir())) == 1


def test_a_corpus_that_fails_halfway_leaves_nothing_half_built(tmp_path, monkeypatch):
    from sepbook.data import corpora, profiles

    monkeypatch.setenv("SEPBOOK_DATA", str(tmp_path))
    cfg = dict(profiles.settings("foundations", "tiny"), n_train=1, n_test=1, song_seconds=1.0)
    real = corpora.synth_songs

    def fails_on_the_test_songs(n, first_seed, *args):
        if first_seed == corpora.TEST_SEED:
            raise RuntimeError("interrupted")
        return real(n, first_seed, *args)

    monkeypatch.setattr(corpora, "synth_songs", fails_on_the_test_songs)
    with pytest.raises(RuntimeError, match="interrupted"):
        corpora.musdb_synth(cfg)
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []
    monkeypatch.setattr(corpora, "synth_songs", real)
    root = corpora.musdb_synth(cfg)
    assert sorted(p.name for p in root.iterdir()) == ["corpus.json", "test", "train"]


def test_the_test_scores_replayed_by_the_books_fonts_are_the_test_songs(splits, cfg):
    again = foundations.rendered_test_tracks(cfg, cfg["fonts"])
    assert [t.name for t in again] == [t.name for t in splits.test]
    for mine, stored in zip(again, splits.test):          # the corpus stores 16-bit audio
        torch.testing.assert_close(mine.sources, stored.sources, atol=2e-4, rtol=0)
    additive = foundations.rendered_test_tracks(cfg, None)
    assert not torch.allclose(additive[0].sources, again[0].sources, atol=1e-2)


def test_carry_over_reports_each_rendering_against_its_own_oracle(trained, cfg):
    model, _ = trained
    table = foundations.carry_over(cfg, {("BLSTM", 0): model})
    renderings = table.index.get_level_values("rendering").unique()
    assert len(renderings) == 3 and "TimGM6mb" in renderings[1]
    shares = table["share of oracle IRM"]
    assert np.allclose(shares.xs("oracle IRM", level="variant"), 1.0)
    assert (table["SI-SDRi"].xs("BLSTM", level="variant") > 0).all()      # it learned something that carries
    assert (shares.xs("BLSTM", level="variant") < 1).all()
