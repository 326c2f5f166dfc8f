"""Training the chapter's systems with the same batches, steps and loss: independent,
multi-task and meta (generated) masking networks on one Conv-TasNet encoder and decoder, and the
control, independent streams that start as the meta model's generated ones.

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import torch
from torch import nn

from sepbook.experiments.train import fit, seed_everything, to_device
from sepbook.losses.waveform import si_sdr_loss
from sepbook.models.tasnet import MultiStage, build_tasnet, start_as_generated
from sepbook.recipes.metatasnet.data import Banks, Splits, batches, training_banks

#: The paper's three systems, in its order: what differs is where the masking weights come from.
SYSTEMS: tuple[str, ...] = ("independent", "multi-task", "meta")
#: Independent streams started from the weights the meta model of the same seed generates at its
#: start (one shared kernel plus a small spread), so that only training tells the two apart.
CONTROL = "independent-meta-start"
#: Every system the experiment trains.
VARIANTS: tuple[str, ...] = (*SYSTEMS, CONTROL)


def build(cfg: Mapping[str, Any], variant: str) -> MultiStage:
    """The network of ``variant``, at the profile's sizes and stages."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    sizes = (len(cfg["sources"]), tuple(cfg["stages"]), cfg["n_basis"], cfg["kernel"],
             cfg["bottleneck"], cfg["hidden"], cfg["blocks"], cfg["stacks"],
             cfg["embedding_dim"], cfg["rank"])
    if variant == CONTROL:  # the meta model comes first, so it is the one a seed gives "meta"
        meta = build_tasnet("meta", *sizes)
        network = start_as_generated(build_tasnet("independent", *sizes), meta)
    else:
        network = build_tasnet(variant, *sizes)
    network.settings = {"stages": tuple(cfg["stages"]), "sources": tuple(cfg["sources"])}
    return network


def parameters(model: nn.Module) -> int:
    """How many numbers the model learns."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def stage_loss(model: MultiStage, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negative SI-SDR of every stage's estimates, summed over stages (each at its own rate);
    -> ``(loss, {'stage 1': ..., ...})``, each stage's term logged by the step."""
    estimates = model(batch["mixture"])
    terms = {f"stage {i + 1}": si_sdr_loss(estimate, target)
             for i, (estimate, target) in enumerate(zip(estimates, batch["sources"]))}
    return sum(terms.values()), terms


@torch.no_grad()
def validation_si_sdr(model: MultiStage, banks: Banks) -> dict[str, float]:
    """The last stage's SI-SDR (dB) on the fixed validation batches (what picks the kept weights)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for batch in banks.valid:
        batch = to_device(batch, device)
        total -= float(si_sdr_loss(model(batch["mixture"])[-1], batch["sources"][-1]))
    model.train(was_training)
    return {"valid SI-SDR": total / len(banks.valid)}


def train_on(cfg: Mapping[str, Any], banks: Banks, variant: str, seed: int = 0, **options):
    """Train ``variant`` on prepared :class:`Banks` for ``cfg['steps']`` steps; -> ``(model, history)``."""
    seed_everything(seed)
    model = build(cfg, variant)
    options.setdefault("label", f"{variant} seed {seed}")
    history = fit(model, stage_loss, partial(batches, cfg, banks, seed), steps=cfg["steps"], lr=cfg["lr"],
                  seed=seed, valid_fn=partial(validation_si_sdr, banks=banks), valid_every=cfg["valid_every"],
                  keep_best=("valid SI-SDR", "max"), **options)
    return model.cpu().eval(), history


def train(cfg: Mapping[str, Any], data: Splits, variant: str, seed: int = 0, **options):
    """Train ``variant`` on the training songs; -> ``(model, history)``. ``options`` go to
    :func:`sepbook.experiments.train.fit`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    return train_on(cfg, training_banks(cfg, data), variant, seed, **options)
