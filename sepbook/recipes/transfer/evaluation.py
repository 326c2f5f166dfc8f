"""Scoring the transfer chapter like the paper: SI-SDR on the whole test songs of each downstream
set, and the deep-clustering head scored as a separator. The paper's numbers, the tables and the
sentences of the page are in :mod:`sepbook.recipes.transfer.page`.

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import torch

from sepbook.metrics import si_sdr
from sepbook.models.blstm import MaskSeparator
from sepbook.models.chimera import cluster_masks
from sepbook.recipes import each_channel
from sepbook.recipes.transfer.data import SILENCE, SOURCES
from sepbook.recipes.transfer.training import plan
from sepbook.tracks import Track

MIXTURE = "mixture"
#: The metric of the deep-clustering head's separations.
DC_METRIC = "SI-SDR (DC)"
#: Metrics whose value jumps with the last bit of the network's output: k-means seeding draws its
#: centres with probabilities from distances, so another CPU's rounding can draw another centre.
#: ``make verify`` compares them leniently on a CPU of another kind than the one that made them.
CPU_SENSITIVE_METRICS: tuple[str, ...] = (DC_METRIC,)


@torch.no_grad()
def separate(model: MaskSeparator, mixture: torch.Tensor) -> torch.Tensor:
    """Estimates ``(K, channels, time)`` of a mixture ``(channels, time)`` (or ``(time,)``), each
    channel separated as a mono mixture."""
    mixture = torch.as_tensor(mixture, dtype=torch.float32)
    model.eval()
    return each_channel(lambda wave: model(wave[None, None])[0, :, 0], mixture.reshape(-1, mixture.shape[-1]))


def _rows(variant, seed, examples, estimates, metric: str = "SI-SDR") -> list[dict]:
    rows = []
    for example, estimate in zip(examples, estimates):
        for k, source in enumerate(SOURCES[example.domain]):
            reference = example.sources[k]
            if float(reference.square().mean()) < SILENCE:
                continue  # a silent reference has no scale for SI-SDR to fit
            rows.append({"variant": variant, "seed": seed, "song": example.name, "domain": example.domain,
                         "source": source, "metric": metric, "value": float(si_sdr(estimate[k], reference))})
    return rows


@torch.no_grad()
def separate_by_clustering(model: MaskSeparator, example: Track) -> torch.Tensor:
    """The deep-clustering head as a separator: k-means on its embeddings of ``example`` gives
    binary masks (:func:`~sepbook.models.chimera.cluster_masks`), and each source takes the
    cluster that fits it best (the best of the K! matchings, as a permutation-free metric
    would); -> estimates ``(K, 1, time)`` in the order of ``SOURCES[example.domain]``."""
    spec = model.stft(example.mixture[None])                            # (1, 1, freq, frames)
    embeddings, _ = model.masker.embed_and_mask(spec.abs())
    n_sources = len(SOURCES[example.domain])
    masks = cluster_masks(embeddings[0], spec.abs()[0, 0], n_sources)    # (K, freq, frames)
    clusters = model.stft.inverse(masks[:, None] * spec[0], length=example.mixture.shape[-1])
    fits = torch.stack([si_sdr(clusters, example.sources[k].expand_as(clusters)).flatten()
                        for k in range(n_sources)])                      # (source, cluster)
    audible = example.sources.square().mean(-1).flatten() >= SILENCE
    sources = torch.arange(n_sources)
    best = max(itertools.permutations(range(n_sources)),
               key=lambda order: float(fits[sources, list(order)][audible].mean()))
    return clusters[list(best)]


def clustering_scored(run) -> bool:
    """Whether a run's deep-clustering head is scored: pre-trained (before fine-tuning), fine-tuned
    whole-models and training from scratch, without augmentation, at the paper's budget."""
    if run.share != 1.0 or run.budget != "paper":
        return False
    return run.augmentation in (None, "none") and run.mode in (None, "whole")


@torch.no_grad()
def evaluate(cfg: Mapping[str, Any], models: Mapping[tuple[str, int], MaskSeparator],
             tracks: Sequence[Track]) -> list[dict]:
    """SI-SDR rows of every model on the test songs of its downstream set, and ``SI-SDR (DC)``
    rows of its deep-clustering head (:func:`separate_by_clustering`) where
    :func:`clustering_scored`; a pre-trained network, whose mask head never learned, is scored
    by its deep-clustering head alone, on every downstream set."""
    rows = []
    for (variant, seed), model in models.items():
        run = plan(variant)
        model.eval()
        examples = [e for e in tracks if run.kind == "pretrain" or e.domain == run.downstream]
        if run.kind != "pretrain":
            rows += _rows(variant, seed, examples, [model(e.mixture[None])[0] for e in examples])
        if clustering_scored(run):
            rows += _rows(variant, seed, examples, [separate_by_clustering(model, e) for e in examples], DC_METRIC)
    return rows


def mixture_rows(cfg: Mapping[str, Any], tracks: Sequence[Track]) -> list[dict]:
    """The unprocessed mixture's SI-SDR against each source: where every system starts."""
    return _rows(MIXTURE, None, tracks, [track.mixture_as_estimates() for track in tracks])


# ---------------------------------------------------------------------------- tables and claims


