"""Grade student notebooks: ``python -m sepbook.classroom.grade PATH... [--csv marks.csv]``.

How a submission is graded, and why a class cannot game it:

- **Each submission alone.** It is copied into a throw-away folder and its cells run in a process
  of their own (:mod:`sepbook.classroom.sandbox`): with bubblewrap, that process sees no other submission,
  no teacher's file and no network, and runs under limits on time, memory, processes and output.
  Without bubblewrap the grader refuses to run unless told ``--unsafe-no-sandbox``.
- **A judge out of reach.** The checker (:mod:`sepbook.classroom.exercises`) runs here, in the grader's own
  process, which never executes student code. It calls the student's function across the wall:
  the inputs go in, and only the function's outputs come back, as data. Whatever a submission
  patches in its own process changes no mark.
- **Hidden inputs.** The checkers draw their inputs from a seed chosen afresh for every grading
  run, and their messages say what is wrong in words, never the expected values.
- **The book decides what is graded.** The exercises, their points and their checks are read from
  the book's own pages, so a deleted or edited cell, a changed point value or a rewritten check
  changes nothing but the row that reports it.

A notebook that cannot be read, raises, hangs, floods its output or dies gets a row that says so,
and the rest of the class is graded. ``--exercises-only`` runs just the set-up cell and the answer
cells, which takes seconds instead of minutes; the answer cells import what they use.

Chapter: for teachers
"""
from __future__ import annotations

import argparse
import ast
import csv
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
import torch

from sepbook import classroom
from sepbook.classroom import exercises, sandbox

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
    isolation: str = ""


@dataclass(frozen=True)
class Task:
    """One exercise as the book grades it: the checker, the student's function it calls, the points."""

    label: str
    points: float
    checker: str | None       # the sepbook.classroom.exercises function, None for a written answer only
    function: str | None      # the name the answer cell defines
    written: float            # points of the hand-graded written answer (0 if none)


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


def called_check(source: str) -> tuple[str, str]:
    """``print(check_si_sdr(my_si_sdr))`` -> ``("check_si_sdr", "my_si_sdr")``."""
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_")
                and node.args and isinstance(node.args[0], ast.Name)):
            return node.func.id, node.args[0].id
    raise ValueError(f"a check cell must call a sepbook.classroom.exercises checker on the student's function, got {source!r}")


def book_tasks(root: Path = classroom.ROOT) -> dict[str, list[Task]]:
    """Every graded exercise of the book, by notebook file name, as the book's own cells define it."""
    pages = {}
    for path in classroom.book_notebooks(root):
        cells = [(classroom.marks(c), c) for c in nbformat.read(path, as_version=4).cells if classroom.marks(c)]
        tasks = []
        for exercise in classroom.exercises_in(nbformat.from_dict({"cells": [c for _, c in cells]})):
            check = [c for m, c in cells if m["grade_id"] == f"{exercise.label}-check"]
            written = [m for m, c in cells if m["grade_id"] == f"{exercise.label}-discussion"]
            checker, function = called_check(check[0].source) if check else (None, None)
            tasks.append(Task(exercise.label, float(exercise.points), checker, function,
                              float(sum(m.get("points", 0) for m in written))))
        if tasks:
            pages[path.name] = tasks
    return pages


def page_of(notebook, name: str, pages: dict[str, list[Task]]) -> str | None:
    """The book page a submission answers: the one whose exercises its cells name most, else by file name."""
    ids = {classroom.exercise_of(m["grade_id"])[0] for c in notebook.cells
           if (m := classroom.marks(c)) and isinstance(m.get("grade_id"), str) and m["grade_id"].count("-") > 1}
    overlap = {page: len(ids & {t.label for t in tasks}) for page, tasks in pages.items()}
    best = max(overlap, key=overlap.get, default=None)
    if best is not None and overlap[best]:
        return best
    return Path(name).name if Path(name).name in pages else None


def _defines(source: str, names: set[str]) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return any(f"def {name}" in source for name in names)
    return any(isinstance(n, (ast.FunctionDef, ast.Assign)) and
               ({n.name} if isinstance(n, ast.FunctionDef) else {getattr(t, "id", None) for t in n.targets}) & names
               for n in tree.body)


