"""Conv-TasNet and Meta-TasNet blocks (sepbook.models.tasnet) and the SI-SDR loss
(sepbook.losses.waveform): shapes, the encoder/decoder round trip, the TCN's receptive field,
generated layers against static ones, where gradients go, mask normalisation, multi-stage shapes,
the loss's direction and its silent targets, and bad inputs."""
import pytest
import torch
import torch.nn.functional as F

from sepbook.losses.waveform import si_sdr_loss
from sepbook.metrics import si_sdr
from sepbook.models.tasnet import (Decoder, Encoder, GeneratedConv, GeneratedNorm, Layers, MaskTCN, StaticConv,
                                   StaticNorm, build_tasnet, mixture_consistency, start_as_generated, stream_conv)


class PassThrough(torch.nn.Module):
    def forward(self, x, embeddings=None):
        return x


SIZES = dict(n_basis=16, kernel=8, bottleneck=8, hidden=16, blocks=3, stacks=1)
VARIANTS = ("independent", "multi-task", "meta")


def small(masking, rates=(8000,), **sizes):
    torch.manual_seed(0)
    return build_tasnet(masking, 4, rates, **(SIZES | sizes))


# ----------------------------------------------------------------------------- encoder and decoder


@pytest.mark.parametrize("time", [8, 9, 100, 101, 257])
def test_encoder_frames_and_decoder_length_round_trip(time):
    encoder, decoder = Encoder(16, 8), Decoder(16, 8)
    latent = encoder(torch.randn(3, 1, time))
    assert latent.shape == (3, 16, encoder.frames(time))
    assert (latent >= 0).all()
    assert decoder(latent, time).shape == (3, 1, time)
    assert decoder(latent[:, None].expand(3, 4, 16, -1), time).shape == (3, 4, 1, time)


def test_decoder_is_the_adjoint_of_the_linear_encoder():
    """With the encoder's basis, the transposed convolution undoes the framing: <E x, z> = <x, D z>."""
    encoder, decoder = Encoder(6, 8), Decoder(6, 8)
    decoder.conv.weight.data.copy_(encoder.conv.weight.data)
    x, time = torch.randn(2, 1, 64), 64
    z = torch.randn(2, 6, encoder.frames(time))
    linear = encoder.conv(x[..., : (encoder.frames(time) - 1) * 4 + 8])
    assert torch.allclose((linear * z).sum(), (x * decoder(z, time)).sum(), atol=1e-4)


def test_encoder_and_decoder_learn_a_round_trip():
    torch.manual_seed(0)
    encoder, decoder = Encoder(32, 8), Decoder(32, 8)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-2)
    x = torch.randn(8, 1, 200)
    for _ in range(300):
        optimizer.zero_grad()
        loss = ((decoder(encoder(x), 200) - x) ** 2).mean()
        loss.backward()
        optimizer.step()
    assert float(si_sdr(decoder(encoder(x), 200), x).mean().detach()) > 15


def test_a_wave_shorter_than_the_kernel_is_refused():
    with pytest.raises(ValueError, match="wave: expected at least the encoder's kernel of 8 samples, got 5"):
        Encoder(16, 8)(torch.randn(1, 1, 5))


# ----------------------------------------------------------------------------- the TCN


@pytest.mark.parametrize("blocks, stacks, kernel", [(3, 1, 3), (4, 2, 3), (2, 1, 5)])
def test_receptive_field_matches_the_impulse_response(blocks, stacks, kernel):
    torch.manual_seed(0)
    tcn = MaskTCN(Layers(1), 4, 4, 1, 8, 8, blocks, stacks, kernel).double()
    # the global layer norms see every frame by design; the receptive field is the convolutions'
    for name, module in list(tcn.named_modules()):
        for child, norm in list(module.named_children()):
            if isinstance(norm, StaticNorm):
                setattr(module, child, PassThrough())
    expected = 1 + stacks * (kernel - 1) * (2 ** blocks - 1)
    assert tcn.receptive_field() == expected
    x = torch.randn(1, 1, 4, 200, dtype=torch.double, requires_grad=True)
    tcn(x)[0, 0, :, 100].sum().backward()
    seen = (x.grad[0, 0].abs().sum(0) > 0).nonzero().flatten()
    assert int(seen.max() - seen.min()) + 1 == expected


