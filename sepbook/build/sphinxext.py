"""The book's build settings that ``_config.yml`` cannot hold, as a Sphinx extension it lists.

With it, the ecosystem's own ``jupyter-book build .`` builds the same book as ``make book``:

- the pages render their audio players as static HTML (:func:`sepbook.book.static_build`): the
  kernels that execute the notebooks inherit ``$SEPBOOK_STATIC_HTML`` from the build;
- the execution cache (``execute.cache``) lies in the book's folder, wherever the build is started;
- ``$SEPBOOK_EXECUTE`` (``force``, ``cache``, ``auto`` or ``off``) overrides ``execute_notebooks``
  for one build; CI sets ``force``, so every notebook executes whatever the cache holds;
- the pages :mod:`sepbook.build.prebuild` just executed are rendered again even when their notebook
  files did not change (new committed results change a page's outputs, not its file);
- every page has the book's stylesheet (``sepbook/static/sepbook.css``);
- a page lists each script once: sphinx-thebe and sphinx-togglebutton add their inline settings
  each time documents are read, and the second ``const THEBE_JS_URL`` is a JavaScript error in
  every reader's console (``python -m sepbook.build.browser`` checks the console).
- the notebooks a reader downloads from a page (``_sources/``) are the student editions: the
  published book holds no solutions (``hide_solutions`` leaves out the written ones, and the answer
  cells' code is removed from the HTML), and the download button must not hand them back.

Chapter: preface
"""
from __future__ import annotations

import os
from pathlib import Path

from sepbook.book import STATIC_ENV
from sepbook.build.prebuild import EXECUTED

EXECUTE_ENV = "SEPBOOK_EXECUTE"
#: The book's own stylesheet (``sepbook.css``) lives here.
STATIC = Path(__file__).resolve().parents[1] / "static"
MODES = ("force", "cache", "auto", "off")


def _execution_mode(app, config) -> None:
    config.html_static_path.append(str(STATIC))
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


def _scripts_once(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # an inline script's file name is None or '' depending on who added it
        key = (str(getattr(script, "filename", script) or ""), repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def _student_downloads(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from sepbook.classroom import write_student_editions

    root = Path(app.srcdir)
    if (root / "chapters").is_dir():
        write_student_editions(Path(app.outdir) / "_sources" / "chapters", root)


def setup(app) -> dict:
    os.environ.setdefault(STATIC_ENV, "1")
    app.connect("config-inited", _execution_mode)
    app.connect("env-get-outdated", _freshly_executed)
    app.connect("html-page-context", _scripts_once, priority=900)
    app.connect("build-finished", _student_downloads)
    app.add_css_file("sepbook.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
