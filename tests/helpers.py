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
