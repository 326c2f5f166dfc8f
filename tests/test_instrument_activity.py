"""The activity chapter (instrument-activation-aware separation, Hung and Lerch 2020): the residual
U-Net, IASS and its activity head, the losses of sepbook.losses.activity, the inference weighting of
sepbook.instrument_activity, activity-detection scores, and the two guitars of the synthesiser.

Losses are tested for the direction they push and for where their gradient goes, not only their
value. Each loss has a *check* that raises ``AssertionError`` unless the real loss behaves, and the
``..._catches`` tests run the check on mutated copies (sign flipped, gradient cut, a term dropped) to
prove it would notice.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from sepbook.audio import STFT, log_magnitude
from sepbook.data.synth import synthesize_song
from sepbook.instrument_activity import activity_weights, frame_activity, median_filter, weight_masks
from sepbook.losses.activity import activity_loss, masked_magnitude_loss, positive_weights
from sepbook.models.iass import IASS, ActivityHead
from sepbook.models.unet import ResidualBlock, UNet
from sepbook.recipes.activity.evaluation import detection_scores

from mutants import detached, edited, negated

B, K, F, T = 2, 3, 16, 37          # batch, instruments, frequency bins, frames (odd on purpose)
ROOT = Path(__file__).resolve().parent.parent
MEDLEY = ("vocals", "bass", "drums", "piano", "electric_guitar", "acoustic_guitar")


# ----------------------------------------------------------------------------- helpers


def uniform(*shape, seed=0, low=0.0, high=1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)).to(dtype)


def random_labels(*shape, seed=0, density=0.5):
    """0/1 labels with both classes present in every (batch, instrument) row."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(*shape, generator=g) < density).float()
    labels[..., 0], labels[..., 1] = 1.0, 0.0
    return labels


def gradient(loss, tensor):
    """d loss / d tensor; fails (AssertionError) if the loss does not reach ``tensor`` at all."""
    assert loss.requires_grad, "the loss carries no gradient"
    (g,) = torch.autograd.grad(loss, tensor, allow_unused=True)
    assert g is not None, "the loss does not reach this tensor"
    return g


def no_gradient(module):
    """True when no parameter of ``module`` received a (non-zero) gradient."""
    return all(p.grad is None or not p.grad.abs().sum() for p in module.parameters())


def every_parameter_has_gradient(module):
    return all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def tiny_iass(seed=0, n_freq=32, depth=2):
    torch.manual_seed(seed)
    return IASS(K, n_freq, base_channels=4, depth=depth, max_channels=8, hidden=8)


# ----------------------------------------------------------------------------- ResidualBlock


def test_residual_block_shape_and_skip_path():
    torch.manual_seed(0)
    block = ResidualBlock(3, 6)
    x = torch.randn(2, 3, 8, 5)
    out = block(x)
    assert out.shape == (2, 6, 8, 5)
    assert isinstance(block.skip, nn.Conv2d) and block.skip.kernel_size == (1, 1)
    assert (block.skip.in_channels, block.skip.out_channels) == (3, 6)
    # with the body's last batch norm closed, LeakyReLU(0) = 0 and only the skip is left
    with torch.no_grad():
        block.body[-2].weight.zero_()
        block.body[-2].bias.zero_()
    assert torch.allclose(block(x), block.skip(x), atol=1e-6)


def test_residual_block_gradients_reach_every_parameter():
    torch.manual_seed(0)
    block = ResidualBlock(3, 6)
    x = torch.randn(2, 3, 8, 5)
    # a random weighting, not out.sum(): the sum of a batch norm's output does not depend on its input
    (block(x) * torch.randn(2, 6, 8, 5)).sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    # every parameter but the two convolution biases, which batch norm cancels (their gradient is 0
    # up to rounding), gets a real gradient
    cancelled = {"body.0.bias", "body.3.bias"}
    assert all(p.grad.abs().sum() > 0 for name, p in block.named_parameters() if name not in cancelled)
    assert block.skip.weight.grad.abs().sum() > 0 and block.skip.bias.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- UNet: block, pool, max_channels


def residual_unet(depth=4, max_channels=8, n_sources=K):
    torch.manual_seed(0)
    return UNet(n_sources, base_channels=4, depth=depth, masks=True, block=ResidualBlock, pool=(2, 1),
                max_channels=max_channels)


