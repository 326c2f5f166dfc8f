"""Checks a student can run on their own answers to the book's exercises.

Each ``check_*`` function calls the student's function on random inputs drawn from ``seed``
(their sizes too), compares it with the package's reference implementation and raises
``AssertionError`` with a message that says what is wrong; on success it returns a short
confirmation string. The chapters call them in their auto-graded test cells
(``sepbook.classroom``), so a wrong answer fails that cell with the message. The grader
(``sepbook.classroom.grade``) calls them with a seed the student never sees and ``reveal=False``: then no
message shows an expected value, only what is wrong in words.

Chapter: foundations/stft_and_masks
"""
from __future__ import annotations

from typing import Callable

import torch


def _fail(message: str) -> None:
    raise AssertionError(message)


def _draw(generator: torch.Generator, low: int, high: int) -> int:
    """An integer in ``[low, high]``: the sizes of a check's inputs change with its seed."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _odd(generator: torch.Generator, low: int, high: int) -> int:
    return _draw(generator, low // 2, (high - 1) // 2) * 2 + 1


def _complex_specs(generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    real = torch.randn(shape, generator=generator)
    imag = torch.randn(shape, generator=generator)
    return torch.complex(real, imag)


def check_ratio_mask(ideal_ratio_mask: Callable[[torch.Tensor], torch.Tensor], seed: int = 0,
                     reveal: bool = True) -> str:
    """Check a student's ideal ratio mask ``f(source_specs (K, freq, frames) complex) -> (K, freq, frames)``."""
    from sepbook.masks import ideal_ratio_mask as reference

    generator = torch.Generator().manual_seed(seed)
    shape = (_draw(generator, 2, 4), _odd(generator, 9, 31), _odd(generator, 5, 21))
    specs = _complex_specs(generator, shape)
    specs[:, 0, 0] = 0  # a bin where every source is silent
    try:
        answer = ideal_ratio_mask(specs.clone())
    except Exception as error:  # report, don't crash the student's notebook
        _fail(f"your function raised {type(error).__name__}: {error}")
    if not torch.is_tensor(answer):
        _fail(f"expected a torch tensor, got {type(answer).__name__}")
    if answer.shape != specs.shape:
        _fail(f"expected shape {tuple(specs.shape)} (one mask per source), got {tuple(answer.shape)}")
    if answer.is_complex():
        _fail("a ratio mask is real-valued: build it from magnitudes |S_k|, not the complex values")
    if not torch.isfinite(answer).all():
        _fail("your mask has NaN or Inf where all sources are silent: guard the division (e.g. add a small eps)")
    if (answer < 0).any() or (answer > 1 + 1e-5).any():
        _fail("mask values must lie in [0, 1]")
    # compare away from the all-silent bin, where any finite convention (0 or 1/K) is fine
    expected, answer = reference(specs)[:, 1:, 1:], answer[:, 1:, 1:]
    if not torch.allclose(answer, expected, atol=1e-4):
        sums = answer.sum(0)
        if torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
            _fail("your masks sum to one but differ from |S_k| / sum_j |S_j|: did you use power 2 (a Wiener mask)?")
        _fail("your masks do not sum to one over the sources in each bin: divide by the sum of all source magnitudes")
    return "correct: your ideal ratio mask matches |S_k| / sum_j |S_j| and is safe on silent bins"


def check_si_sdr(si_sdr: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int = 0,
                 reveal: bool = True) -> str:
    """Check a student's ``si_sdr(estimate (..., time), reference (..., time)) -> (...)`` in dB."""
    from sepbook.metrics import si_sdr as reference

    generator = torch.Generator().manual_seed(seed)
    shape = (_draw(generator, 1, 3), _draw(generator, 2, 4), _odd(generator, 2001, 8001))
    ref = torch.randn(shape, generator=generator)
    noise = torch.randn(shape, generator=generator)
    est = ref + 0.3 * noise
    scale = 0.5 + 3 * torch.rand((), generator=generator)
    answer, scaled, noisier = (_call(si_sdr, e.clone(), ref.clone()) for e in (est, scale * est, ref + noise))
    if not torch.is_tensor(answer) or answer.shape != shape[:-1]:
        _fail(f"expected one value per signal, a tensor of shape {tuple(shape[:-1])} for signals shaped "
              f"{tuple(shape)}, got {getattr(answer, 'shape', type(answer))}")
    expected = reference(est, ref)
    if torch.is_tensor(noisier) and noisier.shape == answer.shape and torch.allclose(noisier, answer):
        _fail("a noisier estimate gets the same values: your function must measure its inputs")
    if not torch.allclose(scaled, answer, atol=1e-3):
        _fail("scaling the estimate changed your result: project the estimate onto the reference first")
    if not torch.allclose(answer, expected, atol=1e-2):
        if torch.allclose(answer, expected / 2, atol=1e-2):
            _fail("off by a factor of 2: SI-SDR is 10 log10 of an energy ratio (20 log10 of an amplitude ratio)")
        if torch.allclose(answer, -expected, atol=1e-2):
            _fail("the sign is flipped: SI-SDR is the target's energy over the error's, not the reverse")
        if reveal:
            _fail(f"expected {expected.tolist()} dB, got {answer.tolist()} dB")
        _fail("your values differ from SI-SDR: project the estimate onto the reference, "
              "(<e, s> / <s, s>) s, and take 10 log10 of its energy over the rest's")
    return "correct: your SI-SDR matches and is scale-invariant"


