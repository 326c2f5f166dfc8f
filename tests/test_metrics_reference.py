"""Every metric of sepbook.metrics, at its default arguments, against a computation written out here
from the metric's definition with numpy (never through the library the package itself calls for it:
museval for BSS Eval, mir_eval for the transcription scores).

The activity and transcription chapters' result scores (sepbook.recipes.*.evaluation) are checked the
same way at the end.
"""
import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from sepbook import metrics
from sepbook.recipes.activity.evaluation import detection_scores
from sepbook.recipes.transcription.evaluation import transcription_scores


def rng(seed):
    return np.random.default_rng(seed)


# ============================================================================= SI-SDR


def si_sdr_reference(estimate, reference):
    """SI-SDR (Le Roux et al. 2019) in dB over the last axis, both signals made zero-mean first:
    ``10 log10(|a s|^2 / |a s - s_hat|^2)`` with ``a = <s_hat, s> / |s|^2``."""
    estimate = estimate - estimate.mean(axis=-1, keepdims=True)
    reference = reference - reference.mean(axis=-1, keepdims=True)
    scale = (estimate * reference).sum(-1, keepdims=True) / (reference ** 2).sum(-1, keepdims=True)
    target = scale * reference
    return 10 * np.log10((target ** 2).sum(-1) / ((estimate - target) ** 2).sum(-1))


def noisy_pairs(seed=0, shape=(3, 2, 800)):
    """References with a DC offset and estimates at SNRs from about -10 to +30 dB, plus a gain and an offset."""
    g = rng(seed)
    reference = g.standard_normal(shape) + g.uniform(-1, 1, shape[:-1] + (1,))
    levels = 10 ** (g.uniform(-1.5, 0.5, shape[:-1] + (1,)))
    estimate = g.uniform(0.3, 3, shape[:-1] + (1,)) * reference + levels * g.standard_normal(shape) + 0.5
    return estimate, reference


def test_si_sdr_at_default_arguments_equals_the_definition():
    estimate, reference = noisy_pairs()
    expected = si_sdr_reference(estimate, reference)
    assert expected.min() < 0 and expected.max() > 20
    np.testing.assert_allclose(metrics.si_sdr(estimate, reference).numpy(), expected, atol=1e-6, rtol=0)
    as_float32 = metrics.si_sdr(torch.from_numpy(estimate).float(), torch.from_numpy(reference).float())
    np.testing.assert_allclose(as_float32.numpy(), expected, atol=1e-3, rtol=0)


def test_si_sdr_of_a_silent_reference_is_the_documented_floor():
    estimate = rng(1).standard_normal((2, 500))
    centred = estimate - estimate.mean(axis=-1, keepdims=True)
    expected = 10 * np.log10(1e-8 / ((centred ** 2).sum(-1) + 1e-8))
    np.testing.assert_allclose(metrics.si_sdr(estimate, np.zeros((2, 500))).numpy(), expected, rtol=1e-9)


def test_si_sdr_improvement_at_default_arguments_equals_the_definition():
    g = rng(2)
    sources = g.standard_normal((2, 3, 2, 600))                     # (batch, K, channels, time)
    mixture = sources.sum(axis=1)                                   # (batch, channels, time)
    estimate = sources + 0.4 * g.standard_normal(sources.shape)
    expected = si_sdr_reference(estimate, sources) - si_sdr_reference(
        np.broadcast_to(mixture[:, None], sources.shape), sources)
    got = metrics.si_sdr_improvement(estimate, sources, mixture)
    assert got.shape == (2, 3, 2)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6, rtol=0)


# ============================================================================= BSS Eval v4

FILTER_TAPS = 512    # BSS Eval's distortion filters: delays 0 .. 511 samples


def delays(signal, taps=FILTER_TAPS):
    """``(len(signal) + taps - 1, taps)``: column ``d`` is ``signal`` delayed by ``d`` samples."""
    out = np.zeros((len(signal) + taps - 1, taps))
    for d in range(taps):
        out[d:d + len(signal), d] = signal
    return out


