"""sepbook.experiments.distributed: fit under torchrun on 2 CPU processes (gloo) against one process on the global batch,
resume, who writes checkpoints and results, and the errors of a bad setup.

The 2-process runs share one ``torch.multiprocessing.spawn`` (starting processes costs seconds); each
scenario records its outcome or its error, and each test reads one scenario.
"""
import datetime as dt
import json
import os
import socket
import traceback
import types
from functools import partial

import pytest
import torch
import torch.distributed as dist
from torch import nn

from sepbook.data.datasets import step_batches
from sepbook.experiments import distributed, train
from sepbook.experiments.train import fit, update

from helpers import QUIET as HELPERS_QUIET
from helpers import Pairs, snapshot

WORLD = 2
STEPS = 12
QUIET = dict(HELPERS_QUIET, device="cpu")


def _batches(batch_size=8):
    return partial(step_batches, Pairs(), batch_size, 3)


def _model(dropout=0.0):
    """A body the loss uses, through a part rather than forward, and a head it never uses."""
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 8))
    return nn.ModuleDict({"body": body, "head": nn.Linear(8, 2)})


def _loss(model, batch):
    return torch.mean((model["body"](batch["x"]) - batch["y"]) ** 2)


def _plain():
    model = _model()
    history = fit(model, _loss, _batches(), steps=STEPS, lr=1e-2, grad_clip=0.05, seed=1, **QUIET)
    return {"weights": snapshot(model), "loss": history["loss"]}


def _split():
    seen = []

    def loss(model, batch):
        seen.append(batch["x"].clone())
        return _loss(model, batch)

    fit(_model(), loss, _batches(), steps=2, **QUIET)
    return {"seen": seen}


def _two_part_step(model, optimizers, batch):
    logs = {}
    for name in ("a", "b"):
        loss = torch.mean((model[name](batch["x"]) - batch["y"]) ** 2)
        update(optimizers[name], loss)  # the update rule averages over the processes before stepping
        logs[f"loss_{name}"] = float(loss.detach())
    return logs


def _custom():
    torch.manual_seed(0)
    model = nn.ModuleDict({"a": nn.Linear(8, 8), "b": nn.Linear(8, 8)})
    optimizers = {"a": torch.optim.Adam(model["a"].parameters(), 1e-2),
                  "b": torch.optim.SGD(model["b"].parameters(), 1e-2, momentum=0.9)}
    history = fit(model, step_fn=_two_part_step, optimizers=optimizers, batches=_batches(), steps=STEPS,
                  **QUIET)
    return {"weights": snapshot(model), "loss_b": history["loss_b"]}


def _resume(folder):
    straight = _model(dropout=0.3)
    fit(straight, _loss, _batches(), steps=STEPS, seed=1, **QUIET)
    checkpoint = folder / "resume.pt"
    fit(_model(dropout=0.3), _loss, _batches(), steps=STEPS, seed=1, checkpoint=checkpoint,
        checkpoint_every=2, stop_after=5, **QUIET)
    torch.manual_seed(1234 + distributed.rank())  # a new process would not continue the old one's draws
    resumed = _model(dropout=0.3)
    history = fit(resumed, _loss, _batches(), steps=STEPS, seed=1, checkpoint=checkpoint, **QUIET)
    return {"straight": snapshot(straight), "resumed": snapshot(resumed), "steps": history["step"]}


def _writes(folder):
    calls = []
    real = train.save_checkpoint

    def recording(*args, **kwargs):
        calls.append(distributed.rank())
        return real(*args, **kwargs)

    train.save_checkpoint = recording  # fit looks it up at every call
    try:
        fit(_model(), _loss, _batches(), steps=6, checkpoint=folder / "writes.pt", checkpoint_every=3,
            **QUIET)
    finally:
        train.save_checkpoint = real
    return {"calls": len(calls)}


def _validation():
    seen = []

    def valid_fn(model):
        seen.append(distributed.rank())
        return {"score": 10.0 + distributed.rank()}

    history = fit(_model(), _loss, _batches(), steps=4, valid_fn=valid_fn, valid_every=2, **QUIET)
    return {"called": seen, "valid": history["valid"]}


def _indivisible():
    try:
        fit(_model(), _loss, _batches(batch_size=3), steps=2, **QUIET)
    except ValueError as error:
        return {"error": str(error)}
    return {"error": None}


