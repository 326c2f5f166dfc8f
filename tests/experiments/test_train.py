"""sepbook.experiments.train.fit: exact resume, best-model selection, the NaN guard, checkpoints and argument checks."""
from functools import partial

import pytest
import torch
from torch import nn

from sepbook.data.datasets import step_batches
from sepbook.experiments import train
from sepbook.experiments.train import (UpdateRule, autocast_dtype, fit, load_checkpoint, save_checkpoint,
                                       supervised_step, to_device, update)

from helpers import QUIET as HELPERS_QUIET
from helpers import Pairs, check_update_rule, same, snapshot


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.Linear(16, 8))  # dropout: resume must restore the RNG


def _loss(model, batch):
    return torch.mean((model(batch["x"]) - batch["y"]) ** 2)


def _batches():
    return partial(step_batches, Pairs(), 4, 3)


QUIET = dict(HELPERS_QUIET, device="cpu")


# ----------------------------------------------------------------------------- resume


def test_interrupted_then_resumed_run_ends_with_identicalsnapshot(tmp_path):
    straight = _model()
    fit(straight, _loss, _batches(), steps=30, seed=1, **QUIET)

    checkpoint = tmp_path / "run.pt"
    interrupted = _model()
    first = fit(interrupted, _loss, _batches(), steps=30, seed=1, checkpoint=checkpoint, checkpoint_every=5,
                stop_after=13, **QUIET)
    assert first["step"] == list(range(1, 14))
    assert not same(snapshot(interrupted), snapshot(straight))
    fresh = _model()  # a new process would start from a new model object
    history = fit(fresh, _loss, _batches(), steps=30, seed=1, checkpoint=checkpoint, **QUIET)

    assert history["step"] == list(range(1, 31))
    assert same(snapshot(straight), snapshot(fresh))


def test_resume_restores_every_optimiser_of_a_custom_step(tmp_path):
    """Two parts, two optimisers, a step that logs two values: the multi-module path of fit."""

    def step(model, optimizers, batch):
        logs = {}
        for name in ("a", "b"):
            optimizers[name].zero_grad()
            loss = torch.mean((model[name](batch["x"]) - batch["y"]) ** 2)
            loss.backward()
            optimizers[name].step()
            logs[f"loss_{name}"] = float(loss.detach())
        return logs

    def run(**options):
        torch.manual_seed(0)
        model = nn.ModuleDict({"a": nn.Linear(8, 8), "b": nn.Linear(8, 8)})
        optimizers = {"a": torch.optim.Adam(model["a"].parameters(), 1e-2),
                      "b": torch.optim.SGD(model["b"].parameters(), 1e-2, momentum=0.9)}
        history = fit(model, step_fn=step, optimizers=optimizers, batches=_batches(), steps=12, **QUIET, **options)
        return model, history

    straight, history = run()
    assert set(history) >= {"step", "loss_a", "loss_b"} and len(history["loss_b"]) == 12
    run(checkpoint=tmp_path / "c.pt", stop_after=5)
    resumed, _ = run(checkpoint=tmp_path / "c.pt")
    assert same(snapshot(straight), snapshot(resumed))


def test_fit_reduces_loss_and_records_validation():
    model = _model()
    history = fit(model, _loss, _batches(), steps=120, lr=1e-2, valid_fn=lambda m: {"w": 1.0}, valid_every=40, **QUIET)
    assert sum(history["loss"][-10:]) < 0.5 * sum(history["loss"][:10])
    assert history["valid_step"] == [40, 80, 120] and history["valid"] == [{"w": 1.0}] * 3


# ----------------------------------------------------------------------------- best model


def _scripted(scores):
    """A validation that reports ``scores`` in turn and keeps a snapshot of the weights it saw."""
    seen = []

    def valid_fn(model):
        seen.append(snapshot(model))
        return {"score": scores[len(seen) - 1]}

    return valid_fn, seen


@pytest.mark.parametrize("mode, scores", [("min", [3.0, 1.0, 2.0]), ("max", [1.0, 3.0, 2.0])])
def test_keep_best_restores_the_weights_of_the_best_validation(mode, scores):
    valid_fn, seen = _scripted(scores)
    model = _model()
    history = fit(model, _loss, _batches(), steps=30, lr=1e-2, valid_fn=valid_fn, valid_every=10,
                  keep_best=("score", mode), **QUIET)
    assert [v["score"] for v in history["valid"]] == scores
    assert not same(seen[1], seen[2])  # training moved on after the best validation
    assert same(snapshot(model), seen[1])


