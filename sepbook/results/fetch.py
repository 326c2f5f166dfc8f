"""Committed results for an installed sepbook (on Colab), which has no ``chapters/``: fetched once
from the repository's archive.

Chapter: preface
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

#: The repository's archive: an installed sepbook (on Colab) has no ``chapters/`` and reads the
#: committed results from it. ``$SEPBOOK_RESULTS_URL`` points elsewhere (a fork, a local file).
ARCHIVE_URL = "https://github.com/sepbook/sepbook/archive/refs/heads/main.tar.gz"

ARCHIVE_ENV = "SEPBOOK_RESULTS_URL"

def _results_path(name: str) -> Path | None:
    """``sepbook-main/chapters/x/results/...`` -> ``chapters/x/results/...``; None for anything else."""
    parts = Path(name).parts[1:]
    if len(parts) < 4 or parts[0] != "chapters" or parts[2] != "results" or ".." in parts:
        return None
    return Path(*parts)

def committed_results() -> Path:
    """The repository's committed ``chapters/*/results/``, fetched once from its archive and kept in
    the data folder (:func:`sepbook.data.corpora.data_root`); -> the folder that holds ``chapters/``."""
    from sepbook.data.corpora import data_root

    url = os.environ.get(ARCHIVE_ENV) or ARCHIVE_URL
    target = data_root() / "committed-results" / hashlib.sha256(url.encode()).hexdigest()[:12]
    if (target / "complete").is_file():
        return target
    print(f"sepbook is installed without the book's committed results: fetching them from {url}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="partial-", dir=target.parent))  # renamed into place when whole
    try:
        with urllib.request.urlopen(url, timeout=120) as response, tempfile.TemporaryFile() as archive:
            shutil.copyfileobj(response, archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                for member in tar:
                    path = _results_path(member.name)
                    if path is not None and member.isfile():
                        (partial / path).parent.mkdir(parents=True, exist_ok=True)
                        (partial / path).write_bytes(tar.extractfile(member).read())
    except (OSError, urllib.error.URLError, tarfile.TarError) as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise FileNotFoundError(f"sepbook is installed without the committed results, and fetching them from "
                                f"{url} (${ARCHIVE_ENV}) failed: {error}") from error
    if not (partial / "chapters").is_dir():
        shutil.rmtree(partial, ignore_errors=True)
        raise FileNotFoundError(f"{url} (${ARCHIVE_ENV}) holds no chapters/*/results/ folder")
    (partial / "complete").write_text(url + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
