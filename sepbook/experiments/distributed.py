"""Training on many GPUs: one process per GPU under ``torchrun``, with DistributedDataParallel.

``torchrun --nproc_per_node=4 -m sepbook.results CHAPTER --profile paper`` starts four processes
that train every run of the chapter together. :func:`sepbook.experiments.train.fit` notices that it is one of
several (``$WORLD_SIZE`` > 1) and, in every process:

- joins the process group (:func:`init`): NCCL with one GPU per process, ``cuda:$LOCAL_RANK``,
  or gloo on the CPU;
- builds each step's *global* batch, a pure function of ``(seed, step)`` as always, and keeps its
  own ``batch_size / WORLD_SIZE`` items of it (:func:`shard`), so that the processes see distinct data;
- averages the gradients over the processes before anything reads them (clipping, the optimiser):
  DDP does it during backward for a plain loss (:func:`wrap`), the update rule after each backward
  of a custom step with several optimisers (:func:`average_gradients`). On GPUs, BatchNorm layers become
  SyncBatchNorm, so batch statistics are those of the global batch. N processes thus compute the
  update one process computes on the global batch, up to float rounding, for any loss that is a
  mean over the batch's items. Two things differ: random draws inside a step (dropout, a gradient
  penalty's interpolation weights), which each process makes for its own items; and a loss divided
  by a count over the batch (Meta-TasNet's SI-SDR over the audible targets, the harmonic ``L_mix``
  of the transcription chapter), which each process divides by its own share's count;
- logs the mean over the processes (:func:`mean_logs`), so a history reads like a single process's
  and a non-finite loss in one process stops them all;
- validates on rank 0 and shares the scores (:func:`from_main`); rank 0 alone writes checkpoints,
  with every process's RNG state in them (:func:`rng_states`), while the others wait at a barrier.
  Every process resumes from the same file, so a resumed run repeats an uninterrupted one exactly
  when it is resumed on as many processes.

Without torchrun (no ``$WORLD_SIZE``, or 1) :func:`init` does nothing, every other function is the
identity or a no-op, and training is exactly what it is in one process.

Chapter: preface
"""
from __future__ import annotations

import atexit
import datetime as dt
import os
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from sepbook import seeds

#: How long a process waits at a collective: rank 0 validates, loads data and writes checkpoints
#: alone meanwhile, which for the paper's data can take far longer than torch's default 10 minutes.
TIMEOUT = dt.timedelta(minutes=60)
_LAUNCH = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# ----------------------------------------------------------------------------- who am I


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${name}={value!r}: expected an integer (torchrun sets it)") from None


def requested() -> bool:
    """Whether this process was started as one of several (``$WORLD_SIZE`` > 1, as torchrun sets it)."""
    return _env_int("WORLD_SIZE", 1) > 1


def active() -> bool:
    """Whether this process trains together with others: a process group of more than one is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's number, 0 to ``world() - 1``; 0 when alone."""
    return dist.get_rank() if active() else 0


def world() -> int:
    """How many processes train together; 1 when alone."""
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    """This process's number on its machine (``$LOCAL_RANK``): the GPU it uses."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Whether this process is rank 0, the one that prints, validates and writes files (also when alone)."""
    return rank() == 0


def init() -> bool:
    """Join the process group if torchrun started this process; -> whether training is distributed.

    Safe to call again. NCCL when CUDA is available (each process on ``cuda:$LOCAL_RANK``), gloo
    otherwise. Outside torchrun it does nothing and returns False.
    """
    if active():
        return True
    if not requested():
        return False
    missing = [name for name in _LAUNCH if not os.environ.get(name)]
    if missing:
        raise RuntimeError(f"$WORLD_SIZE={os.environ['WORLD_SIZE']} asks for distributed training, but "
                           f"{', '.join('$' + m for m in missing)} are not set; start the command with "
                           "torchrun --nproc_per_node=N ...")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        if local_rank() >= torch.cuda.device_count():
            gpus = torch.cuda.device_count()
            raise ValueError(f"$LOCAL_RANK={local_rank()}: this machine has {gpus} GPUs; "
                             f"use --nproc_per_node={gpus} or fewer")
        torch.cuda.set_device(local_rank())  # NCCL's collectives and object transfers use the current device
    dist.init_process_group(backend, timeout=TIMEOUT)
    atexit.register(_leave)
    return True


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """``device`` with this process's GPU filled in: ``cuda`` becomes ``cuda:$LOCAL_RANK`` under torchrun."""
    if device.type == "cuda" and device.index is None and requested():
        return torch.device("cuda", local_rank())
    return device


