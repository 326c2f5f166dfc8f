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
    """Mixture magnitudes -> embeddings and masks, from one pass of a
    :class:`BLSTMTrunk`.

    ``embed_and_mask(mag)``: ``(batch, 1, freq, frames)`` ->
    embeddings ``(batch, frames, freq, D)`` (unit norm along ``D``) and masks
    ``(batch, K, 1, freq, frames)`` in [0, 1]. ``forward`` gives the masks alone,
    so a :class:`~sepbook.models.blstm.MaskSeparator` can wrap the network.

    Both heads read the BLSTM output alone and the embeddings pass a sigmoid before
    their unit norm, as in nussl's ChimeraNet, the implementation the paper names.
    """

    def __init__(self, n_freq: int, n_sources: int, hidden: int = 500,
                 layers: int = 4, embedding_dim: int = 20):
        super().__init__()
        self.n_freq, self.n_sources = n_freq, n_sources
        self.embedding_dim = embedding_dim
        self.trunk = BLSTMTrunk(n_freq, 1, hidden, layers, skip=False)
        self.embedding = nn.Linear(self.trunk.width, n_freq * embedding_dim)
        self.mask = nn.Linear(self.trunk.width, n_freq * n_sources)

    def embed_and_mask(self, mixture_mag: torch.Tensor):
        features = self.trunk.features(mixture_mag)   # (batch, frames, hidden)
        return self._embeddings(features), self._masks(features)

    def forward(self, mixture_mag: torch.Tensor) -> torch.Tensor:
        return self._masks(self.trunk.features(mixture_mag))

    def _embeddings(self, features: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = features.shape
        embeddings = self.embedding(features)
        embeddings = embeddings.reshape(batch, frames, self.n_freq, -1)
        return nn.functional.normalize(torch.sigmoid(embeddings), dim=-1)

    def _masks(self, features: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = features.shape
        masks = torch.sigmoid(self.mask(features))
        masks = masks.reshape(batch, frames, self.n_sources, 1, self.n_freq)
        return masks.permute(0, 2, 3, 4, 1)

    def with_sources(self, n_sources: int) -> "ChimeraNet":
        """This network with a new, untrained mask head for ``n_sources``
        sources."""
        _check_sources(n_sources)
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


def cluster_masks(embeddings: torch.Tensor, mixture_mag: torch.Tensor, n_sources: int,
                  iterations: int = 20, floor_db: float = -40.0, seed: int = 0) -> torch.Tensor:
    """Deep clustering's own separation: k-means on the embeddings, one binary mask per cluster.

    ``embeddings`` ``(frames, freq, D)`` and ``mixture_mag`` ``(freq, frames)`` of one mono song ->
    masks ``(n_sources, freq, frames)``, in the clusters' own order (which source a cluster is
    remains to be matched). The centres are fitted on the bins within ``-floor_db`` dB of the
    loudest, which carry the sources; every bin then joins its nearest centre.
    """
    if embeddings.dim() != 3 or embeddings.shape[:2] != mixture_mag.shape[::-1]:
        raise ValueError(f"embeddings: expected (frames, freq, D) matching mixture_mag (freq, frames) "
                         f"{tuple(mixture_mag.shape)}, got {tuple(embeddings.shape)}")
    if n_sources < 1:
        raise ValueError(f"n_sources: expected at least one cluster, got {n_sources}")
    points = embeddings.permute(1, 0, 2).reshape(-1, embeddings.shape[-1])      # (freq * frames, D)
    level = 20 * torch.log10(mixture_mag.reshape(-1) + 1e-8)
    loud = points[level >= level.max() + floor_db]
    generator = torch.Generator().manual_seed(seed)
    centres = loud[torch.randint(len(loud), (1,), generator=generator)]
    while len(centres) < n_sources:                                              # k-means++ seeding
        distance = torch.cdist(loud, centres).min(1).values.square()
        pick = torch.multinomial(distance + 1e-12, 1, generator=generator)
        centres = torch.cat([centres, loud[pick]])
    for _ in range(iterations):
        nearest = torch.cdist(loud, centres).argmin(1)
        for k in range(n_sources):
            if (nearest == k).any():
                centres[k] = loud[nearest == k].mean(0)
    nearest = torch.cdist(points, centres).argmin(1)
    masks = torch.nn.functional.one_hot(nearest, n_sources).T.float()            # (K, freq * frames)
    return masks.reshape(n_sources, *mixture_mag.shape)


def _check_sources(n_sources) -> None:
    if isinstance(n_sources, bool) or not isinstance(n_sources, int) or n_sources < 1:
        raise ValueError(f"n_sources: expected a positive number of sources, got {n_sources!r}")
