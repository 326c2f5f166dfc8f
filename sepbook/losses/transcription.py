"""Score as supervision (Hung, Wichern and Le Roux, ICASSP 2021): the losses, in the book's reading.

The poster gives no equations; these are the formulas the book uses, each adversary written so
that both of its sides can be won. Notation: ``X`` the mixture magnitude ``(batch, 1, F, T)``;
``S = M * X`` the separated magnitudes ``(batch, K, F, T)``; ``Y`` the score as piano rolls
``(batch, K, P, T)`` of 0/1; ``T(.)`` the transcriptor, which reads ``log(1 + magnitude)`` of one
spectrogram and returns ``K`` rolls of logits; ``T(S_k)_j`` its roll for instrument ``j`` when it
reads separated source ``k``; ``BCE`` the binary cross-entropy on logits, and ``bBCE`` its
*balanced* mean: the mean over the entries that should be on and the mean over those that should
be off, averaged, so that a roll that is mostly silence does not make the loss small.

- transcription (step 1):  ``L_tr = BCE(T(X), Y)``
- critic (step 2):         ``L_tr-sep = bBCE(T(S_k)_j, [j = k] Y_k)`` over every ``k, j``: source
  ``k`` transcribes to instrument ``k``'s score and to silence in every other instrument's roll.
  A clip classifier as the critic (the baseline) gets the same balanced loss on its clip labels,
  so one mixture-loss weight means the same for both critics.
- mixture (step 2):        ``L_mix = sum(H |log(1 + sum_k c_k S_k) - log(1 + X)|) / sum(H)``, with
  the clip mask ``c_k`` (1 if instrument ``k`` plays in the clip) and the harmonic mask ``H``
  (1 near the harmonics of a sounding note); ``c = 1`` or ``H = 1`` switch them off.
- fine-tuning (step 3): the separator keeps ``L_tr-sep + L_mix``. The transcriptor keeps
  ``L_tr`` and learns to read each separated source as its own instrument,
  ``L_own = BCE(T(S_k)_k, Y_k)``; what a source holds of the *other* instruments is not known
  without stems, so plain fine-tuning gives the transcriptor no target there.
- ATL, the adversarial transcription loss: the transcriptor seeks what is left of every other
  instrument in each separated source, ``L_ATL = BCE(T(S_k)_j, Y_j)`` for ``j != k`` (it can win
  only where the separator left some of ``j`` in ``k``); the separator answers with
  ``BCE(T(S_k)_j, 0)``, leaving nothing to find. Both sides weigh ``w``.
- AML, the adversarial mixture loss: a detector on the transcriptor's features, ``D(.)``, one
  logit per frame, learns to tell the real mixture from the one re-assembled from the separated
  sources, ``L_AML = BCE(D(X), 1) + BCE(D(sum_k S_k), 0)``; the separator answers with
  ``BCE(D(sum_k S_k), 1)``, a re-assembled mixture that passes for the real one. Both weigh ``w``.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from sepbook.audio import log_magnitude

Critic = Callable[[torch.Tensor], torch.Tensor]


def transcription_loss(logits: torch.Tensor, rolls: torch.Tensor) -> torch.Tensor:
    """``L_tr``: binary cross-entropy of piano-roll ``logits`` against 0/1 ``rolls`` (same shape)."""
    _same_shape(logits=logits, rolls=rolls)
    return bce(logits, rolls.to(logits.dtype))


def balanced_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``bBCE``: the mean BCE of the entries whose target is 1 and of those whose target is 0,
    averaged (a side with no entries counts 0); -> scalar. ``logits`` and 0/1 ``targets`` share a shape."""
    _same_shape(logits=logits, targets=targets)
    on = targets.to(logits.dtype)
    each = bce(logits, on, reduction="none")
    mean_on = (each * on).sum() / on.sum().clamp_min(1.0)
    mean_off = (each * (1 - on)).sum() / (1 - on).sum().clamp_min(1.0)
    return (mean_on + mean_off) / 2


