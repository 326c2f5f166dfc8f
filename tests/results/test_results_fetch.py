"""An installed sepbook (on Colab) has no ``chapters/``: it fetches the committed results once."""
import io
import tarfile
from pathlib import Path

import pytest
import yaml

from sepbook import results
from sepbook.results import fetch, store

ROOT = Path(__file__).resolve().parents[2]


def _archive(path: Path, chapter: str = "foundations") -> Path:
    """A repository archive as GitHub serves it: one top folder, the chapter's results inside."""
    with tarfile.open(path, "w:gz") as tar:
        folder = ROOT / "chapters" / chapter / "results" / "book"
        tar.add(folder, arcname=f"sepbook-main/chapters/{chapter}/results/book")
        tar.add(ROOT / "README.md", arcname="sepbook-main/README.md")
        evil = tarfile.TarInfo("sepbook-main/chapters/x/results/../../../../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    return path


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """sepbook as pip installs it: the package without the book around it."""
    monkeypatch.setattr(store, "ROOT", tmp_path / "site-packages")
    monkeypatch.setenv("SEPBOOK_DATA", str(tmp_path / "data"))
    return tmp_path


def test_installed_sepbook_fetches_the_committed_results_once(installed, monkeypatch):
    archive = _archive(installed / "main.tar.gz")
    monkeypatch.setenv(fetch.ARCHIVE_ENV, archive.as_uri())
    folder = results.results_dir("foundations")
    assert folder.is_relative_to(installed / "data") and (folder / "manifest.json").is_file()
    book = results.load("foundations", check=False)
    committed = results.load("foundations", check=False, folder=ROOT / "chapters/foundations/results/book")
    assert book.rows.equals(committed.rows) and set(book.models) == set(committed.models)
    assert not list(installed.rglob("evil.txt")) and not (folder.parents[3] / "README.md").exists()
    archive.unlink()  # the second time, nothing is fetched
    assert results.results_dir("foundations") == folder


def test_an_unreachable_archive_is_named_with_its_variable(installed, monkeypatch):
    missing = (installed / "nowhere.tar.gz").as_uri()
    monkeypatch.setenv(fetch.ARCHIVE_ENV, missing)
    with pytest.raises(FileNotFoundError, match=f"{missing}.*SEPBOOK_RESULTS_URL"):
        results.load("foundations", check=False)
    empty = installed / "empty.tar.gz"
    tarfile.open(empty, "w:gz").close()
    monkeypatch.setenv(fetch.ARCHIVE_ENV, empty.as_uri())
    with pytest.raises(FileNotFoundError, match="holds no chapters"):
        results.results_dir("foundations")
    assert not list((installed / "data").rglob("complete")), "a failed fetch leaves nothing behind"


def test_a_checkout_reads_its_own_results_and_the_archive_is_the_repositorys():
    assert results.results_dir("transfer") == ROOT / "chapters/transfer/results/book"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert fetch.ARCHIVE_URL == f"{config['url']}/archive/refs/heads/{config['branch']}.tar.gz"
