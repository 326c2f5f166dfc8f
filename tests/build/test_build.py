"""The build: `jupyter-book build .` builds what `make book` builds, and the execution cache."""
import os
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import yaml

from sepbook import book
from sepbook.build import prebuild, sphinxext

ROOT = Path(__file__).resolve().parents[2]


def test_the_ecosystems_build_command_gets_the_same_settings_as_make_book():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "sepbook.build.sphinxext" in config["sphinx"]["extra_extensions"]
    assert config["execute"]["execute_notebooks"] == "cache"
    assert not config["execute"]["cache"].startswith("_build"), "make clean must keep the cache"
    recipe = re.search(r"^book:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert book.STATIC_ENV not in recipe, "the static switch belongs to the build, not to the Makefile"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    # CI executes every notebook: it empties the execution cache before it builds
    makes = [line for line in ci if line.startswith("make ")]
    assert makes[:2] == ["make clean-cache", 'make book BOOK_FLAGS="-W -n --keep-going"']


def test_the_extension_makes_players_static_and_lets_ci_force_execution(monkeypatch):
    monkeypatch.delenv(book.STATIC_ENV, raising=False)
    hooks = []
    styles = []
    sphinxext.setup(SimpleNamespace(connect=lambda event, fn, priority=500: hooks.append((event, fn)),
                                    add_css_file=styles.append))
    assert book.static_build()
    assert styles == ["sepbook.css"] and (sphinxext.STATIC / "sepbook.css").is_file()
    hook = dict(hooks)["config-inited"]
    assert dict(hooks)["env-get-outdated"] is sphinxext._freshly_executed
    config = SimpleNamespace(nb_execution_mode="cache", nb_execution_cache_path=".jupyter_cache",
                             html_static_path=[])
    monkeypatch.delenv(sphinxext.EXECUTE_ENV, raising=False)
    app = SimpleNamespace(srcdir="/books/sepbook")
    hook(app, config)
    assert config.nb_execution_mode == "cache"
    assert config.nb_execution_cache_path == "/books/sepbook/.jupyter_cache"
    assert str(sphinxext.STATIC) in config.html_static_path
    monkeypatch.setenv(sphinxext.EXECUTE_ENV, "force")
    hook(app, config)
    assert config.nb_execution_mode == "force"
    monkeypatch.setenv(sphinxext.EXECUTE_ENV, "sometimes")
    with pytest.raises(ValueError, match="SEPBOOK_EXECUTE.*'sometimes'"):
        hook(app, config)


def test_a_page_lists_each_script_once():
    """sphinx-thebe's inline settings came twice (once with file name None, once ''): the second
    ``const THEBE_JS_URL`` was a JavaScript error on every page."""
    from sphinx.builders.html._assets import _JavaScript

    thebe = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=thebe), _JavaScript("", body=thebe),
               _JavaScript("_static/a.js", **{"async": "async"}), _JavaScript("_static/a.js")]
    context = {"script_files": scripts}
    sphinxext._scripts_once(None, "page", "page.html", context, None)
    assert context["script_files"] is scripts, "the list the builder renders is changed in place"
    assert [(s.filename, s.attributes) for s in scripts] == [
        ("_static/a.js", {}), (None, {"body": thebe}), ("_static/a.js", {"async": "async"})]


def _book(root: Path, code: str) -> Path:
    (root / "_config.yml").write_text("execute:\n  execute_notebooks: cache\n  cache: .jupyter_cache\n"
                                      "  timeout: 60\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nparts:\n  - caption: A\n"
                                   "    chapters:\n      - file: chapters/a/page\n")
    (root / "sepbook").mkdir(exist_ok=True)
    (root / "sepbook" / "x.py").write_text("X = 1\n")
    path = root / "chapters" / "a" / "page.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@pytest.mark.slow
def test_prebuild_executes_only_what_changed(tmp_path, monkeypatch):
    pytest.importorskip("jupyter_cache", reason="the book's build tools (jupyter-book) are not installed")
    monkeypatch.delenv(sphinxext.EXECUTE_ENV, raising=False)
    lines = []
    _book(tmp_path, "print(6 * 7)")
    assert list(prebuild.prebuild(1, tmp_path, lines.append)) == ["chapters/a/page.ipynb"]
    cache = tmp_path / prebuild.settings(tmp_path)["cache"]
    app = SimpleNamespace(config=SimpleNamespace(nb_execution_cache_path=str(cache)))
    env = SimpleNamespace(found_docs={"chapters/a/page", "intro"})
    assert sphinxext._freshly_executed(app, env, set(), set(), set()) == ["chapters/a/page"]  # render it again
    assert prebuild.prebuild(1, tmp_path, lines.append) == {}
    assert "all 1 notebooks are cached" in lines[-1]
    assert sphinxext._freshly_executed(app, env, set(), set(), set()) == []
    _book(tmp_path, "print(6 * 7)\n# a comment is code too")
    assert list(prebuild.prebuild(1, tmp_path, lines.append)) == ["chapters/a/page.ipynb"]
    (tmp_path / "sepbook" / "x.py").write_text("X = 2\n")  # the package changed: everything again
    assert list(prebuild.prebuild(1, tmp_path, lines.append)) == ["chapters/a/page.ipynb"]
    assert any("cleared" in line for line in lines)
    monkeypatch.setenv(sphinxext.EXECUTE_ENV, "force")
    assert prebuild.prebuild(1, tmp_path, lines.append) == {}


@pytest.mark.slow
def test_a_failing_notebook_is_named(tmp_path, monkeypatch):
    pytest.importorskip("jupyter_cache", reason="the book's build tools (jupyter-book) are not installed")
    monkeypatch.delenv(sphinxext.EXECUTE_ENV, raising=False)
    _book(tmp_path, "raise ValueError('broken page')")
    with pytest.raises(RuntimeError, match="chapters/a/page.ipynb.*\n.*broken page|broken page"):
        prebuild.prebuild(1, tmp_path, lambda line: None)


def test_the_digest_follows_the_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("SEPBOOK_PROFILE", "tiny")
    tiny = prebuild.digest(tmp_path)
    monkeypatch.setenv("SEPBOOK_PROFILE", "book")
    assert prebuild.digest(tmp_path) != tiny
    assert os.environ["SEPBOOK_PROFILE"] == "book"


def test_the_digest_follows_the_committed_results(tmp_path):
    """A cached page re-checks and shows committed results: changing them must execute it again."""
    folder = tmp_path / "chapters" / "a" / "results" / "book"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("variant,value\nV,1.0\n")
    before = prebuild.digest(tmp_path)
    (folder / "metrics.csv").write_text("variant,value\nV,1.5\n")
    assert prebuild.digest(tmp_path) != before
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "V-seed1.pt").write_bytes(b"weights")
    assert prebuild.digest(tmp_path) != before