def test_static_conv_streams_do_not_mix():
    torch.manual_seed(0)
    conv = StaticConv(3, 4, 5, kernel=3)
    x = torch.randn(2, 3, 4, 10)
    y = conv(x)
    weights = conv.weight.reshape(3, 5, 4, 3)
    for k in range(3):
        assert torch.allclose(y[:, k], F.conv1d(x[:, k], weights[k], padding=1), atol=1e-5)


@pytest.mark.parametrize("depthwise, dilation", [(False, 1), (True, 2)])
def test_generated_conv_equals_static_convs_holding_the_generated_weights(depthwise, dilation):
    torch.manual_seed(0)
    generated = GeneratedConv(8, 3, 6, 6, kernel=3, dilation=dilation, depthwise=depthwise)
    static = StaticConv(4, 6, 6, kernel=3, dilation=dilation, depthwise=depthwise)
    embeddings = torch.randn(4, 8)
    with torch.no_grad():
        static.weight.copy_(generated.weights(embeddings).flatten(0, 1))
    x = torch.randn(2, 4, 6, 30)
    assert torch.allclose(generated(x, embeddings), static(x), atol=1e-5)
    per_instrument = generated.weights(embeddings)
    for k in range(4):
        one = F.conv1d(x[:, k], per_instrument[k], padding=dilation, dilation=dilation,
                       groups=6 if depthwise else 1)
        assert torch.allclose(generated(x, embeddings)[:, k], one, atol=1e-5)


def test_generated_norm_is_a_layer_norm_per_instrument_with_generated_affine():
    torch.manual_seed(0)
    norm, static = GeneratedNorm(8, 3, 5), StaticNorm(4, 5)
    embeddings = torch.randn(4, 8)
    with torch.no_grad():
        norm.generator.weight.normal_()
        scale, shift = norm.generator(norm.code(embeddings)).chunk(2, dim=-1)
        static.scale.copy_(scale.flatten())
        static.shift.copy_(shift.flatten())
    x = 3 + 2 * torch.randn(2, 4, 5, 40)
    assert torch.allclose(norm(x, embeddings), static(x), atol=1e-5)
    plain = StaticNorm(4, 5)(x)
    assert torch.allclose(plain.mean(dim=(2, 3)), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(plain.var(dim=(2, 3), unbiased=False), torch.ones(2, 4), atol=1e-3)


def test_stream_conv_names_no_stream_out_of_its_group():
    x = torch.zeros(1, 2, 3, 5)
    x[0, 1] = 1
    weight = torch.ones(2 * 4, 3, 1)
    y = stream_conv(x, weight)
    assert y.shape == (1, 2, 4, 5) and (y[0, 0] == 0).all() and (y[0, 1] == 3).all()


# ----------------------------------------------------------------------------- whole models


@pytest.mark.parametrize("masking", VARIANTS)
def test_estimates_add_up_to_the_mixture(masking):
    """Masks are a softmax over instruments (the masked latents add up to the mixture's), and the
    consistency step makes the estimates add up to the mixture itself, not its decoded copy."""
    model = small(masking).eval()
    mixture = torch.randn(2, 1, 400)
    stage = model.stages[0]
    estimates, masked = stage(mixture)
    assert estimates.shape == (2, 4, 1, 400)
    assert torch.allclose(masked.sum(1), stage.encoder(mixture), atol=1e-5)
    assert torch.allclose(estimates.sum(1), mixture, atol=1e-5)
    decoded = stage.decoder(stage.encoder(mixture), 400)
    assert not torch.allclose(decoded, mixture, atol=1e-2)  # an untrained decoder alone would not


def test_mixture_consistency_shares_what_is_missing_equally():
    estimates = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])              # (1, 2, 1, 2)
    mixture = torch.tensor([[[3.0, 3.0]]])
    out = mixture_consistency(estimates, mixture)
    assert torch.allclose(out, torch.tensor([[[[2.0, 1.0]], [[1.0, 2.0]]]]))


