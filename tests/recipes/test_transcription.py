"""The score-supervision chapter (Hung, Wichern and Le Roux, ICASSP 2021): transcriptor, masking U-Net,
the losses of sepbook.losses.transcription, the harmonic and clip masks, the data helpers and the steps.

Losses are tested for the direction they push and for where their gradient goes, not only their
value. Each such loss has a *check* that raises ``AssertionError`` unless the real loss behaves,
and the ``..._catches`` tests run the check on mutated copies (sign flipped, gradient cut, a
detach removed, the one-instrument-per-source target dropped) to prove it would notice.
"""
import math
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from sepbook.audio import log_magnitude, n_bins
from sepbook.banks import Bank
from sepbook.losses.transcription import (balanced_bce, clip_mask, critic_loss, harmonic_mask, harmonic_mask_from_notes,
                                          harmonic_template, hidden_interference_loss, interference_loss, mixture_loss,
                                          notes_to_window, own_source_loss, reassembled_loss, reassembly_detection_loss,
                                          transcription_loss)
from sepbook.models.transcriptor import ClipClassifier, Transcriptor
from sepbook.models.unet import UNet
from sepbook.recipes import transcription
from sepbook.recipes.transcription import training
from sepbook.recipes.transcription.data import window

from helpers import check_update_rule, snapshot
from mutants import detached, edited, negated

B, K, P, F, T = 2, 3, 8, 16, 8   # batch, instruments, pitches, frequency bins, frames
BAND = 4                          # BandCritic: instrument j lives in bins [BAND j, BAND (j + 1))


# ----------------------------------------------------------------------------- helpers


def magnitudes(*shape, seed=0, low=0.0, high=1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(*shape, generator=g)).to(dtype)


def random_rolls(batch=B, k=K, p=P, frames=T, seed=0, density=0.3):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, k, p, frames, generator=g) < density).float()


def tiny_transcriptor(seed=0, n_bins=F, k=K, p=P, hidden=16):
    torch.manual_seed(seed)
    return Transcriptor(n_bins, k, p, channels=4, hidden=hidden)


def changed(before, module):
    """Names of the parameters of ``module`` that differ from ``before``."""
    return {name for name, value in module.named_parameters() if not torch.equal(before[name], value.detach())}


def gradient(loss, tensor):
    """d loss / d tensor; fails (AssertionError) if the loss does not reach ``tensor`` at all."""
    assert loss.requires_grad, "the loss carries no gradient"
    (g,) = torch.autograd.grad(loss, tensor, allow_unused=True)
    assert g is not None, "the loss does not reach this tensor"
    return g








class BandCritic(nn.Module):
    """A differentiable stand-in transcriptor: instrument ``j``'s logit in a frame is
    ``gain * mean(log-magnitude of bins [BAND j, BAND (j + 1))) - bias``, the same for every pitch.

    ``(N, 1, F, T)`` -> ``(N, K, P, T)``, or ``(N, K)`` (mean over time) with ``clip=True``.
    Bins from ``K * BAND`` up are read by no instrument.
    """

    def __init__(self, n_pitches=P, clip=False):
        super().__init__()
        self.n_pitches, self.clip = n_pitches, clip
        self.gain = nn.Parameter(torch.tensor(4.0))
        self.bias = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        bands = x[:, 0, :K * BAND].unflatten(1, (K, BAND)).mean(dim=2)          # (N, K, T)
        logits = self.gain * bands - self.bias
        if self.clip:
            return logits.mean(dim=-1)
        return logits.unsqueeze(2).expand(-1, -1, self.n_pitches, -1)


def band_rolls(seed=0):
    """Rolls (B, K, P, T) where an instrument plays all its pitches or none in each frame, with both
    cases present for every instrument (the BandCritic cannot tell pitches apart)."""
    g = torch.Generator().manual_seed(seed)
    active = torch.rand(B, K, T, generator=g) < 0.5
    active[:, :, 0], active[:, :, 1] = True, False
    return active[:, :, None, :].expand(B, K, P, T).float()


# ----------------------------------------------------------------------------- Transcriptor, ClipClassifier


@pytest.mark.parametrize("frames", [1, 8, 13])
def test_transcriptor_output_shape(frames):
    model = tiny_transcriptor()
    logits = model(log_magnitude(magnitudes(B, 1, F, frames)))
    assert logits.shape == (B, K, P, frames)
    assert torch.isfinite(logits).all()


def test_transcriptor_gradient_reaches_every_parameter():
    model = tiny_transcriptor()
    x = log_magnitude(magnitudes(B, 1, F, T, seed=1, high=3.0))
    weights = torch.randn(B, K, P, T, generator=torch.Generator().manual_seed(2))
    (model(x) * weights).sum().backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, f"no gradient reaches {dead}"


def test_transcriptor_frames_are_not_mixed_across_the_batch():
    model = tiny_transcriptor()
    x = log_magnitude(magnitudes(B, 1, F, T, seed=3))
    together = model(x)
    alone = torch.cat([model(x[i:i + 1]) for i in range(B)])
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("shape", [(B, F, T), (B, 2, F, T), (B, 1, F + 4, T)])
def test_transcriptor_rejects_wrong_shape_naming_it(shape):
    with pytest.raises(ValueError, match=r"\(" + ", ".join(map(str, shape)) + r"\)"):
        tiny_transcriptor()(torch.zeros(shape))


@pytest.mark.parametrize("kwargs", [{"n_bins": 18}, {"n_bins": 0}, {"hidden": 15}, {"n_pitches": 2.0}])
def test_transcriptor_rejects_bad_sizes(kwargs):
    args = {"n_bins": F, "n_instruments": K, "n_pitches": P, "channels": 4, "hidden": 16} | kwargs
    with pytest.raises(ValueError, match="Transcriptor"):
        Transcriptor(**args)


