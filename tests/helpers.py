"""What many test files share: quiet training, weight snapshots and a toy dataset."""
import torch

#: Training options for tests: no progress bar, no live plot.
QUIET = dict(progress=False, live=False)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state, to compare with later."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    """Whether two snapshots hold the same names and equal tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Pairs(torch.utils.data.Dataset):
    """64 items ``{'x', 'y'}`` that depend only on their index, as the book's datasets do."""

    def __len__(self):
        return 64

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        x = torch.randn(8, generator=g)
        return {"x": x, "y": x.roll(1) * 0.5}


def check_update_rule(make, step, updates: int = 1) -> None:
    """Check that a training step applies every loss through :func:`sepbook.experiments.train.update`.

    ``make()`` gives a fresh, identical ``(model, optimizers, batch)`` each call, with plain SGD
    optimisers (no momentum); ``step(model, optimizers, batch)`` runs the chapter's step once, which
    updates each parameter at most ``updates`` times. Under a float16 gradient scaler (its logic
    runs on the CPU too) the step must move the weights as the plain rule does; under a scaler whose
    scaled gradients overflow it must move nothing; and a tiny ``grad_clip`` must bound every update.
    """
    from sepbook.experiments.train import UpdateRule

    def run(rule):
        model, optimizers, batch = make()
        before = snapshot(model)
        with rule:
            step(model, optimizers, batch)
        after = snapshot(model)
        return {k: after[k].double() - before[k].double() for k in after if after[k].is_floating_point()}

    def norm(moves):
        return sum(float(m.pow(2).sum()) for m in moves.values()) ** 0.5

    plain = run(UpdateRule())
    assert norm(plain) > 0, "the step moved no weight"
    scaled = run(UpdateRule(scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)))
    for name in plain:
        torch.testing.assert_close(scaled[name], plain[name], rtol=1e-3, atol=1e-7, msg=name)
    overflowed = run(UpdateRule(scaler=torch.amp.GradScaler("cpu", init_scale=float("inf"))))
    assert norm(overflowed) == 0, "a step whose scaled gradients overflowed must be skipped"
    clip = norm(plain) * 1e-3
    clipped = run(UpdateRule(grad_clip=clip))
    assert norm(clipped) <= updates * clip * len(make()[1]) * 1.001, "grad_clip must bound every update"
