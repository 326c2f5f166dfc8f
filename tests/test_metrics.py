import numpy as np
import pytest
import torch

from sepbook import metrics

SR = 8000


def noise(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def at_snr(reference, snr_db, seed=1):
    """reference + noise orthogonal to it (and zero-mean), scaled to exactly ``snr_db``."""
    reference = reference - reference.mean()
    extra = noise(reference.size, seed=seed)
    extra -= extra.mean()
    extra -= extra @ reference / (reference @ reference) * reference
    extra *= np.sqrt((reference @ reference) / (extra @ extra) / 10 ** (snr_db / 10))
    return reference + extra


def test_si_sdr_of_a_scaled_copy_is_very_high_and_scale_invariant():
    reference = torch.from_numpy(noise(3, 4000)).float()
    assert (metrics.si_sdr(0.7 * reference, reference) > 80).all()
    estimate = reference + 0.3 * torch.from_numpy(noise(3, 4000, seed=5)).float()
    louder = metrics.si_sdr(3 * estimate, reference)
    torch.testing.assert_close(louder, metrics.si_sdr(estimate, reference), atol=1e-3, rtol=0)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.0])
def test_si_sdr_of_reference_plus_noise_is_the_snr(snr_db):
    reference = noise(16000)
    estimate = at_snr(reference, snr_db)
    assert abs(float(metrics.si_sdr(estimate, reference)) - snr_db) < 0.5


def test_si_sdr_is_batched_over_leading_axes():
    reference = noise(2, 3, 1, 500)
    estimate = reference + 0.1 * noise(2, 3, 1, 500, seed=2)
    scores = metrics.si_sdr(estimate, reference)
    assert scores.shape == (2, 3, 1)
    assert torch.isclose(scores[1, 2, 0], metrics.si_sdr(estimate[1, 2, 0], reference[1, 2, 0]))


def test_si_sdr_is_differentiable_and_finite_on_silence():
    estimate = torch.randn(2, 1000, requires_grad=True)
    reference = torch.stack([torch.randn(1000), torch.zeros(1000)])
    loss = -metrics.si_sdr(estimate, reference).mean()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(estimate.grad).all()
    assert float(metrics.si_sdr(torch.zeros(100), torch.zeros(100))) == 0.0
    assert float(metrics.si_sdr(torch.ones(100), torch.zeros(100), zero_mean=False)) < -50


def test_si_sdr_improvement_of_the_mixture_itself_is_zero():
    sources = torch.from_numpy(noise(3, 2, 800))
    mixture = sources.sum(dim=0)
    assert torch.equal(metrics.si_sdr_improvement(mixture.expand(3, 2, 800), sources, mixture), torch.zeros(3, 2))
    improved = metrics.si_sdr_improvement(sources, sources, mixture)
    assert improved.shape == (3, 2) and (improved > 50).all()


def test_si_sdr_improvement_broadcasts_a_mono_mixture_over_sources():
    sources = noise(2, 400)
    assert metrics.si_sdr_improvement(sources, sources, sources.sum(axis=0)).shape == (2,)


def test_bss_eval_shapes_and_frames():
    references = noise(2, 2, 2 * SR)
    scores = metrics.bss_eval(references, references + 0.1 * noise(2, 2, 2 * SR, seed=3), SR)
    assert set(scores) == {"SDR", "SIR", "SAR", "ISR"}
    assert all(values.shape == (2, 2) for values in scores.values())
    assert (scores["SDR"] > 15).all() and (scores["SDR"] < 25).all()
    whole = metrics.bss_eval(references[:, 0], references[:, 0] + 0.1 * noise(2, 2 * SR), SR, window_seconds=None)
    assert whole["SDR"].shape == (2, 1)


def test_bss_eval_sdr_is_not_scale_invariant_but_si_sdr_is():
    """BSS Eval v4 (images) compares with the true source image itself: a gain error is distortion."""
    reference = noise(2, SR)
    doubled = metrics.bss_eval(reference, 2 * reference, SR)
    # The error 2s - s has the energy of s: SDR = 0 dB, although SI-SDR sees a perfect estimate.
    np.testing.assert_allclose(doubled["SDR"], 0.0, atol=1e-6)
    assert (metrics.si_sdr(2 * reference, reference) > 80).all()


def test_bss_eval_gives_nan_for_silent_frames_and_silent_sources():
    references = noise(3, 2 * SR)
    references[1, :SR] = 0
    references[2] = 0
    scores = metrics.bss_eval(references, references + 0.1 * noise(3, 2 * SR, seed=4), SR)
    assert np.isnan(scores["SDR"][:, 0]).all()  # any silent source blanks the whole frame (museval's rule)
    assert np.isfinite(scores["SDR"][:2, 1]).all()
    assert np.isnan(scores["SDR"][2]).all()  # silent all along: nothing to score


