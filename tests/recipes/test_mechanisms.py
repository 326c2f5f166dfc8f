"""What makes each model the model it is, tested so that the test fails when that part is made inert.

Each mechanism has a *check*: a function that raises ``AssertionError`` unless the mechanism does its
job. Every test runs the check on the real code, then on a copy with the mechanism disabled (a method
rebuilt by ``mutants.edited`` and swapped in with ``monkeypatch``, or a layer replaced by one without
the property) and expects the check to fail there. The package itself is never modified.

Mechanisms whose tests elsewhere already fail for an inert version are not repeated here: the residual
block's 1x1 skip (test_activity), the softmax masks of TasNet (test_tasnet), the losses' checks with
their mutants (test_losses, test_chimera, test_activity, test_transcription).
"""
import pytest
import torch
from torch import nn

from sepbook import masks as mask_module
from sepbook.audio import STFT, log_magnitude
from sepbook.instrument_activity import activity_weights, weight_masks
from sepbook.losses.clustering import deep_clustering_loss, ideal_assignments, magnitude_weights, mask_inference_loss
from sepbook.models.blstm import BLSTMMasker, BLSTMTrunk, MaskSeparator
from sepbook.models.chimera import ChimeraNet
from sepbook.models.critic import Critic
from sepbook.models.iass import IASS
from sepbook.models.tasnet import GeneratedConv, GeneratedNorm, Layers, MaskTCN, MultiStage, Stage, build_tasnet
from sepbook.models.transcriptor import Transcriptor
from sepbook.models.unet import UNet
from sepbook.recipes.activity import training as activity_training

from mutants import edited


def generator(seed):
    return torch.Generator().manual_seed(seed)


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=generator(seed), dtype=torch.float64).to(dtype)


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=generator(seed), dtype=torch.float64).to(dtype)


def patch_method(monkeypatch, cls, name, old, new):
    """Swap ``cls.name`` for a copy of it with ``old`` replaced by ``new`` in its source."""
    monkeypatch.setattr(cls, name, edited(getattr(cls, name), old, new))


# ============================================================================= BLSTM (Open-Unmix style)

BLSTM_FREQ, BLSTM_HIDDEN = 17, 8


def blstm_masker(seed=0):
    torch.manual_seed(seed)
    return BLSTMMasker(BLSTM_FREQ, n_sources=2, hidden=BLSTM_HIDDEN, layers=1).eval()


def unidirectional(masker):
    """The masker with its LSTM running forward in time only (same width, no backward direction)."""
    torch.manual_seed(1)
    masker.lstm = nn.LSTM(BLSTM_HIDDEN, BLSTM_HIDDEN, num_layers=1, batch_first=True)
    return masker


def check_bidirectional(masker):
    """Each frame's masks depend on frames after it and before it: the LSTM reads time both ways."""
    mag = rand(1, 1, BLSTM_FREQ, 20, seed=1).requires_grad_(True)
    masks = masker(mag)
    (from_first,) = torch.autograd.grad(masks[..., 0].sum(), mag, retain_graph=True)
    (from_last,) = torch.autograd.grad(masks[..., -1].sum(), mag)
    assert from_first[..., -1].abs().sum() > 0, "the first frame's masks must hear the last frame"
    assert from_last[..., 0].abs().sum() > 0, "the last frame's masks must hear the first frame"


def test_blstm_masks_see_both_past_and_future_frames():
    check_bidirectional(blstm_masker())
    with pytest.raises(AssertionError, match="last frame"):
        check_bidirectional(unidirectional(blstm_masker()))


