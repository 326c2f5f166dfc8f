"""The adversarial chapter's spectrograms: the paper's front end, songs as banks of frames
(:class:`sepbook.banks.Bank`), and batches that are a pure function of ``(seed, step)``.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sepbook import seeds
from sepbook.audio import log_magnitude, magnitudes
from sepbook.banks import Bank
from sepbook.recipes.adversarial.data import SOURCES, Domains
from sepbook.tracks import Track


@dataclass
class SpectrogramSets:
    """The training sets as :class:`Bank` s, and fixed validation excerpts.

    Channels: ``paired`` mixture, accompaniment, vocals; ``unlabelled`` mixture, accompaniment,
    vocals (the true stems serve only the critic diagnostics, never training); ``solo``
    accompaniment, vocals; ``valid`` ``(excerpts, 3, freq, frames)`` as ``paired``, and
    ``held_out`` the same for the validation songs outside the paired domain. ``partner[i]`` is the
    solo song that is unlabelled song ``i`` (``-1`` if none), which a critic batch must not pair with it.
    """

    paired: Bank
    unlabelled: Bank
    solo: Bank
    valid: torch.Tensor
    held_out: torch.Tensor
    partner: np.ndarray


def _bank(cfg: Mapping[str, Any], tracks: Sequence[Track], channels: str, name: str) -> Bank:
    if not tracks:
        raise ValueError(f"domains.{name}: no songs; the experiment needs paired, unlabelled, solo and validation songs")
    specs = []
    for t in tracks:
        parts = {"m": t.mixture[0], "a": t.sources[0, 0], "v": t.sources[1, 0]}
        spec = magnitudes(cfg, torch.stack([parts[c] for c in channels]))     # (C, F, frames)
        if spec.shape[-1] < cfg["frames"]:
            raise ValueError(f"frames: song {t.name} has {spec.shape[-1]} STFT frames, fewer than one excerpt "
                             f"({cfg['frames']} frames); use longer songs or smaller frames")
        specs.append(spec)
    return Bank.of(specs)


def _spread(excerpts: torch.Tensor, most: int) -> torch.Tensor:
    if len(excerpts) <= most:
        return excerpts
    return excerpts[torch.linspace(0, len(excerpts) - 1, most).long()]


def spectrogram_sets(cfg: Mapping[str, Any], domains: Domains, max_valid_excerpts: int = 256) -> SpectrogramSets:
    """:class:`SpectrogramSets` of ``domains`` (at most ``max_valid_excerpts`` validation excerpts)."""
    valid = _bank(cfg, domains.valid, "mav", "valid").excerpts(cfg["frames"])
    outside = [t for t in domains.valid if t.domain != domains.paired_domain] or domains.valid
    held_out = _bank(cfg, outside, "mav", "valid").excerpts(cfg["frames"])
    solo_names = [t.name for t in domains.solo]
    partner = np.array([solo_names.index(t.name) if t.name in solo_names else -1 for t in domains.unlabelled])
    return SpectrogramSets(_bank(cfg, domains.paired, "mav", "paired"),
                           _bank(cfg, domains.unlabelled, "mav", "unlabelled"),
                           _bank(cfg, domains.solo, "av", "solo"),
                           _spread(valid, max_valid_excerpts), _spread(held_out, max_valid_excerpts), partner)


def random_loudness(magnitude: torch.Tensor, rng: np.random.Generator,
                    low_high: tuple[float, float] = (0.2, 1.2)) -> torch.Tensor:
    """Scale each example's linear magnitudes ``(batch, ...)`` by one factor from ``U[low, high]``.

    Applied to unlabelled mixtures and solo excerpts before the log, so no critic can tell real
    from separated by level alone (paper Sec. 4.3.1).
    """
    low, high = low_high
    factor = torch.as_tensor(rng.uniform(low, high, size=len(magnitude)), dtype=magnitude.dtype)
    return magnitude * factor.to(magnitude.device).view(-1, *([1] * (magnitude.dim() - 1)))


def paired_batch(cfg: Mapping[str, Any], sets: SpectrogramSets, seed: int, step: int):
    """Log-magnitude mixtures ``(batch, 1, F, frames)`` and sources ``(batch, 2, F, frames)`` of paired songs."""
    excerpt = log_magnitude(sets.paired.draw(cfg["batch_size"], cfg["frames"], seeds.rng(seed, "paired", step)))
    return excerpt[:, :1], excerpt[:, 1:]


def unlabelled_batch(cfg: Mapping[str, Any], sets: SpectrogramSets, seed: int, step: int,
                     repeat: int = 0) -> torch.Tensor:
    """Log-magnitude unlabelled mixtures ``(batch, 1, F, frames)``, each at a random loudness."""
    return _mixtures(cfg, sets, seed, step, repeat)[0]


def _mixtures(cfg: Mapping[str, Any], sets: SpectrogramSets, seed: int, step: int,
              repeat) -> tuple[torch.Tensor, np.ndarray]:
    """:func:`unlabelled_batch` and the excerpt starts it cut."""
    rng = seeds.rng(seed, "unlabelled", step, repeat)
    starts = sets.unlabelled.positions(cfg["batch_size"], cfg["frames"], rng)
    return log_magnitude(random_loudness(sets.unlabelled.channel(0).take(starts, cfg["frames"]), rng)), starts


def critic_batch(cfg: Mapping[str, Any], sets: SpectrogramSets, seed: int, step: int,
                 repeat: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """What the critics compare at one update: unlabelled mixtures ``(batch, 1, F, frames)`` and real
    solo excerpts per source ``{name: (batch, 1, F, frames)}``, all at random loudness.

    Unlabelled and solo songs may be the same songs (the paper's split); solo excerpt ``i`` is then
    drawn from any song but mixture ``i``'s, so no mixture meets its own stems in a batch.
    """
    mixtures, starts = _mixtures(cfg, sets, seed, step, repeat)
    avoid = sets.partner[sets.unlabelled.song_of(starts)]
    solos = {}
    for index, name in enumerate(SOURCES):
        rng = seeds.rng(seed, "solo", name, step, repeat)
        bank = sets.solo.channel(index)
        excerpt = bank.take(bank.positions(len(starts), cfg["frames"], rng, avoid=avoid), cfg["frames"])
        solos[name] = log_magnitude(random_loudness(excerpt, rng))
    return mixtures, solos


def solo_batch(cfg: Mapping[str, Any], sets: SpectrogramSets, seed: int, step: int,
               repeat: int = 0) -> dict[str, torch.Tensor]:
    """Real solo excerpts per source, ``{name: (batch, 1, F, frames)}``, as :func:`critic_batch` draws them."""
    return critic_batch(cfg, sets, seed, step, repeat)[1]
