"""Grade student notebooks: ``python -m sepbook.grade PATH... [--csv marks.csv]``.

Each notebook is executed in a fresh kernel (nbclient) in the ``tiny`` profile, with a time limit
for the whole notebook, and every auto-graded check cell (:mod:`sepbook.classroom`) is read back:
passed, failed with the checker's message, or not run. Written answers are listed for grading by
hand. A notebook that cannot be read, raises, hangs or kills its kernel gets a row that says so;
the grader itself goes on to the next one.

Before running, each locked check cell is reset to the book's own version, so an edited check
cannot pass an answer. ``--exercises-only`` runs just the set-up cell and the exercise cells, which
takes seconds instead of minutes; the answer cells import what they use, so they run on their own.

Chapter: for teachers
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from sepbook import classroom

DEFAULT_TIMEOUT = 900


@dataclass
class Mark:
    """One row of the marks: an exercise of a notebook, or the notebook itself."""

    notebook: str
    exercise: str  # the exercise label, or "(notebook)"
    status: str  # passed, failed, not run, by hand; for the notebook: ran, errors, timed out, ...
    points: float | None
    max_points: float | None
    message: str = ""


def notebooks_in(paths: list[Path]) -> list[Path]:
    """The notebooks named by ``paths``: files as given, folders searched recursively."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"PATH {path}: no such notebook or folder")
    return found


def book_checks(root: Path = classroom.ROOT) -> dict[str, str]:
    """The book's source of every locked cell, by ``grade_id``."""
    checks = {}
    for path in classroom.book_notebooks(root):
        for cell in nbformat.read(path, as_version=4).cells:
            mark = classroom.marks(cell)
            if mark and mark.get("locked"):
                checks[mark["grade_id"]] = cell.source
    return checks


def _error_text(cell) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output['ename']}: {output['evalue']}".strip()
    return None


def _prepare(notebook, checks: dict[str, str], exercises_only: bool) -> tuple[list[str], list[int]]:
    """Reset locked cells to the book's version; -> notes on what was reset, each cell's place."""
    notes = []
    for cell in notebook.cells:
        mark = classroom.marks(cell)
        if mark and mark.get("locked") and mark["grade_id"] in checks:
            if cell.source != checks[mark["grade_id"]]:
                cell.source = checks[mark["grade_id"]]
                notes.append(f"{mark['grade_id']} was edited and has been reset")
    places = list(range(len(notebook.cells)))
    if exercises_only:
        code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
        skip = set(code[1:]) - {i for i in code if classroom.marks(notebook.cells[i])}
        places = [i for i in places if i not in skip]
        notebook.cells = [notebook.cells[i] for i in places]
    return notes, places


def _execute(notebook, folder: Path, timeout: float, places: list[int]) -> tuple[str, str]:
    """Run every cell, errors allowed, within ``timeout`` seconds in all; -> (status, message)."""
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    deadline = time.monotonic() + timeout
    # Unix sockets, not TCP ports: kernels started at the same moment cannot take each other's ports.
    sockets = tempfile.mkdtemp(prefix="sepbook-grade-")
    kernel = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
    client = NotebookClient(
        notebook, km=kernel, allow_errors=True, resources={"metadata": {"path": str(folder)}},
        timeout_func=lambda cell: max(1.0, deadline - time.monotonic()))
    try:
        client.execute(stderr=subprocess.DEVNULL)  # the kernel's own log, not the student's output
    except CellTimeoutError:
        return "timed out", f"stopped after the time limit of {timeout:g} s"
    except DeadKernelError as error:
        return "kernel died", str(error).strip().splitlines()[0] if str(error).strip() else "the kernel died"
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    errors = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and _error_text(c)]
    if errors:
        first = notebook.cells[errors[0]]
        return "errors", f"{len(errors)} cell(s) raised; the first, cell {places[errors[0]]}: {_error_text(first)}"
    return "ran", ""