def bss_eval_reference(references, estimates, window, hop):
    """BSS Eval v4 images (Vincent et al. 2006; Liutkus, Stoter and Ito 2018), mono ``(K, time)``.

    For estimate ``j``: its least-squares projection, over the whole signal, onto the delayed copies of
    reference ``j`` (``P_j``) and of all references (``P``). Every frame then splits the estimate into
    ``s = s_j``, ``e_spat = P_j - s``, ``e_interf = P - P_j`` and ``e_artif = s_hat - P``, the filters
    applied to the frame's samples only and their tails kept.
    """
    n_sources, length = references.shape
    padded = np.pad(estimates, ((0, 0), (0, FILTER_TAPS - 1)))
    everything = np.hstack([delays(r) for r in references])
    gram = everything.T @ everything
    n_frames = 1 + (length - window) // hop
    scores = {name: np.zeros((n_sources, n_frames)) for name in metrics.BSS_METRICS}
    for j in range(n_sources):
        own = slice(j * FILTER_TAPS, (j + 1) * FILTER_TAPS)
        all_filters = np.linalg.solve(gram, everything.T @ padded[j])
        own_filter = np.linalg.solve(gram[own, own], everything[:, own].T @ padded[j])
        for t in range(n_frames):
            frame = slice(t * hop, t * hop + window)
            windowed = np.hstack([delays(r[frame]) for r in references])
            s_true = np.pad(references[j, frame], (0, FILTER_TAPS - 1))
            projected_own = windowed[:, own] @ own_filter
            projected_all = windowed @ all_filters
            e_spat, e_interf = projected_own - s_true, projected_all - projected_own
            e_artif = np.pad(estimates[j, frame], (0, FILTER_TAPS - 1)) - projected_all

            def db(numerator, denominator):
                return 10 * np.log10(np.sum(numerator ** 2) / np.sum(denominator ** 2))

            scores["SDR"][j, t] = db(s_true, e_spat + e_interf + e_artif)
            scores["ISR"][j, t] = db(s_true, e_spat)
            scores["SIR"][j, t] = db(s_true + e_spat, e_interf)
            scores["SAR"][j, t] = db(s_true + e_spat + e_interf, e_artif)
    return scores


def distorted_estimates(references, seed):
    """Each estimate: its source, an echo of it (spatial distortion), some of the other source
    (interference) and noise (artifacts), each in a different proportion per source."""
    g = rng(seed)
    echo = np.roll(references, 3, axis=-1) * [[0.4], [0.2]]
    leak = references[::-1] * [[0.3], [0.15]]
    return references + echo + leak + 0.1 * g.standard_normal(references.shape)


def test_bss_eval_at_default_arguments_equals_the_definition():
    sr = 1000                                           # 1 s frames of 1000 samples; 4.5 s -> 4 frames
    references = rng(3).standard_normal((2, 4500))
    estimates = distorted_estimates(references, seed=4)
    scores = metrics.bss_eval(references, estimates, sr)
    expected = bss_eval_reference(references, estimates, window=sr, hop=sr)
    for name in metrics.BSS_METRICS:
        assert scores[name].shape == (2, 4)
        np.testing.assert_allclose(scores[name], expected[name], atol=1e-6, rtol=0, err_msg=name)
    # the four are different numbers, so a swapped name could not go unnoticed
    assert len({round(float(expected[name][0, 0]), 3) for name in metrics.BSS_METRICS}) == 4


def test_bss_eval_equals_museval_with_several_sources_channels_and_a_silent_frame():
    """metrics.bss_eval solves every estimate's distortion filters at once; museval solves them one
    estimate at a time. The numbers must be museval's (the NaN frames too). The song is long against
    the 512-tap filters of 3 sources x 2 channels: on a shorter one the filters are underdetermined,
    and how SDR's error splits into SIR and SAR then depends on rounding (numpy versions disagree)."""
    import museval

    sr = 2500
    g = rng(6)
    references = g.standard_normal((3, 2, 8000))          # (K, channels, time): 3 frames of 2500 samples
    references[1, :, 2500:5000] = 0                      # source 1 rests in frame 1: museval skips it
    estimates = references + 0.4 * references[[2, 0, 1]] + 0.3 * g.standard_normal(references.shape)
    scores = metrics.bss_eval(references, estimates, sr)
    expected = museval.metrics.bss_eval(references.transpose(0, 2, 1), estimates.transpose(0, 2, 1),
                                        window=sr, hop=sr)
    for name, values in zip(("SDR", "ISR", "SIR", "SAR"), expected):
        np.testing.assert_allclose(scores[name], values, atol=1e-6, rtol=0, err_msg=name)
    assert np.isnan(scores["SDR"][:, 1]).all() and np.isfinite(scores["SDR"][:, [0, 2]]).all()


