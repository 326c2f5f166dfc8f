"""The one training loop every chapter uses: seeding, device choice, progress, validation,
best-model selection, checkpoints with exact resume, a NaN guard and mixed precision on CUDA.

A training step is a function ``step_fn(model, optimizers, batch) -> {name: float}`` that updates
the model and returns what to log. Plain supervised training needs only a loss,
``loss_fn(model, batch) -> scalar``, which :func:`supervised_step` turns into a step; a chapter
that alternates updates (critics and a separator, say) passes its own step and one optimiser per
part. Batches are a pure function of ``(seed, step)`` (see :func:`sepbook.data.datasets.step_batches`),
and a checkpoint holds the model, every optimiser, the step, the history, the best model so far
and the torch RNG state, so a run stopped at step *s* and resumed ends with exactly the weights of
a run that never stopped. Started by ``torchrun`` as one of several processes, :func:`fit` trains
with DistributedDataParallel, each process on its share of every global batch
(see :mod:`sepbook.experiments.distributed`); alone, it never touches ``torch.distributed``.

Chapter: foundations/first_separator
"""
from __future__ import annotations

import contextvars
import math
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from torch.optim import Optimizer

from sepbook.book.plot import LiveCurve
from sepbook.experiments import distributed

LossFn = Callable[[torch.nn.Module, Mapping[str, torch.Tensor]], torch.Tensor]
StepFn = Callable[[torch.nn.Module, Mapping[str, torch.optim.Optimizer], Mapping[str, Any]], Mapping[str, float]]
ValidFn = Callable[[torch.nn.Module], Mapping[str, float]]


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given, else CUDA (``cuda:$LOCAL_RANK`` under torchrun), then MPS, then the CPU."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return distributed.local_device(torch.device("cuda"))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed numpy's and torch's global generators (all devices) so model initialisation is reproducible."""
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a batch (nested dicts and lists too) to ``device``; leave the rest alone."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def new_history() -> dict[str, list]:
    """An empty history: ``step`` and one list per logged name; validation results every ``valid_every`` steps."""
    return {"step": [], "valid_step": [], "valid": []}


def save_checkpoint(path: str | Path, model: torch.nn.Module,
                    optimizers: Mapping[str, torch.optim.Optimizer] | torch.optim.Optimizer | None,
                    step: int, history: Mapping[str, list], best: Mapping[str, Any] | None = None,
                    scaler: torch.amp.GradScaler | None = None,
                    ranks: list[Mapping[str, torch.Tensor]] | None = None) -> Path:
    """Write a checkpoint of plain tensors and numbers (loadable with ``weights_only=True``), atomically.

    ``ranks``: under torchrun, every process's RNG state by rank (:func:`sepbook.experiments.distributed.rng_states`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(optimizers, torch.optim.Optimizer):
        optimizers = {"model": optimizers}
    state = {
        "model": model.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in (optimizers or {}).items()},
        "step": int(step),
        "history": {k: list(v) for k, v in history.items()},
        "best": dict(best) if best else {},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "scaler": scaler.state_dict() if scaler is not None else {},
    }
    if ranks is not None:
        state["ranks"] = list(ranks)
        # each process keeps the state of its own GPU in ranks; reading all GPUs' from rank 0 would
        # open a CUDA context on every one of them
        state["cuda_rng"] = []
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind
    return path


def load_checkpoint(path: str | Path, model: torch.nn.Module | None = None,
                    optimizers: Mapping[str, torch.optim.Optimizer] | torch.optim.Optimizer | None = None,
                    map_location: str = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; load it into ``model``/``optimizers`` when given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        raise ValueError(f"checkpoint file {path} could not be read: {error}") from error
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"checkpoint file {path} holds no 'model' state dict")
    if model is not None:
        model.load_state_dict(state["model"])
    if isinstance(optimizers, torch.optim.Optimizer):
        optimizers = {"model": optimizers}
    for name, optimizer in (optimizers or {}).items():
        if name not in state.get("optimizers", {}):
            raise ValueError(f"checkpoint file {path} holds no state for optimiser {name!r}")
        optimizer.load_state_dict(state["optimizers"][name])
    return state


def progress_bar(total: int, initial: int, enabled: bool, desc: str | None = None):
    """A tqdm bar: a widget in a live notebook, a few plain log lines in the static book build."""
    from sepbook.book import static_build

    if static_build():
        # A live bar would leave hundreds of redraws in the static HTML; log a few lines instead.
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, disable=not enabled, file=sys.stdout, ascii=True, desc=desc,
                    mininterval=0, maxinterval=3600, miniters=max(1, total // 4), ncols=80)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, mininterval=1.0, dynamic_ncols=True,
                desc=desc)


def autocast_dtype(device: str | torch.device, capability: tuple[int, int] | None = None) -> torch.dtype | None:
    """The mixed-precision type a device computes natively; ``None`` means full precision.

    bfloat16 on CUDA GPUs of compute capability 8 or more (A100, RTX 30xx and later), which need
    no gradient scaling; float16 on older ones such as Colab's T4 (7.5), whose bfloat16 is
    emulated and slow, with gradient scaling (see :func:`supervised_step`); nothing on the CPU
    or Apple's MPS. ``capability`` defaults to the device's own, ``(major, minor)``.
    Chapter: foundations/first_separator
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, _ = capability if capability is not None else torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