def grade_notebook(path: Path, name: str, timeout: float = DEFAULT_TIMEOUT, checks: dict[str, str] | None = None,
                   exercises_only: bool = False) -> list[Mark]:
    """Execute one student notebook and mark each of its exercises."""
    started = time.monotonic()
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        found = classroom.exercises(notebook)
    except Exception as error:  # whatever is wrong with the file, the class goes on
        return [Mark(name, "(notebook)", "malformed", None, None, f"{type(error).__name__}: {error}")]
    if not found:
        return [Mark(name, "(notebook)", "no exercises", None, None, "no cell carries nbgrader marks")]
    notes, places = _prepare(notebook, book_checks() if checks is None else checks, exercises_only)
    try:
        status, message = _execute(notebook, path.parent, timeout, places)
    except Exception as error:
        status, message = "not run", f"{type(error).__name__}: {error}"
    seconds = time.monotonic() - started
    message = "; ".join([m for m in [message, *notes] if m] + [f"{seconds:.0f} s"])
    marks = [Mark(name, "(notebook)", status, None, None, message)]
    for exercise in found:
        marks += _exercise_marks(notebook, name, exercise)
    return marks


def _exercise_marks(notebook, name: str, exercise: classroom.Exercise) -> list[Mark]:
    marks = []
    for cell in notebook.cells:
        mark = classroom.marks(cell)
        if not mark or not mark.get("grade") or classroom.exercise_of(mark["grade_id"])[0] != exercise.label:
            continue
        points = float(mark.get("points", 0))
        if cell.cell_type == "markdown":
            marks.append(Mark(name, exercise.label, "by hand", None, points, "a written answer"))
        elif cell.get("execution_count") is None and not cell.get("outputs"):
            marks.append(Mark(name, exercise.label, "not run", 0.0, points, "the check cell did not run"))
        elif error := _error_text(cell):
            marks.append(Mark(name, exercise.label, "failed", 0.0, points, error))
        else:
            marks.append(Mark(name, exercise.label, "passed", points, points, ""))
    return marks


def grade(paths: list[Path], timeout: float = DEFAULT_TIMEOUT, exercises_only: bool = False,
          profile: str = "tiny", show=print) -> list[Mark]:
    """Grade every notebook under ``paths``; ``show`` receives each notebook's marks as text."""
    notebooks = notebooks_in(paths)
    os.environ["SEPBOOK_PROFILE"] = profile  # the kernels inherit it
    os.environ.pop("MPLBACKEND", None)  # pages draw inline, as in Jupyter
    # Players as static HTML, as in the book build: no widget for nbclient to wait on (jupyter/nbclient#312).
    os.environ["SEPBOOK_STATIC_HTML"] = "1"
    checks = book_checks()
    bases = [p if p.is_dir() else p.parent for p in paths]
    marks = []
    for path in notebooks:
        base = next((b for b in bases if path.is_relative_to(b)), path.parent)
        name = str(path.relative_to(base)) if path != base else path.name
        rows = grade_notebook(path, name, timeout, checks, exercises_only)
        show(as_text(rows))
        marks += rows
    return marks


def as_text(marks: list[Mark]) -> str:
    """A notebook's marks, one line per exercise."""
    lines = []
    for m in marks:
        if m.exercise == "(notebook)":
            lines.append(f"{m.notebook}: {m.status}" + (f" ({m.message})" if m.message else ""))
            continue
        score = "" if m.points is None else f" {m.points:g}/{m.max_points:g}"
        lines.append(f"  {m.exercise:<28} {m.status}{score}" + (f": {m.message}" if m.message else ""))
    return "\n".join(lines)


def write_csv(marks: list[Mark], path: Path) -> None:
    """One row per mark: notebook, exercise, status, points, max_points, message."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(marks[0]) if marks else Mark.__annotations__))
        writer.writeheader()
        writer.writerows(asdict(m) for m in marks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sepbook.grade", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="notebooks or class folders")
    parser.add_argument("--csv", type=Path, help="write every mark to this CSV file")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds allowed per notebook (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--exercises-only", action="store_true",
                        help="run only the set-up cell and the exercise cells")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    try:
        marks = grade(args.paths, args.timeout, args.exercises_only)
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.csv:
        write_csv(marks, args.csv)
        print(f"marks written to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