def check_trunk_skip(masker):
    """With every LSTM weight at zero the LSTM outputs zeros, yet the masks still follow each frame:
    the trunk's concatenation carries the encoded frame around the LSTM."""
    with torch.no_grad():
        for parameter in masker.lstm.parameters():
            parameter.zero_()
    mag = rand(1, 1, BLSTM_FREQ, 6, seed=2) * 5
    with torch.no_grad():
        encoded = masker.encode(torch.log1p(mag).permute(0, 3, 1, 2).reshape(1, 6, -1))
        assert torch.equal(masker.lstm(encoded)[0], torch.zeros(1, 6, BLSTM_HIDDEN))
        masks = masker(mag)
    for t in range(1, 6):
        assert not torch.allclose(masks[..., t], masks[..., 0], atol=1e-6), \
            "with the LSTM silent, only the skip can make frames differ"


def test_blstm_trunk_skip_carries_each_frame_around_the_lstm(monkeypatch):
    check_trunk_skip(blstm_masker())
    patch_method(monkeypatch, BLSTMTrunk, "features", "torch.cat([x, y], dim=-1)",
                 "torch.cat([torch.zeros_like(x), y], dim=-1)")
    with pytest.raises(AssertionError, match="skip"):
        check_trunk_skip(blstm_masker())


class ShareMasks(nn.Module):
    """A stand-in masker: a random mask ``m`` for source 0 and ``1 - m`` for source 1, or ones for both."""

    def __init__(self, ones=False):
        super().__init__()
        self.ones = ones

    def forward(self, mag):
        batch, channels, freq, frames = mag.shape
        if self.ones:
            return torch.ones(batch, 2, channels, freq, frames)
        m = torch.rand(batch, 1, channels, freq, frames, generator=generator(3))
        return torch.cat([m, 1 - m], dim=1)


def check_mixture_phase():
    """The masks scale the *complex* mixture STFT: a mask of ones returns the mixture waveform itself,
    and masks that share every bin give estimates that add up to the mixture."""
    mixture = randn(2, 1, 2048, seed=4)
    estimates = MaskSeparator(ShareMasks(ones=True), n_fft=256, hop=64)(mixture)
    assert torch.allclose(estimates[:, 0], mixture, atol=1e-4), "a mask of ones must give the mixture back"
    estimates = MaskSeparator(ShareMasks(), n_fft=256, hop=64)(mixture)
    assert torch.allclose(estimates.sum(dim=1), mixture, atol=1e-4), "shared bins must add up to the mixture"
    assert not torch.allclose(estimates[:, 0], mixture, atol=1e-2)


def test_mask_separator_keeps_the_mixture_phase(monkeypatch):
    check_mixture_phase()
    patch_method(monkeypatch, MaskSeparator, "forward", "masks * spec.unsqueeze(1)",
                 "masks * torch.polar(spec.abs(), torch.zeros_like(spec.abs())).unsqueeze(1)")
    with pytest.raises(AssertionError, match="mixture back"):
        check_mixture_phase()


# ============================================================================= U-Net

UNET_FREQ, UNET_FRAMES = 16, 16


def check_unet_skips():
    """Cut the route through the bottleneck (the deepest up-convolution outputs zeros) and the heads'
    direct view of the mixture: the output must still follow the input, carried by the skip connections."""
    torch.manual_seed(0)
    unet = UNet(n_sources=2, base_channels=4, depth=2, masks=True).eval()
    with torch.no_grad():
        for head in unet.heads:
            head.weight[:, -1] = 0.0
    unet.up[0].register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
    a = log_magnitude(rand(1, 1, UNET_FREQ, UNET_FRAMES, seed=5) * 4)
    b = log_magnitude(rand(1, 1, UNET_FREQ, UNET_FRAMES, seed=6) * 4)
    with torch.no_grad():
        out_a, out_b = unet(a), unet(b)
    assert (out_a - out_b).abs().max() > 1e-4, "the skip connections must carry the input to the output"


def test_unet_skip_connections_carry_the_input_past_the_bottleneck(monkeypatch):
    check_unet_skips()
    patch_method(monkeypatch, UNet, "forward_with_bottleneck", "torch.cat([skips.pop(), up(features)], dim=1)",
                 "torch.cat([torch.zeros_like(skips.pop()), up(features)], dim=1)")
    with pytest.raises(AssertionError, match="skip connections"):
        check_unet_skips()


