"""Losses and training steps for adversarial semi-supervised separation (Stoller, Ewert and Dixon, ICASSP 2018).

The separator ``f`` (a :class:`~sepbook.models.unet.UNet`) is trained with
``L = L_s + alpha * L_u + beta * L_add`` (paper Sec. 3.3): a supervised loss on paired multi-track
excerpts (eq. 1), an unsupervised Wasserstein loss from one critic per source on unlabelled
mixtures (eq. 3), and an additive penalty asking the estimates to sum to the mixture (eq. 5).
Each critic (:class:`~sepbook.models.critic.Critic`) learns to tell real solo-source excerpts
from separator estimates, regularised by a one-sided gradient penalty (eq. 4).

All spectrograms here are ``(batch, channels, freq, frames)``: mixtures and single sources have
one channel, separator estimates and paired targets have ``K`` channels, one per source, in the
order given by ``source_names``. The networks see log-normalised magnitudes ``log(1 + |X|)``.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import nn

from sepbook.models.critic import Critic

#: Paper Sec. 4.3.4 hyper-parameters for the three compared systems: (alpha, beta, critic letters).
PAPER_VARIANTS: dict[str, tuple[float, float, str]] = {
    "baseline": (0.0, 0.0, "none"),
    "V": (0.01, 0.01, "V"),
    "VA": (0.001, 0.001, "VA"),
}


# --------------------------------------------------------------------------- normalisation


def log_magnitude(magnitude: torch.Tensor) -> torch.Tensor:
    """Log-normalise magnitudes, ``x -> log(1 + x)`` (paper Sec. 4.3.1); any shape, values >= 0.

    Chapter: adversarial/adversarial_separation
    """
    if not isinstance(magnitude, torch.Tensor):
        raise ValueError(f"log_magnitude: expected a torch tensor of magnitudes, got {type(magnitude).__name__}")
    if magnitude.is_complex():
        raise ValueError("log_magnitude: got a complex spectrogram; take its magnitude (abs) first")
    if bool((magnitude < 0).any()):
        raise ValueError("log_magnitude: magnitudes must be non-negative")
    return torch.log1p(magnitude)


def inverse_log_magnitude(log_mag: torch.Tensor) -> torch.Tensor:
    """Undo :func:`log_magnitude`, ``y -> exp(y) - 1``; any shape.

    Chapter: adversarial/adversarial_separation
    """
    return torch.expm1(log_mag)


def random_loudness(
    magnitude: torch.Tensor, low: float = 0.2, high: float = 1.2, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Scale each example's *linear* magnitudes by a factor drawn uniformly from ``[low, high]``.

    ``magnitude`` is ``(batch, ...)``; one factor per example, shared by all its bins. Apply it to
    unlabelled mixtures and solo-source excerpts *before* :func:`log_magnitude`, so the critics
    cannot tell real from separated excerpts by loudness alone (paper Sec. 4.3.1).

    Chapter: adversarial/adversarial_separation
    """
    if not 0.0 <= low <= high:
        raise ValueError(f"random_loudness: need 0 <= low <= high, got low={low}, high={high}")
    if magnitude.dim() < 1 or magnitude.shape[0] == 0:
        raise ValueError(f"random_loudness: magnitude must be shaped (batch, ...), got {tuple(magnitude.shape)}")
    factor_shape = (magnitude.shape[0],) + (1,) * (magnitude.dim() - 1)
    device = generator.device if generator is not None else magnitude.device
    factor = torch.rand(factor_shape, generator=generator, device=device, dtype=magnitude.dtype)
    return magnitude * (low + (high - low) * factor).to(magnitude.device)


# --------------------------------------------------------------------------- separator losses


def _check_same_shape(first: torch.Tensor, second: torch.Tensor, names: str) -> None:
    if first.shape != second.shape:
        raise ValueError(f"{names} must have the same shape, got {tuple(first.shape)} and {tuple(second.shape)}")


