"""How good is a separation? SI-SDR, BSS Eval v4 (through museval) and transcription scores (through mir_eval).

Waveforms are shaped ``(..., time)``; sources are stacked as ``(K, channels, time)`` or
``(batch, K, channels, time)``.

Chapter: foundations/first_separator
"""
from __future__ import annotations

import collections
import hashlib
import itertools
import warnings
from typing import Any, Sequence

import mir_eval
import museval
import numpy as np
import scipy.fftpack
import scipy.linalg
import torch

from sepbook.checks import check_audio, check_sample_rate

BSS_METRICS = ("SDR", "SIR", "SAR", "ISR")


def si_sdr(
    estimate: Any, reference: Any, eps: float = 1e-8, zero_mean: bool = True,
    checked: bool = True,
) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, one value per signal.

    ``(..., time) -> (...)``. The reference is rescaled to best match the estimate;
    what remains of the estimate is distortion. Differentiable, so ``-si_sdr``
    works as a training loss. ``eps`` keeps every value finite: a silent reference
    gives ``10 log10(eps / (|estimate|^2 + eps))``, i.e. 0 dB if the estimate is
    silent too and a strongly negative value otherwise. ``checked=False`` skips the
    checks of the inputs, for a loss that calls it at every training step
    (:func:`sepbook.losses.waveform.si_sdr_loss`).
    Chapter: foundations/first_separator
    """
    if checked:
        estimate, reference = _checked_pair(estimate, reference)
    if zero_mean:
        estimate = estimate - estimate.mean(dim=-1, keepdim=True)
        reference = reference - reference.mean(dim=-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (
        (reference**2).sum(-1, keepdim=True) + eps
    )
    target = scale * reference
    distortion = estimate - target
    return 10 * torch.log10(
        ((target**2).sum(-1) + eps) / ((distortion**2).sum(-1) + eps)
    )


def sdr(estimate: Any, reference: Any) -> torch.Tensor:
    """Signal-to-distortion ratio in dB of whole signals, one value per signal: ``(..., time) -> (...)``.

    ``10 log10(|s|^2 / |s - s_hat|^2)``, with no rescaling and no framing (as in the Music Demixing
    challenge). A silent estimate of a sounding reference scores 0 dB, so an estimate that drops an
    instrument is penalised rather than left unscored; a silent reference gives NaN.
    Chapter: activity/activity_aware
    """
    estimate, reference = (x.double() for x in _checked_pair(estimate, reference))
    signal = (reference**2).sum(-1)
    distortion = ((reference - estimate) ** 2).sum(-1)
    ratio = 10 * torch.log10(signal / distortion.clamp(min=1e-20))
    return torch.where(signal > 0, ratio, torch.full_like(ratio, float("nan"))).float()


def _checked_pair(estimate: Any, reference: Any) -> list[torch.Tensor]:
    """Both as float tensors of one shape, each checked as audio."""
    estimate, reference = _as_float_tensors(estimate, reference)
    if estimate.shape != reference.shape:
        raise ValueError(
            "estimate: expected the same shape as reference "
            f"{tuple(reference.shape)}, got {tuple(estimate.shape)}"
        )
    check_audio(estimate, "estimate")
    check_audio(reference, "reference")
    return [estimate, reference]


def projection_gain(estimate: Any, reference: Any, eps: float = 1e-8) -> torch.Tensor:
    """How loud, and which way up, an estimate carries its reference: the scale that SI-SDR fits,
    ``<estimate, reference> / <reference, reference>``, one value per signal (without removing
    the means first, which for audio are near zero anyway).

    ``(..., time) -> (...)``. 1 is the right level, 0.5 half of it (-6 dB), -1 the reference
    upside down. SI-SDR ignores this number; BSS Eval's SDR counts any departure from 1 as
    distortion.
    Chapter: metatasnet/meta_tasnet
    """
    estimate, reference = _checked_pair(estimate, reference)
    return (estimate * reference).sum(-1) / ((reference ** 2).sum(-1) + eps)


def si_sdr_improvement(estimate: Any, reference: Any, mixture: Any, eps: float = 1e-8) -> torch.Tensor:
    """SI-SDR gained over doing nothing: ``si_sdr(estimate, reference) - si_sdr(mixture, reference)``.

    ``estimate`` and ``reference`` are ``(..., K, channels, time)`` (or ``(K, time)``); ``mixture`` is
    the same without the source axis and is compared with every source. Returns ``(..., K, channels)``.
    Chapter: foundations/first_separator
    """
    estimate, reference, mixture = _as_float_tensors(estimate, reference, mixture)
    if mixture.ndim == reference.ndim - 1:
        mixture = mixture.unsqueeze(-3 if reference.ndim >= 3 else 0)
    try:
        mixture = mixture.expand_as(reference)
    except RuntimeError:
        raise ValueError(
            f"mixture: expected reference's shape {tuple(reference.shape)} without its source axis,"
            f" got {tuple(mixture.shape)}"
        ) from None
    return si_sdr(estimate, reference, eps) - si_sdr(mixture, reference, eps)


def bss_eval(
    references: Any, estimates: Any, sr: int, window_seconds: float | None = 1.0, hop_seconds: float | None = 1.0
) -> dict[str, np.ndarray]:
    """BSS Eval v4 (``museval.metrics.bss_eval``, as in SiSEC 2018) on framed signals.

    ``references`` and ``estimates`` are ``(K, time)`` or ``(K, channels, time)``; returns
    ``{'SDR', 'SIR', 'SAR', 'ISR'}`` each ``(K, frames)`` in dB, frames of ``window_seconds`` every
    ``hop_seconds`` (``None``: the whole signal as one frame; a hop of ``None`` equals the window).
    Frames where any source is silent are NaN (museval's rule); a source that is silent from start to
    end in the reference or the estimate cannot be scored and gets NaN in every frame, and the others
    are then scored among themselves.
    Chapter: foundations/first_separator
    """
    refs, ests = (_as_numpy(x) for x in (references, estimates))
    if refs.ndim not in (2, 3):
        raise ValueError(f"references: expected (K, time) or (K, channels, time), got shape {refs.shape}")
    if ests.shape != refs.shape:
        raise ValueError(f"estimates: expected the same shape as references {refs.shape}, got {ests.shape}")
    check_audio(refs, "references")
    check_audio(ests, "estimates")
    check_sample_rate(sr)
    # museval wants (sources, samples, channels).
    refs, ests = (x[:, :, None] if x.ndim == 2 else x.transpose(0, 2, 1) for x in (refs, ests))
    window = np.inf if window_seconds is None else _seconds_to_samples(window_seconds, sr, "window_seconds")
    hop = window if hop_seconds is None else _seconds_to_samples(hop_seconds, sr, "hop_seconds")
    scorable = np.flatnonzero((np.abs(refs).sum(axis=(1, 2)) > 0) & (np.abs(ests).sum(axis=(1, 2)) > 0))
    n_frames = museval.metrics.Framing(window, hop, refs.shape[1]).nwin
    scores = {name: np.full((refs.shape[0], n_frames), np.nan) for name in BSS_METRICS}
    if scorable.size:
        sdr, isr, sir, sar = _bss_eval_v4(refs[scorable], ests[scorable], window, hop)
        for name, values in zip(("SDR", "ISR", "SIR", "SAR"), (sdr, isr, sir, sar)):
            scores[name][scorable] = values
    return scores


def _bss_eval_v4(refs: np.ndarray, ests: np.ndarray, window, hop, filters_len: int = 512) -> tuple:
    """``museval.metrics.bss_eval(refs, ests, window, hop)``'s SDR, ISR, SIR and SAR, ``(K, frames)`` each,
    for ``refs``/``ests`` ``(K, samples, channels)``, computed faster.

    BSS Eval v4 fits each estimate's distortion filters on the whole signal by a least-squares solve
    against one matrix of the references' correlations, ``(K*channels*filters_len)`` square. museval
    factorises that matrix once per estimate; here it is factorised once for all of them (one solve with
    every estimate's right-hand side). That saves most where the solves dominate: many sources, stereo,
    short songs (the ``bss`` row of ``benchmarks/RESULTS.md``). The rest is museval's own code.
    ``tests/test_metrics_reference.py`` checks the two agree.
    """
    from museval import metrics as v4

    n_sources, n_samples, n_channels = ests.shape
    gram, spectra, solve = _reference_solver(refs, filters_len)
    rhs = np.concatenate([_correlations_with(spectra, e, filters_len) for e in ests], axis=1)
    filters = solve(rhs)
    filters = filters.reshape(n_sources, n_channels, filters_len, n_sources, n_channels).transpose(3, 0, 1, 2, 4)
    own = [v4._compute_projection_filters(gram[j, j], spectra[j], ests[j]) for j in range(n_sources)]
    framer = v4.Framing(window, hop, n_samples)
    scores = np.full((4, n_sources, framer.nwin), np.nan)  # SDR, ISR, SIR, SAR
    for t, frame in enumerate(framer):
        if v4._any_source_silent(refs[:, frame]) or v4._any_source_silent(ests[:, frame]):
            continue
        for j in range(n_sources):
            parts = v4._bss_decomp_mtifilt(refs[:, frame], ests[j, frame], j, filters[j], own[j])
            scores[:, j, t] = v4._bss_crit(*parts, False)
    return tuple(scores)


_SOLVERS: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()


def _reference_solver(refs: np.ndarray, filters_len: int) -> tuple:
    """The references' correlations ``(gram, spectra)`` and a solver for their least-squares system,
    factorised once and kept for the last few sets of references: a song is usually scored several
    times in a row (weighted and unweighted estimates, several systems), and the factorisation of the
    ``(K*channels*filters_len)``-square matrix is most of the cost. The solve is museval's: the matrix
    plus machine epsilon on its diagonal, LU with partial pivoting, and least squares if singular."""
    from museval import metrics as v4

    key = (refs.shape, refs.dtype.str, filters_len, hashlib.blake2b(np.ascontiguousarray(refs).tobytes()).digest())
    if key in _SOLVERS:
        _SOLVERS.move_to_end(key)
        return _SOLVERS[key]
    gram, spectra = v4._compute_reference_correlations(refs, filters_len)
    shifted = v4._reshape_G(gram)  # a fresh array: the diagonal can be shifted in place
    shifted[np.diag_indices_from(shifted)] += np.finfo(float).eps
    with warnings.catch_warnings():  # a singular matrix is handled below, as museval handles it
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        factors = scipy.linalg.lu_factor(shifted, overwrite_a=True, check_finite=False)
    if np.all(np.isfinite(factors[0])) and np.all(np.diag(factors[0]) != 0):

        def solve(rhs):
            return scipy.linalg.lu_solve(factors, rhs, check_finite=False)
    else:  # museval's fallback for a singular matrix, taken the same way
        square = v4._reshape_G(gram)

        def solve(rhs):
            return np.linalg.lstsq(square, rhs)[0]
    _SOLVERS[key] = (gram, spectra, solve)
    while len(_SOLVERS) > 3:
        _SOLVERS.popitem(last=False)
    return _SOLVERS[key]


def _correlations_with(spectra: np.ndarray, estimate: np.ndarray, filters_len: int) -> np.ndarray:
    """Each reference's cross-correlation with ``estimate`` ``(samples, channels)`` at lags 0 to
    ``filters_len - 1``, as museval's projection-filter solve wants it: ``(K*channels*filters_len, channels)``."""
    from museval import metrics as v4

    n_samples, n_channels = estimate.shape
    padded = v4._zeropad(estimate.T, filters_len - 1, axis=1)
    n_fft = int(2 ** np.ceil(np.log2(n_samples + filters_len - 1.0)))
    transformed = scipy.fftpack.fft(padded, n=n_fft)
    out = np.zeros((len(spectra), n_channels, filters_len, n_channels))
    for j, cj, c in itertools.product(range(len(spectra)), range(n_channels), range(n_channels)):
        lagged = np.real(scipy.fftpack.ifft(spectra[j, cj] * np.conj(transformed[c])))
        out[j, cj, :, c] = np.hstack((lagged[0], lagged[-1:-filters_len:-1]))
    return out.reshape(-1, n_channels)


def bss_eval_summary(
    per_track: Sequence[dict[str, np.ndarray]], source_names: Sequence[str], over_tracks: str = "median"
) -> dict[str, dict[str, float]]:
    """One number per source and metric: the median over frames of each track, then over tracks.

    ``per_track`` holds :func:`bss_eval` results (rows in the order of ``source_names``). NaN frames
    (silent ones) are skipped, as in SiSEC; ``over_tracks='mean'`` averages the track medians instead.
    Returns ``{source: {'SDR': .., 'SIR': .., 'SAR': .., 'ISR': ..}}`` (NaN when nothing was scorable).
    Chapter: foundations/first_separator
    """
    if over_tracks not in ("median", "mean"):
        raise ValueError(f"over_tracks: expected 'median' or 'mean', got {over_tracks!r}")
    if len(per_track) == 0:
        raise ValueError("per_track: expected at least one track's bss_eval result, got none")
    track_medians = {name: [] for name in BSS_METRICS}
    for index, scores in enumerate(per_track):
        for name in BSS_METRICS:
            values = np.asarray(scores.get(name) if isinstance(scores, dict) else None, dtype=float)
            if values.ndim != 2 or values.shape[0] != len(source_names):
                raise ValueError(
                    f"per_track[{index}]['{name}']: expected shape ({len(source_names)}, frames) for sources"
                    f" {list(source_names)}, got {values.shape}"
                )
            track_medians[name].append(_nan_reduce_rows(values, np.nanmedian))
    reduce = np.nanmedian if over_tracks == "median" else np.nanmean
    summary = {name: _nan_reduce_rows(np.stack(track_medians[name], axis=1), reduce) for name in BSS_METRICS}
    return {
        source: {name: float(summary[name][k]) for name in BSS_METRICS} for k, source in enumerate(source_names)
    }


def transcription_metrics(
    ref_notes: Any, est_notes: Any, onset_tolerance: float = 0.05, offset_ratio: float | None = None
) -> dict[str, float]:
    """Note-level precision, recall and F-measure (``mir_eval.transcription``).

    Notes are arrays ``(n, 3)`` (extra columns such as velocity are ignored): onset seconds, offset
    seconds, MIDI pitch. A note counts as found when the pitch is within 50 cents and the onset within
    ``onset_tolerance``; offsets count only when ``offset_ratio`` is given. Follows mir_eval when a
    side is empty (scores 0). Returns ``{'precision', 'recall', 'f1', 'overlap'}``.
    Chapter: foundations/first_separator
    """
    ref_intervals, ref_pitches = _notes_for_mir_eval(ref_notes, "ref_notes")
    est_intervals, est_pitches = _notes_for_mir_eval(est_notes, "est_notes")
    precision, recall, f1, overlap = mir_eval.transcription.precision_recall_f1_overlap(
        ref_intervals, ref_pitches, est_intervals, est_pitches,
        onset_tolerance=onset_tolerance, offset_ratio=offset_ratio,
    )
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "overlap": float(overlap)}


def frame_metrics(ref_roll: Any, est_roll: Any, frame_rate: float) -> dict[str, float]:
    """Frame-level multi-pitch precision, recall, F-measure and accuracy, as ``mir_eval.multipitch``
    defines them, counted over all frames: a true positive is a pitch active in both rolls in the same
    frame, ``accuracy = TP / (TP + FP + FN)``; each score is 0 when its denominator is.

    Rolls are boolean ``(frames, 128)`` piano rolls (MIDI pitch on the second axis) at ``frame_rate``
    frames per second, the same shape for reference and estimate. The rolls are counted directly,
    not through mir_eval, whose frequency check rejects MIDI pitches below 16 and above 111.
    Chapter: foundations/first_separator
    """
    ref, est = np.asarray(ref_roll), np.asarray(est_roll)
    if ref.ndim != 2 or ref.shape[1] != 128:
        raise ValueError(f"ref_roll: expected a piano roll shaped (frames, 128), got {ref.shape}")
    if est.shape != ref.shape:
        raise ValueError(f"est_roll: expected the same shape as ref_roll {ref.shape}, got {est.shape}")
    if not frame_rate > 0:
        raise ValueError(f"frame_rate: expected a positive number of frames per second, got {frame_rate!r}")
    ref, est = ref.astype(bool), est.astype(bool)
    hits, n_ref, n_est = int((ref & est).sum()), int(ref.sum()), int(est.sum())

    def ratio(part: int, whole: int) -> float:
        return part / whole if whole else 0.0

    precision, recall = ratio(hits, n_est), ratio(hits, n_ref)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": ratio(hits, n_ref + n_est - hits)}


def _as_float_tensors(*arrays: Any) -> list[torch.Tensor]:
    tensors = [torch.as_tensor(x) for x in arrays]
    dtype = torch.float32
    for tensor in tensors:
        if tensor.is_floating_point():
            dtype = torch.promote_types(dtype, tensor.dtype)
    return [tensor.to(dtype) for tensor in tensors]


def _as_numpy(x: Any) -> np.ndarray:
    return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)


def _seconds_to_samples(seconds: float, sr: int, name: str) -> int:
    samples = int(round(seconds * sr))
    if samples < 1:
        raise ValueError(f"{name}: expected a positive duration of at least one sample, got {seconds!r}")
    return samples


def _nan_reduce_rows(values: np.ndarray, reduce: Any) -> np.ndarray:
    # A row of NaN is a legitimate outcome (nothing scorable): keep it NaN without numpy's warning.
    out = np.full(values.shape[0], np.nan)
    has_value = ~np.isnan(values).all(axis=1)
    out[has_value] = reduce(values[has_value], axis=1)
    return out


def _notes_for_mir_eval(notes: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(notes, dtype=float)
    if array.size == 0:
        return np.zeros((0, 2)), np.zeros(0)
    if array.ndim != 2 or array.shape[1] < 3:
        raise ValueError(f"{name}: expected notes shaped (n, 3): onset_s, offset_s, midi_pitch; got {array.shape}")
    if not np.isfinite(array[:, :3]).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    if (array[:, 1] <= array[:, 0]).any() or (array[:, 0] < 0).any():
        raise ValueError(f"{name}: every note needs 0 <= onset_s < offset_s")
    return array[:, :2], mir_eval.util.midi_to_hz(array[:, 2])
