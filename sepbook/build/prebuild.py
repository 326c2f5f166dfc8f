"""Execute the book's notebooks into the execution cache, several at once: ``python -m sepbook.build.prebuild``.

``make book`` runs this before ``jupyter-book build .``. The book executes notebooks in myst-nb's
``cache`` mode (``_config.yml``): a notebook whose code cells are unchanged takes its outputs from
the cache (``.jupyter_cache/``, outside ``_build/`` so that a clean of the HTML keeps it), so a
text-only edit rebuilds without executing anything. jupyter-book 1 executes the notebooks that are
not cached one after the other; this module executes them first, one per CPU core, each on one
thread (:func:`sepbook.book.setup`), heaviest first, and the build then finds them all cached.

The cache knows a notebook only by its code, not by the package it imports, the profile it runs
in or the committed results it reads and re-checks, so a change to any of them (:func:`digest`)
clears the whole cache: a cached page never shows results it did not check. Sphinx re-reads a page
only when its notebook file changed, so the pages executed here are listed in the cache folder
(:data:`EXECUTED`) and :mod:`sepbook.build.sphinxext` hands them to the build as outdated: a page whose
code is unchanged but whose results moved is rendered again. CI empties the cache
(``make clean-cache``) before it builds, so every notebook executes here. ``SEPBOOK_EXECUTE=force``
(:mod:`sepbook.build.sphinxext`) executes every notebook inside the build instead, one after the other,
and this module does nothing.

Chapter: preface
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from sepbook import classroom
from sepbook.data import profiles

ROOT = Path(__file__).resolve().parents[2]


def settings(root: Path = ROOT) -> dict:
    """The ``execute`` section of ``_config.yml``."""
    return yaml.safe_load((root / "_config.yml").read_text())["execute"]


def digest(root: Path = ROOT) -> str:
    """A hash of what notebook outputs depend on besides their own code: the package, the profile and
    the committed results (``chapters/*/results/``)."""
    h = hashlib.sha256(profiles.current().encode())
    committed = sorted(p for p in (root / "chapters").glob("*/results/**/*") if p.is_file())
    for path in sorted((root / "sepbook").rglob("*.py")) + committed + [root / "requirements.lock",
                                                                          root / "pyproject.toml"]:
        if path.is_file():
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _execute(path: str, cache_path: str, timeout: int) -> tuple[str, float, float, str | None]:
    """Execute one notebook in its own folder and cache its outputs.

    -> (path, seconds, the kernel's peak memory in MB, traceback or None). Each call runs in a fresh
    worker process, so the peak of its children is this notebook's kernel alone.
    """
    import resource

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = nbformat.read(path, as_version=4)
    result = single_nb_execution(notebook, cwd=str(Path(path).parent), timeout=timeout, allow_errors=False,
                                 meta_override=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux reports kB
    if result.err is not None:
        return path, result.time, peak_mb, result.exc_string
    get_cache(cache_path).cache_notebook_bundle(
        CacheBundleIn(notebook, path, data={"execution_seconds": result.time}), check_validity=False,
        overwrite=True)
    return path, result.time, peak_mb, None


def _cached(cache, notebook) -> bool:
    try:
        cache.match_cache_notebook(notebook)
    except KeyError:
        return False
    return True


#: The file in the cache folder that names the notebooks the last prebuild executed, one per line.
EXECUTED = "sepbook.executed"


def prebuild(workers: int | None = None, root: Path = ROOT, show=print) -> dict[str, tuple[float, float]]:
    """Execute every uncached notebook of the book; -> (seconds, peak MB) per executed notebook."""
    import nbformat
    from jupyter_cache import get_cache

    config = settings(root)
    if os.environ.get("SEPBOOK_EXECUTE", config["execute_notebooks"]) != "cache":
        show("prebuild: the book is not built in cache mode; every notebook executes inside the build")
        return {}
    cache_path = root / config["cache"]
    cache = get_cache(str(cache_path))
    stamp = cache_path / "sepbook.digest"
    if not stamp.is_file() or stamp.read_text() != digest(root):
        if cache_path.is_dir():
            cache.clear_cache()
        cache_path.mkdir(parents=True, exist_ok=True)
        cache = get_cache(str(cache_path))
        stamp.write_text(digest(root))
        show("prebuild: the package or the profile changed since the cache was filled: cleared it")
    notebooks = classroom.book_notebooks(root)
    todo = [p for p in notebooks if not _cached(cache, nbformat.read(p, as_version=4))]
    listed = cache_path / EXECUTED
    listed.write_text("".join(f"{p.relative_to(root).with_suffix('').as_posix()}\n" for p in todo))
    if not todo:
        show(f"prebuild: all {len(notebooks)} notebooks are cached")
        return {}
    todo.sort(key=lambda p: p.stat().st_size, reverse=True)  # the big pages train the most: start them first
    workers = workers or os.cpu_count() or 1
    show(f"prebuild: executing {len(todo)} of {len(notebooks)} notebooks, {workers} at a time")
    os.environ.setdefault("SEPBOOK_STATIC_HTML", "1")  # the kernels inherit it: players as static HTML
    executed, failed = {}, []
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers, max_tasks_per_child=1) as pool:
        jobs = [pool.submit(_execute, str(p), str(cache_path), int(config["timeout"])) for p in todo]
        for job in jobs:
            path, took, peak_mb, error = job.result()
            name = str(Path(path).relative_to(root))
            executed[name] = (took, peak_mb)
            show(f"prebuild: {name} {'FAILED' if error else 'executed'} in {took:.0f} s, "
                 f"kernel peak {peak_mb:.0f} MB")
            if error:
                failed.append((name, error))
    show(f"prebuild: {len(todo)} notebooks in {time.monotonic() - started:.0f} s")
    if failed:
        name, error = failed[0]
        raise RuntimeError(f"{len(failed)} notebook(s) failed; the first, {name}:\n{error}")
    return executed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sepbook.build.prebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, help="notebooks at a time (default: one per CPU core)")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    try:
        prebuild(args.workers)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