def supervised_loss(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Supervised loss ``L_s`` (paper eq. 1) on log-magnitudes ``(batch, K, freq, frames)``; -> scalar.

    Eq. 1 writes a norm per example averaged over the batch, and the text calls it "the mean
    squared error". We use the mean squared error of each source, summed over the ``K`` sources,
    as the reference implementation does: averaging over bins keeps the value independent of the
    excerpt size, so the paper's ``alpha`` and ``beta`` keep their meaning relative to ``L_s``.

    Chapter: adversarial/adversarial_separation
    """
    _check_same_shape(estimates, targets, "supervised_loss: estimates and targets")
    if estimates.dim() != 4:
        raise ValueError(f"supervised_loss: expected (batch, K, freq, frames), got {tuple(estimates.shape)}")
    per_source = (estimates - targets).pow(2).mean(dim=(0, 2, 3))
    return per_source.sum()


def additive_penalty(estimates: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Additive penalty ``L_add`` (paper eq. 5): do the estimates sum to the mixture? -> scalar.

    ``estimates`` ``(batch, K, freq, frames)`` and ``mixture`` ``(batch, 1, freq, frames)`` are
    log-magnitudes, as the separator sees them. The sum is taken on *linear* magnitudes
    (``exp(y) - 1``), where sources add up (up to phase interference); sums of log-magnitudes mean
    nothing. Like ``L_s`` it is a mean squared error over bins, as in the reference implementation.

    Chapter: adversarial/adversarial_separation
    """
    if estimates.dim() != 4 or mixture.dim() != 4 or mixture.shape[1] != 1:
        raise ValueError(
            "additive_penalty: expected estimates (batch, K, freq, frames) and mixture (batch, 1, freq, frames), "
            f"got {tuple(estimates.shape)} and {tuple(mixture.shape)}"
        )
    if estimates.shape[0] != mixture.shape[0] or estimates.shape[2:] != mixture.shape[2:]:
        raise ValueError(
            f"additive_penalty: estimates {tuple(estimates.shape)} and mixture {tuple(mixture.shape)} "
            "differ in batch, freq or frames"
        )
    summed = inverse_log_magnitude(estimates).sum(dim=1, keepdim=True)
    return (summed - inverse_log_magnitude(mixture)).pow(2).mean()


def _source_index(source_names: Sequence[str], name: str, n_sources: int) -> int:
    if len(source_names) != n_sources:
        raise ValueError(
            f"source_names has {len(source_names)} names {list(source_names)} "
            f"but the estimates have {n_sources} sources"
        )
    if name not in source_names:
        raise ValueError(f"no source named {name!r} for its critic; source_names are {list(source_names)}")
    return list(source_names).index(name)


def unsupervised_loss(
    critics: Mapping[str, nn.Module], estimates: torch.Tensor, source_names: Sequence[str]
) -> torch.Tensor:
    """Unsupervised loss ``L_u`` (paper eq. 3) as the separator sees it: ``-sum_k mean D_k(estimate_k)``; -> scalar.

    ``estimates`` ``(batch, K, freq, frames)`` are log-magnitudes of separated unlabelled mixtures;
    ``source_names`` names the K channels; ``critics`` maps a source name to its critic. Sources
    without a critic are left out (the paper's 'V' system has only a vocal critic). Each
    Wasserstein estimate is ``mean D(real) - mean D(fake)``; the real part does not depend on the
    separator, so minimising ``-mean D(fake)`` minimises the estimated distance.

    Chapter: adversarial/adversarial_separation
    """
    if estimates.dim() != 4:
        raise ValueError(
            f"unsupervised_loss: expected estimates (batch, K, freq, frames), got {tuple(estimates.shape)}"
        )
    loss = estimates.new_zeros(())
    for name, critic in critics.items():
        index = _source_index(source_names, name, estimates.shape[1])
        loss = loss - critic(estimates[:, index : index + 1]).mean()
    return loss


# --------------------------------------------------------------------------- critic losses


def wasserstein_critic_loss(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Critic loss and Wasserstein estimate on ``(batch, 1, freq, frames)`` real and separated excerpts.

    Returns ``(mean D(fake) - mean D(real), mean D(real) - mean D(fake))``: the critic minimises the
    first, which maximises the second, its (detached) estimate of the Wasserstein distance.

    Chapter: adversarial/adversarial_separation
    """
    score_real = critic(real).mean()
    score_fake = critic(fake).mean()
    critic_loss = score_fake - score_real
    return critic_loss, (score_real - score_fake).detach()


def critic_input_gradient(critic: nn.Module, spectrogram: torch.Tensor) -> torch.Tensor:
    """Gradient of the critic's score with respect to its input, ``(batch, 1, freq, frames)`` -> same shape.

    Positive where raising the energy makes the excerpt look more real to the critic, negative where
    lowering it does (paper Fig. 3). Examples do not interact (no batch norm), so the gradient of
    the summed scores is each example's own gradient.

    Chapter: adversarial/adversarial_separation
    """
    with torch.enable_grad():
        inputs = spectrogram.detach().clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(critic(inputs).sum(), inputs)
    return gradient


def one_sided_gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One-sided gradient penalty ``L_grad`` (paper eq. 4) on ``(batch, 1, freq, frames)`` excerpts; -> scalar.

    ``E max(||grad_x D(x)||_2 - 1, 0)^2`` over ``x = eps * real + (1 - eps) * fake``, one
    ``eps ~ U[0, 1]`` per example. Unlike the two-sided penalty of WGAN-GP, gradients with norm
    below 1 are not pushed up; only the 1-Lipschitz bound is enforced. The graph is kept
    (``create_graph=True``) so the penalty trains the critic's parameters.

    Chapter: adversarial/adversarial_separation
    """
    _check_same_shape(real, fake, "one_sided_gradient_penalty: real and fake")
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    device = generator.device if generator is not None else real.device
    eps = torch.rand(eps_shape, generator=generator, device=device, dtype=real.dtype).to(real.device)
    # The penalty regularises the critic only, so the interpolates are leaves, cut from the separator.
    interpolates = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
    gradient_norm = gradient.flatten(start_dim=1).norm(dim=1)
    return torch.clamp(gradient_norm - 1.0, min=0.0).pow(2).mean()


# --------------------------------------------------------------------------- configuration


@dataclass
class AdversarialConfig:
    """Hyper-parameters of semi-supervised training (paper Sec. 4.3.4), with the paper's values as defaults.

    ``critics`` chooses the system: ``'none'`` (supervised baseline), ``'V'`` (vocal critic only),
    ``'VA'`` (vocal and accompaniment critics); ``vocals`` and ``accompaniment`` name those sources.
    Use :meth:`paper` for the paper's ``alpha = beta`` of each system.

    Chapter: adversarial/adversarial_separation
    """

    alpha: float = 0.01
    beta: float = 0.01
    n_critic: int = 5
    lr: float = 5e-5
    critic_lr: float = 5e-5
    gp_weight: float = 10.0
    critics: str = "V"
    loudness_range: tuple[float, float] = (0.2, 1.2)
    vocals: str = "vocals"
    accompaniment: str = "accompaniment"

    def __post_init__(self) -> None:
        if self.critics not in ("none", "V", "VA"):
            raise ValueError(f"AdversarialConfig: critics must be 'none', 'V' or 'VA', got {self.critics!r}")
        for name in ("alpha", "beta", "gp_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"AdversarialConfig: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "critic_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"AdversarialConfig: {name} must be > 0, got {getattr(self, name)}")
        if not isinstance(self.n_critic, int) or self.n_critic < 1:
            raise ValueError(f"AdversarialConfig: n_critic must be a positive integer, got {self.n_critic!r}")
        low, high = self.loudness_range
        if not 0 <= low <= high:
            raise ValueError(
                f"AdversarialConfig: loudness_range must satisfy 0 <= low <= high, got {self.loudness_range}"
            )

    @classmethod
    def paper(cls, variant: str, **overrides) -> "AdversarialConfig":
        """The paper's configuration of ``variant`` ('baseline', 'V' or 'VA'), with optional overrides."""
        if variant not in PAPER_VARIANTS:
            raise ValueError(f"AdversarialConfig.paper: variant must be one of {list(PAPER_VARIANTS)}, got {variant!r}")
        alpha, beta, critics = PAPER_VARIANTS[variant]
        return cls(**{"alpha": alpha, "beta": beta, "critics": critics, **overrides})

    @property
    def critic_sources(self) -> tuple[str, ...]:
        """Names of the sources that get a critic."""
        return {"none": (), "V": (self.vocals,), "VA": (self.vocals, self.accompaniment)}[self.critics]

    @property
    def semi_supervised(self) -> bool:
        """Whether unlabelled mixtures take part in training (any critic or a non-zero ``beta``)."""
        return self.critics != "none" or self.beta > 0


def build_critics(names: Sequence[str], **critic_kwargs) -> nn.ModuleDict:
    """One fresh :class:`Critic` per source name, as an ``nn.ModuleDict`` keyed by name.

    Chapter: adversarial/adversarial_separation
    """
    return nn.ModuleDict({name: Critic(**critic_kwargs) for name in names})


# --------------------------------------------------------------------------- training steps


def critic_step(
    critics: Mapping[str, nn.Module],
    critic_optimizers: Mapping[str, torch.optim.Optimizer],
    separator: nn.Module,
    unlabelled_mix: torch.Tensor,
    solo_sources: Mapping[str, torch.Tensor],
    *,
    source_names: Sequence[str],
    gp_weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One update of every critic on real solo excerpts vs. separated unlabelled mixtures; -> logged floats.

    ``unlabelled_mix`` ``(batch, 1, freq, frames)`` is separated once (no gradient to the
    separator) and shared by all critics, as in the paper (Sec. 3.3); ``solo_sources[name]`` is a
    ``(batch, 1, freq, frames)`` batch of real excerpts of that source, unrelated to the mixtures.
    All are log-magnitudes. Each critic minimises ``D(fake) - D(real) + gp_weight * L_grad``
    (eqs. 3-4). Only critic parameters change. Returns ``{name}_wasserstein`` and
    ``{name}_gradient_penalty`` per critic. Call it ``n_critic`` times per separator step.

    Chapter: adversarial/adversarial_separation
    """
    missing = [name for name in critics if name not in critic_optimizers or name not in solo_sources]
    if missing:
        raise ValueError(f"critic_step: critics {missing} need an entry in both critic_optimizers and solo_sources")
    with torch.no_grad():
        estimates = separator(unlabelled_mix)
    logs: dict[str, float] = {}
    for name, critic in critics.items():
        index = _source_index(source_names, name, estimates.shape[1])
        fake = estimates[:, index : index + 1]
        real = solo_sources[name]
        _check_same_shape(real, fake, f"critic_step: solo_sources[{name!r}] and the separated estimates")
        critic_loss, wasserstein = wasserstein_critic_loss(critic, real, fake)
        penalty = one_sided_gradient_penalty(critic, real, fake, generator=generator)
        optimizer = critic_optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        (critic_loss + gp_weight * penalty).backward()
        optimizer.step()
        logs[f"{name}_wasserstein"] = float(wasserstein)
        logs[f"{name}_gradient_penalty"] = float(penalty.detach())
    return logs


def separator_step(
    separator: nn.Module,
    optimizer: torch.optim.Optimizer,
    critics: Mapping[str, nn.Module],
    paired_mix: torch.Tensor,
    paired_sources: torch.Tensor,
    unlabelled_mix: torch.Tensor | None,
    alpha: float,
    beta: float,
    *,
    source_names: Sequence[str],
) -> dict[str, float]:
    """One separator update on ``L = L_s + alpha * L_u + beta * L_add`` (paper Sec. 3.3); -> logged floats.

    ``paired_mix`` ``(batch, 1, freq, frames)`` and ``paired_sources`` ``(batch, K, freq, frames)``
    come from multi-track data; ``unlabelled_mix`` ``(batch_u, 1, freq, frames)`` from mixtures
    without stems (``None`` for the supervised baseline, which then reports ``Lu = Ladd = 0``).
    All are log-magnitudes; ``source_names`` names the K channels. Critics are frozen during the
    step (their ``requires_grad`` is switched off and restored), so only the separator changes.
    Returns ``Ls``, ``Lu``, ``Ladd`` and ``total``.

    Chapter: adversarial/adversarial_separation
    """
    if unlabelled_mix is None and (beta > 0 or (alpha > 0 and len(critics) > 0)):
        raise ValueError(
            "separator_step: alpha * L_u and beta * L_add need unlabelled_mix; pass it, or set alpha = beta = 0 "
            "for the supervised baseline"
        )
    estimates = separator(paired_mix)
    loss_supervised = supervised_loss(estimates, paired_sources)
    loss_unsupervised = loss_supervised.new_zeros(())
    loss_additive = loss_supervised.new_zeros(())
    frozen = list(critics.values())
    previous = [[p.requires_grad for p in critic.parameters()] for critic in frozen]
    try:
        for critic in frozen:
            critic.requires_grad_(False)
        if unlabelled_mix is not None:
            estimates_unlabelled = separator(unlabelled_mix)
            if critics:
                loss_unsupervised = unsupervised_loss(critics, estimates_unlabelled, source_names)
            loss_additive = additive_penalty(estimates_unlabelled, unlabelled_mix)
        total = loss_supervised + alpha * loss_unsupervised + beta * loss_additive
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    finally:
        for critic, flags in zip(frozen, previous):
            for parameter, flag in zip(critic.parameters(), flags):
                parameter.requires_grad_(flag)
    return {
        "Ls": float(loss_supervised.detach()),
        "Lu": float(loss_unsupervised.detach()),
        "Ladd": float(loss_additive.detach()),
        "total": float(total.detach()),
    }
