"""The adversarial chapter's recipe: data domains, batches, separation, evaluation tables, a tiny run end to end."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from sepbook.recipes import adversarial

SMALL = dict(song_seconds=2.0, n_paired=2, n_paired_eval=1, songs_per_third=2, steps=6, valid_every=3,
             batch_size=2, n_critic=1, frames=16, seeds=(0,), ablation_seeds=(0,))


@pytest.fixture(scope="module")
def cfg():
    return adversarial.config("tiny", **SMALL)


@pytest.fixture(scope="module")
def domains(cfg):
    return adversarial.build_domains(cfg)


@pytest.fixture(scope="module")
def result():
    return adversarial.run("tiny", device="cpu", **SMALL)


# --------------------------------------------------------------------------- end to end


def test_tiny_run_end_to_end(result, cfg):
    assert result["profile"] == "tiny"
    n_test = len(result["domains"].test)
    rows = result["rows"]
    assert len(rows) == len(adversarial.VARIANTS) * n_test * 2
    assert {r["variant"] for r in rows} == set(adversarial.VARIANTS)
    assert {r["source"] for r in rows} == {"Instrumental", "Voice"}
    assert all(math.isfinite(r[m]) for r in rows for m in ("SDR", "SIR", "SAR"))
    assert {r["variant"] for r in result["ablation_rows"]} == {"V (scarce)", "V (mismatched)"}

    histories = result["histories"]
    for variant in ("baseline", "V", "VA", "V (scarce)", "V (mismatched)"):
        history = histories[(variant, 0)]
        assert len(history["Ls"]) == len(history["Lu"]) == len(history["Ladd"]) == cfg["steps"]
        assert history["valid_step"] == [3, 6] and all(np.isfinite(history["valid_loss"]))
        assert 0 < history["best_step"] <= cfg["steps"]
    assert "vocals_wasserstein" not in histories[("baseline", 0)]
    assert set(histories[("baseline", 0)]["Lu"]) == {0.0}
    assert len(histories[("V", 0)]["vocals_wasserstein"]) == cfg["steps"]
    assert "accompaniment_wasserstein" not in histories[("V", 0)]
    assert len(histories[("VA", 0)]["accompaniment_gradient_penalty"]) == cfg["steps"]

    table = adversarial.paper_table(rows)
    assert list(table.index) == [label for label, _, _ in adversarial.METRIC_ROWS]
    assert list(table.columns.get_level_values(0).unique()) == ["Test set", *adversarial.PAPER_ROLES]
    assert "V" in adversarial.verdict(rows, "V", "tiny") and "tiny" in adversarial.verdict(rows, "V", "tiny")


def test_training_is_reproducible_and_variants_share_the_start(cfg, domains):
    sets = adversarial.spectrogram_sets(cfg, domains)
    small = dict(cfg, steps=2, valid_every=2)
    first, _, h1 = adversarial.train_variant(small, domains, "V", 0, sets=sets, progress=False)
    again, _, h2 = adversarial.train_variant(small, domains, "V", 0, sets=sets, progress=False)
    assert h1["Ls"] == h2["Ls"] and h1["vocals_wasserstein"] == h2["vocals_wasserstein"]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    baseline, _, hb = adversarial.train_variant(small, domains, "baseline", 0, sets=sets, progress=False)
    # same initial weights and the same first paired batch: the first supervised loss is identical
    assert hb["Ls"][0] == pytest.approx(h1["Ls"][0])


# --------------------------------------------------------------------------- data


def test_build_domains_gives_disjoint_sets_and_the_paper_roles(cfg, domains):
    names = [t.name for tracks in domains.sets().values() for t in tracks]
    assert len(names) == len(set(names)), "a song appears in two sets"
    assert domains.roles == {"pop": "DSD100", "rock": "MedleyDB", "jazz": "CCMixter", "electronic": "iKala"}
    assert {t.domain for t in domains.paired} == {"pop"}
    for name in ("unlabelled", "solo"):
        assert {t.domain for t in domains.sets()[name]} == {"rock", "jazz", "electronic"}
    for name in ("valid", "test"):
        assert {t.domain for t in domains.sets()[name]} == set(domains.roles)
    table = domains.role_table()
    assert list(table["plays the role of"]) == list(adversarial.PAPER_ROLES)
    track = domains.paired[0]
    assert track.sources.shape == (2, len(track.mixture))
    np.testing.assert_allclose(track.sources.sum(0), track.mixture, atol=1e-5)


def test_scarce_and_mismatched_domains(cfg, domains):
    scarce = adversarial.scarce_domains(domains, 0.1)
    assert len(scarce.unlabelled) == 1 and len(scarce.solo) == 1
    assert scarce.test == domains.test
    mismatched = adversarial.mismatched_domains(cfg, domains)
    style = cfg["mismatched_style"]
    assert {t.domain for t in mismatched.unlabelled + mismatched.solo} == {style}
    assert style not in {t.domain for t in mismatched.test + mismatched.valid}
    assert mismatched.unlabelled[0].sources[1].any()  # the quartet got a singer
    with pytest.raises(ValueError, match="fraction"):
        adversarial.scarce_domains(domains, 0)
    with pytest.raises(ValueError, match="already"):
        adversarial.mismatched_domains(cfg, domains, style="rock")


def test_batches_are_deterministic_and_shaped(cfg, domains):
    sets = adversarial.spectrogram_sets(cfg, domains)
    bins = adversarial.n_bins(cfg)
    assert bins == cfg["n_fft"] // 2
    mixture, sources = adversarial.paired_batch(cfg, sets, seed=0, step=3)
    assert mixture.shape == (cfg["batch_size"], 1, bins, cfg["frames"])
    assert sources.shape == (cfg["batch_size"], 2, bins, cfg["frames"])
    again, _ = adversarial.paired_batch(cfg, sets, seed=0, step=3)
    other, _ = adversarial.paired_batch(cfg, sets, seed=0, step=4)
    assert torch.equal(mixture, again) and not torch.equal(mixture, other)
    solo = adversarial.solo_batch(cfg, sets, seed=0, step=3)
    assert set(solo) == set(adversarial.SOURCES)
    assert all(x.shape == mixture.shape and (x >= 0).all() for x in solo.values())
    assert adversarial.unlabelled_batch(cfg, sets, seed=0, step=3).shape == mixture.shape


def test_paper_profile_without_data_names_what_is_missing(monkeypatch):
    monkeypatch.delenv(adversarial.REAL_DATA_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=adversarial.REAL_DATA_ENV):
        adversarial.build_domains(adversarial.config("paper"))


# --------------------------------------------------------------------------- separation


class SplitSeparator(nn.Module):
    """Gives 30 % of the mixture magnitude to the accompaniment and 70 % to the voice."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, log_mix):
        linear = torch.expm1(log_mix)
        return torch.log1p(torch.cat([0.3 * linear, 0.7 * linear], dim=1))