@pytest.mark.parametrize("frames", [1, 37])
def test_residual_unet_accepts_any_number_of_frames(frames):
    unet = residual_unet()
    assert unet.multiples == (16, 1)
    masks, bottleneck = unet.forward_with_bottleneck(torch.rand(1, 1, 256, frames))
    assert masks.shape == (1, K, 256, frames)
    assert (masks >= 0).all() and (masks <= 1).all()
    assert bottleneck.shape == (1, unet.widths[-1], 256 // 16, frames)
    assert torch.equal(unet(torch.ones(1, 1, 256, frames)), unet.forward_with_bottleneck(torch.ones(1, 1, 256, frames))[0])
    assert isinstance(unet.first, ResidualBlock) and all(isinstance(m, ResidualBlock) for m in unet.merge)


@pytest.mark.parametrize("freq", [250, 24, 8])
def test_residual_unet_rejects_a_freq_that_pooling_cannot_halve(freq):
    with pytest.raises(ValueError, match="freq"):
        residual_unet()(torch.rand(1, 1, freq, 37))


def test_default_unet_still_needs_both_sizes_to_be_multiples():
    unet = UNet(2, base_channels=4, depth=2)
    assert unet.multiples == (4, 4)
    with pytest.raises(ValueError, match="frames"):
        unet(torch.rand(1, 1, 16, 37))


def test_max_channels_caps_the_widths():
    unet = residual_unet(depth=4, max_channels=8)
    assert unet.widths == [4, 8, 8, 8, 8]
    assert unet.down[-1].skip.out_channels == 8
    assert UNet(2, base_channels=4, depth=4).widths == [4, 8, 16, 32, 64]
    small = sum(p.numel() for p in unet.parameters())
    assert small < sum(p.numel() for p in residual_unet(max_channels=None).parameters())


def default_unet_keys(depth, n_sources):
    keys = ["first.0.weight", "first.0.bias"]
    for part in ("down", "up", "merge"):
        keys += [f"{part}.{level}.0.{p}" for level in range(depth) for p in ("weight", "bias")]
    keys += [f"heads.{k}.{p}" for k in range(n_sources) for p in ("weight", "bias")]
    return set(keys)


def test_default_unet_keeps_its_state_dict_layout():
    unet = UNet(2, base_channels=8, depth=3)
    state = unet.state_dict()
    assert set(state) == default_unet_keys(3, 2)
    assert state["down.0.0.weight"].shape == (16, 8, 3, 3)
    assert state["up.0.0.weight"].shape == (64, 32, 2, 2)          # ConvTranspose2d(64 -> 32, 2, stride 2)
    assert state["heads.0.weight"].shape == (1, 9, 1, 1)


@pytest.mark.parametrize("chapter, variant", [("adversarial", "baseline"), ("transcription", "supervised")])
def test_committed_unet_checkpoints_still_load(chapter, variant):
    from sepbook import results
    from sepbook.recipes import adversarial, transcription

    path = ROOT / "chapters" / chapter / "results" / "book" / "checkpoints" / f"{variant}-seed0.pt"
    if not path.is_file():
        pytest.skip(f"no committed checkpoint {path}")
    recipe = {"adversarial": adversarial, "transcription": transcription}[chapter]
    model = recipe.build(recipe.config("book"), variant)
    results.load_half(model, torch.load(path, map_location="cpu", weights_only=True))   # strict
    assert isinstance(model["separator"], UNet)


@pytest.mark.parametrize("pool", [(3, 3), (1, 1), (2, 4), (2, 2, 2), 2])
def test_bad_pool_raises(pool):
    with pytest.raises(ValueError, match="pool"):
        UNet(2, base_channels=4, depth=2, pool=pool)


# ----------------------------------------------------------------------------- IASS


@pytest.mark.parametrize("frames", [1, T])
def test_iass_shapes(frames):
    model = tiny_iass()
    masks, logits = model(log_magnitude(uniform(B, 1, 32, frames, seed=1, high=3.0)))
    assert masks.shape == (B, K, 32, frames) and logits.shape == (B, K, frames)
    assert (masks >= 0).all() and (masks <= 1).all()
    assert torch.isfinite(logits).all() and logits.std() > 0


def test_iass_rejects_a_freq_that_is_not_a_multiple():
    with pytest.raises(ValueError, match="n_freq"):
        IASS(K, 30, base_channels=4, depth=2)


def test_activity_head_shape():
    head = ActivityHead(channels=5, bins=4, n_sources=K, hidden=8)
    assert head(torch.randn(B, 5, 4, T)).shape == (B, K, T)


def test_activity_gradient_trains_encoder_and_head_not_decoder():
    model = tiny_iass()
    _, logits = model(log_magnitude(uniform(B, 1, 32, T, seed=2, high=3.0)))
    bce(logits, random_labels(B, K, T, seed=3)).backward()
    assert every_parameter_has_gradient(model.activity)
    assert every_parameter_has_gradient(model.unet.first)
    assert every_parameter_has_gradient(model.unet.down)
    for part in (model.unet.up, model.unet.merge, model.unet.heads):
        assert no_gradient(part)


def test_mask_gradient_trains_the_decoder_not_the_activity_head():
    model = tiny_iass()
    mixture = uniform(B, 1, 32, T, seed=4, high=3.0)
    masks, _ = model(log_magnitude(mixture))
    masked_magnitude_loss(masks, mixture, uniform(B, K, 32, T, seed=5)).backward()
    for part in (model.unet.up, model.unet.merge, model.unet.heads, model.unet.first):
        assert every_parameter_has_gradient(part)
    assert no_gradient(model.activity)


# ----------------------------------------------------------------------------- masked_magnitude_loss


def check_masked_magnitude(loss_fn):
    """Zero at the masks that rebuild the sources, positive elsewhere, and one descent step on the
    masks moves every mask value toward the ideal one and lowers the loss."""
    mixture = uniform(B, 1, F, T, seed=6, low=0.5, high=2.0, dtype=torch.float64)
    ideal = uniform(B, K, F, T, seed=7, dtype=torch.float64)
    sources = ideal * mixture
    assert float(loss_fn(ideal, mixture, sources)) == pytest.approx(0.0, abs=1e-12)
    masks = uniform(B, K, F, T, seed=8, dtype=torch.float64).requires_grad_(True)
    loss = loss_fn(masks, mixture, sources)
    assert float(loss.detach()) > 1e-3, "masks away from the ideal must cost something"
    g = gradient(loss, masks)
    assert g.abs().sum() > 0
    assert (torch.sign(g) == torch.sign(masks.detach() - ideal)).all(), "descent must move masks toward the ideal"
    stepped = masks.detach() - 0.1 * g / g.abs().max()
    assert float(loss_fn(stepped, mixture, sources)) < float(loss.detach())


def test_masked_magnitude_loss_pulls_masks_to_the_ideal():
    check_masked_magnitude(masked_magnitude_loss)


@pytest.mark.parametrize("mutant", [
    negated, detached, lambda f: edited(f, "masks * mixture - sources", "masks - sources"),
], ids=["negated", "detached", "mixture-not-applied"])
def test_masked_magnitude_check_catches(mutant):
    broken = mutant(masked_magnitude_loss)
    with pytest.raises(AssertionError):
        check_masked_magnitude(broken)


def test_masked_magnitude_loss_value_and_shape_check():
    masks, mixture, sources = uniform(B, K, F, T, seed=9), uniform(B, 1, F, T, seed=10), uniform(B, K, F, T, seed=11)
    expected = ((masks * mixture - sources) ** 2).mean()
    assert torch.allclose(masked_magnitude_loss(masks, mixture, sources), expected)
    with pytest.raises(ValueError, match="mixture"):
        masked_magnitude_loss(masks, uniform(B, 2, F, T), sources)
    with pytest.raises(ValueError, match="sources"):
        masked_magnitude_loss(masks, mixture, sources[:, :2])


# ----------------------------------------------------------------------------- activity_loss, positive_weights


def check_activity(loss_fn):
    """Lower for logits that agree with the labels; one descent step moves every probability toward
    its label, with or without the positive weights."""
    labels = random_labels(B, K, T, seed=12)
    agreeing = 5 * (2 * labels - 1)
    assert float(loss_fn(agreeing, labels)) < float(loss_fn(-agreeing, labels))
    for weight in (None, torch.tensor([0.5, 1.0, 4.0])):
        logits = torch.randn(B, K, T, generator=torch.Generator().manual_seed(13)).requires_grad_(True)
        g = gradient(loss_fn(logits, labels, weight), logits)
        assert g.abs().sum() > 0
        stepped = logits.detach() - 1e3 * g
        before = (torch.sigmoid(logits.detach()) - labels).abs()
        after = (torch.sigmoid(stepped) - labels).abs()
        assert (after < before).all(), "descent must move every probability toward its label"


def test_activity_loss_pushes_probabilities_to_the_labels():
    check_activity(activity_loss)


@pytest.mark.parametrize("mutant", [negated, detached], ids=["negated", "detached"])
def test_activity_check_catches(mutant):
    broken = mutant(activity_loss)
    with pytest.raises(AssertionError):
        check_activity(broken)


def check_positive_weight(loss_fn):
    """A positive weight scales the cost of active frames only."""
    logits = torch.randn(B, K, T, generator=torch.Generator().manual_seed(14))
    weight = torch.full((K,), 3.0)
    silent, active, mixed = torch.zeros(B, K, T), torch.ones(B, K, T), random_labels(B, K, T, seed=15)
    assert torch.allclose(loss_fn(logits, silent, weight), loss_fn(logits, silent))
    assert torch.allclose(loss_fn(logits, active, weight), 3 * loss_fn(logits, active))
    assert float(loss_fn(logits, mixed, weight)) > float(loss_fn(logits, mixed))
    # one instrument's weight touches only that instrument's active frames
    one = torch.tensor([1.0, 1.0, 5.0])
    per_instrument = [bce(logits[:, k], mixed[:, k], pos_weight=one[k]) for k in range(K)]
    assert torch.allclose(loss_fn(logits, mixed, one), torch.stack(per_instrument).mean())


def test_activity_loss_positive_weight_scales_active_frames():
    check_positive_weight(activity_loss)


def test_positive_weight_check_catches_an_ignored_weight():
    broken = edited(activity_loss, "pos_weight=positive_weight", "pos_weight=None")
    with pytest.raises(AssertionError):
        check_positive_weight(broken)


def test_activity_loss_shape_mismatch_names_labels():
    with pytest.raises(ValueError, match="labels"):
        activity_loss(torch.zeros(B, K, T), torch.zeros(B, K, T - 1))
    with pytest.raises(ValueError, match="labels"):
        activity_loss(torch.zeros(B, K, T), torch.zeros(K, T))


def test_positive_weights_balance_silent_against_active_and_are_clipped():
    labels = torch.zeros(5, 40, dtype=torch.bool)
    labels[0, :10] = True         # 30 silent / 10 active -> 3
    labels[1, :30] = True         # 10 / 30 -> 1/3
    labels[2, :1] = True          # 39 / 1 -> clipped to 10
    labels[3, :] = True           # 0 / 40 -> clipped to 1/10
    # labels[4]: never active: 40 / (at least 1) -> clipped to 10
    weights = positive_weights(labels, limit=10.0)
    assert weights.shape == (5,)
    assert torch.allclose(weights, torch.tensor([3.0, 1 / 3, 10.0, 0.1, 10.0]))
    assert torch.allclose(positive_weights(labels, limit=2.0), torch.tensor([2.0, 0.5, 2.0, 0.5, 2.0]))


def test_positive_weights_check_catches_an_inverted_ratio():
    inverted = edited(positive_weights, "(silent / active.clamp(min=1))", "(active / silent.clamp(min=1))")
    labels = torch.zeros(1, 40, dtype=torch.bool)
    labels[0, :10] = True
    assert float(positive_weights(labels)) == pytest.approx(3.0)
    assert float(inverted(labels)) != pytest.approx(3.0)


# ----------------------------------------------------------------------------- inference weighting


def test_silent_frames_zero_the_mask_active_frames_keep_it():
    masks = uniform(B, K, F, T, seed=16, low=0.1)
    probabilities = uniform(B, K, T, seed=17)
    weights = activity_weights(probabilities, threshold=0.5, median_frames=1)
    assert torch.equal(weights, (probabilities >= 0.5).float())
    weighted = weight_masks(masks, weights)
    assert weighted.shape == masks.shape
    silent = (probabilities < 0.5).unsqueeze(-2).expand_as(masks)
    assert (weighted[silent] == 0).all()
    assert torch.equal(weighted[~silent], masks[~silent])
    assert silent.any() and (~silent).any()


@pytest.mark.parametrize("length", [3, 5, 15])
def test_median_filter_removes_a_one_frame_blip_and_fills_a_one_frame_gap(length):
    blip = torch.zeros(K, 31)
    blip[1, 15] = 1.0
    assert torch.equal(activity_weights(blip, 0.5, length), torch.zeros(K, 31))
    gap = torch.ones(K, 31)
    gap[2, 15] = 0.0
    assert torch.equal(activity_weights(gap, 0.5, length), torch.ones(K, 31))


def test_median_filter_keeps_runs_longer_than_half_its_length_and_its_shape():
    values = torch.zeros(2, K, 40)
    values[0, 0, 10:20] = 1.0                 # a 10-frame run survives a 7-frame filter
    out = median_filter(values, 7)
    assert out.shape == values.shape
    assert torch.equal(out, values)
    assert torch.equal(median_filter(values, 1), values)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, True, "0.5"])
