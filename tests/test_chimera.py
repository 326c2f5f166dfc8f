"""ChimeraNet and its losses: shapes, unit-norm embeddings, the swapped mask head, freezing, and the
deep-clustering and mask-inference losses' values, directions and gradients."""
import pytest
import torch

from sepbook.losses.clustering import (chimera_loss, deep_clustering_loss, ideal_assignments, magnitude_weights,
                                       mask_inference_loss, naive_deep_clustering_loss)
from sepbook.models.chimera import ChimeraNet, freeze_all_but_mask

from mutants import detached, edited, negated

F, T, D = 17, 12, 5


def network(k=3):
    torch.manual_seed(0)
    return ChimeraNet(F, k, hidden=16, layers=2, embedding_dim=D)


def random_case(seed=0, batch=2, k=3):
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.nn.functional.normalize(torch.randn((batch, T, F, D), generator=g), dim=-1)
    assignments = torch.nn.functional.one_hot(torch.randint(0, k, (batch, T, F), generator=g), k).float()
    weights = torch.rand((batch, T, F), generator=g)
    return embeddings, assignments, weights


# ----------------------------------------------------------------------------- the network


def test_shapes_unit_norm_embeddings_and_masks_in_unit_range():
    mag = torch.rand(2, 1, F, T)
    embeddings, masks = network().embed_and_mask(mag)
    assert embeddings.shape == (2, T, F, D)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(2, T, F))
    assert masks.shape == (2, 3, 1, F, T)
    assert masks.min() >= 0 and masks.max() <= 1
    torch.testing.assert_close(network()(mag), masks)


def test_with_sources_gives_a_new_mask_head_and_keeps_the_trunk():
    net = network(3)
    trunk = {k: v.clone() for k, v in net.trunk.state_dict().items()}
    embedding = net.embedding.weight.clone()
    net.with_sources(2)
    assert net(torch.rand(1, 1, F, T)).shape == (1, 2, 1, F, T)
    assert all(torch.equal(v, net.trunk.state_dict()[k]) for k, v in trunk.items())
    assert torch.equal(embedding, net.embedding.weight)
    with pytest.raises(ValueError, match="n_sources"):
        net.with_sources(0)


def test_freezing_leaves_only_the_mask_head_and_counts_it():
    net = network()
    count = freeze_all_but_mask(net)
    learning = [name for name, p in net.named_parameters() if p.requires_grad]
    assert learning == ["mask.weight", "mask.bias"]
    assert count == net.mask.weight.numel() + net.mask.bias.numel()


def test_both_losses_reach_every_parameter():
    net = network()
    mag, sources = torch.rand(2, 1, F, T), torch.rand(2, 3, 1, F, T)
    embeddings, masks = net.embed_and_mask(mag)
    dc = deep_clustering_loss(embeddings, ideal_assignments(sources), magnitude_weights(mag))
    (dc + mask_inference_loss(masks, mag, sources)).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_deep_clustering_alone_leaves_the_mask_head_without_gradient():
    net = network()
    mag, sources = torch.rand(2, 1, F, T), torch.rand(2, 3, 1, F, T)
    embeddings, _ = net.embed_and_mask(mag)
    deep_clustering_loss(embeddings, ideal_assignments(sources), magnitude_weights(mag)).backward()
    assert net.mask.weight.grad is None
    assert net.embedding.weight.grad.abs().sum() > 0


def test_one_batch_overfit():
    net = network(2)
    g = torch.Generator().manual_seed(1)
    sources = torch.rand((1, 2, 1, F, T), generator=g) ** 3
    mag = sources.sum(1)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(400):    # sigmoid embeddings (nussl's) leave the positive orthant slowly
        optimiser.zero_grad()
        embeddings, masks = net.embed_and_mask(mag)
        dc = deep_clustering_loss(embeddings, ideal_assignments(sources), magnitude_weights(mag))
        loss = chimera_loss(dc, mask_inference_loss(masks, mag, sources), 0.5)
        loss.backward()
        optimiser.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.4 * first


# ----------------------------------------------------------------------------- the losses