def test_patience_stops_after_that_many_validations_without_progress_and_keeps_the_best(tmp_path):
    # the best comes at the second validation, then three misses
    valid_fn, seen = _scripted([3.0, 1.0, 2.0, 2.5, 1.5, 0.5, 0.1])
    model = _model()
    history = fit(model, _loss, _batches(), steps=70, lr=1e-2, valid_fn=valid_fn, valid_every=10,
                  keep_best=("score", "min"), patience=3, checkpoint=tmp_path / "run.pt", **QUIET)
    assert history["valid_step"] == [10, 20, 30, 40, 50] and history["step"][-1] == 50
    assert history["best_step"] == [10, 20]
    assert same(snapshot(model), seen[1])
    # resuming a run that stopped early trains nothing more
    again = fit(_model(), _loss, _batches(), steps=70, lr=1e-2, valid_fn=valid_fn, valid_every=10,
                keep_best=("score", "min"), patience=3, checkpoint=tmp_path / "run.pt", **QUIET)
    assert again["step"][-1] == 50 and len(seen) == 5
    with pytest.raises(ValueError, match="patience"):
        fit(_model(), _loss, _batches(), steps=10, valid_fn=valid_fn, patience=3, **QUIET)  # nothing to keep


def test_without_keep_best_the_last_weights_stay():
    seen = []

    def valid_fn(model):
        seen.append(snapshot(model))
        return {"score": 10.0 - len(seen)}  # the first validation is the best, but nobody asked to keep it

    model = _model()
    fit(model, _loss, _batches(), steps=20, lr=1e-2, valid_fn=valid_fn, valid_every=10, **QUIET)
    assert not same(seen[0], seen[1]) and same(snapshot(model), seen[-1])


def test_keep_best_names_a_metric_validation_does_not_report():
    with pytest.raises(ValueError, match="keep_best.*'loss'"):
        fit(_model(), _loss, _batches(), steps=4, valid_every=2, valid_fn=lambda m: {"score": 1.0},
            keep_best=("loss", "min"), **QUIET)


# ----------------------------------------------------------------------------- NaN guard


def test_non_finite_loss_stops_with_a_clear_error():
    with pytest.raises(FloatingPointError, match="loss became non-finite at step 1"):
        fit(_model(), lambda m, b: torch.tensor(float("nan"), requires_grad=True), _batches(), steps=3, **QUIET)


def test_non_finite_logged_value_is_named():
    logs = iter([{"Ls": 1.0, "Lu": 0.5}, {"Ls": 1.0, "Lu": float("inf")}, {"Ls": 1.0, "Lu": 0.5}])
    model = _model()
    with pytest.raises(FloatingPointError, match=r"^Lu became non-finite at step 2"):
        fit(model, step_fn=lambda m, o, b: next(logs), optimizers={"m": torch.optim.SGD(model.parameters(), 0.1)},
            batches=_batches(), steps=3, **QUIET)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_is_loadable_with_weights_only(tmp_path):
    model = _model()
    checkpoint = tmp_path / "run.pt"
    fit(model, _loss, _batches(), steps=6, valid_fn=lambda m: {"score": 1.0}, valid_every=3,
        keep_best=("score", "min"), checkpoint=checkpoint, **QUIET)
    raw = torch.load(checkpoint, weights_only=True)
    assert raw["step"] == 6 and raw["history"]["step"] == list(range(1, 7))
    assert set(raw["optimizers"]) == {"model"} and raw["best"]["step"] == 3
    assert isinstance(raw["torch_rng"], torch.Tensor)
    other = _model()
    load_checkpoint(checkpoint, other)  # the last weights, to resume from
    assert not same(snapshot(other), raw["best"]["model"])
    assert same(snapshot(model), raw["best"]["model"])  # fit returned the best (step 3) weights


def test_save_and_load_checkpoint_round_trip(tmp_path):
    model = _model()
    optimizer = torch.optim.Adam(model.parameters())
    path = save_checkpoint(tmp_path / "c.pt", model, optimizer, 7, {"loss": [1.0]})
    assert not path.with_suffix(".pt.tmp").exists()
    other = _model()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    state = load_checkpoint(path, other, torch.optim.Adam(other.parameters()))
    assert state["step"] == 7 and state["history"] == {"loss": [1.0]}
    assert same(snapshot(model), snapshot(other))
    with pytest.raises(ValueError, match="'critics'"):
        load_checkpoint(path, _model(), {"critics": torch.optim.Adam(_model().parameters())})


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


# ----------------------------------------------------------------------------- pieces and arguments


def test_to_device_moves_nested_tensors_and_keeps_the_rest():
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), "label"), "list": [torch.ones(1), {"deep": torch.ones(3)}],
             "n": 3}
    moved = to_device(batch, torch.device("meta"))
    assert moved["x"].is_meta and moved["pair"][0].is_meta and moved["list"][0].is_meta
    assert moved["list"][1]["deep"].is_meta and moved["list"][1]["deep"].shape == (3,)
    assert isinstance(moved["pair"], tuple) and moved["pair"][1] == "label" and moved["n"] == 3


def test_supervised_step_clips_the_gradient_norm():
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    batch = {"x": torch.ones(2, 4) * 100, "y": torch.zeros(2, 1)}

    def loss_fn(m, b):
        return (m(b["x"]) - b["y"] - 1).pow(2).mean()  # gradient norm 400 at zero weights

    with UpdateRule(grad_clip=0.5):
        logs = supervised_step(loss_fn)(model, {"model": torch.optim.SGD(model.parameters(), lr=1.0)}, batch)
    assert logs == {"loss": 1.0}
    assert model.weight.norm().item() == pytest.approx(0.5)  # one SGD step of a gradient clipped to norm 0.5