class UpdateRule:
    """How every training step turns a loss into an update: backward, then average the gradients
    over the processes (custom steps under torchrun), unscale them (float16), clip their norm to
    ``grad_clip`` (unless 0 or None), and step.

    :func:`fit` puts the rule it trains with in force for its loop (``with rule: ...``), and every
    step, plain or custom, applies its losses through :func:`update`; outside ``fit`` the rule is
    plain: backward and step. With a ``scaler`` (float16 training) the loss is scaled before
    backward so that small float16 gradients do not underflow to zero, and a step whose scaled
    gradients overflowed is skipped.
    Chapter: foundations/first_separator
    """

    def __init__(self, grad_clip: float | None = None, scaler: torch.amp.GradScaler | None = None,
                 average: bool = False):
        self.grad_clip, self.scaler, self.average = grad_clip, scaler, average
        self._token: contextvars.Token | None = None

    def __call__(self, optimizer: Optimizer, loss: torch.Tensor) -> None:
        parameters = [p for g in optimizer.param_groups for p in g["params"]]
        optimizer.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.average:
            distributed.average_gradients(parameters)
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)  # skipped if the gradients overflowed
            self.scaler.update()
        else:
            optimizer.step()

    def __enter__(self) -> "UpdateRule":
        self._token = _RULE.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _RULE.reset(self._token)


# outside fit: no clipping, no scaling; gradients averaged if the process is one of several
_RULE: contextvars.ContextVar[UpdateRule] = contextvars.ContextVar("update rule", default=UpdateRule(average=True))


def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One update of ``optimizer``'s parameters down ``loss``, by the :class:`UpdateRule` in force."""
    _RULE.get()(optimizer, loss)


