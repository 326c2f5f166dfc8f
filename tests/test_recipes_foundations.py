import pytest
import torch

from sepbook.recipes import foundations


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    import os

    old = os.environ.get("SEPBOOK_DATA")
    os.environ["SEPBOOK_DATA"] = str(tmp_path_factory.mktemp("data"))
    try:
        yield foundations.run("tiny", n_train=6, n_test=2, song_seconds=4.0, steps=60, valid_every=30,
                              batch_size=8, hidden=32, seeds=(0,))
    finally:
        if old is None:
            os.environ.pop("SEPBOOK_DATA")
        else:
            os.environ["SEPBOOK_DATA"] = old


def test_tiny_run_end_to_end(result):
    summary = foundations.summarise(result["rows"])
    assert result["profile"] == "tiny"
    assert set(summary.index) == {"mixture", "BLSTM"} | {f"oracle {k.upper()}" for k in foundations.ORACLES}
    assert summary.loc["mixture", "mean"] == pytest.approx(0.0, abs=1e-4)
    # the oracle ratio mask is the ceiling, and even 60 steps of training beat doing nothing
    assert summary.loc["oracle IRM", "mean"] > summary.loc["BLSTM", "mean"] > 0.5
    history = result["histories"][0]
    assert len(history["loss"]) == 60 and len(history["valid"]) == 2


def test_unknown_override_is_named():
    with pytest.raises(ValueError, match="stepz"):
        foundations.run("tiny", stepz=3)


def test_oracle_kind_is_checked():
    with pytest.raises(ValueError, match="kind"):
        foundations.oracle_fn("nmf", {})


def test_mixture_baseline_shape():
    track = foundations.Track("t", torch.randn(1, 100), torch.randn(3, 1, 100))
    assert foundations.mixture_fn(track).shape == (3, 1, 100)


def test_corpus_is_rebuilt_when_its_recipe_changes(tmp_path, monkeypatch):
    from sepbook import corpora, profiles

    monkeypatch.setenv("SEPBOOK_DATA", str(tmp_path))
    cfg = dict(profiles.settings("foundations", "tiny"), n_train=1, n_test=1, song_seconds=1.0)
    root = corpora.musdb_synth(cfg)
    first = (root / "corpus.json").stat().st_mtime_ns
    assert corpora.musdb_synth(cfg) == root and (root / "corpus.json").stat().st_mtime_ns == first
    monkeypatch.setattr(corpora, "_synth_digest", lambda: "changed")
    corpora.musdb_synth(cfg)
    assert (root / "corpus.json").stat().st_mtime_ns != first
    assert len(list((root / "train").iterdir())) == 1