def check_heads_start_alive():
    """Twenty initialisations of the log-magnitude U-Net: every ReLU head is positive on most bins of a
    mixture, because each head starts near mixture / n_sources."""
    mixture = log_magnitude(rand(2, 1, UNET_FREQ, UNET_FRAMES, seed=7) * 4)
    for seed in range(20):
        torch.manual_seed(seed)
        unet = UNet(n_sources=2, base_channels=4, depth=2)
        with torch.no_grad():
            active = (unet(mixture) > 0).float().mean(dim=(0, 2, 3))
        assert (active > 0.5).all(), f"seed {seed}: a head starts dead ({active.tolist()})"


def test_unet_heads_start_as_a_share_of_the_mixture(monkeypatch):
    check_heads_start_alive()
    monkeypatch.setattr(UNet, "_start_heads_as_mixture_share", lambda self: None)
    with pytest.raises(AssertionError, match="starts dead"):
        check_heads_start_alive()


# ============================================================================= critic


def check_critic_pooling():
    """The critic averages over time and keeps frequency: moving an event by the critic's time stride
    leaves its score unchanged; moving it to another frequency region changes it."""
    torch.manual_seed(0)
    critic = Critic(base_channels=4, n_strided_layers=2, n_frequency_layers=1, hidden_units=8).double()
    event = rand(1, 1, 8, 4, seed=8, dtype=torch.float64) * 3

    def scored(bin_, frame):
        x = torch.zeros(1, 1, 64, 48, dtype=torch.float64)
        x[..., bin_:bin_ + 8, frame:frame + 4] = event
        with torch.no_grad():
            return float(critic(x))

    here = scored(16, 20)
    stride = 2 ** critic.n_strided_layers
    assert abs(scored(16, 20 + stride) - here) < 1e-9, "the score must not depend on when the event happens"
    assert abs(scored(16, 20 - stride) - here) < 1e-9, "the score must not depend on when the event happens"
    assert abs(scored(32, 20) - here) > 1e-6, "the score must depend on which frequencies the event occupies"


@pytest.mark.parametrize("old, new, message", [
    ("features, (self.frequency_bins_kept, 1)",
     "features * torch.arange(1, features.shape[-1] + 1).to(features), (self.frequency_bins_kept, 1)",
     "when the event happens"),
    ("pooled.flatten(start_dim=1)", "pooled.mean(dim=2, keepdim=True).expand_as(pooled).flatten(start_dim=1)",
     "which frequencies"),
], ids=["position-weighted-time", "frequency-averaged"])
def test_critic_pools_time_away_and_keeps_frequency(monkeypatch, old, new, message):
    check_critic_pooling()
    patch_method(monkeypatch, Critic, "forward", old, new)
    with pytest.raises(AssertionError, match=message):
        check_critic_pooling()


# ============================================================================= Meta-TasNet

TASNET_K = 4
TASNET_SIZES = dict(n_basis=16, kernel=8, bottleneck=8, hidden=16, blocks=3, stacks=1)


def tasnet(masking="meta", rates=(8000,)):
    torch.manual_seed(0)
    return build_tasnet(masking, TASNET_K, rates, **TASNET_SIZES).eval()