def cells_to_run(notebook, tasks: list[Task], exercises_only: bool) -> list[tuple[int, str]]:
    """``(index, source)`` of the code cells the submission's process runs: never a check cell (the
    grader checks); with ``exercises_only``, the first code cell and every cell that defines an
    answer, whatever its metadata says."""
    functions = {t.function for t in tasks if t.function}
    chosen, first = [], True
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        grade_id = str((classroom.marks(cell) or {}).get("grade_id", ""))
        answers = grade_id.endswith("-answer") or _defines(cell.source, functions)
        if not answers and (grade_id.endswith("-check") or _calls_a_checker(cell.source)):
            continue
        if not exercises_only or first or answers:
            chosen.append((index, cell.source))
        first = False
    return chosen


def _calls_a_checker(source: str) -> bool:
    try:
        called_check(source)
    except (ValueError, SyntaxError):
        return False
    return True


def oddities(notebook, tasks: list[Task]) -> list[str]:
    """What a submission changed in the marked cells: each is reported, none changes a mark."""
    notes, seen = [], {}
    for cell in notebook.cells:
        mark = classroom.marks(cell)
        if mark and isinstance(mark.get("grade_id"), str):
            seen[mark["grade_id"]] = seen.get(mark["grade_id"], 0) + 1
    notes += [f"grade_id {g} appears {n} times" for g, n in seen.items() if n > 1]
    for task in tasks:
        if task.checker and f"{task.label}-answer" not in seen:
            notes.append(f"the answer cell of {task.label} has lost its grade_id")
    return notes


# ----------------------------------------------------------------------------- across the wall


class Stopped(BaseException):
    """The submission's process is gone or out of time: no checker may catch this as an answer."""


