"""The one song type every chapter evaluates on, and the one ``separate`` contract.

Chapter: foundations/first_separator
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass
class Track:
    """One song: ``mixture`` ``(channels, time)`` and ``sources`` ``(K, channels, time)`` (torch waveforms).

    ``source_names`` names the K sources in order; ``domain`` says where the song comes from (a
    synthesiser style or a dataset). ``rolls`` ``(K, pitches, frames)`` and ``activity``
    ``(K, frames)`` are there when the data has them.
    """

    name: str
    mixture: torch.Tensor
    sources: torch.Tensor
    source_names: tuple[str, ...]
    domain: str = ""
    rolls: torch.Tensor | None = None
    activity: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.mixture = torch.as_tensor(np.asarray(self.mixture, dtype=np.float32))
        self.sources = torch.as_tensor(np.asarray(self.sources, dtype=np.float32))
        self.source_names = tuple(self.source_names)
        if self.mixture.dim() != 2 or self.sources.dim() != 3:
            raise ValueError(f"track {self.name}: expected mixture (channels, time) and sources (K, channels, time), "
                             f"got {tuple(self.mixture.shape)} and {tuple(self.sources.shape)}")
        if self.sources.shape[1:] != self.mixture.shape or len(self.source_names) != len(self.sources):
            raise ValueError(f"track {self.name}: sources {tuple(self.sources.shape)} do not match mixture "
                             f"{tuple(self.mixture.shape)} and names {self.source_names}")

    def mixture_as_estimates(self) -> torch.Tensor:
        """The do-nothing baseline every chapter scores: the mixture as each source's estimate,
        ``(K, channels, time)`` (a view, not a copy)."""
        return self.mixture.expand_as(self.sources)

    def source(self, name: str) -> torch.Tensor:
        """The source called ``name``, ``(channels, time)``."""
        if name not in self.source_names:
            raise ValueError(f"name: track {self.name} has sources {self.source_names}, not {name!r}")
        return self.sources[self.source_names.index(name)]


@dataclass
class Splits:
    """A chapter's songs: ``train``, ``valid`` and ``test``. In a chapter of several sets, ``train``
    and ``valid`` map each set to its songs, ``{set: [songs]}``; ``test`` is always one list."""

    train: list[Track] | dict[str, list]
    valid: list[Track] | dict[str, list]
    test: list[Track]


def track_from_stems(name: str, stems: Sequence[np.ndarray], source_names: Sequence[str], domain: str = "") -> Track:
    """A :class:`Track` whose mixture is the sum of ``stems`` (each ``(time,)`` or ``(channels, time)``)."""
    sources = np.stack([np.atleast_2d(np.asarray(s, dtype=np.float32)) for s in stems])
    return Track(name, sources.sum(0), sources, tuple(source_names), domain)


def hold_out_last(tracks: Sequence[Track], n_valid: int | None) -> tuple[list[Track], list[Track]]:
    """Split ``tracks`` into (training, validation): the last ``n_valid`` are held out (``None`` or 0:
    a tenth of them, at least one), the rule of every generated corpus."""
    n_valid = n_valid or max(1, len(tracks) // 10)
    if n_valid >= len(tracks):
        raise ValueError(f"n_valid: {n_valid} validation songs leave none of the {len(tracks)} for training")
    return list(tracks[:-n_valid]), list(tracks[-n_valid:])


def hold_out(tracks: Sequence[Track], valid_names: Sequence[str], where: str = "the training songs"
             ) -> tuple[list[Track], list[Track]]:
    """Split ``tracks`` into (training, validation) by a real set's own list of validation songs.

    Raises ``ValueError`` naming ``where`` when the list matches none of the songs, or all of them.
    """
    chosen = set(valid_names)
    valid = [t for t in tracks if t.name in chosen]
    train = [t for t in tracks if t.name not in chosen]
    if not valid:
        raise ValueError(f"{where}: none of the {len(tracks)} songs is on the set's validation list "
                         f"(for example {sorted(chosen)[:2]}); expected its validation songs among them")
    if not train:
        raise ValueError(f"{where}: every song is on the set's validation list, which leaves none to train on")
    return train, valid
