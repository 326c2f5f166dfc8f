"""The Meta-TasNet chapter's data: four MUSDB stems read through ``musdb``, as waveform banks at
every stage's sample rate, and batches that are a pure function of ``(seed, step)``.

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook import seeds
from sepbook.audio import resample
from sepbook.banks import Bank
from sepbook.tracks import Splits, Track, hold_out, hold_out_last


def load_tracks(cfg: Mapping[str, Any], subset: str) -> list[Track]:
    """Every song of ``subset`` ('train' or 'test'), mono at ``cfg['stages'][-1]`` Hz."""
    from sepbook.data.corpora import musdb_synth
    from sepbook.data.layouts import read_musdb

    if subset not in ("train", "test"):
        raise ValueError(f"subset: expected 'train' or 'test', got {subset!r}")
    sr = cfg["stages"][-1]
    if cfg["dataset"] == "synthetic":
        corpus = {**cfg, "n_train": cfg["n_train"] + cfg["n_valid"], "sr": sr}
        root = musdb_synth(corpus, name="musdb-synth-tasnet")
    else:
        if not os.environ.get("MUSDB_PATH"):
            raise FileNotFoundError("the paper profile reads the real MUSDB18-HQ: set $MUSDB_PATH to its "
                                    "folder (the one holding train/ and test/)")
        root = Path(os.environ["MUSDB_PATH"])
    return read_musdb(root, subset, cfg["sources"], sr, "musdb")


def splits(cfg: Mapping[str, Any]) -> Splits:
    """The training songs, less the last ``n_valid`` held out for validation (the real MUSDB18-HQ holds
    out musdb's own validation songs), and the test songs, all mono at the last stage's rate."""
    from sepbook.data.layouts import musdb_validation_names

    songs = load_tracks(cfg, "train")
    if cfg["dataset"] != "synthetic":
        return Splits(*hold_out(songs, musdb_validation_names(), f"{os.environ['MUSDB_PATH']}/train"), test_tracks(cfg))
    return Splits(*hold_out_last(songs, cfg["n_valid"]), test_tracks(cfg))


def test_tracks(cfg: Mapping[str, Any]) -> list[Track]:
    """The test songs."""
    return load_tracks(cfg, "test")


def at_rates(wave: torch.Tensor, sr: int, rates: Sequence[int]) -> list[torch.Tensor]:
    """``wave`` ``(..., time)`` at ``sr`` resampled to each of ``rates``."""
    return [torch.as_tensor(resample(wave.numpy(), sr, rate)) for rate in rates]


@dataclass
class Banks:
    """The training songs at each stage's rate: ``(1 + K, 1, samples)`` banks (mixture, then each
    source), the first stage's rate first; ``valid`` fixed validation batches."""

    banks: list[Bank]
    valid: list[dict[str, list[torch.Tensor]]]


def _banks(cfg: Mapping[str, Any], tracks: Sequence[Track]) -> list[Bank]:
    rates = cfg["stages"]
    ratio = rates[-1] // rates[0]  # trimmed to a multiple, every rate's length is exact
    per_rate = [[] for _ in rates]
    for track in tracks:
        if track.mixture.shape[-1] < cfg["excerpt_seconds"] * rates[-1]:
            raise ValueError(f"excerpt_seconds: song {track.name} lasts {track.mixture.shape[-1] / rates[-1]:.2f} s, "
                             f"shorter than one excerpt ({cfg['excerpt_seconds']} s); use longer songs or shorter excerpts")
        waves = torch.cat([track.mixture, track.sources[:, 0]])[:, None]      # (1 + K, 1, time)
        waves = waves[..., : waves.shape[-1] // ratio * ratio]
        for songs, wave in zip(per_rate, at_rates(waves, rates[-1], rates)):
            songs.append(wave)
    return [Bank.of(songs) for songs in per_rate]


def excerpt(cfg: Mapping[str, Any], banks: Sequence[Bank], batch: int,
            rng: np.random.Generator) -> dict[str, list[torch.Tensor]]:
    """``batch`` excerpts of ``cfg['excerpt_seconds']`` cut at the same moments at every rate:
    ``{'mixture': [(batch, 1, time_i)], 'sources': [(batch, K, 1, time_i)]}``, one per stage."""
    rates = cfg["stages"]
    samples = int(cfg["excerpt_seconds"] * rates[0])
    starts = banks[0].positions(batch, samples, rng)
    pieces = [bank.take(starts * (rate // rates[0]), samples * (rate // rates[0]))
              for bank, rate in zip(banks, rates)]                            # (B, 1 + K, 1, time_i)
    return {"mixture": [p[:, 0] for p in pieces], "sources": [p[:, 1:] for p in pieces]}


def training_banks(cfg: Mapping[str, Any], data: Splits, valid_batches: int = 4) -> Banks:
    """:class:`Banks` of the training songs; validation batches cut at fixed places."""
    banks, valid_banks = _banks(cfg, data.train), _banks(cfg, data.valid)
    rng = seeds.rng(0, "metatasnet", "valid")
    return Banks(banks, [excerpt(cfg, valid_banks, cfg["batch_size"], rng) for _ in range(valid_batches)])


def batches(cfg: Mapping[str, Any], banks: Banks, seed: int, start: int = 0):
    """Yield ``(step, batch)`` from ``start`` on, each batch a pure function of ``(seed, step)``."""
    for step in itertools.count(start):
        yield step, excerpt(cfg, banks.banks, cfg["batch_size"], seeds.rng(seed, "metatasnet", step))