def _collective_device() -> torch.device:
    # NCCL moves only CUDA tensors, gloo only CPU ones
    return torch.device("cuda", local_rank()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    """Wait until every process gets here (nothing when alone)."""
    if active():
        dist.barrier(device_ids=[local_rank()] if dist.get_backend() == "nccl" else None)


@contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the others: e.g. build a corpus once, then read it."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def from_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` computed on rank 0 alone and handed to every process (a picklable value); alone, ``fn()``."""
    if not active():
        return fn()
    box = [fn() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_agreement(value: Any, what: str) -> None:
    """Raise ``RuntimeError`` unless every process holds the same ``value`` (a picklable one) for ``what``."""
    if not active():
        return
    values: list[Any] = [None] * world()
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        found = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
        raise RuntimeError(f"{what} differs between the processes ({found}); every process must see the "
                           "same files (put checkpoints and data on a file system all machines share)")


# ----------------------------------------------------------------------------- data


def check_divisible(batch_size: int, name: str = "batch_size", parts: int | None = None) -> int:
    """The per-process share of a global batch of ``batch_size``; ``ValueError`` naming ``name`` if it does
    not split evenly over ``parts`` processes (default: as many as train together)."""
    n = world() if parts is None else parts
    if batch_size % n:
        raise ValueError(f"{name}: the global batch of {batch_size} items does not split evenly over {n} "
                         f"processes (WORLD_SIZE={n}); make {name} a multiple of {n}, or start torchrun "
                         f"with an --nproc_per_node that divides {batch_size}")
    return batch_size // n


def shard(batch: Any, part: int | None = None, parts: int | None = None, name: str = "batch") -> Any:
    """This process's part of a global batch: of ``B`` items over ``N`` processes, rank ``r`` keeps
    items ``r * B / N`` to ``(r + 1) * B / N - 1`` of every tensor.

    Every tensor with at least one dimension is taken to have the batch first (as ``default_collate``
    gives it); nested dicts, lists and tuples are split entry by entry. A ``torch.Generator`` cannot be
    split: rank 0 keeps it and every other rank gets its own, seeded from it and the rank, so the
    processes draw different numbers (the gradient penalty's interpolation weights, say), as
    reproducibly as before, though not the numbers one process would draw for those items. Anything
    else (None, numbers, strings, 0-d tensors) is shared whole. ``part`` (``r``) and ``parts`` (``N``)
    default to this process's; ``B`` not divisible by ``N`` raises ``ValueError`` naming ``batch_size``.
    """
    r = rank() if part is None else part
    n = world() if parts is None else parts
    if not 0 <= r < n:
        raise ValueError(f"part: expected a rank from 0 to parts - 1 = {n - 1}, got {r}")
    if n == 1:
        return batch
    if torch.is_tensor(batch):
        if batch.dim() == 0:
            return batch
        if len(batch) % n:
            raise ValueError(f"batch_size: {name} holds a global batch of {len(batch)} items, which does not "
                             f"split evenly over {n} processes (WORLD_SIZE={n}); make batch_size a multiple "
                             f"of {n}")
        size = len(batch) // n
        return batch[r * size:(r + 1) * size]
    if isinstance(batch, torch.Generator):
        return batch if r == 0 else torch.Generator(batch.device).manual_seed(
            seeds.derive(batch.initial_seed(), "rank", r))
    if isinstance(batch, Mapping):
        return {k: shard(v, r, n, f"{name}[{k!r}]") for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard(v, r, n, f"{name}[{i}]") for i, v in enumerate(batch))
    return batch


# ----------------------------------------------------------------------------- gradients


class _Loss(nn.Module):
    """``loss_fn(model, batch)`` as a module's forward, so DDP sees every parameter ``loss_fn`` may use
    (loss functions call parts and methods of the model, not only its forward)."""

    def __init__(self, model: nn.Module, loss_fn: Callable):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


def wrap(model: nn.Module, loss_fn: Callable, device: torch.device) -> Callable:
    """``loss_fn`` run through DistributedDataParallel; -> a ``(model, batch) -> loss`` like ``loss_fn``.

    The returned function ignores its ``model`` argument: it calls ``loss_fn(model, batch)`` on the
    ``model`` given here, through DDP, so that the following ``backward`` averages the gradients over the
    processes. ``static_graph``: parameters a loss never uses (a pre-training run's untrained mask head)
    are allowed, and keep no gradient, as in one process.
    """
    ids = [device.index] if device.type == "cuda" else None
    parallel = nn.parallel.DistributedDataParallel(_Loss(model, loss_fn), device_ids=ids, static_graph=True)

    def loss(_, batch):
        return parallel(batch)

    return loss


def average_gradients(parameters: Sequence[nn.Parameter]) -> None:
    """Average the gradients of ``parameters`` over the processes, in place (alone: nothing).

    For custom steps, which DDP does not fit: it averages only in a backward that follows one forward
    through its wrapper, while a step here may update critics ``n_critic`` times and then the separator
    with the critics frozen, through a gradient penalty's double backward. The update rule
    (:class:`sepbook.experiments.train.UpdateRule`) calls it after each backward and before anything reads the
    gradients (unscaling, clipping, the optimiser).
    """
    if active():
        _average([p.grad for p in parameters if p.grad is not None])


def _average(tensors: Sequence[torch.Tensor]) -> None:
    kinds: dict[tuple, list[torch.Tensor]] = {}
    for tensor in tensors:
        kinds.setdefault((tensor.device, tensor.dtype), []).append(tensor)
    for group in kinds.values():
        flat = torch.cat([t.reshape(-1) for t in group])  # one all-reduce per kind, not one per tensor
        dist.all_reduce(flat)
        flat /= world()
        for tensor, part in zip(group, flat.split([t.numel() for t in group])):
            tensor.copy_(part.view_as(tensor))


def broadcast_state(model: nn.Module) -> None:
    """Give every process rank 0's weights and buffers (DDP does this itself; custom steps need it)."""
    if active():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """On GPUs, make ``model``'s BatchNorm layers (children, in place) normalise by global-batch statistics.

    The converted layers keep the same parameters and buffers (optimisers and state dict keys are
    unchanged) and act as BatchNorm in eval mode. torch has no SyncBatchNorm on the CPU, where each
    process normalises by its own share.
    """
    if active() and device.type == "cuda":
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if converted is not model:
            raise ValueError("model: is itself a BatchNorm layer; wrap it in a module to train on many GPUs")
    return model


def mean_logs(logs: Mapping[str, float]) -> dict[str, float]:
    """The mean over the processes of each logged value (each computed on one share of the global batch)."""
    if not active() or not logs:
        return dict(logs)
    values = torch.tensor(list(logs.values()), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(values)
    return dict(zip(logs, (values / world()).tolist()))


# ----------------------------------------------------------------------------- random numbers


def rank_seed(seed: int) -> int:
    """This process's torch seed: ``seed`` itself on rank 0 (and alone), so rank 0 draws what one process
    draws; one derived from ``seed`` and the rank elsewhere, so the processes' dropout masks differ."""
    return seed if rank() == 0 else seeds.derive(seed, "rank", rank())


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's torch RNG state, CPU and (on a GPU) its own device: plain uint8 tensors."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8)
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def rng_states(device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Every process's :func:`rng_state`, by rank (a collective: every process must call it)."""
    states: list[Any] = [None] * world()
    dist.all_gather_object(states, rng_state(device))
    return states


def restore_rng(states: Sequence[Mapping[str, torch.Tensor]], main_state: torch.Tensor, device: torch.device,
                seed: int, step: int, where: str = "checkpoint") -> None:
    """Set this process's RNG to its state in ``states`` (by rank, from :func:`rng_states`).

    A checkpoint written by another number of processes (or by one) has no state for some ranks:
    rank 0 continues from ``main_state`` (what the writing rank 0 drew), the others from a seed
    derived from ``seed``, their rank and ``step``; the run then no longer repeats an uninterrupted one.
    """
    if len(states) == world():
        own = states[rank()]
        torch.set_rng_state(own["torch"].cpu())
        if device.type == "cuda" and own["cuda"].numel():
            torch.cuda.set_rng_state(own["cuda"].cpu(), device)
        return
    if is_main():
        warnings.warn(f"{where} was written by {len(states) or 1} process(es), resumed on {world()}: "
                      "random draws differ from the run that wrote it", stacklevel=2)
    if rank() == 0:
        torch.set_rng_state(main_state.cpu())
    else:
        torch.manual_seed(seeds.derive(seed, "rank", rank(), "resumed", step))