def test_bss_eval_reuses_a_factorisation_only_for_the_same_references():
    """A song scored again (other estimates, same references) reuses its references' factorisation;
    other references, even one sample apart, get their own: every result is still museval's."""
    import museval

    sr, g = 2500, rng(7)
    first = g.standard_normal((2, 8000))
    second = first.copy()
    second[1, 4000] += 1.0
    for references in (first, second, first):
        estimates = references + 0.5 * g.standard_normal(references.shape)
        scores = metrics.bss_eval(references, estimates, sr)
        expected = museval.metrics.bss_eval(references[:, :, None], estimates[:, :, None], window=sr, hop=sr)
        np.testing.assert_allclose(scores["SDR"], expected[0], atol=1e-6, rtol=0)
    assert len(metrics._SOLVERS) >= 2

def test_bss_eval_sdr_of_every_frame_is_the_frame_snr_also_in_stereo():
    """In BSS Eval v4 images the SDR's error ``e_spat + e_interf + e_artif`` is ``s_hat - s``: each frame's
    SDR is its plain signal-to-error ratio, whatever the channels, the filters and the other sources."""
    sr = 500
    g = rng(5)
    references = g.standard_normal((2, 2, 1700))        # (K, channels, time): 3 full frames of 500 samples
    estimates = references + 0.3 * references[::-1, ::-1] + 0.2 * g.standard_normal(references.shape)
    scores = metrics.bss_eval(references, estimates, sr)
    frames = np.stack([np.arange(t * sr, (t + 1) * sr) for t in range(3)])          # (frames, samples)
    signal = (references[..., frames] ** 2).sum(axis=(1, 3))                          # (K, frames)
    error = ((estimates - references)[..., frames] ** 2).sum(axis=(1, 3))
    np.testing.assert_allclose(scores["SDR"], 10 * np.log10(signal / error), atol=1e-6, rtol=0)


# ============================================================================= the SiSEC summary


def summary_reference(per_track, names, aggregate):
    """Median over each track's non-NaN frames, then ``aggregate`` over the tracks that have one."""
    out = {}
    for k, source in enumerate(names):
        out[source] = {}
        for metric in metrics.BSS_METRICS:
            medians = []
            for track in per_track:
                values = [v for v in track[metric][k] if not math.isnan(v)]
                if values:
                    medians.append(float(np.median(values)))
            out[source][metric] = aggregate(medians) if medians else math.nan
    return out


def test_bss_eval_summary_at_default_arguments_is_median_of_frame_medians():
    g = rng(6)
    names = ["vocals", "drums", "bass"]
    per_track = []
    for n_frames in (5, 8, 3, 6):
        track = {}
        for metric in metrics.BSS_METRICS:
            values = g.normal(5, 4, (3, n_frames))
            values[g.random(values.shape) < 0.25] = np.nan
            track[metric] = values
        per_track.append(track)
    per_track[1]["SDR"][2] = np.nan                 # bass never scorable in track 1
    for track in per_track:
        track["SIR"][0] = np.nan                    # vocals' SIR never scorable
    got = metrics.bss_eval_summary(per_track, names)
    expected = summary_reference(per_track, names, lambda medians: float(np.median(medians)))
    for source in names:
        for metric in metrics.BSS_METRICS:
            if math.isnan(expected[source][metric]):
                assert math.isnan(got[source][metric]), (source, metric)
            else:
                assert got[source][metric] == pytest.approx(expected[source][metric], abs=1e-12), (source, metric)
    assert not math.isnan(expected["bass"]["SDR"])


# ============================================================================= note and frame scores


def matched_pairs(ref_notes, est_notes, onset_tolerance=0.05, pitch_cents=50.0):
    """A maximum one-to-one matching (augmenting paths) of notes whose onsets are within
    ``onset_tolerance`` seconds and pitches within ``pitch_cents``; offsets are ignored."""
    def compatible(r, e):
        return (abs(ref_notes[r, 0] - est_notes[e, 0]) <= onset_tolerance + 1e-9
                and abs(ref_notes[r, 2] - est_notes[e, 2]) * 100 <= pitch_cents + 1e-9)

    partner_of_est = {}

    def augment(r, seen):
        for e in range(len(est_notes)):
            if compatible(r, e) and e not in seen:
                seen.add(e)
                if e not in partner_of_est or augment(partner_of_est[e], seen):
                    partner_of_est[e] = r
                    return True
        return False

    for r in range(len(ref_notes)):
        augment(r, set())
    return sorted((r, e) for e, r in partner_of_est.items())


