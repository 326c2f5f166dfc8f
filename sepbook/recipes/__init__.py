"""One recipe per chapter, every one keeping the same contract, :class:`Recipe`.

A recipe is a module (``foundations``) or a package (``adversarial``, ``transcription``,
``activity``, ``metatasnet``, ``transfer``) that says how its chapter's experiment is set up,
trained and scored. ``make results`` (:mod:`sepbook.results`), ``make verify``, the glance page and
the chapter's own page call nothing else, and ``tests/recipes/test_recipe_contract.py`` holds every recipe
to the contract. No recipe imports another (``pyproject.toml``, ``[tool.importlinter]``).

Chapter: preface
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch
from torch import nn


@dataclass(frozen=True)
class Paper:
    """What a chapter's paper reports: ``source`` names it (authors, venue, the table or figure),
    ``numbers`` holds its numbers, keyed as the chapter's tables read them."""

    source: str
    numbers: Mapping[Any, Any]


def from_scratch(cfg: Mapping[str, Any], variant: str) -> tuple[str, ...]:
    """``requires`` of a chapter whose runs all train from scratch: no run starts from another."""
    return ()


def each_channel(separate_one: Callable[[torch.Tensor], torch.Tensor], mixture: torch.Tensor) -> torch.Tensor:
    """Estimates ``(K, channels, time)`` of a mixture ``(channels, time)``, each channel separated on
    its own by ``separate_one``, ``(time,) -> (K, time)``: the loop of every chapter's ``separate``."""
    mixture = torch.as_tensor(mixture, dtype=torch.float32)
    if mixture.dim() != 2:
        raise ValueError(f"mixture: expected (channels, time), got shape {tuple(mixture.shape)}")
    return torch.stack([separate_one(channel) for channel in mixture], dim=1)


@runtime_checkable
class Recipe(Protocol):
    """The contract of a chapter's recipe.

    ``data(cfg)`` returns the chapter's songs with at least a ``test`` list of tracks, each with a
    ``mixture`` shaped ``(channels, time)``; ``separate(model, mixture)`` maps that mixture to
    ``(K, channels, time)`` for any number of channels, with the chapter's options in ``cfg``, not
    in its signature. ``runs(cfg)`` lists every ``(run, seed)`` to train, each after the runs that
    ``requires(cfg, run)`` names (same seed), which ``train`` receives as ``prerequisites``.
    ``VARIANTS`` are the systems the page shows, in its order, each a run of ``runs(cfg)``.
    """

    CHAPTER: str
    PAPER: Paper
    VARIANTS: tuple[str, ...]

    def config(self, profile: str | None = None, **overrides: Any) -> dict: ...

    def data(self, cfg: Mapping[str, Any]) -> Any: ...

    def test_tracks(self, cfg: Mapping[str, Any]) -> list: ...

    def runs(self, cfg: Mapping[str, Any]) -> list[tuple[str, int]]: ...

    def requires(self, cfg: Mapping[str, Any], variant: str) -> tuple[str, ...]: ...

    def build(self, cfg: Mapping[str, Any], variant: str) -> nn.Module: ...

    def train(self, cfg: Mapping[str, Any], data: Any, variant: str, seed: int = 0,
              **options: Any) -> tuple[nn.Module, dict]: ...

    def separate(self, model: nn.Module, mixture: torch.Tensor) -> torch.Tensor: ...

    def evaluate(self, cfg: Mapping[str, Any], models: Mapping[tuple[str, int], nn.Module],
                 tracks: Sequence[Any]) -> list[dict]: ...

    def reference_rows(self, cfg: Mapping[str, Any], tracks: Sequence[Any]) -> list[dict]: ...