def test_threshold_outside_zero_one_is_named(threshold):
    with pytest.raises(ValueError, match="threshold"):
        activity_weights(torch.rand(K, T), threshold=threshold)


@pytest.mark.parametrize("median_frames", [4, 0, -3, 2.0])
def test_even_or_non_positive_median_frames_are_named(median_frames):
    with pytest.raises(ValueError, match="median_frames"):
        activity_weights(torch.rand(K, T), median_frames=median_frames)
    with pytest.raises(ValueError, match="length"):
        median_filter(torch.rand(K, T), median_frames)


def test_weights_with_other_frames_than_the_masks_are_rejected():
    masks = torch.rand(B, K, F, T)
    with pytest.raises(ValueError, match="weights"):
        weight_masks(masks, torch.ones(B, K, T - 1))
    with pytest.raises(ValueError, match="weights"):
        weight_masks(masks, torch.ones(B, K - 1, T))


# ----------------------------------------------------------------------------- frame_activity


def test_frame_activity_on_magnitudes():
    magnitudes = uniform(K, F, 20, seed=18, low=0.5)
    magnitudes[0, :, 10:] = 0.0               # instrument 0 silent in its second half
    magnitudes[1] = 0.0                       # instrument 1 silent throughout
    magnitudes[2, :, 5] *= 1e-3               # instrument 2 60 dB down in one frame
    labels = frame_activity(magnitudes, threshold_db=-30.0)
    assert labels.dtype == torch.bool and labels.shape == (K, 20)
    assert labels[0, :10].all() and not labels[0, 10:].any()
    assert not labels[1].any()
    assert not labels[2, 5] and labels[2].sum() == 19


