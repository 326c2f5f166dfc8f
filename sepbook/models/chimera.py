"""ChimeraNet (Luo et al. 2017): one BLSTM trunk, two heads. A deep-clustering head maps every
time-frequency bin to a unit-length embedding; a mask-inference head gives one mask per source.

Deep clustering does not care how many sources there are, so a trunk pre-trained through it alone
can be fine-tuned with a mask head of any size: :meth:`ChimeraNet.with_sources` swaps the head,
and :func:`freeze_all_but_mask` leaves only that head to learn.

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

import torch
from torch import nn

from sepbook.models.blstm import BLSTMTrunk


class ChimeraNet(nn.Module):
    """Mixture magnitudes -> embeddings and masks, from one pass of a :class:`BLSTMTrunk`.

    ``embed_and_mask(mag)``: ``(batch, 1, freq, frames)`` ->
    embeddings ``(batch, frames, freq, D)`` (unit norm along ``D``) and masks
    ``(batch, K, 1, freq, frames)`` in [0, 1]. ``forward`` gives the masks alone,
    so a :class:`~sepbook.models.blstm.MaskSeparator` can wrap the network.
    """

    def __init__(self, n_freq: int, n_sources: int, hidden: int = 500,
                 layers: int = 4, embedding_dim: int = 20):
        super().__init__()
        self.n_freq, self.n_sources, self.embedding_dim = n_freq, n_sources, embedding_dim
        self.trunk = BLSTMTrunk(n_freq, 1, hidden, layers)
        self.embedding = nn.Linear(2 * hidden, n_freq * embedding_dim)
        self.mask = nn.Linear(2 * hidden, n_freq * n_sources)

    def embed_and_mask(self, mixture_mag: torch.Tensor):
        features = self.trunk.features(mixture_mag)         # (batch, frames, 2 hidden)
        return self._embeddings(features), self._masks(features)

    def forward(self, mixture_mag: torch.Tensor) -> torch.Tensor:
        return self._masks(self.trunk.features(mixture_mag))

    def _embeddings(self, features: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = features.shape
        embeddings = self.embedding(features).reshape(batch, frames, self.n_freq, -1)
        return nn.functional.normalize(torch.tanh(embeddings), dim=-1)

    def _masks(self, features: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = features.shape
        masks = torch.sigmoid(self.mask(features))
        masks = masks.reshape(batch, frames, self.n_sources, 1, self.n_freq)
        return masks.permute(0, 2, 3, 4, 1)

    def with_sources(self, n_sources: int) -> "ChimeraNet":
        """This network with a new, untrained mask head for ``n_sources`` sources."""
        if isinstance(n_sources, bool) or not isinstance(n_sources, int) or n_sources < 1:
            raise ValueError(f"n_sources: expected a positive number of sources, got {n_sources!r}")
        self.n_sources = n_sources
        self.mask = nn.Linear(self.mask.in_features, self.n_freq * n_sources)
        return self


def freeze_all_but_mask(network: ChimeraNet) -> int:
    """Stop every parameter but the mask head's from learning; -> how many still learn."""
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    for parameter in network.mask.parameters():
        parameter.requires_grad_(True)
    return sum(p.numel() for p in network.parameters() if p.requires_grad)