def test_separate_returns_waveforms_that_sum_to_the_mixture(cfg, domains):
    mixture = domains.test[0].mixture[:12_345]  # not a multiple of the hop or of a chunk
    voice, accompaniment = adversarial.separate(SplitSeparator(), mixture, cfg)
    assert voice.shape == accompaniment.shape == mixture.shape
    error = np.sqrt(np.mean((voice + accompaniment - mixture) ** 2)) / np.sqrt(np.mean(mixture**2))
    assert error < 0.02  # only the dropped Nyquist bin is missing
    np.testing.assert_allclose(voice, 0.7 / 0.3 * accompaniment, atol=1e-4)


def test_separate_with_a_unet_and_bad_input(cfg):
    separator = adversarial.build_separator(cfg)
    mixture = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    voice, accompaniment = adversarial.separate(separator, torch.from_numpy(mixture)[None], cfg)
    assert voice.shape == accompaniment.shape == (5000,)
    with pytest.raises(ValueError, match="mono"):
        adversarial.separate(separator, np.zeros((2, 5000), np.float32), cfg)
    with pytest.raises(ValueError, match="shorter"):
        adversarial.separate(separator, np.zeros(10, np.float32), cfg)


# --------------------------------------------------------------------------- tables


def _fake_rows(gain=1.0, seeds=(0, 1, 2)):
    rows = []
    for seed in seeds:
        for variant in adversarial.VARIANTS:
            for role in adversarial.PAPER_ROLES:
                for source in ("Instrumental", "Voice"):
                    base = 5.0 + seed
                    value = base + (gain if variant != "baseline" and role != "DSD100" else 0.0)
                    rows.append({"variant": variant, "seed": seed, "track": f"{role}-1", "domain": role, "role": role,
                                 "source": source, "SDR": value, "SIR": value + 5, "SAR": value + 3})
    return rows