def check_deep_clustering(loss_fn):
    """What the deep-clustering loss must do: equal the naive form, vanish for perfect embeddings,
    send no gradient to bins of zero weight, and under descent pull same-source bins together."""
    for seed in range(3):
        case = random_case(seed)
        assert torch.allclose(loss_fn(*case), naive_deep_clustering_loss(*case), rtol=1e-4, atol=1e-6)
    embeddings, assignments, weights = random_case(k=3)
    perfect = torch.cat([assignments, torch.zeros(*assignments.shape[:-1], D - 3)], dim=-1)
    assert float(loss_fn(perfect, assignments, weights)) < 1e-6
    assert float(loss_fn(embeddings, assignments, weights)) > 0.05

    weights[:, :, :4] = 0
    v = embeddings.clone().requires_grad_()
    loss = loss_fn(v, assignments, weights)
    assert loss.requires_grad, "no gradient reaches the embeddings"
    (grad,) = torch.autograd.grad(loss, v)
    assert grad[:, :, :4].abs().max() == 0 and grad[:, :, 4:].abs().sum() > 0

    embeddings, assignments, weights = random_case(batch=1, k=2)
    same = assignments.flatten(1, 2)[0] @ assignments.flatten(1, 2)[0].T

    def similarity(x):
        x = torch.nn.functional.normalize(x, dim=-1).flatten(1, 2)[0]
        cos = x @ x.T
        return float(cos[same > 0].mean()), float(cos[same == 0].mean())

    v = embeddings.clone().requires_grad_()
    before = similarity(v.detach())
    for _ in range(50):
        (grad,) = torch.autograd.grad(loss_fn(torch.nn.functional.normalize(v, dim=-1), assignments, weights), v)
        with torch.no_grad():
            v -= 20.0 * grad
    after = similarity(v.detach())
    assert before[0] < 0.3 and after[0] > 0.7        # same source: pulled together
    assert abs(after[1]) < 0.1                       # different sources: orthogonal, as Y Y^T asks


def test_deep_clustering_loss_does_what_it_must():
    check_deep_clustering(deep_clustering_loss)


@pytest.mark.parametrize("mutant", [
    negated, detached,
    lambda f: edited(f, "- 2 * vy", "+ 2 * vy"),
    lambda f: edited(f, "v = embeddings.flatten(1, -2) * root", "v = embeddings.flatten(1, -2)"),
    lambda f: edited(f, "/ total", "/ 1.0"),
], ids=["negated", "detached", "cross-term-sign", "unweighted-embeddings", "not-normalised"])
def test_deep_clustering_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_deep_clustering(mutant(deep_clustering_loss))


def test_deep_clustering_does_not_depend_on_the_scale_of_the_weights():
    embeddings, assignments, weights = random_case()
    torch.testing.assert_close(deep_clustering_loss(embeddings, assignments, 7 * weights),
                               deep_clustering_loss(embeddings, assignments, weights))


def test_ideal_assignments_pick_the_loudest_source():
    sources = torch.zeros(1, 3, 1, 2, 2)
    sources[0, 2, 0, 0, 0], sources[0, 1, 0, 1, 1] = 1.0, 1.0
    y = ideal_assignments(sources)
    assert y.shape == (1, 2, 2, 3)                         # (batch, frames, freq, K)
    assert y[0, 0, 0].tolist() == [0, 0, 1] and y[0, 1, 1].tolist() == [0, 1, 0]
    assert torch.equal(y.sum(-1), torch.ones(1, 2, 2))


def check_mask_inference(loss_fn):
    """L1 of masked mixture against source magnitudes: its value, zero at the ideal masks, and a
    gradient that lowers a mask where it gives too much and raises it where it gives too little."""
    g = torch.Generator().manual_seed(0)
    mag, sources = torch.rand((2, 1, F, T), generator=g), torch.rand((2, 3, 1, F, T), generator=g)
    masks = torch.rand((2, 3, 1, F, T), generator=g, requires_grad=True)
    loss = loss_fn(masks, mag, sources)
    assert torch.allclose(loss, (masks * mag[:, None] - sources).abs().mean())
    assert loss.requires_grad, "no gradient reaches the masks"
    (grad,) = torch.autograd.grad(loss, masks)
    too_loud = masks.detach() * mag[:, None] > sources
    assert (grad[too_loud] >= 0).all() and (grad[~too_loud] <= 0).all() and grad.abs().sum() > 0
    stepped = loss_fn(masks.detach() - 0.05 * grad / grad.abs().max(), mag, sources)
    assert stepped < loss                                   # descent brings |M X| towards |S|
    ideal = (sources / mag[:, None]).clamp(max=1)
    exact = sources.clamp(max=mag[:, None].expand_as(sources))
    assert float(loss_fn(ideal, mag, exact)) < 1e-7


def test_mask_inference_loss_does_what_it_must():
    check_mask_inference(mask_inference_loss)


@pytest.mark.parametrize("mutant", [
    negated, detached, lambda f: edited(f, "masks * mixture_mag.unsqueeze(1)", "masks"),
], ids=["negated", "detached", "mixture-not-applied"])
def test_mask_inference_check_catches(mutant):
    with pytest.raises(AssertionError):
        check_mask_inference(mutant(mask_inference_loss))


def test_chimera_loss_mixes_the_terms():
    dc, mi = torch.tensor(2.0), torch.tensor(4.0)
    assert float(chimera_loss(dc, mi, 0.25)) == pytest.approx(0.25 * 2 + 0.75 * 4)
    with pytest.raises(ValueError, match="alpha"):
        chimera_loss(dc, mi, 1.5)