class _LinearCritic(torch.nn.Module):
    """``D(x) = <w, x>`` per example: its input gradient is ``w`` everywhere, whatever ``x`` is."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).flatten(1).sum(dim=1)


class _QuadraticCritic(torch.nn.Module):
    """``D(x) = c ||x||^2 / 2`` per example: its input gradient ``c x`` grows along the line from 0 to ``x``."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.scale * x.pow(2).flatten(1).sum(dim=1)


def _call(fn: Callable, *args):
    try:
        return fn(*args)
    except Exception as error:  # report, don't crash the student's notebook
        _fail(f"your function raised {type(error).__name__}: {error}")


def _scalar(answer, what: str) -> torch.Tensor:
    if not torch.is_tensor(answer):
        _fail(f"{what}: expected a torch tensor, got {type(answer).__name__}")
    if answer.numel() != 1:
        _fail(f"{what}: expected one number (a scalar tensor) for the whole batch, got shape {tuple(answer.shape)}")
    if not torch.isfinite(answer).all():
        _fail(f"{what}: the penalty is NaN or infinite")
    return answer.reshape(())


def _linear_weight(shape: tuple[int, ...], norm: float, generator: torch.Generator) -> torch.Tensor:
    weight = torch.randn(shape, generator=generator)
    return weight * (norm / weight.norm())


WHOLE_BATCH = ("you took one gradient norm over the whole batch; take the norm per example "
               "(flatten each example's gradient, then .norm(dim=1)), then average the penalties")