def _loss_and_gradient(gain: float, consistent: bool, stems_at_gain: int = 1) -> tuple[float, float]:
    """The loss, and d loss / d gain, when the first ``stems_at_gain`` estimates are ``gain`` times
    their true stems and the others right, every estimate with some error."""
    torch.manual_seed(0)
    stems, error = torch.randn(8, 4, 1, 2000), 0.3 * torch.randn(8, 4, 1, 2000)
    g = torch.tensor(float(gain), requires_grad=True)
    gains = torch.cat([g.expand(stems_at_gain), torch.ones(4 - stems_at_gain)])[:, None, None]
    estimates = gains * (stems + error)
    if consistent:
        estimates = mixture_consistency(estimates, stems.sum(1))
    loss = si_sdr_loss(estimates, stems)
    loss.backward()
    return float(loss), float(g.grad)


@pytest.mark.parametrize("stems_at_gain", [1, 4])
@pytest.mark.parametrize("gain", [0.25, 0.5, 1.5, 3.0])
def test_consistency_makes_si_sdr_push_a_wrong_level_to_one(gain, stems_at_gain):
    """Alone, SI-SDR gives a stem at the wrong level no gradient at all; through the consistency
    step a descent step moves the level towards 1, for one stem or for all of them at once."""
    assert abs(_loss_and_gradient(gain, False, stems_at_gain)[1]) < 1e-4
    step = -_loss_and_gradient(gain, True, stems_at_gain)[1]
    assert step * (1.0 - gain) > 0 and abs(step) > 1e-2


def test_consistency_makes_an_inverted_stem_cost_what_si_sdr_alone_ignores():
    """Upside down costs nothing in SI-SDR alone, and clearly more than the right way up through
    the consistency step (a cost, not a path back: descent from -1 does not cross to +1)."""
    assert _loss_and_gradient(-1.0, False)[0] == pytest.approx(_loss_and_gradient(1.0, False)[0], abs=1e-4)
    assert _loss_and_gradient(-1.0, True)[0] > _loss_and_gradient(1.0, True)[0] + 3.0


def test_through_a_stage_the_decoder_level_is_free_without_consistency_and_pinned_with_it(monkeypatch):
    """The masks tie the estimates to the decoded mixture only: scaling the decoder changes no
    SI-SDR until the estimates must add up to the mixture itself."""
    import sepbook.models.tasnet as tasnet

    def gradient(consistent: bool) -> float:
        model = small("independent")
        stage = model.stages[0]
        if not consistent:
            monkeypatch.setattr(tasnet, "mixture_consistency", lambda estimates, mixture: estimates)
        else:
            monkeypatch.undo()
        level = torch.tensor(0.5, requires_grad=True)
        weight = stage.decoder.conv.weight.detach().clone()
        del stage.decoder.conv.weight
        stage.decoder.conv.weight = weight * level
        torch.manual_seed(1)
        stems = torch.randn(2, 4, 1, 400)
        si_sdr_loss(stage(stems.sum(1))[0], stems).backward()
        return float(level.grad)

    free, pinned = abs(gradient(consistent=False)), abs(gradient(consistent=True))
    assert pinned > 0.01 and free < 0.01 * pinned, (free, pinned)