def test_transcriptor_overfits_one_batch():
    """A tiny transcriptor memorises one fixed roll: BCE falls by a large factor in 150 Adam steps."""
    model = tiny_transcriptor(hidden=32)
    x = log_magnitude(magnitudes(B, 1, F, T, seed=4, high=3.0))
    rolls = random_rolls(seed=5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = transcription_loss(model(x), rolls)
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = float(transcription_loss(model(x), rolls).detach())
    assert final < first / 10, (first, final)
    with torch.no_grad():
        assert torch.equal((model(x) > 0).float(), rolls), "the memorised roll should transcribe exactly"


def test_clip_classifier_output_shape_and_time_max_pooling():
    torch.manual_seed(0)
    classifier = ClipClassifier(F, K, channels=4, hidden=16)
    x = log_magnitude(magnitudes(B, 1, F, T, seed=6))
    logits = classifier(x)
    assert logits.shape == (B, K)
    frames = classifier.frames(x)
    assert frames.shape == (B, K, 1, T)
    assert torch.equal(logits, frames[:, :, 0].amax(dim=-1))


# ----------------------------------------------------------------------------- UNet(masks=True)


def test_unet_masks_in_unit_interval_and_default_unet_unchanged():
    mixture = log_magnitude(magnitudes(B, 1, F, T, seed=7, high=400.0))     # log-magnitudes up to ~6
    torch.manual_seed(0)
    masker = UNet(K, base_channels=4, depth=2, masks=True)
    masks = masker(mixture)
    assert masks.shape == (B, K, F, T)
    assert (masks >= 0).all() and (masks <= 1).all()
    assert masks.std() > 0, "the masks should depend on the input"

    torch.manual_seed(0)
    plain = UNet(K, base_channels=4, depth=2)
    assert not plain.masks
    estimates = plain(mixture)
    assert estimates.shape == (B, K, F, T)
    assert (estimates >= 0).all()
    assert (estimates > 1).any(), "the default U-Net outputs log-magnitudes (ReLU), not masks"
    # the default heads still start as mixture / n_sources; the mask heads keep PyTorch's init
    assert all(torch.allclose(h.weight[:, -1], torch.tensor(1.0 / K)) for h in plain.heads)
    assert not all(torch.allclose(h.weight[:, -1], torch.tensor(1.0 / K)) for h in masker.heads)


def test_unet_masks_get_gradient():
    torch.manual_seed(0)
    masker = UNet(K, base_channels=4, depth=2, masks=True)
    masker(log_magnitude(magnitudes(B, 1, F, T, seed=8))).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in masker.heads.parameters())


# ----------------------------------------------------------------------------- transcription_loss


def check_transcription(loss_fn):
    """L_tr pushes logits towards +inf where the roll is 1 and -inf where it is 0, and is smallest at the roll."""
    rolls = random_rolls(seed=9)
    logits = torch.randn(B, K, P, T, generator=torch.Generator().manual_seed(10)).requires_grad_(True)
    g = gradient(loss_fn(logits, rolls), logits)
    assert (g[rolls == 1] < 0).all(), "descent must raise the logits of sounding notes"
    assert (g[rolls == 0] > 0).all(), "descent must lower the logits of silent notes"
    confident = 10 * (2 * rolls - 1)
    assert loss_fn(confident, rolls) < loss_fn(logits.detach(), rolls)
    assert loss_fn(confident, rolls) < loss_fn(-confident, rolls)


def test_transcription_loss_pushes_logits_towards_the_roll():
    check_transcription(transcription_loss)


@pytest.mark.parametrize("mutant", [negated, detached], ids=["negated", "detached"])
def test_transcription_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_transcription(mutant(transcription_loss))


def test_transcription_loss_value_and_shape_check():
    rolls = random_rolls(seed=11)
    assert float(transcription_loss(torch.zeros(B, K, P, T), rolls)) == pytest.approx(math.log(2))
    assert float(transcription_loss(30 * (2 * rolls - 1), rolls)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="shape"):
        transcription_loss(torch.zeros(B, K, P, T), rolls[:, :2])


# ----------------------------------------------------------------------------- critic_loss (L_tr-sep)


def check_critic(loss_fn):
    """The separator's gradient moves instrument j's band out of every source k != j, and into
    source j where j plays; bins no instrument reads get none."""
    estimates = magnitudes(B, K, F, T, seed=12).requires_grad_(True)
    rolls = band_rolls(seed=13)
    g = gradient(loss_fn(BandCritic(), estimates, rolls), estimates)
    active = rolls[:, :, 0, :] > 0                                                 # (B, K, T)
    for j in range(K):
        band = g[:, :, BAND * j:BAND * (j + 1)]                                    # (B, K source, BAND, T)
        for k in range(K):
            if k != j:
                assert (band[:, k] > 0).all(), f"instrument {j}'s band must leave source {k}"
        here = band[:, j].permute(0, 2, 1)                                          # (B, T, BAND)
        assert (here[active[:, j]] < 0).all(), f"instrument {j}'s band must fill source {j} where it plays"
        assert (here[~active[:, j]] > 0).all(), f"source {j} must be silent where instrument {j} rests"
    assert (g[:, :, K * BAND:] == 0).all(), "bins no instrument reads get no gradient"


def test_critic_loss_puts_each_instrument_in_its_own_source():
    check_critic(critic_loss)


@pytest.mark.parametrize("mutant", [
    negated, detached,
    lambda f: edited(f, "_own(targets, read)", "targets.unsqueeze(1).expand_as(read)"),
], ids=["negated", "detached", "every-instrument-in-every-source"])
def test_critic_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_critic(mutant(critic_loss))


def reference_critic_loss(critic, estimates, targets):
    """Balanced BCE of every source read one at a time against ``Y_k e_k``: the mean over the entries
    that should be on and the mean over those that should be off, averaged."""
    reads, wanted = [], []
    for k in range(estimates.shape[1]):
        read = critic(log_magnitude(estimates[:, k:k + 1]))
        alone = torch.zeros_like(read)
        alone[:, k] = targets[:, k]
        reads.append(read.flatten())
        wanted.append(alone.flatten())
    read, wanted = torch.cat(reads), torch.cat(wanted)
    each = bce(read, wanted, reduction="none")
    return (each[wanted == 1].mean() + each[wanted == 0].mean()) / 2


