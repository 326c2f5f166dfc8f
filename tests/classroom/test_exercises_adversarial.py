"""The adversarial chapter's exercise checkers accept right answers and explain wrong ones."""
import pytest
import torch

from sepbook.classroom import exercises
from sepbook.losses.adversarial import critic_input_gradient, one_sided_gradient_penalty


def _norms(critic, x):
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return gradient.flatten(1).norm(dim=1)


def _interpolates(real, fake):
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)))
    return eps * real + (1 - eps) * fake


def test_check_gradient_penalty_accepts_the_reference():
    assert "correct" in exercises.check_gradient_penalty(one_sided_gradient_penalty)


def test_check_gradient_penalty_accepts_a_hand_written_answer():
    def mine(critic, real, fake):
        return torch.clamp(_norms(critic, _interpolates(real, fake)) - 1, min=0).pow(2).mean()

    assert "correct" in exercises.check_gradient_penalty(mine)


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda c, r, f: (_norms(c, _interpolates(r, f)) - 1).pow(2).mean(), "two-sided"),
        (lambda c, r, f: torch.clamp(_norms(c, _interpolates(r, f)) - 1, min=0).mean(), "square the excess"),
        (lambda c, r, f: torch.clamp(_norms(c, _interpolates(r, f)) - 1, min=0).pow(2).sum(), "average over the batch"),
        (lambda c, r, f: torch.clamp(_norms(c, f) - 1, min=0).pow(2).mean(), "fake samples only"),
        (lambda c, r, f: torch.clamp(_norms(c, r) - 1, min=0).pow(2).mean(), "real samples only"),
        (lambda c, r, f: torch.clamp(_norms(c, _interpolates(r, f)) - 1, min=0).pow(2).mean().detach(), "create_graph"),
        (lambda c, r, f: (_ for _ in ()).throw(NotImplementedError("your answer here")), "raised NotImplementedError"),
    ],
    ids=["two-sided", "not squared", "summed", "at fake", "at real", "detached", "not implemented"],
)
def test_check_gradient_penalty_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        exercises.check_gradient_penalty(answer)


def test_check_gradient_penalty_catches_a_whole_batch_norm():
    def batch_norm(critic, real, fake):
        x = _interpolates(real, fake).requires_grad_(True)
        (gradient,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        return torch.clamp(gradient.norm() - 1, min=0).pow(2)

    with pytest.raises(AssertionError, match="per example"):
        exercises.check_gradient_penalty(batch_norm)


def test_check_critic_gradient_accepts_the_reference_and_explains_wrong_answers():
    assert "correct" in exercises.check_critic_gradient(critic_input_gradient)

    def mean_not_sum(critic, x):
        x = x.clone().requires_grad_(True)
        return torch.autograd.grad(critic(x).mean(), x)[0]

    def with_backward(critic, x):
        x = x.clone().requires_grad_(True)
        critic(x).sum().backward()
        return x.grad

    with pytest.raises(AssertionError, match="mean"):
        exercises.check_critic_gradient(mean_not_sum)
    with pytest.raises(AssertionError, match="backward"):
        exercises.check_critic_gradient(with_backward)
    with pytest.raises(AssertionError, match="shape"):
        exercises.check_critic_gradient(lambda critic, x: critic_input_gradient(critic, x)[:, 0])
