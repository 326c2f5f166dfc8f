from functools import partial

import pytest
import torch
from torch import nn

from sepbook.datasets import step_batches
from sepbook.train import fit, load_checkpoint, pick_device, save_checkpoint


class _Pairs(torch.utils.data.Dataset):
    """Items that depend only on their index, as the book's datasets do."""

    def __len__(self):
        return 64

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        x = torch.randn(8, generator=g)
        return {"x": x, "y": x.roll(1) * 0.5}


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.Linear(16, 8))


def _loss(model, batch):
    return torch.mean((model(batch["x"]) - batch["y"]) ** 2)


def _batches():
    return partial(step_batches, _Pairs(), 4, 3)


def test_interrupted_then_resumed_run_ends_with_identical_weights(tmp_path):
    straight = _model()
    fit(straight, _loss, _batches(), steps=30, seed=1, progress=False, device="cpu")

    resumed = _model()
    checkpoint = tmp_path / "run.pt"
    fit(resumed, _loss, _batches(), steps=30, seed=1, progress=False, device="cpu",
        checkpoint=checkpoint, checkpoint_every=5, stop_after=13)
    fresh = _model()  # a new process would start from a new model object
    history = fit(fresh, _loss, _batches(), steps=30, seed=1, progress=False, device="cpu", checkpoint=checkpoint)

    assert history["step"] == list(range(1, 31))
    for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)


def test_fit_reduces_loss_and_records_validation():
    model = _model()
    history = fit(model, _loss, _batches(), steps=120, lr=1e-2, progress=False, device="cpu",
                  valid_fn=lambda m: {"w": 1.0}, valid_every=40)
    assert sum(history["loss"][-10:]) < 0.5 * sum(history["loss"][:10])
    assert history["valid_step"] == [40, 80, 120]


def test_checkpoint_is_loadable_with_weights_only(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "c.pt", model, torch.optim.Adam(model.parameters()), 7, {"loss": [1.0]})
    raw = torch.load(path, weights_only=True)
    assert raw["step"] == 7
    other = _model()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    load_checkpoint(path, other)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


@pytest.mark.parametrize("content, error, match", [
    (None, FileNotFoundError, "does not exist"),
    (b"not a checkpoint", ValueError, "could not be read"),
])
def test_bad_checkpoints_are_named(tmp_path, content, error, match):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=match):
        load_checkpoint(path, _model())


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        fit(_model(), _loss, _batches(), steps=0, progress=False)


def test_non_finite_loss_stops_with_a_clear_error():
    with pytest.raises(FloatingPointError, match="step 0"):
        fit(_model(), lambda m, b: torch.tensor(float("nan"), requires_grad=True), _batches(), steps=3,
            progress=False, device="cpu")


def test_device_choice_prefers_what_is_asked():
    assert pick_device("cpu").type == "cpu"
    assert pick_device().type in ("cuda", "mps", "cpu")