@pytest.mark.parametrize("clip", [False, True], ids=["rolls", "clip labels"])
def test_critic_loss_value_matches_one_source_at_a_time(clip):
    critic = BandCritic(clip=clip)
    estimates = magnitudes(B, K, F, T, seed=14, high=2.0)
    rolls = band_rolls(seed=15)
    targets = clip_mask(rolls).float() if clip else rolls
    with torch.no_grad():
        assert float(critic_loss(critic, estimates, targets)) == pytest.approx(
            float(reference_critic_loss(critic, estimates, targets)), rel=1e-5)


def test_critic_loss_value_with_a_transcriptor():
    critic = tiny_transcriptor()
    estimates = magnitudes(B, K, F, T, seed=16, high=2.0)
    rolls = random_rolls(seed=17)
    with torch.no_grad():
        assert float(critic_loss(critic, estimates, rolls)) == pytest.approx(
            float(reference_critic_loss(critic, estimates, rolls)), rel=1e-5)


@pytest.mark.parametrize("critic_fn", [BandCritic, tiny_transcriptor], ids=["band critic", "transcriptor"])
def test_frozen_critic_gets_no_gradient_but_estimates_do(critic_fn):
    critic = critic_fn()
    estimates = magnitudes(B, K, F, T, seed=18).requires_grad_(True)
    rolls = band_rolls(seed=19)
    critic.requires_grad_(False)
    critic_loss(critic, estimates, rolls).backward()
    assert all(p.grad is None for p in critic.parameters())
    assert estimates.grad is not None and estimates.grad.abs().sum() > 0
    # not vacuous: an unfrozen critic does get a gradient from the same loss
    critic.requires_grad_(True)
    critic_loss(critic, estimates.detach(), rolls).backward()
    assert all(p.grad is not None for p in critic.parameters())


def test_critic_loss_rejects_wrong_instrument_count():
    estimates = magnitudes(B, K, F, T)
    with pytest.raises(ValueError, match="targets"):
        critic_loss(BandCritic(), estimates, band_rolls()[:, :2])
    with pytest.raises(ValueError, match="estimates"):
        critic_loss(BandCritic(), estimates[0], band_rolls())


# ----------------------------------------------------------------------------- mixture_loss (L_mix)


def check_mixture(loss_fn):
    """If the sources add up to too little, the gradient raises every estimate; too much, it lowers them."""
    sources = magnitudes(B, K, F, T, seed=20, low=0.1)
    mixture = sources.sum(dim=1, keepdim=True)
    for factor, sign in ((0.5, -1), (2.0, 1)):
        estimates = (factor * sources).requires_grad_(True)
        g = gradient(loss_fn(estimates, mixture), estimates)
        assert (sign * g > 0).all(), f"sum = {factor} x mixture: every estimate must move towards the mixture"


def test_mixture_loss_pulls_the_sum_towards_the_mixture():
    check_mixture(mixture_loss)


@pytest.mark.parametrize("mutant", [negated, detached], ids=["negated", "detached"])
def test_mixture_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_mixture(mutant(mixture_loss))


def test_mixture_loss_is_zero_when_the_estimates_add_up():
    estimates = magnitudes(B, K, F, T, seed=21)
    mixture = estimates.sum(dim=1, keepdim=True)
    assert float(mixture_loss(estimates, mixture)) == pytest.approx(0.0, abs=1e-6)
    assert float(mixture_loss(estimates, 2 * mixture)) > 0.1
    # clip mask: only the instruments that play have to add up
    clip = torch.tensor([[True, False, True], [True, True, True]])
    masked_sum = (estimates * clip[:, :, None, None]).sum(dim=1, keepdim=True)
    assert float(mixture_loss(estimates, masked_sum, clip=clip)) == pytest.approx(0.0, abs=1e-6)
    assert float(mixture_loss(estimates, mixture, clip=clip)) > 0.01


def test_mixture_loss_value_is_a_mean_over_the_harmonic_mask():
    mixture = magnitudes(B, 1, F, T, seed=22)
    # estimates whose sum is off by exactly 0.5 in log(1 + .) at every bin
    total = torch.expm1(log_magnitude(mixture) + 0.5)
    estimates = (total / K).expand(B, K, F, T).contiguous()
    harmonic = torch.zeros(B, F, T, dtype=torch.bool)
    harmonic[:, 3:5, 2:6] = True
    assert float(mixture_loss(estimates, mixture)) == pytest.approx(0.5, rel=1e-5)
    assert float(mixture_loss(estimates, mixture, harmonic=harmonic)) == pytest.approx(0.5, rel=1e-5)
    assert float(mixture_loss(estimates, mixture, harmonic=torch.zeros_like(harmonic))) == 0.0


def test_mixture_loss_clip_mask_drops_inactive_instruments():
    estimates = magnitudes(B, K, F, T, seed=23).requires_grad_(True)
    mixture = magnitudes(B, 1, F, T, seed=24, high=2.0)
    clip = torch.tensor([[True, False, True], [False, True, True]])
    loss = mixture_loss(estimates, mixture, clip=clip)
    g = gradient(loss, estimates)
    assert (g[~clip] == 0).all(), "an instrument that does not play gets no gradient from L_mix"
    assert (g[clip].abs().flatten(1).sum(dim=1) > 0).all()
    louder = estimates.detach().clone()
    louder[~clip] += 5.0
    assert float(mixture_loss(louder, mixture, clip=clip)) == pytest.approx(float(loss.detach()), rel=1e-6)
    unmasked = float(mixture_loss(estimates, mixture).detach())
    assert float(mixture_loss(louder, mixture)) != pytest.approx(unmasked), "without the clip mask it does count"