def check_generated_weights():
    """Meta-TasNet's masking network: every generated convolution gives each instrument its own kernel,
    instrument k's embedding steers stream k and no other, and one mixture gives K different estimates."""
    model = tasnet()
    stage = model.stages[0]
    embeddings = stage.embeddings.weight.detach()
    off_diagonal = ~torch.eye(TASNET_K, dtype=torch.bool)
    convs = [m for m in stage.masker.modules() if isinstance(m, GeneratedConv)]
    assert convs
    for conv in convs:
        kernels = conv.weights(embeddings).flatten(1)
        assert torch.cdist(kernels, kernels)[off_diagonal].min() > 1e-4, "each instrument needs its own kernel"

    mixture = randn(1, 1, 400, seed=9)
    with torch.no_grad():
        latent = stage.encoder(mixture)
        inputs = latent[:, None].expand(1, TASNET_K, -1, -1)
        logits = stage.masker(inputs, embeddings)
        moved = embeddings.clone()
        moved[2] += randn(embeddings.shape[1], seed=10)
        change = (stage.masker(inputs, moved) - logits).abs().amax(dim=(0, 2, 3))
    assert change[2] > 1e-4, "changing an instrument's embedding must change its stream"
    assert change[[0, 1, 3]].max() < 1e-6, "an instrument's embedding must steer its own stream only"

    with torch.no_grad():
        estimates = model([mixture])[0][0, :, 0]                          # (K, time)
    distances = torch.cdist(estimates, estimates)[off_diagonal]
    assert distances.min() > 1e-3 * estimates.norm(dim=-1).max(), "the instruments' estimates must differ"


@pytest.mark.parametrize("cls, name, old, new, message", [
    (GeneratedConv, "weights", "self.code(embeddings)",
     "self.code(embeddings.mean(0, keepdim=True).expand_as(embeddings))", "own kernel"),
    (GeneratedNorm, "affine", "self.code(embeddings)",
     "self.code(embeddings.mean(0, keepdim=True).expand_as(embeddings))", "own stream only"),
    (Stage, "forward", "self.masker(inputs, self.instruments())",
     "self.masker(inputs, None if self.embeddings is None else "
     "self.instruments().mean(0, keepdim=True).expand_as(self.instruments()))", "estimates must differ"),
], ids=["conv-weights-shared", "norm-affine-shared", "stage-passes-one-embedding"])
def test_meta_tasnet_generates_weights_per_instrument(monkeypatch, cls, name, old, new, message):
    check_generated_weights()
    patch_method(monkeypatch, cls, name, old, new)
    with pytest.raises(AssertionError, match=message):
        check_generated_weights()


def check_tcn_skip_sum():
    """The masking TCN sums every block's skip output: with the last block's skip convolution at zero,
    the masks still follow the input through the earlier blocks' skips."""
    torch.manual_seed(0)
    tcn = MaskTCN(Layers(1), 4, 4, 1, bottleneck=8, hidden=8, blocks=3, stacks=1).eval()
    with torch.no_grad():
        tcn.blocks[-1].skip.weight.zero_()
        a, b = tcn(rand(1, 1, 4, 50, seed=28)), tcn(rand(1, 1, 4, 50, seed=29))
    assert (a - b).abs().max() > 1e-4, "the earlier blocks' skips must reach the output"


def test_tcn_sums_the_skips_of_every_block(monkeypatch):
    check_tcn_skip_sum()
    patch_method(monkeypatch, MaskTCN, "forward", "skips + skip", "skip")
    with pytest.raises(AssertionError, match="earlier blocks"):
        check_tcn_skip_sum()


def check_stages_chain():
    """The second stage reads the first stage's estimates: a different low-rate mixture changes the
    high-rate estimates even though the high-rate mixture is the same."""
    model = tasnet(rates=(4000, 8000))
    high = randn(1, 1, 400, seed=11)
    with torch.no_grad():
        first = model([randn(1, 1, 200, seed=12), high])[1]
        second = model([randn(1, 1, 200, seed=13), high])[1]
    assert (first - second).abs().max() > 1e-4, "the second stage must use the first stage's estimates"


def test_meta_tasnet_stages_feed_each_other(monkeypatch):
    check_stages_chain()
    patch_method(monkeypatch, MultiStage, "forward", "estimate, previous = stage(mixture, previous)",
                 "estimate, previous = stage(mixture, None if previous is None else torch.zeros_like(previous))")
    with pytest.raises(AssertionError, match="first stage"):
        check_stages_chain()


# ============================================================================= IASS

IASS_K, IASS_FREQ, IASS_FRAMES = 3, 32, 37


def tiny_iass(seed=0):
    torch.manual_seed(seed)
    return IASS(IASS_K, IASS_FREQ, base_channels=4, depth=2, max_channels=8, hidden=8)


