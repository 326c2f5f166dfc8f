"""Songs laid end to end as one tensor of frames, and random excerpts that never straddle two songs.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from sepbook import seeds
from sepbook.audio import magnitudes
from sepbook.tracks import Track


@dataclass
class Bank:
    """Frames of songs laid end to end, ``frames`` ``(channels, rows, total_frames)``;
    song ``i`` occupies ``starts[i] : starts[i] + lengths[i]``, and excerpts never straddle two songs.

    ``rows`` are frequency bins for spectrograms and pitches for piano rolls; two banks built from
    the same songs share ``starts`` and ``lengths``, so :meth:`take` cuts matching excerpts from both.
    """

    frames: torch.Tensor
    starts: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, songs: list[torch.Tensor]) -> "Bank":
        """A bank of ``songs``, each ``(channels, rows, frames_i)``."""
        lengths = np.array([song.shape[-1] for song in songs])
        return cls(torch.cat(songs, dim=-1), np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)

    def to(self, device: torch.device | str) -> "Bank":
        return Bank(self.frames.to(device), self.starts, self.lengths)

    def channel(self, index: int) -> "Bank":
        """The same songs with one channel only."""
        return Bank(self.frames[index:index + 1], self.starts, self.lengths)

    def excerpts(self, frames: int) -> torch.Tensor:
        """All non-overlapping excerpts of ``frames`` frames, ``(n, channels, rows, frames)``."""
        pieces = [self.frames[..., start + offset:start + offset + frames]
                  for start, length in zip(self.starts, self.lengths)
                  for offset in range(0, length - frames + 1, frames)]
        return torch.stack(pieces) if pieces else self.frames.new_zeros(0, *self.frames.shape[:2], frames)

    def positions(self, batch: int, frames: int, rng: np.random.Generator,
                  avoid: np.ndarray | None = None) -> np.ndarray:
        """``batch`` random excerpt starts, uniform over all positions where ``frames`` frames fit in a song.

        ``avoid[i]`` (optional) is a song that excerpt ``i`` must not come from (``-1``: none); the
        other songs keep their relative chances.
        """
        positions = self.lengths - frames + 1
        songs = rng.choice(len(positions), size=batch, p=positions / positions.sum())
        if avoid is not None:
            clashes = np.flatnonzero(songs == avoid)
            if len(clashes) and len(positions) < 2:
                raise ValueError("avoid: a bank of one song cannot avoid it; expected at least two songs")
            for i in clashes:
                weights = positions.astype(float)
                weights[avoid[i]] = 0.0
                songs[i] = rng.choice(len(positions), p=weights / weights.sum())
        return self.starts[songs] + (rng.random(batch) * positions[songs]).astype(np.int64)

    def song_of(self, starts: np.ndarray) -> np.ndarray:
        """The song each excerpt start of ``starts`` lies in."""
        return np.searchsorted(self.starts, starts, side="right") - 1

    def take(self, starts: np.ndarray, frames: int) -> torch.Tensor:
        """The excerpts beginning at ``starts``, ``(len(starts), channels, rows, frames)``."""
        device = self.frames.device
        columns = torch.as_tensor(starts, device=device)[:, None] + torch.arange(frames, device=device)
        return self.frames[:, :, columns].permute(2, 0, 1, 3)

    def draw(self, batch: int, frames: int, rng: np.random.Generator) -> torch.Tensor:
        """``batch`` random excerpts ``(batch, channels, rows, frames)``, uniform over all excerpt positions."""
        return self.take(self.positions(batch, frames, rng), frames)


def matching_excerpts(banks, batch: int, frames: int, rng: np.random.Generator) -> list[torch.Tensor]:
    """``batch`` excerpts cut at the same random places from every bank of ``banks`` (banks built
    from the same songs, e.g. spectrograms and piano rolls), each ``(batch, channels, rows, frames)``."""
    starts = banks[0].positions(batch, frames, rng)
    return [bank.take(starts, frames) for bank in banks]


def song_banks(cfg: Mapping[str, Any], tracks: Sequence[Track],
               labels: Callable[[Track], torch.Tensor]) -> tuple[Bank, Bank]:
    """Two banks of the same songs: STFT magnitudes ``(1 + K, F, frames)`` (the mixture, then each
    source, :func:`sepbook.audio.magnitudes`) and ``labels(track)``, ``(K, rows, frames)`` on the
    same frames (piano rolls, activity). The batch pipeline of the spectrogram chapters."""
    spectra, marks = [], []
    for t in tracks:
        spec = magnitudes(cfg, torch.cat([t.mixture, t.sources[:, 0]]))
        if spec.shape[-1] < cfg["frames"]:
            raise ValueError(f"frames: song {t.name} has {spec.shape[-1]} STFT frames, fewer than one excerpt "
                             f"({cfg['frames']}); use longer songs or smaller frames")
        spectra.append(spec)
        marks.append(labels(t))
    return Bank.of(spectra), Bank.of(marks)


def fixed_excerpts(banks, cfg: Mapping[str, Any], count: int, rng: np.random.Generator) -> list[list[torch.Tensor]]:
    """``count`` batches of :func:`matching_excerpts`, cut once at places ``rng`` draws (validation)."""
    return [matching_excerpts(banks, cfg["batch_size"], cfg["frames"], rng) for _ in range(count)]


def excerpt_batches(banks, cfg: Mapping[str, Any], seed: int, name: str, start: int = 0):
    """Yield ``(step, excerpts)`` from ``start`` on: :func:`matching_excerpts` of ``banks``, each batch a
    pure function of ``(seed, name, step)``."""
    for step in itertools.count(start):
        yield step, matching_excerpts(banks, cfg["batch_size"], cfg["frames"], seeds.rng(seed, name, step))


@torch.no_grad()
def in_excerpts(network: torch.nn.Module, spectrogram: torch.Tensor, frames: int, batch: int = 32) -> torch.Tensor:
    """Run a network of ``(n, 1, F, frames)`` -> ``(n, K, F, frames)`` over a whole song ``(F, T)``.

    The song is cut into excerpts of ``frames`` frames, the last one zero-padded, which go
    through the network ``batch`` at a time on its device; -> ``(K, F, T)`` on the CPU.
    """
    bins, n_frames = spectrogram.shape
    padded = -(-n_frames // frames) * frames
    song = torch.nn.functional.pad(spectrogram, (0, padded - n_frames))
    chunks = song.reshape(bins, -1, frames).permute(1, 0, 2).unsqueeze(1)          # (n, 1, F, frames)
    device = next(network.parameters()).device
    out = torch.cat([network(chunks[i:i + batch].to(device)).float().cpu() for i in range(0, len(chunks), batch)])
    return out.permute(1, 2, 0, 3).reshape(out.shape[1], bins, padded)[..., :n_frames]
