import pytest
import torch

from sepbook.losses.masking import magnitude_loss
from sepbook.models.blstm import BLSTMMasker, blstm_separator


def _batch(batch=2, k=2, time=4096):
    torch.manual_seed(0)
    t = torch.arange(time) / 8000
    low = torch.sin(2 * torch.pi * 220 * t) * (t < 0.25)
    high = 0.5 * torch.sin(2 * torch.pi * 1760 * t) * (t >= 0.2)
    sources = torch.stack([low, high])[None, :, None].repeat(batch, 1, 1, 1)[:, :k]
    return {"mixture": sources.sum(1), "sources": sources}


def test_shapes_and_mask_range():
    model = blstm_separator(n_sources=3, n_fft=256, hop=64, hidden=32, layers=2)
    mixture = torch.randn(2, 1, 2048)
    out = model(mixture)
    assert out.shape == (2, 3, 1, 2048)
    masks = model.masker(model.stft(mixture).abs())
    assert masks.shape == (2, 3, 1, 129, 2048 // 64 + 1)
    assert masks.min() >= 0 and masks.max() <= 1


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = blstm_separator(n_sources=2, n_fft=256, hop=64, hidden=32, layers=1)
    batch = _batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(120):
        optimizer.zero_grad()
        loss = magnitude_loss(model, batch)
        first = first if first is not None else loss.item()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first


@pytest.mark.parametrize("shape, match", [((2, 1, 100, 10), "mixture_mag"), ((2, 2, 129, 10), "mixture_mag")])
def test_masker_rejects_wrong_shapes(shape, match):
    with pytest.raises(ValueError, match=match):
        BLSTMMasker(n_freq=129, n_sources=2, hidden=8, layers=1)(torch.rand(shape))


def test_separator_rejects_bad_audio():
    model = blstm_separator(n_sources=2, n_fft=256, hop=64, hidden=8, layers=1)
    with pytest.raises(ValueError, match="mixture"):
        model(torch.full((1, 1, 1024), float("nan")))
    with pytest.raises(ValueError, match="mixture"):
        model(torch.zeros(1, 1, 10))
    with pytest.raises(ValueError, match="hidden"):
        BLSTMMasker(n_freq=129, n_sources=2, hidden=7)