def check_activity_per_frame():
    """At inference the activity head says, frame by frame, which instruments play: changing the last
    frame of the input changes the last frame's activity and leaves the first frame's alone."""
    model = tiny_iass().eval()
    x = log_magnitude(rand(1, 1, IASS_FREQ, IASS_FRAMES, seed=14) * 3)
    changed = x.clone()
    changed[..., -1] = log_magnitude(rand(IASS_FREQ, seed=15) * 30)
    with torch.no_grad():
        _, logits = model(x)
        _, changed_logits = model(changed)
    assert (changed_logits[..., -1] - logits[..., -1]).abs().max() > 1e-4, \
        "the activity of a frame must follow that frame"
    assert torch.allclose(changed_logits[..., 0], logits[..., 0], atol=1e-6), \
        "the first frame's activity must not depend on a frame 36 frames away"


def test_iass_activity_head_reads_the_bottleneck_frame_by_frame(monkeypatch):
    check_activity_per_frame()
    patch_method(monkeypatch, IASS, "forward", "self.activity(bottleneck)",
                 "self.activity(bottleneck.mean(-1, keepdim=True).expand_as(bottleneck))")
    with pytest.raises(AssertionError, match="36 frames away"):
        check_activity_per_frame()


def iass_batch():
    mixture = rand(2, 1, IASS_FREQ, IASS_FRAMES, seed=16) * 3
    sources = rand(2, IASS_K, IASS_FREQ, IASS_FRAMES, seed=17)
    activity = (rand(2, IASS_K, IASS_FRAMES, seed=18) < 0.5).float()
    return {"mixture": mixture, "sources": sources, "activity": activity}