def test_supervised_step_logs_the_terms_of_a_loss_and_steps_on_their_total():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    batch = {"x": torch.ones(1, 1)}

    def loss_fn(m, b):
        first, second = m(b["x"]).sum(), 3 * m(b["x"]).sum()
        return first + second, {"first": first, "second": second}

    logs = supervised_step(loss_fn)(model, {"model": torch.optim.SGD(model.parameters(), lr=0.1)}, batch)
    assert logs == {"loss": 4.0, "first": 1.0, "second": 3.0}
    assert model.weight.item() == pytest.approx(1.0 - 0.1 * 4)  # the gradient of the total, not of a term


@pytest.mark.parametrize("arguments, match", [
    (dict(steps=0), "steps"),
    (dict(steps=2.5), "steps"),
    (dict(steps=True), "steps"),
    (dict(valid_every=0), "valid_every"),
    (dict(keep_best=("score", "lowest")), "keep_best"),
    (dict(keep_best=("score",)), "keep_best"),
    (dict(batches=None), "batches"),
    (dict(loss_fn=None), "loss_fn"),
    (dict(step_fn=lambda m, o, b: {}), "loss_fn"),
    (dict(loss_fn=None, step_fn=lambda m, o, b: {}), "optimizers"),
])
def test_bad_arguments_are_named(arguments, match):
    options = dict(loss_fn=_loss, batches=_batches(), steps=4) | arguments
    with pytest.raises(ValueError, match=match):
        fit(_model(), **options, **QUIET)


# ----------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("device, capability, expected", [
    ("cuda", (9, 0), torch.bfloat16), ("cuda", (8, 0), torch.bfloat16), ("cuda", (8, 6), torch.bfloat16),
    ("cuda", (7, 5), torch.float16), ("cuda", (6, 1), torch.float16),   # T4, P100: no native bfloat16
    ("cpu", None, None), ("mps", None, None),
])
def test_autocast_dtype_is_what_the_device_computes_natively(device, capability, expected):
    assert autocast_dtype(device, capability) == expected


def _one_step(scaler, grad_clip):
    model = _model().eval()                       # no dropout: both runs see the same function
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = next(iter(step_batches(Pairs(), 8, seed=0)))[1]
    with UpdateRule(grad_clip, scaler):
        supervised_step(lambda m, b: 100 * _loss(m, b))(model, {"model": optimiser}, batch)
    return [p.detach().clone() for p in model.parameters()]


def test_gradient_scaling_unscales_before_clipping_and_steps_like_plain_training():
    plain = _one_step(None, grad_clip=1.0)
    scaled = _one_step(torch.amp.GradScaler("cpu", init_scale=2.0 ** 10), grad_clip=1.0)
    for a, b in zip(plain, scaled):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    unclipped = _one_step(None, grad_clip=None)
    assert any(not torch.allclose(a, b) for a, b in zip(plain, unclipped))   # the clip did act


def test_gradient_scaler_state_survives_a_checkpoint(tmp_path):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 7)
    model = _model()
    path = save_checkpoint(tmp_path / "c.pt", model, None, 3, {"step": []}, scaler=scaler)
    assert load_checkpoint(path)["scaler"]["scale"] == 2.0 ** 7
    assert load_checkpoint(save_checkpoint(tmp_path / "d.pt", model, None, 3, {"step": []}))["scaler"] == {}


def test_the_plain_step_trains_through_the_update_rule():
    def make():
        torch.manual_seed(0)
        model = _model().eval()
        return model, {"model": torch.optim.SGD(model.parameters(), lr=0.1)}, next(iter(step_batches(Pairs(), 8, seed=0)))[1]

    check_update_rule(make, supervised_step(lambda m, b: 100 * _loss(m, b)))


def test_a_step_that_steps_by_hand_fails_the_update_rule_check():
    def by_hand(model, optimizers, batch):
        optimizers["model"].zero_grad()
        _loss(model, batch).backward()
        optimizers["model"].step()

    def make():
        torch.manual_seed(0)
        model = _model().eval()
        return model, {"model": torch.optim.SGD(model.parameters(), lr=0.1)}, next(iter(step_batches(Pairs(), 8, seed=0)))[1]

    with pytest.raises(AssertionError, match="overflowed"):
        check_update_rule(make, by_hand)


def test_fit_puts_its_rule_in_force_for_custom_steps_only_while_it_trains():
    seen = []

    def step(model, optimizers, batch):
        seen.append(train._RULE.get())
        update(optimizers["model"], _loss(model, batch))
        return {}

    model = _model()
    fit(model, step_fn=step, optimizers={"model": torch.optim.SGD(model.parameters(), lr=0.1)},
        batches=_batches(), steps=2, grad_clip=0.25, **QUIET)
    assert [rule.grad_clip for rule in seen] == [0.25, 0.25]
    assert train._RULE.get().grad_clip is None and train._RULE.get().scaler is None