def test_mixture_loss_harmonic_mask_ignores_bins_outside():
    estimates = magnitudes(B, K, F, T, seed=25).requires_grad_(True)
    mixture = magnitudes(B, 1, F, T, seed=26, high=2.0)
    harmonic = torch.rand(B, F, T, generator=torch.Generator().manual_seed(27)) < 0.3
    loss = mixture_loss(estimates, mixture, harmonic=harmonic)
    g = gradient(loss, estimates)
    outside = ~harmonic[:, None].expand(B, K, F, T)
    assert (g[outside] == 0).all(), "bins away from the harmonics get no gradient"
    assert (g[~outside] != 0).any()
    changed_outside = estimates.detach().clone()
    changed_outside[outside] *= 3.0
    assert float(mixture_loss(changed_outside, mixture, harmonic=harmonic)) == pytest.approx(
        float(loss.detach()), rel=1e-6)


def test_mixture_loss_checks_shapes():
    estimates, mixture = magnitudes(B, K, F, T), magnitudes(B, 1, F, T)
    with pytest.raises(ValueError, match="mixture"):
        mixture_loss(estimates, mixture[:, :, :-1])
    with pytest.raises(ValueError, match="clip"):
        mixture_loss(estimates, mixture, clip=torch.ones(B, K + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="harmonic"):
        mixture_loss(estimates, mixture, harmonic=torch.ones(B, K, F, T, dtype=torch.bool))


# ----------------------------------------------------------------------------- clip_mask


def test_clip_mask_marks_exactly_the_instruments_that_play():
    rolls = torch.zeros(B, K, P, T)
    rolls[0, 1, 5, 7] = 1                 # one short note of instrument 1 in clip 0
    rolls[1, 0, :, 2:4] = 1
    rolls[1, 2, 0, 0] = 1
    expected = torch.tensor([[False, True, False], [True, False, True]])
    assert torch.equal(clip_mask(rolls), expected)
    assert torch.equal(clip_mask(rolls.bool()), expected)
    with pytest.raises(ValueError, match="rolls"):
        clip_mask(rolls[0])


# ----------------------------------------------------------------------------- harmonic masks

SR, N_FFT, LOWEST, N_PITCHES = 8192, 512, 28, 48     # the tiny profile
N_BINS = N_FFT // 2


@pytest.fixture(scope="module")
def template():
    return harmonic_template(LOWEST, N_PITCHES, SR, N_FFT, N_BINS, n_harmonics=8)


def test_harmonic_template_is_true_only_near_harmonics(template):
    assert template.shape == (N_PITCHES, N_BINS) and template.dtype == torch.bool
    bins = np.arange(N_BINS) * SR / N_FFT
    for p in range(N_PITCHES):
        f0 = 440.0 * 2 ** ((LOWEST + p - 69) / 12)
        harmonics = f0 * np.arange(1, 9)
        harmonics = harmonics[harmonics < SR / 2]
        width = np.maximum(harmonics * (2 ** (0.5 / 12) - 1), SR / N_FFT)
        near = (np.abs(bins[:, None] - harmonics[None, :]) <= width[None, :] + 1e-9).any(axis=1)
        row = template[p].numpy()
        assert not (row & ~near).any(), f"pitch {LOWEST + p}: bins {np.flatnonzero(row & ~near)} are far from harmonics"
        assert row[round(f0 * N_FFT / SR)], f"pitch {LOWEST + p}: the bin nearest f0 must be in the mask"
        for h in harmonics:
            nearest = round(h * N_FFT / SR)
            if nearest < N_BINS:
                assert row[nearest], f"pitch {LOWEST + p}: the bin nearest {h:.0f} Hz must be in the mask"
        assert row.mean() < 0.5, "the mask should leave most bins out"


def test_harmonic_mask_is_the_union_of_the_sounding_notes(template):
    roll = torch.zeros(N_PITCHES, T)
    roll[5, 2:5] = 1
    roll[20, 4:6] = 1
    mask = harmonic_mask(roll, template)
    assert mask.shape == (N_BINS, T) and mask.dtype == torch.bool
    for t in range(T):
        expected = torch.zeros(N_BINS, dtype=torch.bool)
        if 2 <= t < 5:
            expected |= template[5]
        if 4 <= t < 6:
            expected |= template[20]
        assert torch.equal(mask[:, t], expected), f"frame {t}"
    assert not mask[:, 0].any() and not mask[:, 7].any(), "a frame with no notes is all False"
    stacked = torch.stack([roll, torch.zeros_like(roll), roll.flip(-1)])[None]        # (1, 3, P, T)
    masks = harmonic_mask(stacked, template)
    assert masks.shape == (1, 3, N_BINS, T)
    assert torch.equal(masks[0, 0], mask) and not masks[0, 1].any() and torch.equal(masks[0, 2], mask.flip(-1))
    with pytest.raises(ValueError, match="pitches"):
        harmonic_mask(roll[:-1], template)


def test_harmonic_mask_from_notes_matches_the_roll(template):
    frame_rate = 10.0
    notes = np.array([[0.0, 0.2, LOWEST + 3], [0.3, 0.7, LOWEST + 30], [0.7, 0.8, LOWEST + 47],
                      [0.72, 0.78, LOWEST + 10]])     # the last lies between two frame times: no frame
    roll = torch.zeros(N_PITCHES, T)                  # frame i counts a note when onset <= i / 10 < offset
    roll[3, 0:2] = 1
    roll[30, 3:7] = 1
    roll[47, 7:8] = 1
    assert torch.equal(notes_to_window(notes, T, frame_rate, LOWEST, N_PITCHES), roll.bool())
    assert torch.equal(harmonic_mask_from_notes(notes, T, frame_rate, template, LOWEST), harmonic_mask(roll, template))
    assert not harmonic_mask_from_notes(np.zeros((0, 3)), T, frame_rate, template, LOWEST).any()


@pytest.mark.parametrize("note", [(-0.1, 0.2), (0.5, 0.9), (0.4, 0.4)], ids=["before", "after", "empty"])
def test_notes_outside_the_frames_raise(template, note):
    notes = np.array([[*note, LOWEST + 1]])
    with pytest.raises(ValueError, match="outside the 8 frames"):
        harmonic_mask_from_notes(notes, T, 10.0, template, LOWEST)


@pytest.mark.parametrize("pitch", [LOWEST - 1, LOWEST + N_PITCHES])
def test_notes_outside_the_pitch_window_raise(pitch):
    with pytest.raises(ValueError, match=f"pitch {pitch}"):
        notes_to_window(np.array([[0.0, 0.2, pitch]]), T, 10.0, LOWEST, N_PITCHES)


# ----------------------------------------------------------------------------- step 3: L_own, ATL and AML


def check_transcriptor_side(loss_fn, reading):
    """A transcriptor-side loss: every transcriptor parameter learns and ``reading()`` (the BCE the
    side should lower) falls after a step; the separated estimates get no gradient."""
    transcriptor = tiny_transcriptor(seed=1).double()
    estimates = magnitudes(B, K, F, T, seed=28, dtype=torch.float64).requires_grad_(True)
    rolls = random_rolls(seed=29).double()
    loss = loss_fn(transcriptor, estimates, rolls)
    assert loss.requires_grad
    parameters = list(transcriptor.parameters())
    grads = torch.autograd.grad(loss, [estimates, *parameters], allow_unused=True)
    assert grads[0] is None or (grads[0] == 0).all(), "the transcriptor's side must not move the separator"
    assert all(g is not None for g in grads[1:]), "every transcriptor parameter learns"
    before = reading(transcriptor, estimates.detach(), rolls)
    with torch.no_grad():
        for p, g in zip(parameters, grads[1:]):
            p -= 0.05 * g
    assert reading(transcriptor, estimates.detach(), rolls) < before


def per_source(transcriptor, estimates):
    """``(batch, K source, K instrument, P, T)`` logits, one source at a time."""
    return torch.stack([transcriptor(log_magnitude(estimates[:, k:k + 1])) for k in range(estimates.shape[1])], 1)


@torch.no_grad()
def own_reading(transcriptor, estimates, rolls):
    read = per_source(transcriptor, estimates)
    return float(sum(bce(read[:, k, k], rolls[:, k]) for k in range(K)))


@torch.no_grad()
def interference_reading(transcriptor, estimates, rolls):
    read = per_source(transcriptor, estimates)
    return float(sum(bce(read[:, k, j], rolls[:, j]) for k in range(K) for j in range(K) if j != k))


def test_own_source_loss_teaches_the_transcriptor_to_read_each_source_as_its_instrument():
    check_transcriptor_side(own_source_loss, own_reading)


def test_interference_loss_teaches_the_transcriptor_to_find_the_other_instruments():
    check_transcriptor_side(interference_loss, interference_reading)


@pytest.mark.parametrize("loss, reading", [(own_source_loss, own_reading),
                                           (interference_loss, interference_reading)], ids=["L_own", "ATL"])
@pytest.mark.parametrize("mutant", [
    negated, detached, lambda f: edited(f, "estimates.detach()", "estimates"),
], ids=["negated", "detached", "not-detached-estimates"])
def test_transcriptor_side_check_catches(loss, reading, mutant):
    with pytest.raises(AssertionError):
        check_transcriptor_side(mutant(loss), reading)


def test_own_source_and_interference_values_split_the_readings():
    transcriptor = tiny_transcriptor(seed=2)
    estimates = magnitudes(B, K, F, T, seed=30)
    rolls = random_rolls(seed=31)
    with torch.no_grad():
        read = per_source(transcriptor, estimates)
        own = torch.stack([read[:, k, k] for k in range(K)], 1)
        others = torch.stack([read[:, k, j] for k in range(K) for j in range(K) if j != k], 1)
        targets = torch.stack([rolls[:, j] for k in range(K) for j in range(K) if j != k], 1)
        assert float(own_source_loss(transcriptor, estimates, rolls)) == pytest.approx(float(bce(own, rolls)), rel=1e-5)
        assert float(interference_loss(transcriptor, estimates, rolls)) == pytest.approx(
            float(bce(others, targets)), rel=1e-5)
        assert float(hidden_interference_loss(transcriptor, estimates, rolls)) == pytest.approx(
            float(bce(others, torch.zeros_like(others))), rel=1e-5)
    with pytest.raises(ValueError, match="targets"):
        interference_loss(transcriptor, estimates, rolls[:, :2])


def check_hidden_interference(loss_fn):
    """ATL, the separator's side: instrument j's band leaves every source k != j; a source's own
    band gets no gradient (the separator side reads only the other instruments' rolls)."""
    estimates = magnitudes(B, K, F, T, seed=12).requires_grad_(True)
    rolls = band_rolls(seed=13)
    g = gradient(loss_fn(BandCritic(), estimates, rolls), estimates)
    for j in range(K):
        band = g[:, :, BAND * j:BAND * (j + 1)]
        for k in range(K):
            if k != j:
                assert (band[:, k] > 0).all(), f"instrument {j}'s band must leave source {k}"
        assert (band[:, j] == 0).all(), f"source {j}'s own band is not ATL's business"


def test_hidden_interference_loss_empties_the_other_instruments_out_of_each_source():
    check_hidden_interference(hidden_interference_loss)


@pytest.mark.parametrize("mutant", [negated, detached], ids=["negated", "detached"])
def test_hidden_interference_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_hidden_interference(mutant(hidden_interference_loss))


def test_the_two_sides_of_atl_push_the_readings_opposite_ways():
    """Where instrument j plays, the transcriptor's side raises its reading of j in source k != j and
    the separator's side lowers it: the adversary has two sides, and either can win."""
    rolls = random_rolls(seed=40)
    logits = torch.zeros(B, K, K, P, T, requires_grad=True)

    def critic(single):   # reads the logits back, whatever the estimates
        return logits.flatten(0, 1)

    estimates = magnitudes(B, K, F, T, seed=41)
    seek = torch.autograd.grad(interference_loss(critic, estimates, rolls), logits)[0]
    hide = torch.autograd.grad(hidden_interference_loss(critic, estimates, rolls), logits)[0]
    playing = (rolls.unsqueeze(1).expand_as(logits) > 0) & ~torch.eye(K, dtype=torch.bool).view(1, K, K, 1, 1)
    assert (seek[playing] < 0).all() and (hide[playing] > 0).all()


def tiny_detector(seed=0):
    transcriptor = tiny_transcriptor(seed=seed)
    head = nn.Linear(16, 1)
    return transcriptor, head, (lambda spectrogram: head(transcriptor.features(spectrogram))[..., 0])


def check_detection(loss_fn):
    """AML, the detector's side: after a step the detector says "real" more on the real mixture and
    less on the re-assembled one; the estimates get no gradient."""
    transcriptor, head, detect = tiny_detector(seed=5)
    estimates = magnitudes(B, K, F, T, seed=36).requires_grad_(True)
    mixture = magnitudes(B, 1, F, T, seed=37, high=3.0)
    fake = log_magnitude(estimates.detach().sum(dim=1, keepdim=True))

    @torch.no_grad()
    def gap():
        return float(detect(log_magnitude(mixture)).mean() - detect(fake).mean())

    before = gap()
    loss = loss_fn(detect, mixture, estimates)
    assert loss.requires_grad
    optimizer = torch.optim.SGD([*transcriptor.parameters(), *head.parameters()], lr=0.5)
    optimizer.zero_grad()
    loss.backward()
    assert estimates.grad is None or (estimates.grad == 0).all(), "the separator must not learn from detection"
    assert all(p.grad is not None for name, p in transcriptor.named_parameters()
               if not name.startswith("out.")), "the transcriptor's layers under its last one learn too"
    optimizer.step()
    assert gap() > before, (before, gap())


def test_reassembly_detection_loss_tells_real_from_reassembled_mixtures():
    check_detection(reassembly_detection_loss)


@pytest.mark.parametrize("mutant", [
    negated, detached, lambda f: edited(f, "estimates.detach()", "estimates"),
], ids=["negated", "detached", "not-detached-estimates"])
def test_detection_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_detection(mutant(reassembly_detection_loss))


def check_reassembled(loss_fn):
    """AML, the separator's side: the gradient reaches every estimate, the same for each (they are
    summed), and a small step against it makes the re-assembled mixture look more real."""
    transcriptor, head, detect = tiny_detector(seed=3)
    transcriptor.double().requires_grad_(False)
    head.double().requires_grad_(False)
    estimates = magnitudes(B, K, F, T, seed=32, low=0.5, high=1.5, dtype=torch.float64).requires_grad_(True)
    g = gradient(loss_fn(detect, estimates), estimates)
    assert g.abs().sum() > 0
    assert torch.allclose(g, g[:, :1].expand_as(g)), "only the sum of the estimates is judged"

    def realness(x):
        with torch.no_grad():
            return float(detect(log_magnitude(x.sum(dim=1, keepdim=True))).mean())

    stepped = (estimates - 0.05 * g / g.abs().max()).detach()
    assert realness(stepped) > realness(estimates.detach())


def test_reassembled_loss_makes_the_reassembled_mixture_pass_for_real():
    check_reassembled(reassembled_loss)


@pytest.mark.parametrize("mutant", [negated, detached], ids=["negated", "detached"])
def test_reassembled_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_reassembled(mutant(reassembled_loss))


def test_the_two_sides_of_aml_push_the_detector_opposite_ways():
    fake = torch.zeros(B, T, requires_grad=True)
    real = torch.zeros(B, T)

    def detect(spectrogram):   # the real mixture is the louder one here
        return real if spectrogram.sum() > 1e3 else fake

    estimates = magnitudes(B, K, F, T, seed=42)
    mixture = torch.full((B, 1, F, T), 100.0)
    detector_side = torch.autograd.grad(reassembly_detection_loss(detect, mixture, estimates), fake)[0]
    separator_side = torch.autograd.grad(reassembled_loss(detect, estimates), fake)[0]
    assert (detector_side > 0).all() and (separator_side < 0).all()


def test_aml_values_and_shape_checks():
    transcriptor, head, detect = tiny_detector(seed=6)
    estimates = magnitudes(B, K, F, T, seed=37)
    mixture = magnitudes(B, 1, F, T, seed=38)
    with torch.no_grad():
        real = detect(log_magnitude(mixture))
        fake = detect(log_magnitude(estimates.sum(dim=1, keepdim=True)))
        assert float(reassembly_detection_loss(detect, mixture, estimates)) == pytest.approx(
            float((nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean()) / 2), rel=1e-5)
        assert float(reassembled_loss(detect, estimates)) == pytest.approx(
            float(nn.functional.softplus(-fake).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="mixture"):
        reassembly_detection_loss(detect, mixture[:, :, :-1], estimates)
    with pytest.raises(ValueError, match="estimates"):
        reassembled_loss(detect, estimates[0])


def test_balanced_bce_weighs_notes_and_silence_alike():
    targets = torch.zeros(1, 100)
    targets[0, :2] = 1
    logits = torch.zeros(1, 100)
    logits[0, :2] = -3.0          # misses both notes, silence right at chance
    plain = float(bce(logits, targets))
    balanced = float(balanced_bce(logits, targets))
    assert balanced == pytest.approx((float(nn.functional.softplus(torch.tensor(3.0))) + math.log(2)) / 2, rel=1e-5)
    assert balanced > plain, "two missed notes among 98 silent entries must not be averaged away"
    assert float(balanced_bce(torch.zeros(3), torch.zeros(3))) == pytest.approx(math.log(2) / 2)


# ----------------------------------------------------------------------------- data helpers


def test_window_keeps_the_pitch_window_and_rejects_notes_outside():
    roll = np.zeros((T, 128), bool)
    roll[1:3, LOWEST] = True
    roll[5, LOWEST + N_PITCHES - 1] = True
    kept = window(roll, LOWEST, N_PITCHES)
    assert kept.shape == (N_PITCHES, T)
    expected = np.zeros((N_PITCHES, T), bool)
    expected[0, 1:3] = True
    expected[N_PITCHES - 1, 5] = True
    assert np.array_equal(kept, expected)

    bad = roll.copy()
    bad[0, LOWEST - 3] = True
    bad[4, LOWEST + N_PITCHES] = True
    with pytest.raises(ValueError, match=rf"song bass: MIDI pitches \[{LOWEST - 3}, {LOWEST + N_PITCHES}\]"):
        window(bad, LOWEST, N_PITCHES, "song bass")
    with pytest.raises(ValueError, match=r"\(frames, 128\)"):
        window(roll[:, :100], LOWEST, N_PITCHES)


def test_bank_excerpts_stay_within_one_song_and_match_across_banks():
    songs = [torch.arange(n, dtype=torch.float32).view(1, 1, n).expand(2, 3, n) + 100 * i
             for i, n in enumerate((5, 9, 6))]
    spectra = Bank.of(songs)
    rolls = Bank.of([s[:1, :2] for s in songs])
    rng = np.random.default_rng(0)
    starts = spectra.positions(200, 4, rng)
    cut, cut_rolls = spectra.take(starts, 4), rolls.take(starts, 4)
    assert cut.shape == (200, 2, 3, 4) and cut_rolls.shape == (200, 1, 2, 4)
    assert torch.equal(cut[:, :1, :2], cut_rolls)
    song = cut[:, 0, 0] // 100
    assert (song == song[:, :1]).all(), "an excerpt straddles two songs"
    assert ((cut[:, 0, 0] % 100).diff(dim=-1) == 1).all()
    assert set((cut[:, 0, 0, 0] // 100).long().tolist()) == {0, 1, 2}
    assert spectra.excerpts(4).shape == (1 + 2 + 1, 2, 3, 4)


# ----------------------------------------------------------------------------- training steps

SMALL = {"n_fft": 64, "frames": 16, "n_pitches": 12, "lowest_pitch": 40, "unet_base": 4, "unet_depth": 2,
         "channels": 4, "hidden": 8}


@pytest.fixture(scope="module")
def cfg():
    return transcription.config("tiny", **SMALL)


@pytest.mark.parametrize("window_", [{"lowest_pitch": 100}, {"lowest_pitch": 90, "n_pitches": 39}])
def test_config_rejects_a_pitch_window_beyond_midi(window_):
    with pytest.raises(ValueError, match="lowest_pitch"):
        transcription.config("tiny", **window_)
    assert transcription.config("tiny", lowest_pitch=80, n_pitches=48)["lowest_pitch"] == 80   # up to MIDI 127


def tiny_batch(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    bins, k = n_bins(cfg), len(cfg["instruments"])
    sources = torch.rand(batch, k, bins, cfg["frames"], generator=g) * 2
    rolls = (torch.rand(batch, k, cfg["n_pitches"], cfg["frames"], generator=g) < 0.2).float()
    return {"mixture": sources.sum(dim=1, keepdim=True), "sources": sources, "rolls": rolls}


def built(cfg, variant, seed=0):
    torch.manual_seed(seed)
    return training.build(cfg, variant)


def test_build_parts(cfg):
    assert set(built(cfg, "transcriptor")) == {"transcriptor"}
    assert set(built(cfg, "classifier")) == {"classifier"}
    assert set(built(cfg, "isolated c+h-mix")) == {"separator"}
    assert set(built(cfg, "fine-tune + ATL @ 0.1")) == {"separator", "transcriptor"}
    assert set(built(cfg, "fine-tune + AML @ 0.1")) == {"separator", "transcriptor", "detector"}
    assert built(cfg, "supervised")["separator"].masks
    with pytest.raises(ValueError, match="variant"):
        training.build(cfg, "no such variant")
    with pytest.raises(ValueError, match="variant"):
        training.build(cfg, "fine-tune + ATL @ 0.77")   # not a weight of the profile's sweep


@pytest.mark.parametrize("variant,critic_name", [("isolated c+h-mix", "transcriptor"),
                                                 ("isolated c-mix", "transcriptor"),
                                                 ("classifier baseline", "classifier")])
def test_separator_step_leaves_the_frozen_critic_alone(cfg, variant, critic_name):
    critic = built(cfg, critic_name, seed=1)[critic_name].requires_grad_(False)
    model = built(cfg, variant)
    clip, harmonic = training.ISOLATED[variant]
    critic_before, separator_before = snapshot(critic), snapshot(model["separator"])
    optimizers = {"separator": torch.optim.Adam(model["separator"].parameters(), lr=1e-2)}
    batch = tiny_batch(cfg)
    record = training.separator_step(model, optimizers, batch, critic=critic, template=training.template_of(cfg),
                                     clip=clip, harmonic=harmonic, mix_weight=0.5)
    assert not changed(critic_before, critic), "the critic must not be updated in step 2"
    assert all(p.grad is None for p in critic.parameters())
    names = {name for name, _ in model["separator"].named_parameters()}
    assert changed(separator_before, model["separator"]) == names, "every separator parameter should move"
    assert all(math.isfinite(v) for v in record.values())
    assert record["loss"] == pytest.approx(record["L_tr-sep"] + 0.5 * record["L_mix"], rel=1e-5)


def test_separator_step_lowers_its_loss(cfg):
    critic = built(cfg, "transcriptor", seed=1)["transcriptor"].requires_grad_(False)
    model = built(cfg, "isolated c+h-mix")
    optimizers = {"separator": torch.optim.Adam(model["separator"].parameters(), lr=1e-2)}
    batch, template = tiny_batch(cfg, seed=1), training.template_of(cfg)
    losses = [training.separator_step(model, optimizers, batch, critic=critic, template=template, clip=True,
                                      harmonic=True, mix_weight=1.0)["loss"] for _ in range(15)]
    assert losses[-1] < losses[0], losses


RUN_OF = {None: "fine-tune", "ATL": "fine-tune + ATL @ 0.1", "AML": "fine-tune + AML @ 0.1"}


def fine_tune_optimizers(model, optimizer=torch.optim.Adam, lr=1e-2):
    critics = [p for name, part in model.items() if name != "separator" for p in part.parameters()]
    return {"separator": optimizer(model["separator"].parameters(), lr=lr), "transcriptor": optimizer(critics, lr=lr)}


@pytest.mark.parametrize("adversary", [None, "ATL", "AML"])
def test_fine_tune_step_updates_both_parts(cfg, adversary):
    model = built(cfg, RUN_OF[adversary])
    separator, transcriptor = model["separator"], model["transcriptor"]
    before = {name: snapshot(part) for name, part in model.items()}
    optimizers = fine_tune_optimizers(model)
    batch, template = tiny_batch(cfg, seed=2), training.template_of(cfg)
    rolls, weight = batch["rolls"], 0.1

    with torch.no_grad():   # what the step should report, from the models as they were
        separator_loss, l_critic, l_mix, estimates = training.score_loss(separator, transcriptor, batch, template,
                                                                         True, True, cfg["mix_weight"])
        # the transcriptor: BCE(T(X), Y) + L_own, plus w L_ATL or w L_AML (the detector's side)
        transcriptor_loss = (transcription_loss(transcriptor(log_magnitude(batch["mixture"])), rolls)
                             + own_source_loss(transcriptor, estimates, rolls))
        if adversary == "ATL":
            separator_loss = separator_loss + weight * hidden_interference_loss(transcriptor, estimates, rolls)
            transcriptor_loss = transcriptor_loss + weight * interference_loss(transcriptor, estimates, rolls)
        if adversary == "AML":
            detect = training.detector_of(model)
            separator_loss = separator_loss + weight * reassembled_loss(detect, estimates)
            transcriptor_loss = transcriptor_loss + weight * reassembly_detection_loss(detect, batch["mixture"],
                                                                                       estimates)

    record = training.fine_tune_step(model, optimizers, batch, template=template, mix_weight=cfg["mix_weight"],
                                     adversary=adversary, adversarial_weight=weight)
    assert record["loss"] == pytest.approx(float(separator_loss), rel=1e-5)
    assert record["transcriptor loss"] == pytest.approx(float(transcriptor_loss), rel=1e-5)
    assert record["L_tr-sep"] == pytest.approx(float(l_critic), rel=1e-5)
    assert record["L_mix"] == pytest.approx(float(l_mix), rel=1e-5)
    for name in model:
        assert changed(before[name], model[name]), f"the {name} should move in fine-tuning"
    assert all(p.requires_grad for part in model.values() for p in part.parameters()), "all trainable again"


def test_fine_tune_step_unfreezes_the_transcriptor_even_on_error(cfg):
    model = built(cfg, "fine-tune + ATL @ 0.1")
    optimizers = fine_tune_optimizers(model)
    batch = tiny_batch(cfg)
    batch["rolls"] = batch["rolls"][:, :2]
    with pytest.raises(ValueError):
        training.fine_tune_step(model, optimizers, batch, template=training.template_of(cfg), mix_weight=1.0,
                                adversary="ATL", adversarial_weight=0.2)
    assert all(p.requires_grad for p in model["transcriptor"].parameters())


def test_fine_tune_separator_update_ignores_the_transcriptor_loss(cfg):
    """The separator's step in fine-tuning is the same as a step 2 update with the transcriptor frozen."""
    batch, template = tiny_batch(cfg, seed=3), training.template_of(cfg)
    model = built(cfg, "fine-tune")
    reference = built(cfg, "fine-tune")
    optimizers = {name: torch.optim.SGD(model[name].parameters(), lr=0.1) for name in ("separator", "transcriptor")}
    training.fine_tune_step(model, optimizers, batch, template=template, mix_weight=1.0, adversary=None,
                            adversarial_weight=0.2)
    critic = reference["transcriptor"].requires_grad_(False)
    training.separator_step(reference, {"separator": torch.optim.SGD(reference["separator"].parameters(), lr=0.1)},
                            batch, critic=critic, template=template, clip=True, harmonic=True, mix_weight=1.0)
    for (name, a), b in zip(model["separator"].named_parameters(), reference["separator"].parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


@pytest.mark.parametrize("adversary", [None, "ATL", "AML"])
def test_step_3_trains_both_parts_through_the_update_rule(cfg, adversary):
    """Gradient scaling (float16 on a T4) and clipping reach the separator's and the transcriptor's updates."""
    def make():
        model = built(cfg, RUN_OF[adversary])
        return model, fine_tune_optimizers(model, torch.optim.SGD), tiny_batch(cfg, seed=2)

    check_update_rule(make, partial(training.fine_tune_step, template=training.template_of(cfg),
                                    mix_weight=cfg["mix_weight"], adversary=adversary,
                                    adversarial_weight=0.1))


def test_step_2_trains_through_the_update_rule(cfg):
    critic = built(cfg, "transcriptor", seed=1)["transcriptor"].requires_grad_(False)

    def make():
        model = built(cfg, "isolated c+h-mix")
        return model, {"separator": torch.optim.SGD(model["separator"].parameters(), lr=1e-2)}, tiny_batch(cfg)

    check_update_rule(make, partial(training.separator_step, critic=critic, template=training.template_of(cfg),
                                    clip=True, harmonic=True, mix_weight=0.5))