def check_gradient_penalty(gradient_penalty: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's one-sided gradient penalty ``f(critic, real, fake) -> scalar`` (paper eq. 4).

    ``real`` and ``fake`` are ``(batch, 1, freq, frames)``; the answer must be
    ``mean over the batch of max(||grad_x D(x_hat)||_2 - 1, 0)^2`` at random interpolates
    ``x_hat = eps * real + (1 - eps) * fake``, with the graph kept so that it trains the critic.

    Chapter: adversarial/adversarial_separation
    """
    generator = torch.Generator().manual_seed(seed)
    shape, batch = (1, _draw(generator, 8, 24), _draw(generator, 4, 12)), _draw(generator, 4, 8)
    real = torch.randn((batch, *shape), generator=generator)
    fake = torch.randn((batch, *shape), generator=generator)

    def near(value: float, target: float, tolerance: float = 1e-3) -> bool:
        return abs(value - target) < tolerance * max(1.0, abs(target))

    # A critic with gradient norm below 1 everywhere: 1-Lipschitz, so a one-sided penalty is exactly zero.
    low = 0.3 + 0.5 * float(torch.rand((), generator=generator))
    gentle = _LinearCritic(_linear_weight(shape, low, generator))
    answer = float(_scalar(_call(gradient_penalty, gentle, real.clone(), fake.clone()), "gradient norm < 1").detach())
    if near(answer, (low - 1) ** 2):
        _fail("a critic with gradient norm below 1 got the penalty (||g|| - 1)^2: that is the two-sided penalty; "
              "the one-sided one only penalises norms above 1: max(||g|| - 1, 0)^2")
    if abs(answer) > 1e-5 and near(answer, max(low * batch ** 0.5 - 1, 0) ** 2):
        _fail(WHOLE_BATCH)
    if abs(answer) > 1e-5:
        _fail("a critic with gradient norm below 1 everywhere is 1-Lipschitz and must get penalty 0"
              + (f", got {answer:.4f}" if reveal else ""))

    # Gradient norm below 1 per example, but above 1 for the whole batch at once.
    middle = 1.05 / batch ** 0.5 + (0.95 - 1.05 / batch ** 0.5) * float(torch.rand((), generator=generator))
    per_example = _LinearCritic(_linear_weight(shape, middle, generator))
    answer = float(_scalar(_call(gradient_penalty, per_example, real.clone(), fake.clone()), "per example").detach())
    if abs(answer) > 1e-5:
        if near(answer, (middle * batch ** 0.5 - 1) ** 2):
            _fail(WHOLE_BATCH)
        _fail("a critic with gradient norm below 1 in each example must get penalty 0"
              + (f", got {answer:.4f}" if reveal else ""))

    # A steep critic: the penalty is (norm - 1)^2, and it must train the critic.
    high = 2.0 + 2.0 * float(torch.rand((), generator=generator))
    steep = _LinearCritic(_linear_weight(shape, high, generator))
    answer = _scalar(_call(gradient_penalty, steep, real.clone(), fake.clone()), "a steep critic")
    value = float(answer.detach())
    if near(value, high - 1):
        _fail("a steep critic got ||g|| - 1: square the excess, max(||g|| - 1, 0)^2")
    if near(value, (high - 1) ** 2 * batch):
        _fail("a steep critic got (||g|| - 1)^2 times the batch size: average over the batch instead of summing")
    if near(value, (high ** 2 - 1) ** 2):
        _fail("a steep critic got (||g||^2 - 1)^2: use the norm ||g||, not the squared norm")
    if not near(value, (high - 1) ** 2):
        _fail("a critic with gradient norm g > 1 everywhere must get penalty (g - 1)^2"
              + (f" = {(high - 1) ** 2:.4f}, got {value:.4f}" if reveal else ""))
    if not answer.requires_grad:
        _fail("the penalty carries no gradient to the critic's parameters: call torch.autograd.grad with "
              "create_graph=True so the penalty can be minimised")
    steep.zero_grad()
    answer.backward()
    if steep.weight.grad is None or float(steep.weight.grad.abs().sum()) == 0:
        _fail("the penalty does not reach the critic's parameters: keep the graph (create_graph=True)")

    # A critic whose gradient grows from 0 at real = 0 to 3 at fake: the penalty depends on where it is taken.
    big = (512, 1, 4, 4)
    zeros = torch.zeros(big)
    fake = torch.randn(big, generator=generator)
    fake = fake / fake.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    quadratic = _QuadraticCritic(3.0)
    values = [float(_scalar(_call(gradient_penalty, quadratic, zeros.clone(), fake.clone()), "interpolation").detach())
              for _ in range(3)]
    mean = sum(values) / len(values)
    # With x = (1 - eps) * fake and eps ~ U[0, 1]: E max(3 (1 - eps) - 1, 0)^2 = 8 / 9.
    if abs(mean - 4.0) < 0.05:
        _fail("your penalty is taken at the fake samples only: evaluate the gradient at random interpolates "
              "eps * real + (1 - eps) * fake")
    if abs(mean) < 1e-4:
        _fail("your penalty is taken at the real samples only: evaluate the gradient at random interpolates "
              "eps * real + (1 - eps) * fake")
    if abs(mean - 8 / 9) > 0.3:
        if max(values) - min(values) > 0.6:
            _fail("your penalty jumps between calls: draw one eps per example (shape (batch, 1, 1, 1)), "
                  "not one for the whole batch")
        _fail(f"at random interpolates the expected penalty is 8/9 = 0.89 for this critic, you got {mean:.3f} on "
              "average: check the interpolation eps * real + (1 - eps) * fake with eps ~ U[0, 1]")
    return "correct: your penalty is one-sided, per example, taken at random interpolates, and trains the critic"


def check_critic_gradient(critic_gradient: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(critic, x (batch, 1, freq, frames)) -> grad_x D(x)``, one gradient per example.

    Chapter: adversarial/adversarial_separation
    """
    from sepbook.losses.adversarial import critic_input_gradient as reference
    from sepbook.models.critic import Critic

    generator = torch.Generator().manual_seed(seed)
    shape = (1, _draw(generator, 8, 24), _draw(generator, 4, 12))
    x = torch.rand((_draw(generator, 2, 5), *shape), generator=generator)
    weight = torch.randn(shape, generator=generator)
    linear = _LinearCritic(weight)
    answer = _call(critic_gradient, linear, x.clone())
    if not torch.is_tensor(answer):
        _fail(f"expected a torch tensor, got {type(answer).__name__}")
    if answer.shape != x.shape:
        _fail(f"expected the gradient to have the input's shape {tuple(x.shape)}, got {tuple(answer.shape)}")
    if not torch.allclose(answer.detach(), weight.expand_as(x), atol=1e-5):
        if torch.allclose(answer.detach(), weight.expand_as(x) / len(x), atol=1e-5):
            _fail("your gradient is the batch size times too small: differentiate the sum of the scores, "
                  "not their mean (examples do not interact, so each gets its own gradient)")
        _fail("for D(x) = <w, x> the gradient must equal w at every example; differentiate the critic's "
              "score with respect to x (torch.autograd.grad(critic(x).sum(), x))")
    torch.manual_seed(seed)
    critic = Critic(base_channels=4, n_strided_layers=2, n_frequency_layers=1, hidden_units=8)
    x = torch.rand((2, 1, 32, 16), generator=generator)
    answer = _call(critic_gradient, critic, x.clone())
    if not torch.is_tensor(answer) or answer.shape != x.shape:
        _fail(f"expected a tensor shaped {tuple(x.shape)} for a Critic, got {getattr(answer, 'shape', type(answer))}")
    if not torch.allclose(answer.detach(), reference(critic, x), atol=1e-5, rtol=1e-4):
        _fail("your gradient differs from grad_x D(x) for a sepbook Critic")
    if any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in critic.parameters()):
        _fail("your function left gradients in the critic's parameters (did you call .backward()?): use "
              "torch.autograd.grad(score, x), which touches only x")
    return "correct: your function returns grad_x D(x) per example and leaves the critic untouched"