def test_paper_layout_tables_have_the_papers_shape():
    ours, paper = adversarial.paper_table(_fake_rows()), adversarial.paper_numbers_table()
    assert ours.shape == paper.shape == (6, 15)
    assert list(ours.index) == ["SDR Inst.", "SDR V.", "SIR Inst.", "SIR V.", "SAR Inst.", "SAR V."]
    assert list(ours.columns) == list(paper.columns)
    assert tuple(paper.loc["SDR V.", "iKala"]) == (9.50, 10.47, 10.52)
    assert ours.loc["SDR V.", ("DSD100", "baseline")] == "6.00 ± 0.82"
    assert adversarial.side_by_side(_fake_rows(), "tiny").shape == (6, 30)
    assert adversarial.gains_table(_fake_rows()).shape[1] == 12


def test_improvements_and_verdict_follow_the_numbers():
    gains = adversarial.improvements(_fake_rows(gain=1.0))
    assert gains.loc[("V", "out-of-domain"), "SDR V."] == pytest.approx(1.0)
    assert gains.loc[("V", "DSD100"), "SDR V."] == pytest.approx(0.0)
    assert gains.loc[("VA", "iKala"), "SDR V. wins"] == 3
    assert "beats the baseline outside the supervised domain in every seed" in adversarial.verdict(
        _fake_rows(gain=1.0), "V", "book")
    assert "does not beat" in adversarial.verdict(_fake_rows(gain=-1.0), "V", "book")
    paper = adversarial.paper_improvements()
    assert paper.loc[("V", "Test set"), "SDR V."] == pytest.approx(0.48)


def test_save_and_load_models_round_trip(tmp_path, cfg):
    torch.manual_seed(0)
    separator = adversarial.build_separator(cfg)
    critics = adversarial.build_variant_critics(cfg, "V")
    path = adversarial.save_models(tmp_path / "book-adversarial.pt", cfg, {("V", 0): separator}, _fake_rows()[:3],
                                   critics={("V", 0): critics})
    loaded = adversarial.load_models(path)
    assert loaded["rows"] == _fake_rows()[:3]
    assert loaded["cfg"]["seeds"] == cfg["seeds"]
    for a, b in zip(separator.state_dict().values(), loaded["separators"][("V", 0)].state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)
    assert set(loaded["critics"][("V", 0)]) == {"vocals"}
    with pytest.raises(FileNotFoundError):
        adversarial.load_models(tmp_path / "missing.pt")


# --------------------------------------------------------------------------- bad input


def test_bad_overrides_and_variants_are_named(cfg, domains):
    with pytest.raises(ValueError, match="stepz"):
        adversarial.run("tiny", stepz=3)
    with pytest.raises(ValueError, match="frames"):
        adversarial.config("tiny", frames=12)
    with pytest.raises(ValueError, match="steps"):
        adversarial.config("tiny", steps=0)
    with pytest.raises(ValueError, match="'VX'"):
        adversarial.train_variant(cfg, domains, "VX")
    with pytest.raises(ValueError, match="'AV'"):
        adversarial.train_all(cfg, domains, variants=("baseline", "AV"))
    with pytest.raises(ValueError, match="domain_styles"):
        adversarial.build_domains(dict(cfg, domain_styles=("rock", "jazz")))
    with pytest.raises(ValueError, match="jazzz"):
        adversarial.build_domains(dict(cfg, domain_styles=("rock", "jazzz", "electronic")))


def test_excerpts_never_straddle_songs_of_different_lengths():
    bank = adversarial.Bank(torch.cat([torch.zeros(1, 4, 20), torch.ones(1, 4, 37)], dim=-1),
                            np.array([0, 20]), np.array([20, 37]))
    excerpts = adversarial._draw(bank, 200, 8, np.random.default_rng(0))
    assert excerpts.shape == (200, 1, 4, 8)
    per_excerpt = excerpts.flatten(1)
    assert bool(((per_excerpt == 0).all(1) | (per_excerpt == 1).all(1)).all())
    # positions are uniform over the 13 + 30 possible starts, so the longer song is drawn more often
    assert 0.55 < float((per_excerpt[:, 0] == 1).float().mean()) < 0.85
    assert bank.excerpts(8).shape == (2 + 4, 1, 4, 8)