@pytest.mark.parametrize("masking", VARIANTS)
def test_every_parameter_gets_a_gradient(masking):
    model = small(masking)
    loss = si_sdr_loss(model([torch.randn(2, 1, 400)])[0], torch.randn(2, 4, 1, 400))
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_gradients_reach_the_generator_and_the_embeddings():
    model = small("meta")
    stage = model.stages[0]
    si_sdr_loss(model([torch.randn(2, 1, 400)])[0], torch.randn(2, 4, 1, 400)).backward()
    assert stage.embeddings.weight.grad.abs().sum(1).min() > 0          # every instrument's embedding
    first = stage.masker.conv_in
    assert first.generator.weight.grad.abs().sum() > 0 and first.code.weight.grad.abs().sum() > 0
    static = [n for n, _ in model.named_parameters() if "weight" in n and "generator" not in n
              and "code" not in n and "embeddings" not in n and "coder" not in n and "act" not in n]
    assert not static  # in meta, the masking network's weights are all generated


def test_at_the_book_sizes_the_three_variants_have_matched_parameter_counts():
    from sepbook.recipes import metatasnet

    cfg = metatasnet.config("book")
    counts = {m: metatasnet.parameters(metatasnet.build(cfg, m)) for m in VARIANTS}
    assert max(counts.values()) / min(counts.values()) < 1.03, counts


def test_meta_instruments_differ_only_by_their_embeddings():
    """Swapping two embeddings swaps the two instruments' estimates."""
    model = small("meta").eval()
    mixture = torch.randn(1, 1, 400)
    before = model([mixture])[0]
    with torch.no_grad():
        model.stages[0].embeddings.weight[[0, 1]] = model.stages[0].embeddings.weight[[1, 0]].clone()
    after = model([mixture])[0]
    assert torch.allclose(after[:, [1, 0]], before[:, :2], atol=1e-5)


@pytest.mark.parametrize("masking", VARIANTS)
def test_multi_stage_shapes_across_sample_rates(masking):
    model = small(masking, rates=(2000, 4000, 8000)).eval()
    mixtures = [torch.randn(2, 1, n) for n in (100, 200, 400)]
    estimates = model(mixtures)
    assert [tuple(e.shape) for e in estimates] == [(2, 4, 1, 100), (2, 4, 1, 200), (2, 4, 1, 400)]
    stages = model.stages
    assert [s.n_basis for s in stages] == [16, 32, 64]
    assert [s.encoder.kernel for s in stages] == [8, 16, 32]
    assert len({s.encoder.frames(n) for s, n in zip(stages, (100, 200, 400))}) == 1


def test_a_later_stage_uses_the_earlier_stage_estimate():
    model = small("meta", rates=(4000, 8000)).eval()
    low, high = torch.randn(1, 1, 200), torch.randn(1, 1, 400)
    first = model([low, high])[1]
    second = model([2 * low, high])[1]
    assert not torch.allclose(first, second)


def test_mixtures_of_mismatched_lengths_are_refused():
    model = small("meta", rates=(4000, 8000))
    with pytest.raises(ValueError, match=r"mixtures\[1\]: expected 400 samples at 8000 Hz"):
        model([torch.randn(1, 1, 200), torch.randn(1, 1, 300)])
    with pytest.raises(ValueError, match="mixtures: expected one per stage"):
        model([torch.randn(1, 1, 200)])


def test_an_instrument_index_out_of_range_is_refused():
    stage = small("meta").stages[0]
    assert stage.embedding(3).shape == (8,)
    with pytest.raises(IndexError, match=r"instrument: expected an index in \[0, 4\), got 4"):
        stage.embedding(4)
    with pytest.raises(ValueError, match="only a meta stage"):
        small("independent").stages[0].embedding(0)


def test_an_unknown_masking_is_refused():
    with pytest.raises(ValueError, match="masking: expected 'independent', 'multi-task' or 'meta'"):
        small("shared")