def supervised_step(loss_fn: LossFn) -> StepFn:
    """The plain step: ``loss_fn(model, batch)``, then one :func:`update` of the model.

    A loss made of terms may return ``(loss, {name: term})``; the terms are logged beside ``loss``.
    """

    def step(model, optimizers, batch):
        loss = loss_fn(model, batch)
        loss, terms = loss if isinstance(loss, tuple) else (loss, {})
        update(optimizers["model"], loss)
        logged = {name: float(value.detach()) for name, value in terms.items()}
        return {"loss": float(loss.detach()), **logged}

    return step


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn | None = None,
    batches: Callable[[int], Iterable[tuple[int, Mapping[str, Any]]]] | None = None,
    *,
    steps: int,
    step_fn: StepFn | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    valid_fn: ValidFn | None = None,
    valid_every: int = 100,
    keep_best: tuple[str, str] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    stop_after: int | None = None,
    patience: int | None = None,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
    grad_clip: float | None = 5.0,
    live: bool = True,
    label: str = "training",
) -> dict[str, list]:
    """Train ``model`` for ``steps`` steps and return its history.

    ``batches(start_step)`` yields ``(step, batch)`` pairs from ``start_step`` on (e.g.
    ``functools.partial(step_batches, dataset, batch_size, seed)``). Give either ``loss_fn`` (plain
    supervised training with one Adam optimiser at ``lr``) or ``step_fn`` with its ``optimizers``
    (a dict name -> optimiser over parts of ``model``). Every update clips the gradient norm to
    ``grad_clip`` (:class:`UpdateRule`). ``keep_best=(name, "min" | "max")`` restores, at the end,
    the weights of the validation with the best ``name``; with ``patience`` training also stops once
    that many validations in a row bring no improvement. If ``checkpoint`` names an existing file
    the run resumes from it; one is written every ``checkpoint_every`` steps and at the end.
    ``stop_after`` ends the run early at that step (to show or test an interruption). ``amp``
    (default: on for CUDA) runs the step under the device's own :func:`autocast_dtype` (bfloat16
    when forced on the CPU), with gradient scaling for float16.
    ``live`` redraws the loss curve at every validation in a live notebook (never in the static book).
    Any non-finite logged value stops training with ``FloatingPointError``.

    Under ``torchrun`` (see :mod:`sepbook.experiments.distributed`) every process runs ``fit`` with the same
    arguments: ``batches`` yields global batches, of which each process trains on its share, with
    gradients averaged over the processes; logs are their mean; rank 0 validates, shows progress and
    writes the checkpoint, which every process resumes from.
    """
    _check_fit_arguments(loss_fn, step_fn, optimizers, batches, steps, valid_every, keep_best, patience)
    run = Runtime(model, device, amp)
    custom = step_fn is not None
    if not custom:
        optimizers = {"model": torch.optim.Adam(model.parameters(), lr=lr)}
    start, history, best = run.resume(checkpoint, model, optimizers, seed)
    step_fn = run.share(model, step_fn) if custom else supervised_step(run.distribute(model, loss_fn))
    end = min(steps, stop_after) if stop_after is not None else steps
    if exhausted(history, patience):
        end = start  # a resumed run that had already stopped early
    bar = progress_bar(steps, start, progress and run.main, desc=label)
    curve = LiveCurve(title=label) if live and progress and run.main else None
    done = start
    model.train()
    with UpdateRule(grad_clip, run.scaler, average=run.parallel and custom):
        for step, batch in batches(start):
            if step >= end:
                break
            logs = run.step(step_fn, model, optimizers, batch)
            _log(history, step + 1, logs)
            done = step + 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(logs.items())[:2]}, refresh=False)
            if valid_fn is not None and (done % valid_every == 0 or done == steps):
                best = _validate(model, valid_fn, history, done, keep_best, best)
                if curve is not None:
                    curve.update(history)
                if exhausted(history, patience):
                    break
            if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0:
                run.save(checkpoint, model, optimizers, done, history, best)
    bar.close()
    if checkpoint is not None:
        run.save(checkpoint, model, optimizers, done, history, best)
    if best and (done == steps or exhausted(history, patience)):
        model.load_state_dict(best["model"])
    model.eval()
    return history