def test_frame_activity_of_a_stem_that_stops_halfway():
    sr, hop = 8000, 128
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    tone[sr // 2:] = 0.0
    spec = STFT(512, hop)(torch.as_tensor(tone)).abs()
    labels = frame_activity(spec)
    frames = labels.shape[-1]
    half = (sr // 2) // hop
    margin = 512 // hop + 1                   # frames whose window straddles the stop
    assert labels[: half - margin].all()
    assert not labels[half + margin:].any()
    assert not frame_activity(torch.zeros(257, frames)).any()


@pytest.mark.parametrize("bad", [
    torch.ones(4, 5, dtype=torch.complex64), -torch.ones(4, 5), torch.ones(5),
], ids=["complex", "negative", "one-dimensional"])
def test_frame_activity_rejects_what_is_not_a_magnitude(bad):
    with pytest.raises(ValueError, match="magnitudes"):
        frame_activity(bad)


def test_frame_activity_rejects_a_non_negative_threshold():
    with pytest.raises(ValueError, match="threshold_db"):
        frame_activity(torch.ones(4, 5), threshold_db=3.0)


# ----------------------------------------------------------------------------- detection_scores


def test_detection_scores_perfect_and_all_wrong():
    labels = random_labels(K, 50, seed=19).bool()
    perfect = detection_scores(labels, labels)
    assert np.allclose(perfect["accuracy"], 1.0) and np.allclose(perfect["F1"], 1.0)
    assert perfect["accuracy"].shape == (K,)
    wrong = detection_scores(~labels, labels)
    assert np.allclose(wrong["accuracy"], 0.0) and np.allclose(wrong["F1"], 0.0)


def test_detection_f1_is_undefined_for_an_instrument_that_never_plays_and_is_never_found():
    labels = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0]])
    scores = detection_scores(torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0]]), labels)
    assert np.isnan(scores["F1"][0]) and scores["accuracy"][0] == 1.0 and scores["F1"][1] == 1.0
    missed = detection_scores(torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]]), labels)
    assert missed["F1"][0] == 0.0 and missed["F1"][1] == 0.0