def check_harmonic_mask(harmonic_mask: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(notes, n_frames, frame_rate, sr, n_fft, n_harmonics) -> (n_fft // 2, n_frames)``
    bool mask: bins within half a semitone (or one bin) of a harmonic of a sounding note.

    Chapter: transcription/score_supervision
    """
    import numpy as np

    from sepbook.losses.transcription import harmonic_mask_from_notes, harmonic_template

    rng = np.random.default_rng(seed)
    sr, n_fft = 8192, 512
    n_frames, frame_rate = int(rng.integers(30, 60)), float(rng.choice([25.0, 32.0, 40.0]))
    n_harmonics = int(rng.integers(4, 9))
    count = int(rng.integers(3, 7))
    onsets = rng.uniform(0, n_frames / frame_rate - 0.45, count)
    notes = np.stack([onsets, onsets + rng.uniform(0.1, 0.4, count), rng.integers(36, 72, count)], axis=1)
    template = harmonic_template(28, 48, sr, n_fft, n_fft // 2, n_harmonics)
    expected = harmonic_mask_from_notes(notes, n_frames, frame_rate, template, 28)
    answer = torch.as_tensor(np.asarray(_call(harmonic_mask, notes.copy(), n_frames, frame_rate, sr, n_fft,
                                              n_harmonics)))
    if answer.shape != expected.shape:
        _fail(f"expected a mask shaped (n_fft // 2, n_frames) = {tuple(expected.shape)}, got {tuple(answer.shape)}")
    answer = answer.bool()
    frames_on = expected.any(dim=0)
    if answer[:, ~frames_on].any():
        _fail("your mask is on in frames where no note sounds: frame i (time i / frame_rate) counts a note "
              "only when onset <= i / frame_rate < offset")
    if not torch.equal(answer.any(dim=0), frames_on):
        _fail("your mask is off in frames where a note sounds: check how you turn onsets and offsets into frames")
    missing, extra = (expected & ~answer).sum().item(), (answer & ~expected).sum().item()
    if missing or extra:
        _fail(f"{missing} bins near a harmonic are off and {extra} bins away from every harmonic are on: "
              "harmonic h of MIDI pitch p lies at h * 440 * 2 ** ((p - 69) / 12) Hz, bin f at f * sr / n_fft Hz; "
              "a bin is near when within max(half a semitone, one bin) of it, below sr / 2")
    return "correct: your mask marks exactly the bins near the harmonics of the sounding notes"


def check_clip_mixture_loss(clip_mixture_loss: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(estimates (B, K, F, T), mixture (B, 1, F, T), rolls (B, K, P, T)) -> scalar``:
    the clip-level mixture loss, mean of ``|log(1 + sum of active estimates) - log(1 + mixture)|``.

    Chapter: transcription/score_supervision
    """
    from sepbook.losses.transcription import clip_mask, mixture_loss

    generator = torch.Generator().manual_seed(seed)
    b, k, f, t = _draw(generator, 2, 4), _draw(generator, 2, 4), _draw(generator, 5, 12), _draw(generator, 4, 9)
    estimates = torch.rand((b, k, f, t), generator=generator)
    mixture = torch.rand((b, 1, f, t), generator=generator) * 2
    rolls = (torch.rand((b, k, 5, t), generator=generator) > 0.7).float()
    rolls[:, :, 0, 0] = 1                                      # every instrument plays somewhere ...
    rolls[0, 1] = 0                                            # ... but instrument 1 in clip 0
    rolls[1, k - 1] = 0
    expected = mixture_loss(estimates, mixture, clip_mask(rolls))
    answer = _scalar(_call(clip_mixture_loss, estimates.clone(), mixture.clone(), rolls.clone()), "the loss")
    if torch.isclose(answer, mixture_loss(estimates, mixture), atol=1e-5):
        _fail("your loss sums every instrument's estimate: leave out the instruments that play no note in the clip")
    if not torch.isclose(answer, expected, atol=1e-5):
        _fail((f"expected {expected.item():.5f}, got {answer.item():.5f}: " if reveal else "your loss differs: ")
              + "sum the estimates of the instruments active in the clip, then take the mean absolute "
              "difference of log(1 + .) from the mixture's")
    estimates.requires_grad_(True)
    loss = _call(clip_mixture_loss, estimates, mixture, rolls)
    if not loss.requires_grad:
        _fail("no gradient reaches the estimates: compute the loss from them with torch operations, "
              "without .detach() or numpy")
    loss.backward()
    if estimates.grad is None or estimates.grad[0, 1].abs().sum() > 0 or estimates.grad[0, 0].abs().sum() == 0:
        _fail("the gradient must reach the active instruments' estimates and not the silent ones'")
    return "correct: only the instruments playing in the clip enter the sum"


def check_interference_loss(interference_loss: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(read (B, K, K, P, T) logits, rolls (B, K, P, T)) -> scalar``: the
    transcriptor's side of ATL, the mean binary cross-entropy of ``read[:, k, j]`` (source ``k``
    read as instrument ``j``) against ``rolls[:, j]`` over every ``j != k``.

    Chapter: transcription/score_supervision
    """
    from sepbook.losses.transcription import interference_loss as expected_loss

    generator = torch.Generator().manual_seed(seed)
    b, k, p, t = _draw(generator, 2, 3), _draw(generator, 2, 4), _draw(generator, 3, 6), _draw(generator, 4, 8)
    read = torch.randn((b, k, k, p, t), generator=generator) * 2
    rolls = (torch.rand((b, k, p, t), generator=generator) > 0.6).float()
    estimates = torch.rand((b, k, 4, t), generator=generator)       # what a transcriptor would read
    expected = expected_loss(lambda single: read.flatten(0, 1), estimates, rolls)
    answer = _scalar(_call(interference_loss, read.clone(), rolls.clone()), "the loss")
    eye = torch.eye(k, dtype=torch.bool).view(1, k, k, 1, 1)
    everything = torch.nn.functional.binary_cross_entropy_with_logits(read, rolls.unsqueeze(1).expand_as(read))
    if torch.isclose(answer, everything, atol=1e-5):
        _fail("your loss also counts each source read as its own instrument (j = k): ATL looks only for the "
              "other instruments")
    if not torch.isclose(answer, expected, atol=1e-5):
        _fail((f"expected {expected.item():.5f}, got {answer.item():.5f}: " if reveal else "your loss differs: ")
              + "the target of read[:, k, j] is rolls[:, j], the score of instrument j; average the "
              "cross-entropy on logits over every j != k, pitch and frame")
    logits = read.clone().requires_grad_(True)
    loss = _call(interference_loss, logits, rolls)
    if not loss.requires_grad:
        _fail("no gradient reaches the readings: compute the loss from them with torch operations")
    loss.backward()
    if logits.grad is None or logits.grad[eye.expand_as(read)].abs().sum() > 0:
        _fail("the gradient must not reach a source read as its own instrument")
    return "correct: the transcriptor is asked to find every other instrument's notes in each source"


def check_activity_weighting(activity_weighting: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(probabilities (K, T), threshold, median_frames) -> (K, T)`` frame weights:
    ``probabilities >= threshold`` as 0/1, then a running median of ``median_frames`` frames whose
    edges repeat the end frames.

    Chapter: activity/activity_aware
    """
    from sepbook.instrument_activity import activity_weights

    generator = torch.Generator().manual_seed(seed)
    runs = (torch.rand((3, 12), generator=generator) > 0.5).repeat_interleave(5, dim=1).float()
    probabilities = (0.35 * runs + 0.6 * torch.rand(runs.shape, generator=generator)).clamp(0, 1)
    probabilities[0, 30] = 0.99                                  # a one-frame blip in instrument 0
    probabilities[1, :6] = torch.tensor([0.9, 0.9, 0.1, 0.1, 0.1, 0.1])   # a short run at the start
    threshold, length = 0.45 + 0.2 * float(torch.rand((), generator=generator)), _odd(generator, 3, 7)
    expected = activity_weights(probabilities, threshold, length)
    answer = _call(activity_weighting, probabilities.clone(), threshold, length)
    if not torch.is_tensor(answer) or answer.shape != probabilities.shape:
        _fail(f"expected a tensor shaped (K, T) = {tuple(probabilities.shape)}, got "
              f"{tuple(answer.shape) if torch.is_tensor(answer) else type(answer).__name__}")
    answer = answer.float()
    if not torch.all((answer == 0) | (answer == 1)):
        _fail("the weights must be 0 or 1: compare the probabilities with threshold to get them")
    if torch.equal(answer, (probabilities >= threshold).float()):
        _fail("your weights are the binarised probabilities: smooth them with a median filter over time")
    middle = slice(length // 2, -(length // 2))
    if not torch.equal(answer, expected) and torch.equal(answer[:, middle], expected[:, middle]):
        _fail("right in the middle, wrong at the ends: pad each end by repeating its first and last frame "
              "(length // 2 times) before the running median")
    if not torch.equal(answer, expected):
        _fail(f"{int((answer != expected).sum())} of {answer.numel()} weights differ: binarise with "
              "probabilities >= threshold, then take the median of each window of median_frames frames "
              "centred on the frame")
    return "correct: your weights switch an instrument off only where it stays silent"


def check_frame_activity(frame_activity: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(magnitudes (K, F, T), threshold_db) -> (K, T)`` bool labels: a frame is
    active when its energy (sum over bins of ``|S|^2``) is within ``threshold_db`` of the stem's loudest.

    Chapter: activity/activity_aware
    """
    from sepbook.instrument_activity import frame_activity as reference

    generator = torch.Generator().manual_seed(seed)
    levels = 10 ** (-torch.linspace(0, 6, 40) / 2)[torch.randperm(40, generator=generator)]   # 0 to -60 dB
    # some frames hold one loud bin, others many quiet ones: energy is not summed magnitude
    spread = torch.rand((3, 1, 40), generator=generator)
    magnitudes = torch.rand((3, 16, 40), generator=generator) * levels * (torch.rand((3, 16, 40), generator=generator) < spread)
    magnitudes[2] = 0                                             # a stem that never plays
    threshold = -float(_draw(generator, 24, 36))
    expected = reference(magnitudes, threshold)
    answer = _call(frame_activity, magnitudes.clone(), threshold)
    if not torch.is_tensor(answer) or answer.shape != expected.shape:
        _fail(f"expected a tensor shaped (K, T) = {tuple(expected.shape)}, got "
              f"{tuple(answer.shape) if torch.is_tensor(answer) else type(answer).__name__}")
    answer = answer.bool()
    if answer[2].any():
        _fail("a stem that is silent throughout must be inactive everywhere: guard against 0 >= 0 * threshold")
    if torch.equal(answer[:2], reference(magnitudes, threshold / 2)[:2]):
        _fail("T dB of energy is a factor 10 ** (T / 10): divide decibels of energy by 10, not 20")
    summed = magnitudes.sum(dim=-2)
    if torch.equal(answer[:2], ((summed > 0) & (summed >= summed.amax(-1, keepdim=True) * 10 ** (threshold / 10)))[:2]):
        _fail("your labels sum |S|, not |S|^2: a frame's energy is the sum of the squared magnitudes")
    if not torch.equal(answer, expected):
        _fail(f"{int((answer != expected).sum())} of {answer.numel()} labels differ: compare each frame's energy "
              "with the loudest frame of the same stem, times 10 ** (threshold_db / 10)")
    return "correct: your labels mark the frames within the threshold of the stem's loudest"


def check_generated_conv(generated_conv: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(x (B, K, C_in, T), embeddings (K, E), code, generator, c_out, kernel)
    -> (B, K, c_out, T)``: each instrument's kernel is ``generator(code(e_k))`` reshaped to
    ``(c_out, C_in, kernel)``, applied with 'same' padding, all K in one grouped convolution.
    It must equal K separate static convolutions holding those kernels.

    Chapter: metatasnet/meta_tasnet
    """
    import torch.nn.functional as F
    from torch import nn

    generator_ = torch.Generator().manual_seed(seed)
    k, c_in, c_out = _draw(generator_, 2, 4), _draw(generator_, 3, 6), _draw(generator_, 2, 5)
    kernel, e = _odd(generator_, 3, 5), _draw(generator_, 4, 8)
    torch.manual_seed(seed)
    code, generator = nn.Linear(e, 2), nn.Linear(2, c_out * c_in * kernel)
    x = torch.randn((_draw(generator_, 1, 3), k, c_in, _draw(generator_, 15, 30)), generator=generator_)
    embeddings = torch.randn((k, e), generator=generator_, requires_grad=True)
    with torch.no_grad():
        kernels = generator(code(embeddings)).reshape(k, c_out, c_in, kernel)
        expected = torch.stack([F.conv1d(x[:, i], kernels[i], padding=kernel // 2) for i in range(k)], dim=1)
    answer = _call(generated_conv, x.clone(), embeddings, code, generator, c_out, kernel)
    if not torch.is_tensor(answer) or answer.shape != expected.shape:
        _fail(f"expected a tensor shaped (B, K, c_out, T) = {tuple(expected.shape)}, got "
              f"{tuple(answer.shape) if torch.is_tensor(answer) else type(answer).__name__}")
    shared = F.conv1d(x.flatten(0, 1), kernels[0], padding=kernel // 2).reshape(expected.shape)
    if torch.allclose(answer, shared, atol=1e-5):
        _fail("every instrument got instrument 0's kernel: use groups=K so that each instrument's "
              "channels meet only its own kernel")
    if not torch.allclose(answer, expected, atol=1e-5):
        _fail("your output differs from K static convolutions with the kernels generator(code(e_k)): "
              "reshape x to (B, K * C_in, T), the kernels to (K * c_out, C_in, kernel), and use groups=K")
    answer.sum().backward()
    if embeddings.grad is None or not embeddings.grad.abs().sum() > 0:
        _fail("no gradient reaches the embeddings: build the kernels from them inside the function, "
              "without torch.no_grad() or .detach()")
    return "correct: one grouped convolution applies every instrument's generated kernel"


def check_si_sdr_loss(si_sdr_loss: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(estimates (..., time), targets (..., time)) -> scalar``: minus the mean
    SI-SDR in dB over the targets that are not silent (mean power above 1e-6).

    Chapter: metatasnet/meta_tasnet
    """
    from sepbook.losses.waveform import si_sdr_loss as reference

    generator = torch.Generator().manual_seed(seed)
    batch, k = _draw(generator, 2, 3), _draw(generator, 2, 4)
    targets = torch.randn((batch, k, _odd(generator, 301, 801)), generator=generator)
    silent = (batch - 1, _draw(generator, 0, k - 1))
    targets[silent] = 0                                          # an instrument silent in this excerpt
    estimates = (targets + 0.5 * torch.randn(targets.shape, generator=generator)).requires_grad_()
    expected = reference(estimates.detach(), targets)
    answer = _scalar(_call(si_sdr_loss, estimates, targets.clone()), "the loss")
    if torch.isclose(answer, -expected, atol=1e-3):
        _fail("your loss has the wrong sign: training minimises it, so it must be minus the SI-SDR")
    from sepbook.metrics import si_sdr

    with torch.no_grad():
        everything = -si_sdr(estimates, targets).mean()
    if torch.isclose(answer, everything, rtol=0.05):
        _fail("the silent target is counted: leave out targets whose mean power is below 1e-6")
    if not torch.isclose(answer, expected, atol=1e-3):
        _fail((f"your loss is {float(answer):.3f}, expected {float(expected):.3f}: " if reveal else
               "your loss differs: ") + "remove each signal's mean, project the estimate on the target, "
              "and take 10 log10(|projection|^2 / |rest|^2)")
    answer.backward()
    if estimates.grad is None or estimates.grad[silent].abs().sum() > 0:
        _fail("the silent target's estimate gets a gradient: leave it out of the mean")
    return "correct: minus the SI-SDR of every audible target"


def check_deep_clustering_loss(deep_clustering_loss: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(embeddings (B, T, F, D), assignments (B, T, F, K), weights (B, T, F))
    -> scalar``: ||W^1/2 (V V^T - Y Y^T) W^1/2||^2 over (sum W)^2 per example, averaged over the batch.

    Chapter: transfer/transfer_learning
    """
    from sepbook.losses.clustering import naive_deep_clustering_loss as naive

    generator = torch.Generator().manual_seed(seed)
    b, t, f = _draw(generator, 2, 3), _draw(generator, 3, 7), _draw(generator, 4, 9)
    d, k = _draw(generator, 3, 6), _draw(generator, 2, 3)
    embeddings = torch.nn.functional.normalize(torch.randn((b, t, f, d), generator=generator), dim=-1)
    assignments = torch.nn.functional.one_hot(torch.randint(0, k, (b, t, f), generator=generator), k).float()
    weights = torch.rand((b, t, f), generator=generator)
    embeddings.requires_grad_()
    expected = naive(embeddings.detach(), assignments, weights)
    answer = _scalar(_call(deep_clustering_loss, embeddings, assignments, weights), "the loss")
    unweighted = naive(embeddings.detach(), assignments, torch.ones_like(weights))
    if torch.isclose(answer, unweighted, rtol=1e-3) and not torch.isclose(expected, unweighted, rtol=1e-3):
        _fail("your loss ignores the weights: scale every bin's embedding and assignment by sqrt(W)")
    total = weights.flatten(1).sum(1).square()
    if torch.isclose(answer, (expected * total).mean(), rtol=1e-3) or torch.isclose(
            answer, expected * total.mean(), rtol=1e-3):
        _fail("divide each example's loss by the square of its total weight, so the size of a batch does not matter")
    if not torch.isclose(answer, expected, rtol=1e-3, atol=1e-6):
        _fail((f"your loss is {float(answer.detach()):.5f}, the naive ||W^1/2 (VV^T - YY^T) W^1/2||^2 gives "
               f"{float(expected):.5f}: " if reveal else "your loss differs from the naive "
               "||W^1/2 (VV^T - YY^T) W^1/2||^2: ") + "expand the square into ||V^T W V||^2 - 2 ||V^T W Y||^2 "
              "+ ||Y^T W Y||^2")
    if not answer.requires_grad:
        _fail("your loss does not reach the embeddings: no gradient would train the network")
    perfect = assignments
    if not float(_call(deep_clustering_loss, perfect, assignments, weights)) < 1e-5:
        _fail("embeddings equal to the assignments must give a loss of 0")
    return "correct: the low-rank deep-clustering loss, equal to the naive one"


def check_mask_only(freeze_all_but_mask: Callable, seed: int = 0, reveal: bool = True) -> str:
    """Check a student's ``f(network: ChimeraNet) -> int``: freeze every parameter but the mask
    head's and return how many numbers still learn.

    Chapter: transfer/transfer_learning
    """
    from sepbook.models.chimera import ChimeraNet

    generator = torch.Generator().manual_seed(seed)
    sizes = dict(n_freq=_draw(generator, 5, 17), n_sources=_draw(generator, 2, 3), hidden=2 * _draw(generator, 2, 6),
                 layers=_draw(generator, 1, 2), embedding_dim=_draw(generator, 2, 5))
    torch.manual_seed(seed)
    network = ChimeraNet(**sizes)
    answer = _call(freeze_all_but_mask, network)
    learning = {name for name, p in network.named_parameters() if p.requires_grad}
    mask = {f"mask.{name}" for name, _ in network.mask.named_parameters()}
    if not learning:
        _fail("nothing learns any more: the mask head must stay trainable")
    if learning - mask:
        _fail(f"these still learn but are not the mask head: {sorted(learning - mask)}")
    if mask - learning:
        _fail(f"part of the mask head is frozen: {sorted(mask - learning)}")
    expected = sum(p.numel() for p in network.mask.parameters())
    if isinstance(answer, bool) or not isinstance(answer, int) or answer != expected:
        _fail(f"you returned {answer!r}; " + (f"the mask head holds {expected} numbers (its weight and bias)"
              if reveal else "return how many numbers the mask head holds (its weight and bias)"))
    return f"correct: only the mask head learns, {expected} numbers"