def _fake_recipe():
    """A recipe of two runs, b starting from a, trained with fit on the tiny pairs."""
    module = types.ModuleType("fake_recipe")
    module.VARIANTS = ("a", "b")
    module.requires = lambda cfg, variant: ("a",) if variant == "b" else ()
    module.reference_rows = lambda cfg, tracks: []
    module.config = lambda profile=None, **overrides: {"profile": profile or "tiny", "seeds": (0,),
                                                       "batch_size": 8} | overrides
    module.data = lambda cfg: types.SimpleNamespace(test=["song"])
    module.runs = lambda cfg: [("a", 0), ("b", 0)]
    module.build = lambda cfg, variant: _model()

    def train_run(cfg, data, variant, seed, *, prerequisites=None, **options):
        model = _model()
        if prerequisites:
            model.load_state_dict(prerequisites["a"].state_dict())
        history = fit(model, _loss, _batches(cfg["batch_size"]), steps=4, seed=seed, device="cpu", **options)
        return model, history

    module.train = train_run
    module.evaluate = lambda cfg, models, tracks: [
        {"variant": v, "seed": s, "song": "song", "domain": "", "source": "x", "metric": "w",
         "value": float(m["body"][0].weight.detach().sum())} for (v, s), m in models.items()]
    return module


def _produce(folder):
    from sepbook import results

    os.environ["SEPBOOK_DATA"] = str(folder / "data")
    results.RECIPES["fake"] = _fake_recipe()
    out = results.produce("fake", "tiny", out=folder / "results")
    return {"files": sorted(p.name for p in out.iterdir()) if out.is_dir() else []}