def test_sdr_penalises_an_estimate_that_silences_an_active_instrument():
    """Whole-song SDR scores a silent estimate 0 dB (finite, below any estimate that is closer to the
    instrument than silence is), and leaves only a silent *reference* unscored."""
    from sepbook.metrics import sdr

    reference = uniform(2, 800, seed=3, low=-1, high=1)
    reference[1] = 0
    good = reference + 0.1 * uniform(2, 800, seed=4, low=-1, high=1)
    silent = torch.zeros_like(reference)
    assert sdr(silent, reference)[0] == pytest.approx(0.0, abs=1e-6)
    assert sdr(good, reference)[0] > 15
    assert torch.isnan(sdr(good, reference)[1])
    assert sdr(0.5 * reference, reference)[0] == pytest.approx(10 * np.log10(4), abs=1e-4)


def rows_of(values, metric="SDR", source="piano", domain="medley"):
    """Rows from ``{(variant, seed, song): value}``."""
    return [{"variant": v, "seed": seed, "song": song, "domain": domain, "source": source, "metric": metric,
             "value": value} for (v, seed, song), value in values.items()]


def test_a_silenced_instrument_stays_in_the_comparison():
    """Song c, where IASS's detector silenced the piano (0 dB), counts against IASS: the claims' paired
    differences and the tables keep it instead of dropping it."""
    from sepbook.experiments import claims
    from sepbook.recipes.activity.evaluation import UNWEIGHTED, score_rows
    from sepbook.recipes.activity.page import gain_rows
    from sepbook.tracks import Track

    song = uniform(1, 1, 4096, seed=5, low=-1, high=1)
    track = Track("c", song[0], song, ("piano",), "medley", activity=torch.ones(1, 4096 // 256 + 1, dtype=torch.bool))
    cfg = {"sr": 8192, "n_fft": 512, "hop": 256}
    silenced = {r["metric"]: r["value"] for r in score_rows(torch.zeros(1, 4096), track, cfg, "IASS", 0)}
    assert silenced["SDR"] == pytest.approx(0.0, abs=1e-6)
    values = {}
    for seed in (0, 1):
        for s, (weighted, unweighted) in {"a": (5.0, 4.0), "b": (6.0, 5.0), "c": (silenced["SDR"], 4.0)}.items():
            values[("IASS", seed, s)], values[(UNWEIGHTED, seed, s)] = weighted, unweighted
    rows = rows_of(values)
    claim = claims.Claim("w", "", "", claims.compare("IASS", UNWEIGHTED), "SDR", claims.HIGHER, "")
    paired = claims.differences(claim, rows)
    assert set(paired.index) == {"a", "b", "c"}
    assert paired.loc["c"].tolist() == pytest.approx([-4.0, -4.0])
    assert gain_rows(rows, "IASS", UNWEIGHTED).loc[("medley", "piano"), "mean"] == pytest.approx(-2 / 3)


def test_leakage_is_the_energy_in_the_rests_against_the_instruments_own():
    from sepbook.instrument_activity import leakage_db

    reference = torch.zeros(2, 2, 4)
    reference[0, :, :2] = 1.0                     # instrument 0 plays frames 0-1: energy 4
    reference[1] = 2.0                            # instrument 1 plays throughout: energy 32
    estimate = reference.clone()
    estimate[0, 0, 3] = 0.5                       # 0.25 leaked into a rest of instrument 0
    labels = torch.tensor([[True, True, False, False], [True, True, True, True]])
    leak = leakage_db(estimate, reference, labels)
    assert leak[0] == pytest.approx(10 * np.log10(0.25 / 4 + 1e-12), abs=1e-5)
    assert torch.isnan(leak[1]), "an instrument with no rest cannot leak into one"
    assert leakage_db(reference, reference, labels)[0] < -100
    with pytest.raises(ValueError, match="labels"):
        leakage_db(estimate, reference, labels[:, :3])


def test_contributions_split_the_design():
    from sepbook.recipes.activity.evaluation import UNWEIGHTED
    from sepbook.recipes.activity.page import conclusion, contributions

    values = {}
    for seed in (0, 1):
        for song in ("a", "b"):
            for variant, value in (("BLSTM", 1.0), ("BLSTM + head unweighted", 1.5), ("BLSTM + head", 1.25),
                                   ("U-Net", 3.0), (UNWEIGHTED, 3.5), ("IASS", 4.25), ("IASS oracle", 6.0)):
                values[(variant, seed, song)] = value
    found = contributions(rows_of(values))
    assert found == pytest.approx({"architecture": 2.0, "head": 0.5, "weighting": 0.25, "oracle": 2.5})
    assert "+2.00 dB" in conclusion(rows_of(values), "tiny")


def test_silence_verdict_needs_a_correlation_beyond_chance():
    from sepbook.recipes.activity.evaluation import UNWEIGHTED
    from sepbook.recipes.activity.page import critical_r, silence_verdict

    assert critical_r(10) == pytest.approx(0.632, abs=1e-3)
    rows = []
    for k, silent in enumerate(np.linspace(0.1, 0.9, 8)):
        source = f"i{k}"
        for seed in (0, 1):
            rows += rows_of({("IASS", seed, "a"): 2 * silent, (UNWEIGHTED, seed, "a"): 0.0}, source=source)
        rows += rows_of({("labels", None, "a"): silent}, metric="silent fraction", source=source)
    assert "supported: the gain rises" in silence_verdict(rows, "tiny")
    flipped = [r | {"value": -r["value"]} if r["variant"] == "IASS" else r for r in rows]
    assert "contradicted" in silence_verdict(flipped, "tiny")


def test_the_u_net_without_a_head_never_trains_its_head(monkeypatch):
    """'U-Net' is IASS's network trained on the separation loss alone: its head gets no gradient,
    and IASS's does."""
    from sepbook.recipes.activity import training

    seen = {}

    def fake_fit(model, loss, batches, **options):
        batch = {"mixture": uniform(2, 1, 32, 8, seed=6) * 3, "sources": uniform(2, 3, 32, 8, seed=7),
                 "activity": (uniform(2, 3, 8, seed=8) > 0.5).float()}
        out = loss(model, batch)
        (out[0] if isinstance(out, tuple) else out).backward()
        seen[type(model).__name__ + str(isinstance(out, tuple))] = sum(
            float(p.grad.abs().sum()) if p.grad is not None else 0.0 for p in model.activity.parameters())
        return {}

    monkeypatch.setattr(training, "fit", fake_fit)
    cfg = {"n_fft": 64, "hop": 16, "sr": 8000, "threshold": 0.5, "median_frames": 3, "unet_base": 4,
           "unet_depth": 2, "unet_max_channels": 8, "head_hidden": 8, "steps": 1, "lr": 1e-3,
           "activity_weight": 0.5, "valid_every": 1, "medley_sources": ("a", "b", "c")}
    sets = training.Sets(None, None, [], torch.ones(3))
    training.train_on(cfg, sets, "U-Net medley")
    training.train_on(cfg, sets, "IASS medley")
    assert seen == {"IASSFalse": 0.0, "IASSTrue": pytest.approx(seen["IASSTrue"])} and seen["IASSTrue"] > 0


def test_detection_scores_values():
    labels = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]])
    predicted = torch.tensor([[1, 1, 0, 0, 1, 0, 0, 0]])     # precision 2/3, recall 1/2
    scores = detection_scores(predicted, labels)
    assert scores["accuracy"][0] == pytest.approx(5 / 8)
    assert scores["F1"][0] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    # float weights from activity_weights are accepted as 0/1 predictions
    assert np.allclose(detection_scores(predicted.float(), labels)["F1"], scores["F1"])