def read_sources(critic: Critic, estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The critic's reading of every separated source: ``(batch, K sources, K instruments, ...)`` logits.

    ``estimates`` ``(batch, K, F, T)`` are linear magnitudes; ``targets`` ``(batch, K, ...)`` give the
    shape of one reading per instrument (rolls ``(P, T)`` for a transcriptor, one clip label for a
    classifier). All ``K`` sources go through the critic as one batch of single spectrograms.
    """
    batch, k = _check_estimates(estimates, targets)
    single = log_magnitude(estimates).flatten(0, 1).unsqueeze(1)
    return critic(single).view(batch, k, *targets.shape[1:])


def critic_loss(critic: Critic, estimates: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
    """``L_tr-sep``: source ``k`` should read instrument ``k``'s ``targets`` and nothing of the others; -> scalar.

    ``estimates`` ``(batch, K, F, T)``, ``targets`` ``(batch, K, ...)`` as in :func:`read_sources`.
    """
    read = read_sources(critic, estimates, targets)
    return balanced_bce(read, _own(targets, read))


def own_source_loss(transcriptor: Critic, estimates: torch.Tensor, rolls: torch.Tensor) -> torch.Tensor:
    """``L_own``, the transcriptor's side in step 3: its roll ``k`` of source ``k`` is instrument ``k``'s score.

    ``estimates`` ``(batch, K, F, T)`` are detached: only the transcriptor learns from this term.
    """
    read = read_sources(transcriptor, estimates.detach(), rolls)
    own = read.diagonal(dim1=1, dim2=2).movedim(-1, 1)          # (batch, K, P, T)
    return bce(own, rolls.to(read.dtype))


def interference_loss(transcriptor: Critic, estimates: torch.Tensor, rolls: torch.Tensor) -> torch.Tensor:
    """``L_ATL``, the transcriptor's side: find instrument ``j``'s notes in source ``k`` for every ``j != k``.

    ``estimates`` ``(batch, K, F, T)`` are detached: the separator does not learn from this side.
    """
    read = read_sources(transcriptor, estimates.detach(), rolls)
    others = _off_diagonal(read)
    return bce(read[others], rolls.unsqueeze(1).expand_as(read)[others].to(read.dtype))


def hidden_interference_loss(transcriptor: Critic, estimates: torch.Tensor, rolls: torch.Tensor) -> torch.Tensor:
    """ATL, the separator's side: the transcriptor finds nothing of instrument ``j`` in source ``k`` (``j != k``).

    The transcriptor is to be held fixed (``requires_grad_(False)``) while the separator steps.
    """
    read = read_sources(transcriptor, estimates, rolls)
    others = _off_diagonal(read)
    return bce(read[others], torch.zeros_like(read[others]))


def reassembly_detection_loss(detect: Critic, mixture: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
    """``L_AML``, the detector's side: the real mixture is real (1), the re-assembled one is not (0); -> scalar.

    ``detect`` maps a log-magnitude ``(batch, 1, F, T)`` to one logit per frame; ``mixture``
    ``(batch, 1, F, T)`` and ``estimates`` ``(batch, K, F, T)`` are linear magnitudes, the
    estimates detached here.
    """
    _check_mixture(estimates, mixture, None, None)
    real = detect(log_magnitude(mixture))
    fake = detect(log_magnitude(estimates.detach().sum(dim=1, keepdim=True)))
    return (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))) / 2


def reassembled_loss(detect: Critic, estimates: torch.Tensor) -> torch.Tensor:
    """AML, the separator's side: the mixture re-assembled from the estimates passes for real (1).

    The detector is to be held fixed while the separator steps.
    """
    if estimates.dim() != 4:
        raise ValueError(f"estimates: expected (batch, K, freq, frames), got {tuple(estimates.shape)}")
    fake = detect(log_magnitude(estimates.sum(dim=1, keepdim=True)))
    return bce(fake, torch.ones_like(fake))


def mixture_loss(estimates: torch.Tensor, mixture: torch.Tensor,
                 clip: torch.Tensor | None = None,
                 harmonic: torch.Tensor | None = None) -> torch.Tensor:
    """``L_mix``: do the separated sources add up to the mixture where the score says they should?

    ``estimates`` ``(batch, K, F, T)`` and ``mixture`` ``(batch, 1, F, T)`` are linear magnitudes;
    ``clip`` ``(batch, K)`` keeps only the instruments that play in the clip in the sum;
    ``harmonic`` ``(batch, F, T)`` keeps only the bins near the harmonics of sounding notes.
    The difference is taken on ``log(1 + .)``, where loud and quiet bins weigh alike.
    """
    _check_mixture(estimates, mixture, clip, harmonic)
    if clip is not None:
        estimates = estimates * clip[:, :, None, None].to(estimates.dtype)
    total = log_magnitude(estimates.sum(dim=1))
    error = (total - log_magnitude(mixture[:, 0])).abs()
    if harmonic is None:
        return error.mean()
    weight = harmonic.to(error.dtype)
    return (weight * error).sum() / weight.sum().clamp_min(1.0)


def clip_mask(rolls: torch.Tensor) -> torch.Tensor:
    """Which instruments play somewhere in each clip: rolls ``(batch, K, P, T)`` -> bool ``(batch, K)``."""
    if rolls.dim() != 4:
        raise ValueError(f"rolls: expected (batch, instruments, pitches, frames), got {tuple(rolls.shape)}")
    return rolls.flatten(2).any(dim=-1)


def harmonic_template(lowest_pitch: int, n_pitches: int, sr: int, n_fft: int, n_bins: int,
                      n_harmonics: int = 8, semitones: float = 0.5) -> torch.Tensor:
    """Bool ``(n_pitches, n_bins)``: bin ``f`` lies near a harmonic of MIDI pitch ``lowest_pitch + p``.

    "Near" is within ``semitones`` of harmonic ``h * f0`` (``h = 1 .. n_harmonics``) or within
    one bin of it, whichever is wider: a low harmonic is narrower than a bin.
    """
    pitches = lowest_pitch + np.arange(n_pitches)
    f0 = 440.0 * 2.0 ** ((pitches - 69) / 12)
    harmonics = f0[:, None] * np.arange(1, n_harmonics + 1)            # (P, H)
    bins = np.arange(n_bins) * sr / n_fft                              # bin centre frequencies
    width = np.maximum(harmonics * (2 ** (semitones / 12) - 1), sr / n_fft)
    near = np.abs(bins[None, None, :] - harmonics[:, :, None]) <= width[:, :, None]
    near &= (harmonics < sr / 2)[:, :, None]
    return torch.as_tensor(near.any(axis=1))


def harmonic_mask(rolls: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Bool ``(..., F, T)``: bins near a harmonic of a note sounding in that frame.

    ``rolls`` ``(..., P, T)`` (one instrument, or several stacked in front) and ``template``
    ``(P, F)`` from :func:`harmonic_template`; a frame's mask is the union over its notes.
    """
    _check_pitches(rolls, template)
    # (F, P) @ (..., P, T): how many sounding notes have a harmonic near each bin
    near = template.T.to(torch.float32) @ rolls.to(torch.float32)
    return near > 0


def harmonic_mask_from_notes(notes: np.ndarray, n_frames: int, frame_rate: float, template: torch.Tensor,
                             lowest_pitch: int) -> torch.Tensor:
    """The harmonic mask ``(F, n_frames)`` of a note list ``(n, 3)``: onset_s, offset_s, MIDI pitch.

    Frame ``i`` (time ``i / frame_rate``) counts a note when ``onset <= i / frame_rate < offset``.
    """
    roll = notes_to_window(notes, n_frames, frame_rate, lowest_pitch, template.shape[0])
    return harmonic_mask(roll, template)


def notes_to_window(notes: np.ndarray, n_frames: int, frame_rate: float, lowest_pitch: int,
                    n_pitches: int) -> torch.Tensor:
    """A piano roll ``(n_pitches, n_frames)`` of MIDI pitches ``lowest_pitch ...`` from notes ``(n, >=3)``.

    Raises ``ValueError`` for a note outside the frames or a pitch outside the window.
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, np.shape(notes)[-1] if np.size(notes) else 3)
    roll = torch.zeros(n_pitches, n_frames, dtype=torch.bool)
    for onset, offset, pitch in notes[:, :3]:
        if not 0 <= onset < offset <= n_frames / frame_rate + 1e-9:
            raise ValueError(f"notes: note ({onset:.3f} s, {offset:.3f} s) lies outside the {n_frames} frames "
                             f"(0 to {n_frames / frame_rate:.3f} s at {frame_rate} frames per second)")
        if not lowest_pitch <= round(pitch) < lowest_pitch + n_pitches:
            raise ValueError(f"notes: pitch {pitch:g} is outside the window of MIDI pitches {lowest_pitch} to "
                             f"{lowest_pitch + n_pitches - 1}")
        first, last = int(np.ceil(onset * frame_rate - 1e-9)), int(np.ceil(offset * frame_rate - 1e-9))
        roll[round(pitch) - lowest_pitch, first:last] = True
    return roll


# ----------------------------------------------------------------------------- helpers


def _own(targets: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """``(batch, K, K, ...)``: instrument ``k``'s targets on the diagonal ``[k, k]``, zeros elsewhere."""
    k = read.shape[1]
    alone = torch.eye(k, dtype=read.dtype, device=read.device).view(1, k, k, *[1] * (targets.dim() - 2))
    return alone * targets.unsqueeze(1).to(read.dtype)


def _off_diagonal(read: torch.Tensor) -> torch.Tensor:
    """Bool of ``read``'s shape ``(batch, K, K, ...)``: true where source ``k`` is read as instrument ``j != k``."""
    k = read.shape[1]
    other = ~torch.eye(k, dtype=torch.bool, device=read.device)
    return other.view(1, k, k, *[1] * (read.dim() - 3)).expand_as(read)


# ----------------------------------------------------------------------------- checks


def _check_pitches(rolls: torch.Tensor, template: torch.Tensor) -> None:
    if rolls.shape[-2] != template.shape[0]:
        raise ValueError(f"rolls: expected {template.shape[0]} pitches (the template's), got {tuple(rolls.shape)}")


def _same_shape(**tensors: torch.Tensor) -> None:
    (first, a), (second, b) = tensors.items()
    if a.shape != b.shape:
        raise ValueError(f"{second}: expected the shape of {first} {tuple(a.shape)}, got {tuple(b.shape)}")


def _check_estimates(estimates: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
    if estimates.dim() != 4:
        raise ValueError(f"estimates: expected (batch, K, freq, frames), got {tuple(estimates.shape)}")
    if targets.shape[:2] != estimates.shape[:2]:
        raise ValueError(f"targets: expected (batch, K, ...) = {tuple(estimates.shape[:2])} in front (one per "
                         f"separated instrument), got {tuple(targets.shape)}")
    return estimates.shape[0], estimates.shape[1]


def _check_mixture(estimates, mixture, clip, harmonic) -> None:
    if estimates.dim() != 4 or mixture.shape != (estimates.shape[0], 1, *estimates.shape[2:]):
        raise ValueError(f"mixture: expected (batch, 1, freq, frames) matching estimates {tuple(estimates.shape)}, "
                         f"got {tuple(mixture.shape)}")
    if clip is not None and clip.shape != estimates.shape[:2]:
        raise ValueError(f"clip: expected (batch, K) = {tuple(estimates.shape[:2])}, got {tuple(clip.shape)}")
    if harmonic is not None and harmonic.shape != (estimates.shape[0], *estimates.shape[2:]):
        raise ValueError(f"harmonic: expected (batch, freq, frames) = {(estimates.shape[0], *estimates.shape[2:])}, "
                         f"got {tuple(harmonic.shape)}")