class Wall:
    """One submission's process: its cells run first, then its functions answer calls."""

    def __init__(self, folder: Path, cells: list[tuple[int, str]], timeout: float, isolation: str | None):
        self.deadline = time.monotonic() + timeout
        self.timeout, self.stopped = timeout, ""
        requests_out, self._requests = os.pipe()
        self._replies, replies_in = os.pipe()
        inside = str(folder) if isolation is None else sandbox.INSIDE
        program = [sys.executable, "-m", "sepbook.classroom.sandbox", str(requests_out), str(replies_in)]
        if isolation is not None:
            program = sandbox.wall(isolation, folder, shown_to_submissions()) + program
        self.log = open(folder.parent / "output.log", "wb")
        self.process = subprocess.Popen(
            program, pass_fds=(requests_out, replies_in), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, cwd=folder, env=sandbox.environment(inside, data_folder()),
            preexec_fn=sandbox.limiter(timeout, isolation is not None), start_new_session=True)
        os.close(requests_out)
        os.close(replies_in)
        self.errors: list[tuple[int, str]] = []
        try:
            sandbox.send(self._requests, cells)
            self.errors = self._receive()["errors"]
        except Stopped:
            pass

    def _wait(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0 or not select.select([self._replies], [], [], left)[0]:
            self.stop(f"stopped after the time limit of {self.timeout:g} s")
            raise Stopped(self.stopped)

    def _receive(self) -> dict:
        if self.stopped:
            raise Stopped(self.stopped)
        try:
            reply = sandbox.receive(self._replies, trusted=False, wait=self._wait)
        except Stopped:
            raise
        except Exception as error:
            self.stop(self._ending() or f"its reply could not be read ({type(error).__name__}: {error})")
            raise Stopped(self.stopped) from None
        if not isinstance(reply, dict):
            self.stop("it sent something that is not a reply")
            raise Stopped(self.stopped)
        return reply

    def ask(self, request: dict) -> dict:
        """Send one call and wait for its reply, within the notebook's time limit."""
        if self.stopped:
            raise Stopped(self.stopped)
        try:
            sandbox.send(self._requests, request)
        except OSError:
            self.stop(self._ending() or "it stopped listening")
            raise Stopped(self.stopped) from None
        return self._receive()

    def _ending(self) -> str:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return ""
        if code > 128 and code - 128 in signal.valid_signals():
            code = 128 - code  # bwrap reports its child's death by signal n as status 128 + n
        if code == -signal.SIGXFSZ:
            return f"killed: it wrote more than {sandbox.LIMITS['file_bytes'] >> 20} MB of output"
        if code == -signal.SIGXCPU:
            return "killed: it used up its CPU time"
        if code < 0:
            return f"the process died (signal {signal.Signals(-code).name})"
        return f"the process ended (exit status {code})"

    def stop(self, reason: str) -> None:
        self.stopped = self.stopped or reason
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()

    def close(self) -> None:
        if not self.stopped:
            try:
                sandbox.send(self._requests, None)
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop(self.stopped or "done")
        for fd in (self._requests, self._replies):
            os.close(fd)
        self.log.close()


class Remote:
    """The student's function ``name``, called across the wall: only data comes back.

    A value that carries a gradient comes back carrying the same gradient with respect to the
    checker's own tensors and modules, and what the function did to a module argument (a frozen
    parameter, a gradient left behind) is done to the checker's copy, so every checker works
    unchanged.
    """

    def __init__(self, wall: Wall, name: str):
        self.wall, self.name = wall, name

    def __call__(self, *args):
        learns = [i for i, a in enumerate(args) if torch.is_tensor(a) and a.requires_grad]
        sent = [a.detach().clone() if torch.is_tensor(a) else a for a in args]
        reply = self.wall.ask({"function": self.name, "args": sent, "learns": learns})
        if "missing" in reply:
            raise NameError(reply["missing"])
        if "raised" in reply:
            raise type(str(reply["raised"]), (Exception,), {})(reply["message"])
        for index, state in reply.get("modules", {}).items():
            parameters = dict(args[index].named_parameters())
            for name, flag in state["requires_grad"].items():
                parameters[name].requires_grad_(flag)
                parameters[name].grad = state["grad"][name]
        value = self._value(reply["value"])
        if "grads" not in reply:
            return value
        pairs = []
        for key, grad in reply["grads"]:
            local = args[key[1]] if key[0] == "arg" else dict(args[key[1]].named_parameters())[key[2]]
            pairs.append((local * grad).sum())
        if not pairs:
            return value.requires_grad_(True)
        link = sum(pairs)
        # the value is unchanged; the gradient of its sum is the student's
        return value + (link - link.detach()) / value.numel()

    @staticmethod
    def _value(value):
        if isinstance(value, dict) and "numpy" in value:
            return value["numpy"].numpy()
        if isinstance(value, dict) and "type" in value:
            return type(str(value["type"]), (), {})()
        return value


def shown_to_submissions() -> list[Path]:
    """What a submission may read besides the system: the chapters' committed results (a page run
    in full reads them) and the generated data; not the chapters themselves, which hold the
    solutions."""
    folders = sorted((classroom.ROOT / "chapters").glob("*/results"))
    return [p for p in (*folders, data_folder()) if p is not None and p.is_dir()]


def data_folder() -> Path | None:
    from sepbook.data.corpora import data_root

    root = data_root()
    return root if root.is_dir() else None


# ----------------------------------------------------------------------------- one notebook


def grade_notebook(path: Path, name: str, timeout: float = DEFAULT_TIMEOUT, exercises_only: bool = False,
                   seed: int = 0, isolation: str | None = None, pages: dict | None = None) -> list[Mark]:
    """Run one student notebook in its own process and mark each of its page's exercises.

    ``isolation`` is the ``bwrap`` program (:func:`sepbook.classroom.sandbox.bubblewrap`), or None to run the
    submission's process without a sandbox."""
    pages = book_tasks() if pages is None else pages
    label = "bubblewrap" if isolation else "none (--unsafe-no-sandbox)"
    started = time.monotonic()
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # whatever is wrong with the file, the class goes on
        return [Mark(name, "(notebook)", "malformed", None, None, f"{type(error).__name__}: {error}"[:500], label)]
    page = page_of(notebook, name, pages)
    if page is None:
        return [Mark(name, "(notebook)", "no exercises", None, None,
                     "it answers none of the book's exercises", label)]
    tasks = pages[page]
    notes = oddities(notebook, tasks)
    folder = Path(tempfile.mkdtemp(prefix="sepbook-grade-"))
    try:
        work = folder / "submission"
        work.mkdir()
        shutil.copy(path, work / path.name)
        if isolation and os.geteuid() == 0:
            os.chown(work, sandbox.NOBODY, sandbox.NOBODY)
        wall = Wall(work, cells_to_run(notebook, tasks, exercises_only), timeout, isolation)
        try:
            marks = [_mark(name, task, wall, notebook, seed, label) for task in tasks]
        finally:
            wall.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    status = "timed out" if "time limit" in wall.stopped else (
        "stopped" if wall.stopped != "done" else ("errors" if wall.errors else "ran"))
    message = [wall.stopped] if status in ("timed out", "stopped") else []
    if wall.errors:
        index, error = wall.errors[0]
        message.append(f"{len(wall.errors)} cell(s) raised; the first, cell {index}: {error}")
    message = "; ".join(message + notes + [f"{time.monotonic() - started:.0f} s"])
    return [Mark(name, "(notebook)", status, None, None, message, label), *marks]


def _mark(name: str, task: Task, wall: Wall, notebook, seed: int, label: str) -> Mark:
    if task.checker is None:
        return Mark(name, task.label, "by hand", None, task.written, _written(notebook, task), label)
    points = task.points - task.written
    checker = getattr(exercises, task.checker)
    try:
        checker(Remote(wall, task.function), seed=seed, reveal=False)
    except Stopped as stop:
        return Mark(name, task.label, "not run", 0.0, points, f"the notebook stopped: {stop}", label)
    except AssertionError as failure:
        return Mark(name, task.label, "failed", 0.0, points, str(failure), label)
    except Exception as error:  # a reply the checker could not use is the submission's loss, not the class's
        return Mark(name, task.label, "failed", 0.0, points,
                    f"what the function returned could not be checked ({type(error).__name__}: {error})", label)
    return Mark(name, task.label, "passed", points, points, "", label)


def _written(notebook, task: Task) -> str:
    for cell in notebook.cells:
        if (classroom.marks(cell) or {}).get("grade_id") == f"{task.label}-discussion":
            return "a written answer" if cell.source.strip() != classroom.TEXT_STUB else "left blank"
    return "the written answer's cell is missing"


def grade(paths: list[Path], timeout: float = DEFAULT_TIMEOUT, exercises_only: bool = False,
          profile: str = "tiny", show=print, workers: int | None = None, unsafe_no_sandbox: bool = False,
          seed: int | None = None) -> list[Mark]:
    """Grade every notebook under ``paths``, ``workers`` at a time; ``show`` receives each notebook's
    marks as text. ``seed`` fixes the hidden inputs (default: drawn afresh)."""
    notebooks = notebooks_in(paths)
    isolation = None if unsafe_no_sandbox else sandbox.bubblewrap()
    if isolation is None and not unsafe_no_sandbox:
        raise RuntimeError("no working bubblewrap (bwrap) here, so submissions cannot be graded apart from "
                           "each other and from your files: install Debian's bubblewrap (make setup does), grade "
                           "inside one container per submission (see the teachers' page), or pass "
                           "--unsafe-no-sandbox to grade without isolation")
    os.environ["SEPBOOK_PROFILE"] = profile
    seed = secrets.randbelow(2 ** 31) if seed is None else seed
    pages = book_tasks()
    bases = [p if p.is_dir() else p.parent for p in paths]

    def one(path: Path) -> list[Mark]:
        base = next((b for b in bases if path.is_relative_to(b)), path.parent)
        name = str(path.relative_to(base)) if path != base else path.name
        rows = grade_notebook(path, name, timeout, exercises_only, seed, isolation, pages)
        show(as_text(rows))
        return rows

    workers = workers or max(1, min(len(notebooks), os.cpu_count() or 1))
    show(f"{len(notebooks)} notebook(s), {workers} at a time, isolation: "
         f"{'bubblewrap' if isolation else 'none (--unsafe-no-sandbox)'}; hidden inputs from seed {seed} "
         f"(--seed {seed} repeats this run)")
    with ThreadPoolExecutor(workers) as pool:
        return [mark for rows in pool.map(one, notebooks) for mark in rows]


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
    """One row per mark: notebook, exercise, status, points, max_points, message, isolation."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(Mark.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(m) for m in marks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sepbook.classroom.grade", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="notebooks or class folders")
    parser.add_argument("--csv", type=Path, help="write every mark to this CSV file")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds allowed per notebook (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--exercises-only", action="store_true",
                        help="run only the set-up cell and the answer cells")
    parser.add_argument("--workers", type=int, help="notebooks graded at once (default: one per core)")
    parser.add_argument("--seed", type=int, help="the hidden inputs' seed, to repeat a grading run exactly")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run submissions without bubblewrap: they see your files and each other")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    try:
        marks = grade(args.paths, args.timeout, args.exercises_only, workers=args.workers,
                      unsafe_no_sandbox=args.unsafe_no_sandbox, seed=args.seed)
    except (FileNotFoundError, RuntimeError) as error:
        parser.error(str(error))
    if args.csv:
        write_csv(marks, args.csv)
        print(f"marks written to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
