"""The score-supervision chapter's exercise checkers accept right answers and explain wrong ones."""
import numpy as np
import pytest
import torch

from sepbook.classroom import exercises


def _solution_mask(notes, n_frames, frame_rate, sr, n_fft, n_harmonics, semitones=0.5, onset_shift=0.0):
    """The chapter's hidden solution, written out independently of the package."""
    freqs = np.arange(n_fft // 2) * sr / n_fft
    mask = np.zeros((n_fft // 2, n_frames), bool)
    times = np.arange(n_frames) / frame_rate
    for onset, offset, pitch in notes:
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        near = np.zeros(n_fft // 2, bool)
        for h in range(1, n_harmonics + 1):
            width = max(h * f0 * (2 ** (semitones / 12) - 1), sr / n_fft)
            if h * f0 < sr / 2:
                near |= np.abs(freqs - h * f0) <= width
        frames = (times >= onset + onset_shift - 1e-9) & (times < offset - 1e-9)
        mask[np.ix_(near, frames)] = True
    return torch.as_tensor(mask)


def _solution_loss(estimates, mixture, rolls):
    active = rolls.flatten(2).any(dim=-1).float()
    total = (estimates * active[:, :, None, None]).sum(dim=1)
    return (torch.log1p(total) - torch.log1p(mixture[:, 0])).abs().mean()


def test_check_harmonic_mask_accepts_the_solution():
    assert "correct" in exercises.check_harmonic_mask(_solution_mask)


@pytest.mark.parametrize("answer, message", [
    (lambda *a: _solution_mask(*a, semitones=2.0), "away from every harmonic are on"),
    (lambda *a: _solution_mask(*a, semitones=0.1)[:, :] & False, "off in frames where a note sounds"),
    (lambda *a: _solution_mask(*a, onset_shift=-0.2), "on in frames where no note sounds"),
    (lambda *a: _solution_mask(*a).T, "shaped"),
])
def test_check_harmonic_mask_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        exercises.check_harmonic_mask(answer)


def test_check_clip_mixture_loss_accepts_the_solution():
    assert "correct" in exercises.check_clip_mixture_loss(_solution_loss)


@pytest.mark.parametrize("answer, message", [
    (lambda e, m, r: (torch.log1p(e.sum(1)) - torch.log1p(m[:, 0])).abs().mean(), "leave out the instruments"),
    (lambda e, m, r: (_solution_loss(e, m, r) * 2), "expected"),
    (lambda e, m, r: _solution_loss(e, m, r).detach(), "gradient"),
])
def test_check_clip_mixture_loss_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        exercises.check_clip_mixture_loss(answer)


def test_unfinished_answers_fail_with_the_stub_message():
    def unfinished(*args):
        raise NotImplementedError("your answer here")

    for check in (exercises.check_harmonic_mask, exercises.check_clip_mixture_loss):
        with pytest.raises(AssertionError, match="NotImplementedError: your answer here"):
            check(unfinished)


def _solution_interference(read, rolls):
    k = read.shape[1]
    others = [(s, j) for s in range(k) for j in range(k) if j != s]
    logits = torch.stack([read[:, s, j] for s, j in others], 1)
    targets = torch.stack([rolls[:, j] for _, j in others], 1)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)


def test_check_interference_loss_accepts_the_solution():
    for seed in range(3):
        assert "correct" in exercises.check_interference_loss(_solution_interference, seed=seed)


@pytest.mark.parametrize("answer, message", [
    (lambda read, rolls: torch.nn.functional.binary_cross_entropy_with_logits(
        read, rolls.unsqueeze(1).expand_as(read)), "its own instrument"),
    (lambda read, rolls: _solution_interference(read, torch.zeros_like(rolls)), "target of read"),
    (lambda read, rolls: _solution_interference(read.detach(), rolls), "no gradient"),
    (lambda read, rolls: -_solution_interference(read, rolls), "expected"),
])
def test_check_interference_loss_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        exercises.check_interference_loss(answer)
