"""Helpers for the book's pages: show the package's real source, glue numbers, know where we run.

Chapter: preface
"""
from __future__ import annotations

import inspect
import os
import sys
from typing import Any

STATIC_ENV = "SEPBOOK_STATIC_HTML"


def static_build() -> bool:
    """True while the book is being built to static HTML (``make book`` sets ``$SEPBOOK_STATIC_HTML``)."""
    return os.environ.get(STATIC_ENV, "") not in ("", "0")


def setup() -> str:
    """Prepare a chapter page; -> the active profile (``tiny``, ``book`` or ``paper``).

    Without a GPU, training runs on one CPU thread: measured faster than two threads whenever
    anything else shares the CPU (``benchmarks/RESULTS.md``). Prints the versions and profile, so a
    page's output says what produced it.
    """
    import torch

    import sepbook
    from sepbook.data import profiles, soundfonts

    soundfonts.ensure()                      # the sampled instruments of the songs (Colab installs them)
    if not torch.cuda.is_available():
        profiles.one_thread()
    profile = profiles.current()
    device = "CUDA" if torch.cuda.is_available() else "CPU"
    print(f"sepbook {sepbook.__version__}, torch {torch.__version__} on {device}, profile: {profile}")
    return profile


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def source(obj: Any) -> str:
    """The source code of a sepbook function, class or module, exactly as the package holds it."""
    try:
        return inspect.getsource(obj)
    except (TypeError, OSError) as error:
        raise ValueError(f"obj={obj!r}: no source available (expected a sepbook function, class or module)") from error


def show_source(obj: Any, *, docstring: bool = True):
    """Display ``obj``'s real source as a highlighted code block named after its module.

    ``docstring=False`` drops the leading docstring so the page shows just the mechanism.
    """
    from IPython.display import Markdown

    text = source(obj)
    if not docstring:
        text = _strip_docstring(text)
    module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
    where = module.replace(".", "/") + ".py"
    return Markdown(f"*From `{where}`:*\n\n```python\n{text.rstrip()}\n```")


def _strip_docstring(text: str) -> str:
    import ast
    import textwrap

    node = ast.parse(textwrap.dedent(text)).body[0]
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        lines = text.splitlines()
        return "\n".join(lines[:body[0].lineno - 1] + lines[body[0].end_lineno:])
    return text


def glue(name: str, value: Any, *, display: bool = False, fmt: str | None = None) -> None:
    """Glue ``value`` (formatted with ``fmt`` when given) into the page for ``{glue:}`name``` references.

    Returns nothing, so a cell that ends with a glue call shows no stray output.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # e.g. on Colab, where only the live outputs matter
        return
    shown = format(value, fmt) if fmt is not None else value
    myst_glue(name, shown, display=display)
