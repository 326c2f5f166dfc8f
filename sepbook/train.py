"""The one training loop every chapter uses: seeding, device choice, progress, validation,
checkpoints with exact resume, and mixed precision on CUDA.

Batches are a pure function of ``(seed, step)`` (see :func:`sepbook.datasets.step_batches`), and a
checkpoint holds the model, the optimiser, the step, the history and the torch RNG state. So a run
stopped at step *s* and resumed ends with exactly the weights of a run that never stopped.

Chapter: foundations/first_separator
"""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from sepbook.plot import LiveCurve

LossFn = Callable[[torch.nn.Module, Mapping[str, torch.Tensor]], torch.Tensor]
ValidFn = Callable[[torch.nn.Module], Mapping[str, float]]


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given, else CUDA, then Apple's MPS, then the CPU."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) so model initialisation is reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor in a batch dict to ``device``."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def new_history() -> dict[str, list]:
    """An empty training history: train loss per step, validation metrics every ``valid_every`` steps."""
    return {"step": [], "loss": [], "valid_step": [], "valid": []}


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    step: int, history: Mapping[str, list]) -> Path:
    """Write a checkpoint of plain tensors and numbers (loadable with ``weights_only=True``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "step": int(step),
        "history": {k: list(v) for k, v in history.items()},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind
    return path


def load_checkpoint(path: str | Path, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, map_location: str = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; load it into ``model``/``optimizer`` when given."""
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
    if optimizer is not None and state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    return state


def progress_bar(total: int, initial: int, enabled: bool):
    """A tqdm bar: a widget in a live notebook, a few plain log lines in the static book build."""
    from sepbook.book import static_build

    if static_build():
        # A live bar would leave hundreds of redraws in the static HTML; log a few lines instead.
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, disable=not enabled, file=sys.stdout, ascii=True,
                    mininterval=0, maxinterval=3600, miniters=max(1, total // 4), ncols=80)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, mininterval=1.0, dynamic_ncols=True)


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batches: Callable[[int], Iterable[tuple[int, Mapping[str, torch.Tensor]]]],
    *,
    steps: int,
    lr: float = 1e-3,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    valid_fn: ValidFn | None = None,
    valid_every: int = 100,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    stop_after: int | None = None,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
    grad_clip: float | None = 5.0,
    live: bool = True,
) -> dict[str, list]:
    """Train ``model`` for ``steps`` optimiser steps and return its history.

    ``batches(start_step)`` yields ``(step, batch)`` pairs from ``start_step`` on (use
    ``functools.partial(step_batches, dataset, batch_size, seed)``); ``loss_fn(model, batch)`` returns a
    scalar. If ``checkpoint`` names an existing file the run resumes from it; a checkpoint is written
    every ``checkpoint_every`` steps and at the end. ``stop_after`` ends the run early at that step (to
    show or test an interruption). ``amp`` (default: on for CUDA) runs the forward pass in bfloat16.
    ``live`` redraws the loss curve at every validation in a live notebook (never in the static book).
    """
    if steps <= 0:
        raise ValueError(f"steps must be a positive number of optimiser steps, got {steps}")
    if valid_every <= 0:
        raise ValueError(f"valid_every must be positive, got {valid_every}")
    device = pick_device(device) if not isinstance(device, torch.device) else device
    amp = (device.type == "cuda") if amp is None else amp
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history, start = new_history(), 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, model, optimizer, map_location=str(device))
        start, history = state["step"], state["history"]
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    else:
        torch.manual_seed(seed)
    end = min(steps, stop_after) if stop_after is not None else steps
    bar = progress_bar(steps, start, progress)
    curve = LiveCurve() if live and progress else None
    step = start
    model.train()
    for step, batch in batches(start):
        if step >= end:
            break
        batch = to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr or check the data")
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        history["step"].append(step + 1)
        history["loss"].append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", refresh=False)
        done = step + 1
        if valid_fn is not None and (done % valid_every == 0 or done == steps):
            model.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in valid_fn(model).items()}
            model.train()
            history["valid_step"].append(done)
            history["valid"].append(metrics)
            if curve is not None:
                curve.update(history)
        if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0:
            save_checkpoint(checkpoint, model, optimizer, done, history)
        step = done
    bar.close()
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, optimizer, step, history)
    model.eval()
    return history