# ----------------------------------------------------------------------------- synthesiser


def test_the_medley_line_up_gives_six_stems_that_sum_to_the_mixture():
    song = synthesize_song(3, seconds=4.0, sr=8000, style="pop", instruments=MEDLEY)
    assert tuple(song.stems) == MEDLEY
    assert np.allclose(song.mixture, sum(song.stems.values()), atol=1e-6)
    assert set(song.meta["sections"]) == set(MEDLEY)
    for name in ("electric_guitar", "acoustic_guitar"):
        assert np.abs(song.stems[name]).max() > 1e-3 and song.activity[name].any()
    assert not np.allclose(song.stems["electric_guitar"], song.stems["acoustic_guitar"])
    assert song.meta["programs"]["electric_guitar"] != song.meta["programs"]["acoustic_guitar"]


# Recorded with the synthesiser as it was before the two guitars were added (commit 8276869):
# sections ('x' = plays) and gains of 16-second songs at 8 kHz with the style's own line-up.
BEFORE_GUITARS = {
    (7, "rock"): ({"vocals": ".xxxx", "bass": "xxx.x", "guitar": "xxx.x", "piano": "xxxxx", "drums": "xxx.x"},
                  {"vocals": -1.5318, "bass": -3.2359, "guitar": -3.5644, "piano": -5.0112, "drums": -1.5619}),
    (12, "pop"): ({"vocals": "xx.x", "bass": "x.xx", "guitar": ".x.x", "piano": "xxx.", "drums": "xxx."},
                  {"vocals": -1.6208, "bass": -3.3785, "guitar": -3.166, "piano": -5.707, "drums": -0.459}),
    (4, "folk"): ({"vocals": "x.x.", "bass": ".xxx", "guitar": "xxxx", "piano": "xxxx", "drums": "x.xx"},
                  {"vocals": 1.0712, "bass": -2.2181, "guitar": -4.3298, "piano": -6.3132, "drums": -0.2711}),
}