class Runtime:
    """Where :func:`fit` trains: the device, its mixed precision, and the processes, one or (under
    ``torchrun``) several (:mod:`sepbook.experiments.distributed`). Alone, every method is plain PyTorch.

    Attributes: ``device``; ``dtype``, the autocast type or None; ``scaler``, a ``GradScaler`` for
    float16 or None; ``parallel``, whether several processes train; ``main``, whether this one is rank 0.
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None, amp: bool | None):
        self.parallel = distributed.init()  # False, and nothing done, outside torchrun
        device = pick_device(device) if not isinstance(device, torch.device) else device
        self.device = distributed.local_device(device)
        amp = (self.device.type == "cuda") if amp is None else amp
        self.dtype = (autocast_dtype(self.device) or torch.bfloat16) if amp else None
        self.scaler = torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None
        self.main = distributed.is_main()
        model.to(self.device)
        distributed.sync_batchnorm(model, self.device)

    def resume(self, checkpoint, model, optimizers, seed) -> tuple[int, dict, dict]:
        """``(start step, history, best)`` from ``checkpoint`` if it exists (weights, optimisers, scaler
        and every process's random state loaded), else a fresh start with torch seeded from ``seed``."""
        resume = checkpoint is not None and Path(checkpoint).is_file()
        distributed.check_agreement(resume, f"whether checkpoint {checkpoint} exists")
        if not resume:
            torch.manual_seed(distributed.rank_seed(seed))  # seed itself when alone
            return 0, new_history(), {}
        state = load_checkpoint(checkpoint, model, optimizers, map_location=str(self.device))
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.parallel:
            distributed.restore_rng(state.get("ranks", []), state["torch_rng"], self.device, seed,
                                    state["step"], str(checkpoint))
        else:
            torch.set_rng_state(state["torch_rng"].cpu())
            if state.get("cuda_rng") and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        return state["step"], state["history"], state["best"]

    def distribute(self, model: torch.nn.Module, loss_fn: LossFn) -> LossFn:
        """``loss_fn`` through DDP, which averages the gradients during backward (alone: ``loss_fn``)."""
        return distributed.wrap(model, loss_fn, self.device) if self.parallel else loss_fn

    def share(self, model: torch.nn.Module, step_fn: StepFn) -> StepFn:
        """A custom step, with rank 0's weights given to every process (DDP does this for the plain step)."""
        if self.parallel:
            distributed.broadcast_state(model)
        return step_fn

    def step(self, step_fn, model, optimizers, batch) -> dict[str, float]:
        """One step on this process's share of the global ``batch``; -> its logs, averaged over processes."""
        batch = to_device(distributed.shard(batch), self.device)
        with torch.autocast(device_type=self.device.type, dtype=self.dtype or torch.bfloat16,
                            enabled=self.dtype is not None):
            logs = step_fn(model, optimizers, batch)
        return distributed.mean_logs(logs)

    def save(self, checkpoint, model, optimizers, done, history, best) -> None:
        """Write the checkpoint: from rank 0 alone, with every process's RNG state, while the others wait."""
        if not distributed.active():
            save_checkpoint(checkpoint, model, optimizers, done, history, best, self.scaler)
            return
        ranks = distributed.rng_states(self.device)  # a collective: every process takes part
        if distributed.is_main():
            save_checkpoint(checkpoint, model, optimizers, done, history, best, self.scaler, ranks=ranks)
        distributed.barrier()


def _log(history: dict[str, list], step: int, logs: Mapping[str, float]) -> None:
    bad = [name for name, value in logs.items() if not math.isfinite(value)]
    if bad:
        raise FloatingPointError(f"{', '.join(bad)} became non-finite at step {step}; lower the learning rate "
                                 "or check the data")
    history["step"].append(step)
    for name, value in logs.items():
        history.setdefault(name, []).append(float(value))


def exhausted(history: Mapping[str, list], patience: int | None) -> bool:
    """Whether the last ``patience`` validations of ``history`` all failed to beat an earlier best."""
    steps = history["valid_step"]
    return patience is not None and bool(history.get("best_step")) and \
        sum(step > history["best_step"][-1] for step in steps) >= patience


def _validate(model, valid_fn, history, done, keep_best, best) -> dict:
    model.eval()
    with torch.no_grad():
        # rank 0 validates and tells the others, so every process keeps the same best weights
        metrics = distributed.from_main(lambda: {k: float(v) for k, v in valid_fn(model).items()})
    model.train()
    history["valid_step"].append(done)
    history["valid"].append(metrics)
    if keep_best is None:
        return best
    name, mode = keep_best
    if name not in metrics:
        raise ValueError(f"keep_best: validation reports {sorted(metrics)}, not {name!r}")
    value = metrics[name]
    better = not best or (value < best["value"] if mode == "min" else value > best["value"])
    if better:
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        best = {"step": done, "value": value, "model": weights}
        history.setdefault("best_step", []).append(done)  # every step that set a new best
    return best


def _check_fit_arguments(loss_fn, step_fn, optimizers, batches, steps, valid_every, keep_best,
                         patience) -> None:
    if (loss_fn is None) == (step_fn is None):
        raise ValueError("fit: give either loss_fn (plain supervised training) or step_fn, not both or neither")
    if step_fn is not None and not optimizers:
        raise ValueError("optimizers: a custom step_fn needs its optimisers, as a dict name -> optimiser")
    if batches is None:
        raise ValueError("batches: expected a function start_step -> iterable of (step, batch)")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive number of optimiser steps, got {steps}")
    if valid_every <= 0:
        raise ValueError(f"valid_every must be positive, got {valid_every}")
    if keep_best is not None and (len(keep_best) != 2 or keep_best[1] not in ("min", "max")):
        raise ValueError(f"keep_best: expected (metric name, 'min' or 'max'), got {keep_best!r}")
    if patience is not None and (keep_best is None or isinstance(patience, bool) or patience < 1):
        raise ValueError(f"patience: expected a positive number of validations together with keep_best, "
                         f"got patience={patience!r}, keep_best={keep_best!r}")
