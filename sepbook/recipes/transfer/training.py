"""Pre-training, fine-tuning and training from scratch: every run of the chapter, named by what it is.

- ``pre-<set>-<augmentation>``: ChimeraNet trained on a large set with the deep-clustering loss
  alone (its mask head stays untrained); the only runs that see augmented data, as in the paper;
- ``<downstream>-<set>-<augmentation>-<mode>``: that network with a new mask head, fine-tuned on a
  small set, ``whole`` (every weight, alpha L_DC + (1 - alpha) L_MI) or ``mask`` (the mask head
  alone, L_MI);
- ``<downstream>-scratch``: a fresh ChimeraNet trained on the small set for as many steps as
  pre-training and fine-tuning together (the paper's budget).

Budgets beyond the paper's, to ask whether H1 measures the fine-tuning budget: ``-short`` runs
(training from scratch for only the fine-tuning steps) and ``-long`` runs (``long_steps``, keeping
the weights of the best validation score, so each system stops at its own plateau). The data-size
sweep (``-x0.25``, ``-x0.5``) fine-tunes and trains from scratch on that share of each small-set
song.

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from functools import partial
from typing import Any, Mapping

import torch

from sepbook.data.datasets import SongDataset, step_batches
from sepbook.experiments.train import fit, seed_everything
from sepbook.losses.clustering import (chimera_loss, deep_clustering_loss, ideal_assignments, magnitude_weights,
                                       mask_inference_loss)
from sepbook.metrics import si_sdr
from sepbook.models.blstm import MaskSeparator
from sepbook.models.chimera import ChimeraNet, freeze_all_but_mask
from sepbook.recipes.transfer.data import AUGMENTATIONS, DOWNSTREAM, PRETRAINING, SILENCE, SOURCES, Splits, training_set
from sepbook.tracks import Track

MODES: tuple[str, ...] = ("whole", "mask")
#: How long a downstream run trains: the paper's budget, the fine-tuning steps only, or to its plateau.
BUDGETS: tuple[str, ...] = ("paper", "short", "long")
#: The shares of each small set the data-size sweep trains on (the full set is the main runs).
SHARES: tuple[float, ...] = (0.25, 0.5)


@dataclass(frozen=True)
class Run:
    """What one variant is: ``kind`` 'pretrain', 'finetune' or 'scratch', its sets and mode, its
    ``budget`` (one of :data:`BUDGETS`) and the ``share`` of the small set it trains on."""

    kind: str
    pretraining: str | None = None
    augmentation: str | None = None
    downstream: str | None = None
    mode: str | None = None
    budget: str = "paper"
    share: float = 1.0

    @property
    def name(self) -> str:
        if self.kind == "pretrain":
            return f"pre-{self.pretraining}-{self.augmentation}"
        base = (f"{self.downstream}-scratch" if self.kind == "scratch"
                else f"{self.downstream}-{self.pretraining}-{self.augmentation}-{self.mode}")
        return base + ("" if self.budget == "paper" else f"-{self.budget}") + \
            ("" if self.share == 1.0 else f"-x{self.share:g}")

    @property
    def target(self) -> str:
        """The set whose sources the mask head gives."""
        return self.pretraining if self.kind == "pretrain" else self.downstream

    @property
    def starts_from(self) -> str | None:
        """The pre-trained variant a fine-tuning run starts from."""
        return Run("pretrain", self.pretraining, self.augmentation).name if self.kind == "finetune" else None


def pretrained(pretraining: str, augmentation: str = "none") -> str:
    return Run("pretrain", pretraining, augmentation).name


def finetuned(downstream: str, pretraining: str, augmentation: str = "none", mode: str = "whole",
              budget: str = "paper", share: float = 1.0) -> str:
    return Run("finetune", pretraining, augmentation, downstream, mode, budget, share).name


def scratch(downstream: str, budget: str = "paper", share: float = 1.0) -> str:
    return Run("scratch", downstream=downstream, budget=budget, share=share).name


_ALL = [Run("pretrain", p, a) for p, a in itertools.product(PRETRAINING, AUGMENTATIONS)]
_ALL += [Run("finetune", p, a, d, m) for d, p, a, m in itertools.product(DOWNSTREAM, PRETRAINING, AUGMENTATIONS, MODES)]
_ALL += [Run("scratch", downstream=d, budget=b) for d in DOWNSTREAM for b in BUDGETS]
_ALL += [Run("finetune", p, "none", d, "whole", "long") for d in DOWNSTREAM for p in PRETRAINING]
_ALL += [Run("finetune", p, "none", d, "whole", share=share)
         for d, p, share in itertools.product(DOWNSTREAM, PRETRAINING, SHARES)]
_ALL += [Run("scratch", downstream=d, share=share) for d, share in itertools.product(DOWNSTREAM, SHARES)]
_RUNS = {run.name: run for run in _ALL}
#: Each fine-tuning run starts from its pre-trained network (same seed).
REQUIRES: dict[str, tuple[str, ...]] = {run.name: (run.starts_from,) for run in _ALL if run.starts_from}
#: The runs whose seed-0 weights are committed: what the page draws and plays.
VARIANTS: tuple[str, ...] = (pretrained("musdb+slakh"), scratch("dagstuhl"), finetuned("dagstuhl", "musdb+slakh"),
                             finetuned("dagstuhl", "musdb+slakh", mode="mask"))


def plan(variant: str) -> Run:
    """The :class:`Run` named ``variant``."""
    if variant not in _RUNS:
        raise ValueError(f"variant: {variant!r} is not a run of this chapter; runs look like "
                         f"{pretrained('slakh')!r}, {finetuned('dagstuhl', 'slakh')!r} or {scratch('dagstuhl')!r}")
    return _RUNS[variant]


def runs_of(cfg: Mapping[str, Any]) -> list[str]:
    """Every variant the profile trains, pre-training first; the extra budgets and the data-size
    sweep fine-tune from ``cfg['sweep_from']`` without augmentation."""
    chosen = [pretrained(p, a) for p, a in itertools.product(cfg["pretraining"], cfg["augmentations"])]
    chosen += [finetuned(d, p, a, m) for d, p, a, m in
               itertools.product(cfg["downstream"], cfg["pretraining"], cfg["augmentations"], MODES)]
    chosen += [scratch(d) for d in cfg["downstream"]]
    source = cfg["sweep_from"]
    for d in cfg["downstream"]:
        chosen += [scratch(d, "short"), scratch(d, "long"), finetuned(d, source, budget="long")]
        for share in cfg["shares"]:
            chosen += [finetuned(d, source, share=share), scratch(d, share=share)]
    return chosen


def build(cfg: Mapping[str, Any], variant: str) -> MaskSeparator:
    """ChimeraNet at the profile's sizes, inside a mixture-phase STFT separator."""
    sources = SOURCES[plan(variant).target]
    network = ChimeraNet(cfg["n_fft"] // 2 + 1, len(sources), cfg["hidden"], cfg["layers"], cfg["embedding_dim"])
    return MaskSeparator(network, cfg["n_fft"], cfg["hop"])


def chimera_terms(model: MaskSeparator, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The deep-clustering and mask-inference losses of one batch; -> ``(L_DC, L_MI)``."""
    mixture_mag = model.stft(batch["mixture"]).abs()                 # (batch, 1, freq, frames)
    source_mags = model.stft(batch["sources"]).abs()                 # (batch, K, 1, freq, frames)
    embeddings, masks = model.masker.embed_and_mask(mixture_mag)
    dc = deep_clustering_loss(embeddings, ideal_assignments(source_mags), magnitude_weights(mixture_mag))
    return dc, mask_inference_loss(masks, mixture_mag, source_mags)


def pretraining_loss(model: MaskSeparator, batch) -> torch.Tensor:
    """Deep clustering alone: it does not depend on the number of sources."""
    return chimera_terms(model, batch)[0]


def whole_loss(model: MaskSeparator, batch, alpha: float):
    """alpha L_DC + (1 - alpha) L_MI, both terms logged."""
    dc, mi = chimera_terms(model, batch)
    return chimera_loss(dc, mi, alpha), {"DC": dc, "MI": mi}


def mask_loss(model: MaskSeparator, batch) -> torch.Tensor:
    """L_MI alone, through the masks (the frozen embedding head is not even run)."""
    mixture_mag = model.stft(batch["mixture"]).abs()
    return mask_inference_loss(model.masker(mixture_mag), mixture_mag, model.stft(batch["sources"]).abs())


@torch.no_grad()
def mean_si_sdr(model: MaskSeparator, examples: list[Track]) -> float:
    """SI-SDR (dB) averaged over the audible sources of ``examples`` (what the curves show)."""
    scores = []
    for example in examples:
        estimate = model(example.mixture[None])[0]                       # (K, 1, time)
        audible = example.sources.square().mean(-1) >= SILENCE          # (K, 1)
        scores.append(si_sdr(estimate, example.sources)[audible])
    return float(torch.cat(scores).mean())


def steps_of(cfg: Mapping[str, Any], run: Run) -> int:
    """How many steps ``run`` trains: fine-tuning steps; pre-training and fine-tuning together from
    scratch (the paper's equal budget); the fine-tuning steps alone (``short``); ``long_steps``."""
    if run.kind == "pretrain":
        return cfg["pretrain_steps"]
    if run.budget == "long":
        return cfg["long_steps"]
    if run.kind == "finetune" or run.budget == "short":
        return cfg["finetune_steps"]
    return cfg["pretrain_steps"] + cfg["finetune_steps"]


def training_data(cfg: Mapping[str, Any], data: Splits, run: Run, seed: int) -> SongDataset:
    """The examples ``run`` trains on. Only pre-training is augmented: the paper fine-tunes, and
    trains from scratch, on the small set as it is."""
    if run.kind == "pretrain":
        return training_set(cfg, data.train[run.pretraining], run.pretraining, seed, run.augmentation)
    return training_set(cfg, data.train[run.downstream], run.downstream, seed, "none", run.share)


def train(cfg: Mapping[str, Any], data: Splits, variant: str, seed: int = 0,
          prerequisites: Mapping[str, MaskSeparator] | None = None, **options):
    """Train ``variant``; -> ``(model, history)``. A fine-tuning run starts from a copy of
    ``prerequisites[its pre-trained variant]``; ``options`` go to :func:`sepbook.experiments.train.fit`."""
    run = plan(variant)
    seed_everything(seed)
    if run.kind == "finetune":
        if not prerequisites or run.starts_from not in prerequisites:
            raise ValueError(f"prerequisites: {variant!r} starts from {run.starts_from!r}; pass it as "
                             f"prerequisites={{{run.starts_from!r}: model}}")
        model = copy.deepcopy(prerequisites[run.starts_from])
        model.masker.with_sources(len(SOURCES[run.downstream]))
        if run.mode == "mask":
            freeze_all_but_mask(model.masker)
        loss = mask_loss if run.mode == "mask" else partial(whole_loss, alpha=cfg["alpha"])
    else:
        model = build(cfg, variant)
        loss = pretraining_loss if run.kind == "pretrain" else partial(whole_loss, alpha=cfg["alpha"])
    if run.kind != "pretrain":
        valid = [e for e in data.valid if e.domain == run.downstream]
        options.setdefault("valid_fn", lambda m: {"valid SI-SDR": mean_si_sdr(m, valid)})
        options.setdefault("valid_every", cfg["valid_every"])
        if run.budget == "long":
            options.setdefault("keep_best", ("valid SI-SDR", "max"))
    options.setdefault("label", f"{variant} seed {seed}")
    dataset = training_data(cfg, data, run, seed)
    history = fit(model, loss, partial(step_batches, dataset, cfg["batch_size"], seed), steps=steps_of(cfg, run),
                  lr=cfg["lr"], seed=seed, **options)
    return model.cpu().eval(), history