def check_activity_in_the_training_loss(loss_fn):
    """IASS's training loss reaches the activity head through its activity term, in proportion to the
    term's weight: no gradient at weight 0, twice the gradient at weight 2 as at weight 1."""
    batch, positive_weight = iass_batch(), torch.tensor([1.0, 2.0, 0.5])
    gradients = {}
    for weight in (0.0, 1.0, 2.0):
        model = tiny_iass()
        loss, terms = loss_fn(model, batch, positive_weight, weight)
        loss.backward()
        assert set(terms) == {"separation", "activity"}
        gradients[weight] = torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.flatten()
                                       for p in model.activity.parameters()])
    assert gradients[0.0].abs().sum() == 0, "the separation term must not train the activity head"
    assert gradients[1.0].abs().sum() > 0, "the activity term must train the activity head"
    assert torch.allclose(gradients[2.0], 2 * gradients[1.0], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("old, new", [
    ("loss = separation + activity_weight * activity", "loss = separation"),
    ("activity_loss(logits, ", "activity_loss(logits.detach(), "),
], ids=["activity-term-dropped", "logits-detached"])
def test_iass_activity_head_is_trained_by_the_loss(old, new):
    check_activity_in_the_training_loss(activity_training.multitask_loss)
    with pytest.raises(AssertionError, match="activity term"):
        check_activity_in_the_training_loss(edited(activity_training.multitask_loss, old, new))


def check_activity_weighting(weight_masks_fn, activity_weights_fn):
    """Inference weighting: an instrument's masks are zeroed in the frames its activity says are silent
    (after a median filter that ignores a one-frame blip) and untouched where it plays."""
    masks = rand(IASS_K, 8, 20, seed=19) * 0.9 + 0.1
    probabilities = torch.zeros(IASS_K, 20)
    probabilities[0, :10] = 0.9             # plays in the first half
    probabilities[1, :] = 0.9               # plays throughout
    probabilities[2, 7] = 0.9               # a one-frame blip: silent after filtering
    weights = activity_weights_fn(probabilities, 0.5, 5)
    weighted = weight_masks_fn(masks, weights)
    assert torch.equal(weighted[0, :, :10], masks[0, :, :10]) and torch.equal(weighted[1], masks[1])
    assert (weighted[0, :, 10:] == 0).all(), "masks must be zero where the instrument is silent"
    assert (weighted[2] == 0).all(), "a one-frame blip must not open the mask"


@pytest.mark.parametrize("which, old, new, message", [
    ("weight_masks", "masks * weights.unsqueeze(-2)", "masks", "zero where the instrument is silent"),
    ("activity_weights", "median_filter((probabilities >= threshold).float(), median_frames)",
     "(probabilities >= threshold).float()", "one-frame blip"),
], ids=["weights-not-applied", "no-median-filter"])
def test_iass_activity_weighting_silences_masks(which, old, new, message):
    check_activity_weighting(weight_masks, activity_weights)
    functions = {"weight_masks": weight_masks, "activity_weights": activity_weights}
    functions[which] = edited(functions[which], old, new)
    with pytest.raises(AssertionError, match=message):
        check_activity_weighting(functions["weight_masks"], functions["activity_weights"])


# ============================================================================= ChimeraNet

CH_F, CH_T, CH_D, CH_K = 17, 12, 5, 3


def chimera():
    torch.manual_seed(0)
    return ChimeraNet(CH_F, CH_K, hidden=16, layers=2, embedding_dim=CH_D)


def check_both_heads_train_the_trunk():
    """Deep clustering alone trains the whole trunk (so a trunk can be pre-trained through it and then
    carry a new mask head), and mask inference alone trains the whole trunk too."""
    mag, sources = rand(2, 1, CH_F, CH_T, seed=20), rand(2, CH_K, 1, CH_F, CH_T, seed=21)
    for name in ("deep clustering", "mask inference"):
        net = chimera()
        embeddings, masks = net.embed_and_mask(mag)
        if name == "deep clustering":
            loss = deep_clustering_loss(embeddings, ideal_assignments(sources), magnitude_weights(mag))
        else:
            loss = mask_inference_loss(masks, mag, sources)
        loss.backward()
        dead = [n for n, p in net.trunk.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not dead, f"{name} alone must train the trunk; no gradient reaches {dead}"


@pytest.mark.parametrize("old, new, message", [
    ("self._embeddings(features)", "self._embeddings(features.detach())", "deep clustering"),
    ("self._masks(features)", "self._masks(features.detach())", "mask inference"),
], ids=["embedding-head-cut", "mask-head-cut"])
def test_chimera_heads_share_and_train_one_trunk(monkeypatch, old, new, message):
    check_both_heads_train_the_trunk()
    patch_method(monkeypatch, ChimeraNet, "embed_and_mask", old, new)
    with pytest.raises(AssertionError, match=message):
        check_both_heads_train_the_trunk()


def check_silent_bins_do_not_count(weights_fn):
    """W is the mixture magnitude: the deep-clustering loss ignores the embeddings of silent bins and
    counts those of loud ones."""
    mag = rand(1, 1, CH_F, CH_T, seed=22) + 0.1
    mag[:, :, :4] = 0.0                                     # the four lowest bins are silent
    sources = rand(1, CH_K, 1, CH_F, CH_T, seed=23)
    weights = weights_fn(mag)
    embeddings = nn.functional.normalize(randn(1, CH_T, CH_F, CH_D, seed=24), dim=-1)
    loss = deep_clustering_loss(embeddings, ideal_assignments(sources), weights)
    silent_changed, loud_changed = embeddings.clone(), embeddings.clone()
    silent_changed[:, :, :4] = nn.functional.normalize(randn(1, CH_T, 4, CH_D, seed=25), dim=-1)
    loud_changed[:, :, 4:8] = nn.functional.normalize(randn(1, CH_T, 4, CH_D, seed=25), dim=-1)
    assert torch.allclose(deep_clustering_loss(silent_changed, ideal_assignments(sources), weights), loss), \
        "the embeddings of silent bins must not count"
    assert not torch.allclose(deep_clustering_loss(loud_changed, ideal_assignments(sources), weights), loss)
    assert torch.equal(weights, mag[:, 0].transpose(1, 2))


def test_deep_clustering_weights_are_the_mixture_magnitudes():
    check_silent_bins_do_not_count(magnitude_weights)
    ones = edited(magnitude_weights, "mixture_mag[:, 0].transpose(1, 2)",
                  "torch.ones_like(mixture_mag[:, 0].transpose(1, 2))")
    with pytest.raises(AssertionError, match="silent bins"):
        check_silent_bins_do_not_count(ones)


# ============================================================================= transcriptor

TR_BINS, TR_FRAMES, TR_HIDDEN = 16, 16, 16


def transcriptor():
    torch.manual_seed(0)
    return Transcriptor(TR_BINS, 2, 4, channels=4, hidden=TR_HIDDEN).eval()


class PerFrame(nn.Module):
    """A stand-in for the GRU that sees one frame at a time."""

    def __init__(self, width):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x):
        return torch.tanh(self.linear(x)), None


def check_temporal_context(model):
    """A note's logits depend on frames far beyond the convolutions' reach (3 frames each side), before
    and after: the bidirectional GRU reads the whole excerpt."""
    x = log_magnitude(rand(1, 1, TR_BINS, TR_FRAMES, seed=26) * 5).requires_grad_(True)
    logits = model(x)
    (from_first,) = torch.autograd.grad(logits[..., 0].sum(), x, retain_graph=True)
    (from_last,) = torch.autograd.grad(logits[..., -1].sum(), x)
    assert from_first[..., 4:].abs().sum() > 0, "the first frame must hear frames after it"
    assert from_last[..., :-4].abs().sum() > 0, "the last frame must hear frames before it"


@pytest.mark.parametrize("replacement", [
    lambda: nn.GRU(TR_HIDDEN, TR_HIDDEN, batch_first=True),
    lambda: PerFrame(TR_HIDDEN),
], ids=["forward-only-gru", "no-recurrence"])
def test_transcriptor_reads_context_in_both_directions(replacement):
    check_temporal_context(transcriptor())
    model = transcriptor()
    torch.manual_seed(1)
    model.gru = replacement()
    with pytest.raises(AssertionError, match="frames after it"):
        check_temporal_context(model)


# ============================================================================= oracle masks


def check_oracle_kinds(oracle_separation):
    """Each ``kind`` separates with its own ideal mask: the estimates equal the mixture STFT times that
    mask, inverted, and the four kinds give four different estimates of overlapping sources."""
    sources = randn(2, 1, 2000, seed=27)
    mixture = sources.sum(dim=0)
    stft = STFT(256, 64)
    mixture_spec, source_specs = stft(mixture), stft(sources).transpose(-4, -3)
    ideal = {"ibm": mask_module.ideal_binary_mask(source_specs), "irm": mask_module.ideal_ratio_mask(source_specs),
             "wiener": mask_module.wiener_mask(source_specs),
             "psm": mask_module.phase_sensitive_mask(source_specs, mixture_spec)}
    estimates = {}
    for kind, mask in ideal.items():
        estimates[kind] = oracle_separation(mixture, sources, kind=kind, n_fft=256, hop=64)
        expected = stft.inverse(mask * mixture_spec.unsqueeze(-3), 2000).transpose(-3, -2)
        assert torch.allclose(estimates[kind], expected, atol=1e-5), f"{kind}: not separated with its own mask"
    kinds = list(estimates)
    for i, a in enumerate(kinds):
        for b in kinds[i + 1:]:
            assert (estimates[a] - estimates[b]).abs().max() > 1e-3, f"{a} and {b} must differ"


def test_oracle_separation_uses_the_mask_it_is_asked_for():
    check_oracle_kinds(mask_module.oracle_separation)
    always_irm = edited(mask_module.oracle_separation,
                        '{"ibm": ideal_binary_mask, "irm": ideal_ratio_mask, "wiener": wiener_mask}[kind]',
                        "ideal_ratio_mask")
    with pytest.raises(AssertionError, match="its own mask"):
        check_oracle_kinds(always_irm)
