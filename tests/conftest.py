import os

import pytest
from sepbook import profiles

os.environ.setdefault("SEPBOOK_PROFILE", "tiny")
os.environ.setdefault("MPLBACKEND", "Agg")
profiles.one_thread()  # the test workers share the cores


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