@pytest.mark.parametrize("masking", VARIANTS)
def test_one_batch_overfits(masking):
    torch.manual_seed(0)
    model = small(masking)
    mixture_sources = torch.randn(2, 4, 1, 400) * torch.tensor([1.0, 0.5, 0.3, 0.2])[:, None, None]
    mixture = mixture_sources.sum(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = float(si_sdr_loss(model([mixture])[0], mixture_sources).detach())
    for _ in range(60):
        optimizer.zero_grad()
        loss = si_sdr_loss(model([mixture])[0], mixture_sources)
        loss.backward()
        optimizer.step()
    assert float(loss) < start - 5


# ----------------------------------------------------------------------------- the loss


def test_loss_is_minus_the_mean_si_sdr():
    torch.manual_seed(0)
    targets = torch.randn(3, 4, 500)
    estimates = targets + 0.3 * torch.randn(3, 4, 500)
    assert torch.isclose(si_sdr_loss(estimates, targets), -si_sdr(estimates, targets).mean(), atol=1e-3)


def test_loss_falls_as_the_estimate_nears_the_target_and_descent_raises_si_sdr():
    torch.manual_seed(0)
    targets, noise = torch.randn(2, 4, 500), torch.randn(2, 4, 500)
    losses = [float(si_sdr_loss(targets + a * noise, targets)) for a in (2.0, 1.0, 0.5, 0.1)]
    assert losses == sorted(losses, reverse=True)
    estimates = (targets + noise).requires_grad_()
    si_sdr_loss(estimates, targets).backward()
    stepped = estimates.detach() - 0.5 * estimates.grad / estimates.grad.norm() * estimates.detach().norm()
    assert si_sdr(stepped, targets).mean() > si_sdr(estimates.detach(), targets).mean()


def test_loss_is_scale_invariant():
    torch.manual_seed(0)
    targets = torch.randn(2, 4, 300)
    estimates = targets + torch.randn(2, 4, 300)
    assert torch.isclose(si_sdr_loss(5 * estimates, targets), si_sdr_loss(estimates, targets), atol=1e-4)


def test_silent_targets_are_left_out_and_get_no_gradient():
    torch.manual_seed(0)
    targets = torch.randn(2, 4, 300)
    targets[0, 1] = 0
    estimates = (targets + 0.5 * torch.randn(2, 4, 300)).requires_grad_()
    loss = si_sdr_loss(estimates, targets)
    audible = torch.ones(2, 4, dtype=torch.bool)
    audible[0, 1] = False
    assert torch.isclose(loss, -si_sdr(estimates, targets)[audible].mean(), atol=1e-3)
    loss.backward()
    assert estimates.grad[0, 1].abs().sum() == 0 and estimates.grad[0, 0].abs().sum() > 0


def test_all_silent_targets_give_zero_and_no_gradient():
    estimates = torch.randn(2, 4, 100, requires_grad=True)
    loss = si_sdr_loss(estimates, torch.zeros(2, 4, 100))
    loss.backward()
    assert float(loss) == 0 and estimates.grad.abs().sum() == 0


# ----------------------------------------------------------------------------- the initialisation control


def test_independent_streams_can_start_as_the_generated_ones():
    """The control starts as the very function the meta model starts as, with static weights."""
    meta = small("meta", rates=(8000, 16000))
    independent = start_as_generated(small("independent", rates=(8000, 16000)), meta)
    mixtures = [torch.randn(2, 1, 400), torch.randn(2, 1, 800)]
    for ours, theirs in zip(independent(mixtures), meta(mixtures)):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert not any("generator" in name or "embeddings" in name for name, _ in independent.named_parameters())
    stream = independent.stages[0].masker.conv_in.weight.reshape(4, -1)
    spread = (stream - stream.mean(0)).norm() / stream.mean(0).norm()
    assert 0.01 < spread < 1.0   # the streams start near one shared kernel, not equal and not apart


def test_starting_as_generated_needs_the_same_sizes():
    with pytest.raises(ValueError, match="meta"):
        start_as_generated(small("independent"), small("meta", hidden=8))