def test_bss_eval_summary_takes_frame_medians_then_track_aggregate():
    nan = np.nan
    track_a = {name: np.array([[1.0, 2.0, 9.0], [nan, nan, nan]]) for name in metrics.BSS_METRICS}
    track_b = {name: np.array([[4.0, nan, 4.0], [3.0, 5.0, nan]]) for name in metrics.BSS_METRICS}
    track_c = {name: np.array([[7.0, 8.0, 6.0], [1.0, 1.0, 1.0]]) for name in metrics.BSS_METRICS}
    median = metrics.bss_eval_summary([track_a, track_b, track_c], ["bass", "drums"])
    assert median["bass"] == {name: 4.0 for name in metrics.BSS_METRICS}  # medians 2, 4, 7
    assert median["drums"]["SDR"] == 2.5  # track a has no scorable frame; medians 4 and 1
    mean = metrics.bss_eval_summary([track_a, track_b, track_c], ["bass", "drums"], over_tracks="mean")
    assert mean["bass"]["SIR"] == pytest.approx(13 / 3)


def notes(*rows):
    return np.array(rows, dtype=float).reshape(-1, 3)


def test_transcription_metrics_identical_and_disjoint_notes():
    reference = notes([0.0, 0.5, 60], [0.5, 1.0, 64], [1.0, 2.0, 67])
    assert metrics.transcription_metrics(reference, reference)["f1"] == 1.0
    nudged = reference + [0.03, 0.3, 0]  # onset within 50 ms, offsets ignored by default
    assert metrics.transcription_metrics(reference, nudged)["f1"] == 1.0
    assert metrics.transcription_metrics(reference, nudged, offset_ratio=0.2)["f1"] == 0.0
    disjoint = notes([0.0, 0.5, 48], [3.0, 3.5, 64])
    scores = metrics.transcription_metrics(reference, disjoint)
    assert scores["f1"] == 0.0 and scores["precision"] == 0.0 and scores["recall"] == 0.0
    half = metrics.transcription_metrics(reference, np.column_stack([reference[:1], [100]]))  # velocity column
    assert half["precision"] == 1.0 and half["recall"] == pytest.approx(1 / 3)


def test_frame_metrics_identical_disjoint_and_partial_rolls():
    roll = np.zeros((20, 128), dtype=bool)
    roll[2:10, 60] = True
    roll[5:15, 64] = True
    assert metrics.frame_metrics(roll, roll, frame_rate=50)["f1"] == 1.0
    other = np.zeros_like(roll)
    other[2:10, 61] = True
    assert metrics.frame_metrics(roll, other, frame_rate=50)["f1"] == 0.0
    only_c = np.zeros_like(roll)
    only_c[2:10, 60] = True
    scores = metrics.frame_metrics(roll, only_c, frame_rate=50)
    assert scores["precision"] == 1.0 and scores["recall"] == pytest.approx(8 / 18)


ref = noise(2, 400)
BAD_CALLS = {
    "si_sdr shapes": (lambda: metrics.si_sdr(ref[:, :300], ref), "estimate"),
    "si_sdr nan estimate": (lambda: metrics.si_sdr(ref * np.nan, ref), "estimate"),
    "si_sdr inf reference": (lambda: metrics.si_sdr(ref, ref * np.inf), "reference"),
    "si_sdr empty": (lambda: metrics.si_sdr(np.zeros((2, 0)), np.zeros((2, 0))), "empty"),
    "improvement mixture": (lambda: metrics.si_sdr_improvement(ref, ref, ref[0, :100]), "mixture"),
    "bss one-dimensional": (lambda: metrics.bss_eval(ref[0], ref[0], SR), "references"),
    "bss shapes": (lambda: metrics.bss_eval(ref, ref[:, :300], SR), "estimates"),
    "bss channels": (lambda: metrics.bss_eval(ref[:, None], np.stack([ref, ref], axis=1), SR), "estimates"),
    "bss nan": (lambda: metrics.bss_eval(ref, ref * np.nan, SR), "estimates"),
    "bss sr": (lambda: metrics.bss_eval(ref, ref, 0), "sr"),
    "bss window": (lambda: metrics.bss_eval(ref, ref, SR, window_seconds=0.00001), "window_seconds"),
    "summary empty": (lambda: metrics.bss_eval_summary([], ["bass"]), "per_track"),
    "summary names": (
        lambda: metrics.bss_eval_summary([{m: np.zeros((2, 3)) for m in metrics.BSS_METRICS}], ["bass"]),
        r"per_track\[0\]",
    ),
    "summary aggregate": (lambda: metrics.bss_eval_summary([{}], ["bass"], over_tracks="max"), "over_tracks"),
    "notes columns": (lambda: metrics.transcription_metrics(np.zeros((2, 2)), notes()), "ref_notes"),
    "notes reversed": (lambda: metrics.transcription_metrics(notes(), notes([1.0, 0.5, 60])), "est_notes"),
    "notes nan": (lambda: metrics.transcription_metrics(notes([0.0, np.nan, 60]), notes()), "ref_notes"),
    "roll pitches": (lambda: metrics.frame_metrics(np.zeros((5, 88)), np.zeros((5, 88)), 50), "ref_roll"),
    "roll frames": (lambda: metrics.frame_metrics(np.zeros((5, 128)), np.zeros((6, 128)), 50), "est_roll"),
    "roll rate": (lambda: metrics.frame_metrics(np.zeros((5, 128)), np.zeros((5, 128)), 0), "frame_rate"),
}


@pytest.mark.parametrize("case", BAD_CALLS, ids=list(BAD_CALLS))
def test_bad_input_raises_value_error_naming_it(case):
    call, words = BAD_CALLS[case]
    with pytest.raises(ValueError, match=words):
        call()
