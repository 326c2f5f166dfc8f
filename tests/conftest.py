import os
import sys
from pathlib import Path

import pytest

from sepbook.data import profiles

# the tests mirror the package in folders; every one of them imports the shared helpers from here
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SEPBOOK_PROFILE", "tiny")
os.environ.setdefault("MPLBACKEND", "Agg")
profiles.one_thread()  # the test workers share the cores


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def html():
    """The built book, ``_build/html``: skipped when it is not built, failed under ``SEPBOOK_REQUIRE_BUILD=1``
    (CI, after make book)."""
    built = Path(__file__).resolve().parent.parent / "_build" / "html"
    if not (built / "index.html").is_file():
        if os.environ.get("SEPBOOK_REQUIRE_BUILD") == "1":
            pytest.fail(f"{built} holds no built book: run make book first")
        pytest.skip(f"{built} holds no built book: build it (make book) to check it")
    return built