def _worker(rank, port, folder):
    """One of the two processes: what torchrun would set, then every scenario in turn."""
    from pathlib import Path

    folder = Path(folder)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    distributed.TIMEOUT = dt.timedelta(seconds=60)  # a scenario failing on one rank only must not hang
    assert distributed.init() and distributed.rank() == rank and distributed.world() == WORLD
    scenarios = {"split": _split, "plain": _plain, "custom": _custom, "resume": partial(_resume, folder),
                 "writes": partial(_writes, folder), "validation": _validation, "indivisible": _indivisible,
                 "produce": partial(_produce, folder)}
    outcomes = {}
    for name, scenario in scenarios.items():
        try:
            outcomes[name] = scenario()
        except Exception:  # recorded, so that the test of this scenario fails with the traceback
            outcomes[name] = {"failed": traceback.format_exc()}
    torch.save(outcomes, folder / f"rank{rank}.pt")
    dist.barrier()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The outcomes of every scenario on 2 gloo processes: ``runs[rank][scenario]``, and their folder."""
    folder = tmp_path_factory.mktemp("ddp")
    torch.multiprocessing.spawn(_worker, args=(_free_port(), str(folder)), nprocs=WORLD, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], folder


def _outcome(runs, scenario, rank=0):
    outcome = runs[0][rank][scenario]
    assert "failed" not in outcome, outcome.get("failed")
    return outcome


def _close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")


# ----------------------------------------------------------------------------- the same update


@pytest.mark.slow
def test_each_process_trains_on_its_own_half_of_every_global_batch(runs):
    seen = [_outcome(runs, "split", rank)["seen"] for rank in range(WORLD)]
    for step, (_, batch) in zip(range(2), _batches()(0)):
        assert torch.equal(torch.cat([seen[0][step], seen[1][step]]), batch["x"])
        assert len(seen[0][step]) == len(seen[1][step]) == 4


def test_two_processes_train_the_weights_one_process_trains_on_the_global_batch(runs):
    alone = _plain()
    for rank in range(WORLD):
        _close(_outcome(runs, "plain", rank)["weights"], alone["weights"])
    # the logged loss is the mean over the processes' halves: the global batch's loss
    assert _outcome(runs, "plain")["loss"] == pytest.approx(alone["loss"], rel=1e-5)
    assert _outcome(runs, "plain", 1)["loss"] == _outcome(runs, "plain")["loss"]


def test_a_custom_step_with_two_optimisers_averages_like_one_process(runs):
    alone = _custom()
    _close(_outcome(runs, "custom")["weights"], alone["weights"])
    assert _outcome(runs, "custom")["loss_b"] == pytest.approx(alone["loss_b"], rel=1e-5)


def test_a_single_process_never_starts_torch_distributed():
    _plain()
    assert not dist.is_initialized() and distributed.world() == 1 and distributed.is_main()


# ----------------------------------------------------------------------------- resume and checkpoints


def test_resumed_under_ddp_the_run_ends_with_the_uninterruptedsnapshot(runs):
    for rank in range(WORLD):
        outcome = _outcome(runs, "resume", rank)
        assert outcome["steps"] == list(range(1, STEPS + 1))
        for name, weight in outcome["straight"].items():
            assert torch.equal(weight, outcome["resumed"][name]), name


def test_the_checkpoint_holds_every_process_s_own_random_state(runs):
    state = torch.load(runs[1] / "resume.pt", weights_only=True)
    assert len(state["ranks"]) == WORLD and state["step"] == STEPS
    assert not torch.equal(state["ranks"][0]["torch"], state["ranks"][1]["torch"])  # distinct dropout draws


def test_only_rank_0_writes_the_checkpoint(runs):
    assert _outcome(runs, "writes", 0)["calls"] == 3  # steps 3 and 6, and the end
    assert _outcome(runs, "writes", 1)["calls"] == 0
    assert torch.load(runs[1] / "writes.pt", weights_only=True)["step"] == 6


def test_rank_0_validates_and_every_process_keeps_its_scores(runs):
    assert _outcome(runs, "validation", 0)["called"] == [0, 0]
    assert _outcome(runs, "validation", 1)["called"] == []
    for rank in range(WORLD):
        assert _outcome(runs, "validation", rank)["valid"] == [{"score": 10.0}] * 2


def test_produce_under_torchrun_trains_each_run_once_and_rank_0_writes_the_results(runs):
    files = ["checkpoints", "histories.json", "manifest.json", "metrics.csv"]
    assert _outcome(runs, "produce", 0)["files"] == files
    manifest = json.loads((runs[1] / "results" / "manifest.json").read_text())
    assert manifest["machine"]["processes"] == WORLD and manifest["machine"]["backend"] == "gloo"
    assert [(r["variant"], r["seed"]) for r in manifest["runs"]] == [("a", 0), ("b", 0)]
    assert list((runs[1] / "data" / "runs").glob("*/*.tmp")) == []


# ----------------------------------------------------------------------------- bad setups


def test_a_global_batch_the_processes_cannot_split_is_named_with_its_numbers(runs):
    for rank in range(WORLD):
        error = _outcome(runs, "indivisible", rank)["error"]
        assert error is not None and "batch_size" in error and "3 items" in error and "2 processes" in error


def test_shard_gives_each_rank_its_block_of_every_tensor():
    generator = torch.Generator().manual_seed(5)
    batch = {"x": torch.arange(6), "pair": (torch.zeros(6, 2), "label"), "list": [torch.ones(6, 1)],
             "scale": torch.tensor(2.0), "none": None, "generator": generator}
    parts = [distributed.shard(batch, part=r, parts=3) for r in range(3)]
    assert [p["x"].tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    assert parts[1]["pair"][0].shape == (2, 2) and parts[1]["pair"][1] == "label"
    assert parts[2]["list"][0].shape == (2, 1)
    assert all(p["scale"] is batch["scale"] and p["none"] is None for p in parts)
    assert parts[0]["generator"] is generator
    draws = [torch.rand(4, generator=p["generator"]) for p in parts]
    assert not torch.equal(draws[1], draws[2])  # each rank its own stream, derived from the batch's
    again = distributed.shard(batch, part=2, parts=3)["generator"]
    assert torch.equal(torch.rand(4, generator=again), draws[2])
    assert distributed.shard(batch) is batch  # alone: the whole batch


@pytest.mark.parametrize("call, match", [
    (lambda: distributed.shard({"x": torch.zeros(5)}, part=0, parts=2),
     r"batch_size: batch\['x'\].*5 items.*2 processes"),
    (lambda: distributed.shard(torch.zeros(4), part=2, parts=2), "part"),
    (lambda: distributed.check_divisible(12, parts=5), "batch_size: the global batch of 12 items.*5 proc"),
])
def test_bad_shards_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
    assert distributed.check_divisible(12, parts=4) == 3


def test_world_size_without_the_rest_of_torchrun_s_variables_is_refused(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"\$RANK.*\$MASTER_PORT.*torchrun"):
        distributed.init()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match=r"\$WORLD_SIZE='two'"):
        distributed.init()


def test_results_refuses_worker_processes_under_torchrun(monkeypatch, capsys):
    from sepbook import results

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit):
        results.main(["foundations", "--profile", "paper", "--workers", "2"])
    assert "--workers" in capsys.readouterr().err and not dist.is_initialized()
    expected = "torchrun --nproc_per_node=4 -m sepbook.results transfer --profile paper"
    assert results.torchrun_command("transfer", gpus=4) == expected