@pytest.mark.parametrize("seed, style", list(BEFORE_GUITARS))
def test_band_songs_are_unchanged_by_the_new_instruments(seed, style):
    sections, gains = BEFORE_GUITARS[(seed, style)]
    song = synthesize_song(seed, seconds=16.0, sr=8000, style=style)
    assert {k: "".join("x" if v else "." for v in s) for k, s in song.meta["sections"].items()} == sections
    assert {k: round(v, 4) for k, v in song.meta["gains_db"].items()} == gains


def test_adding_the_guitars_leaves_the_band_parts_alone():
    band = synthesize_song(7, seconds=16.0, sr=8000, style="rock")
    more = synthesize_song(7, seconds=16.0, sr=8000, style="rock",
                           instruments=tuple(band.stems) + ("electric_guitar", "acoustic_guitar"))
    for name in band.stems:
        assert more.meta["sections"][name] == band.meta["sections"][name]
        assert np.array_equal(more.notes[name], band.notes[name])
        # the same stem up to the one mixture-wide scale
        ratio = np.dot(more.stems[name], band.stems[name]) / np.dot(band.stems[name], band.stems[name])
        assert np.allclose(more.stems[name], ratio * band.stems[name], atol=1e-6)


def test_the_blstm_head_reads_the_shared_features_and_leaves_the_mask_decoder_alone():
    """ActivityBLSTM: the activity loss trains the head and the shared trunk, never the mask decoder;
    the separation loss never reaches the head."""
    from sepbook.models.iass import ActivityBLSTM

    torch.manual_seed(0)
    model = ActivityBLSTM(F, K, hidden=8, layers=1)
    mixture = uniform(B, 1, F, T, seed=9) * 3
    masks, logits = model(mixture)
    assert masks.shape == (B, K, 1, F, T) and logits.shape == (B, K, T)
    activity_loss(logits, (uniform(B, K, T, seed=10) > 0.5).float(), torch.ones(K)).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.decode.parameters())
    assert model.activity.weight.grad.abs().sum() > 0 and model.encode[0].weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    masks, _ = model(mixture)
    masked_magnitude_loss(masks[:, :, 0], mixture, uniform(B, K, F, T, seed=11)).backward()
    assert model.activity.weight.grad is None and model.decode[0].weight.grad.abs().sum() > 0
