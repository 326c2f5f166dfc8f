"""The book's build settings that ``_config.yml`` cannot hold, as a Sphinx extension it lists.

With it, the ecosystem's own ``jupyter-book build .`` builds the same book as ``make book``:

- the pages render their audio players as static HTML (:func:`sepbook.book.static_build`): the
  kernels that execute the notebooks inherit ``$SEPBOOK_STATIC_HTML`` from the build;
- the execution cache (``execute.cache``) lies in the book's folder, wherever the build is started;
- ``$SEPBOOK_EXECUTE`` (``force``, ``cache``, ``auto`` or ``off``) overrides ``execute_notebooks``
  for one build; CI sets ``force``, so every notebook executes whatever the cache holds;
- the pages :mod:`sepbook.prebuild` just executed are rendered again even when their notebook
  files did not change (new committed results change a page's outputs, not its file).

Chapter: preface
"""
from __future__ import annotations

import os
from pathlib import Path

from sepbook.book import STATIC_ENV
from sepbook.prebuild import EXECUTED

EXECUTE_ENV = "SEPBOOK_EXECUTE"
MODES = ("force", "cache", "auto", "off")


def _execution_mode(app, config) -> None:
    cache = getattr(config, "nb_execution_cache_path", "")
    if cache and not os.path.isabs(cache):  # the book's folder, wherever the build was started from
        config.nb_execution_cache_path = os.path.join(app.srcdir, cache)
    mode = os.environ.get(EXECUTE_ENV)
    if not mode:
        return
    if mode not in MODES:
        raise ValueError(f"${EXECUTE_ENV}: expected one of {MODES}, got {mode!r}")
    config.nb_execution_mode = mode


def _freshly_executed(app, env, added, changed, removed) -> list[str]:
    listed = Path(app.config.nb_execution_cache_path or "") / EXECUTED
    if not listed.is_file():
        return []
    return [name for name in listed.read_text().split() if name in env.found_docs]


def setup(app) -> dict:
    os.environ.setdefault(STATIC_ENV, "1")
    app.connect("config-inited", _execution_mode)
    app.connect("env-get-outdated", _freshly_executed)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