def note_scores_reference(ref_notes, est_notes):
    pairs = matched_pairs(ref_notes, est_notes)
    precision = len(pairs) / len(est_notes) if len(est_notes) else 0.0
    recall = len(pairs) / len(ref_notes) if len(ref_notes) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ratios = [(min(ref_notes[r, 1], est_notes[e, 1]) - max(ref_notes[r, 0], est_notes[e, 0]))
              / (max(ref_notes[r, 1], est_notes[e, 1]) - min(ref_notes[r, 0], est_notes[e, 0])) for r, e in pairs]
    return {"precision": precision, "recall": recall, "f1": f1, "overlap": float(np.mean(ratios)) if ratios else 0.0}


def random_transcription(seed):
    """Reference notes 0.4 s apart (so that each estimate can only ever match the note it came from),
    estimates with onsets off by up to 80 ms, pitches off by 0 to 100 cents, any offset, and a few
    notes between the reference onsets that match nothing."""
    g = rng(seed)
    ref = np.array([[0.4 * i + 0.1, 0.4 * i + 0.1 + g.uniform(0.05, 0.6), g.integers(40, 80)]
                    for i in range(30)])
    est = []
    for onset, offset, pitch in ref:
        if g.random() < 0.8:
            new_onset = onset + g.uniform(-0.08, 0.08)
            est.append([new_onset, new_onset + g.uniform(0.05, 0.8), pitch + g.choice([0, 0, 0, 0.3, -0.4, 0.7, 1])])
    for i in g.choice(30, 4, replace=False):
        est.append([0.4 * i + 0.3, 0.4 * i + 0.5, g.integers(40, 80)])
    return ref, np.array(est)[g.permutation(len(est))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transcription_metrics_at_default_arguments_equal_the_definition(seed):
    ref, est = random_transcription(seed)
    expected = note_scores_reference(ref, est)
    assert 0.2 < expected["f1"] < 0.9
    got = metrics.transcription_metrics(ref, est)
    assert set(got) == set(expected)
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name


def test_transcription_metrics_match_each_note_once_and_score_an_empty_side_zero():
    ref = np.array([[0.0, 0.5, 60.0], [1.0, 1.5, 62.0]])
    doubled = np.array([[0.0, 0.5, 60.0], [0.02, 0.4, 60.2], [1.04, 1.2, 61.6]])
    got, expected = metrics.transcription_metrics(ref, doubled), note_scores_reference(ref, doubled)
    assert expected["precision"] == pytest.approx(2 / 3) and expected["recall"] == 1.0
    for name in ("precision", "recall", "f1"):
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for a, b in ((ref, np.zeros((0, 3))), (np.zeros((0, 3)), ref)):
            empty = metrics.transcription_metrics(a, b)
            assert empty == {name: 0.0 for name in ("precision", "recall", "f1", "overlap")}


def frame_scores_reference(ref_roll, est_roll):
    """Frame-level multi-pitch scores summed over all frames: TP = notes in both rolls."""
    true_positive = np.sum(ref_roll & est_roll)
    n_est, n_ref = np.sum(est_roll), np.sum(ref_roll)
    precision, recall = true_positive / n_est, true_positive / n_ref
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall),
            "accuracy": true_positive / (n_est + n_ref - true_positive)}


def random_rolls(seed, low=21, high=109, frames=60):
    g = rng(seed)
    ref = np.zeros((frames, 128), bool)
    ref[:, low:high] = g.random((frames, high - low)) < 0.05
    est = ref.copy()
    flip = np.zeros_like(ref)
    flip[:, low:high] = g.random((frames, high - low)) < 0.04
    return ref, est ^ flip


@pytest.mark.parametrize("seed", [0, 1])
def test_frame_metrics_equal_the_definition(seed):
    ref, est = random_rolls(seed)
    expected = frame_scores_reference(ref, est)
    assert 0.2 < expected["accuracy"] < 0.9
    got = metrics.frame_metrics(ref, est, frame_rate=31.25)
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name


