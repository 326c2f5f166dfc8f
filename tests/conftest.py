import os

import pytest
import torch

os.environ.setdefault("SEPBOOK_PROFILE", "tiny")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
