"""Adversarial semi-supervised separation losses (Stoller, Ewert, Dixon, ICASSP 2018).

The separator ``f`` is trained with ``L = L_s + alpha * L_u + beta * L_add`` (paper
Sec. 3.3): a supervised loss on paired excerpts (eq. 1), a Wasserstein loss from one
critic per source on unlabelled mixtures (eq. 3) and an additive penalty asking the
estimates to sum to the mixture (eq. 5). Each critic tells real solo excerpts from
separator estimates, kept 1-Lipschitz by a one-sided gradient penalty (eq. 4).

Spectrograms are ``(batch, channels, freq, frames)`` log-magnitudes ``log(1 + |X|)``:
mixtures and single sources have one channel, estimates and paired targets ``K``, one
per source. Shape checks sit in :func:`_check`, out of the way of the equations.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from sepbook.audio import inverse_log_magnitude


def supervised_loss(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``L_s`` (eq. 1): mean squared error per source, summed over sources; -> scalar.

    Averaging over bins (as the reference code does) keeps the value independent of
    the excerpt size, so the paper's ``alpha`` and ``beta`` keep their meaning
    relative to ``L_s``.
    """
    _check(estimates=estimates, targets=targets)
    per_source = (estimates - targets).pow(2).mean(dim=(0, 2, 3))
    return per_source.sum()


def additive_penalty(
    estimates: torch.Tensor, mixture: torch.Tensor
) -> torch.Tensor:
    """``L_add`` (eq. 5): do the estimates add up to the mixture? -> scalar.

    Sources add up on *linear* magnitudes (up to phase), not on log-magnitudes, so
    both sides are mapped back with ``exp(y) - 1`` first.
    """
    _check(estimates=estimates, mixture=mixture)
    summed = inverse_log_magnitude(estimates).sum(dim=1, keepdim=True)
    return (summed - inverse_log_magnitude(mixture)).pow(2).mean()


def unsupervised_loss(critics: Mapping[str, nn.Module], estimates: torch.Tensor,
                      source_names: Sequence[str]) -> torch.Tensor:
    """``L_u`` (eq. 3) for the separator: ``-sum_k mean D_k(estimate_k)``; -> scalar.

    Sources without a critic are left out ('V' has only a voice critic).
    ``mean D(real)`` does not depend on the separator, so minimising ``-mean D(fake)``
    shrinks the Wasserstein estimate.
    """
    _check(estimates=estimates, names=source_names, critics=critics)
    loss = estimates.new_zeros(())
    for name, critic in critics.items():
        k = list(source_names).index(name)
        loss = loss - critic(estimates[:, k:k + 1]).mean()
    return loss


def wasserstein_critic_loss(critic: nn.Module, real: torch.Tensor,
                            fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The critic's loss ``mean D(fake) - mean D(real)`` and its Wasserstein estimate.

    The estimate is the loss's negative, detached.
    """
    _check(real=real, fake=fake)
    critic_loss = critic(fake).mean() - critic(real).mean()
    return critic_loss, -critic_loss.detach()


def critic_input_gradient(critic: nn.Module, spectrogram: torch.Tensor) -> torch.Tensor:
    """``grad_x D(x)`` for each excerpt of ``(batch, 1, freq, frames)``; -> same shape.

    Positive where more energy looks more real to the critic (paper Fig. 3). Examples
    do not interact (no batch norm), so the gradient of the summed scores is each
    example's own.
    """
    with torch.enable_grad():
        inputs = spectrogram.detach().clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(critic(inputs).sum(), inputs)
    return gradient


def one_sided_gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``L_grad`` (eq. 4): ``E max(||grad_x D(x)||_2 - 1, 0)^2``; -> scalar.

    At ``x = eps real + (1 - eps) fake``, one ``eps ~ U[0, 1]`` per example. Norms
    below 1 are not pushed up (unlike WGAN-GP's two-sided penalty). The graph is
    kept so the penalty trains the critic; the interpolates are cut from the
    separator, which this term must not move.
    """
    _check(real=real, fake=fake)
    eps = torch.rand(len(real), 1, 1, 1, generator=generator).to(real)
    x = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    norm = grad.flatten(start_dim=1).norm(dim=1)
    return (norm - 1).clamp(min=0).pow(2).mean()


# ----------------------------------------------------------------------------- checks


def _check(*, names=None, critics=None, **spectrograms: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the argument unless the spectrograms fit together."""
    for name, x in spectrograms.items():
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name}: expected a (batch, channels, freq, frames) "
                             f"tensor, got {shape}")
    (first, a), *others = spectrograms.items()
    for name, b in others:
        if name == "mixture":
            if (b.shape[1] != 1 or b.shape[0] != a.shape[0]
                    or b.shape[2:] != a.shape[2:]):
                raise ValueError(f"mixture: expected (batch, 1, freq, frames) matching "
                                 f"{first} {tuple(a.shape)}, got {tuple(b.shape)}")
        elif b.shape != a.shape:
            raise ValueError(f"{first} and {name} must have the same shape, "
                             f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if names is not None:
        if len(names) != a.shape[1]:
            raise ValueError(f"source_names: {len(names)} names {list(names)} "
                             f"for {a.shape[1]} estimated sources")
        missing = [name for name in critics if name not in names]
        if missing:
            raise ValueError(f"critics: no source named {missing} "
                             f"among source_names {list(names)}")