def test_frame_metrics_score_every_midi_pitch_of_the_roll():
    ref, est = random_rolls(3, low=0, high=128)
    expected = frame_scores_reference(ref, est)
    got = metrics.frame_metrics(ref, est, frame_rate=31.25)
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name


# ============================================================================= the chapters' result scores


def test_activity_detection_scores_equal_the_definition():
    g = rng(7)
    labels = g.random((4, 80)) < np.array([[0.5], [0.1], [0.9], [0.0]])
    predicted = labels ^ (g.random((4, 80)) < 0.15)
    predicted[3] = False                                 # never plays, never found: F1 undefined
    got = detection_scores(torch.from_numpy(predicted), torch.from_numpy(labels))
    for k in range(4):
        assert got["accuracy"][k] == pytest.approx(np.mean(predicted[k] == labels[k]), abs=1e-12)
        tp, fp, fn = (np.sum(predicted[k] & labels[k]), np.sum(predicted[k] & ~labels[k]),
                      np.sum(~predicted[k] & labels[k]))
        if tp + fp + fn == 0:
            assert math.isnan(got["F1"][k])
        else:
            assert got["F1"][k] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12), k


def roll_notes_reference(roll, frame_rate, lowest_pitch):
    """Every maximal run of active frames of one pitch is a note from its first frame to the frame after it."""
    notes = []
    for p, row in enumerate(roll):
        for active, run in itertools.groupby(enumerate(row), key=lambda item: bool(item[1])):
            if active:
                frames = [t for t, _ in run]
                notes.append([frames[0] / frame_rate, (frames[-1] + 1) / frame_rate, lowest_pitch + p])
    return np.array(notes, dtype=float).reshape(-1, 3)


def test_transcription_chapter_scores_equal_the_definition():
    cfg = {"sr": 8192, "hop": 256, "lowest_pitch": 28}
    frame_rate = cfg["sr"] / cfg["hop"]
    g = rng(8)
    reference = np.zeros((48, 64), bool)
    for _ in range(25):
        p, start = g.integers(0, 48), g.integers(0, 60)
        reference[p, start:start + g.integers(1, 10)] = True
    estimate = reference.copy()
    estimate[:, 1:] |= reference[:, :-1] & (g.random((48, 63)) < 0.3)       # some notes held a frame longer
    estimate ^= g.random(estimate.shape) < 0.01
    got = transcription_scores(cfg, reference, estimate)
    full = np.zeros((2, 64, 128), bool)
    full[0, :, 28:76], full[1, :, 28:76] = reference.T, estimate.T
    assert got["accuracy"] == pytest.approx(frame_scores_reference(full[0], full[1])["accuracy"], abs=1e-12)
    notes = note_scores_reference(roll_notes_reference(reference, frame_rate, 28),
                                  roll_notes_reference(estimate, frame_rate, 28))
    assert 0.2 < notes["f1"] < 0.95
    assert got["note F1"] == pytest.approx(notes["f1"], abs=1e-12)
    silent = transcription_scores(cfg, np.zeros_like(reference), estimate)
    assert math.isnan(silent["accuracy"]) and math.isnan(silent["note F1"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frame_metrics_equal_mir_eval_where_mir_eval_can_score(seed):
    """Counting the rolls gives mir_eval.multipitch's numbers wherever mir_eval accepts the pitches,
    empty rolls included, so the committed transcription accuracies keep their meaning."""
    import warnings

    import mir_eval

    ref, est = random_rolls(seed)
    ref[seed * 7:seed * 7 + 5] = False  # frames with nothing to find
    cases = [(ref, est), (ref, np.zeros_like(est)), (np.zeros_like(ref), est)]
    for r, e in cases:
        times = np.arange(len(r)) / 31.25
        freqs = [[mir_eval.util.midi_to_hz(np.flatnonzero(frame)) for frame in roll] for roll in (r, e)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            precision, recall, accuracy = mir_eval.multipitch.metrics(times, freqs[0], times, freqs[1])[:3]
        got = metrics.frame_metrics(r, e, frame_rate=31.25)
        assert got["precision"] == pytest.approx(precision, abs=1e-12)
        assert got["recall"] == pytest.approx(recall, abs=1e-12)
        assert got["accuracy"] == pytest.approx(accuracy, abs=1e-12)
