"""The chapters as assignments: nbgrader's cell marks, the exercise list and the student editions.

Every exercise in a chapter notebook is marked the way ``nbgrader`` reads it
(``metadata.nbgrader``, schema 3), so a teacher can hand it out with ``nbgrader generate_assignment``
and grade it with ``nbgrader autograde``, or do the same without nbgrader:

- an **answer cell** (``<label>-answer``, a solution cell) holds the student's function. Its body
  lies between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; the book executes the solution, so
  every build checks it, and leaves the cell's source out of the HTML;
- a **check cell** (``<label>-check``, graded and locked) calls the ``sepbook.classroom.exercises`` checker,
  which raises ``AssertionError`` with what is wrong;
- a **discussion cell** (``<label>-discussion``, a graded markdown solution) holds the written
  answer in a ``{solution}`` block, which the published book leaves out (``hide_solutions`` in
  ``_config.yml``); a teacher grades it by hand.

``python -m sepbook.classroom [OUT]`` (``make student``) writes the student editions: every
notebook of the table of contents with solutions replaced by stubs and outputs cleared.
``python -m sepbook.classroom --teacher [OUT]`` (``make teacher``) writes the teacher's edition:
the same notebooks with their solutions, and each written answer followed by its rubric
(``chapters/teachers/rubrics.yml``).
``python -m sepbook.classroom.grade`` grades them (:mod:`sepbook.classroom.grade`).

Chapter: for teachers
"""
from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = 'raise NotImplementedError("your answer here")'
TEXT_STUB = "*Your answer here.*"
KINDS = ("answer", "check", "discussion")
#: The rubrics of the written answers, relative to the book's root.
RUBRICS = Path("chapters/teachers/rubrics.yml")
LEVELS = ("full", "half", "none")
#: The tags that keep an answer cell's code out of the book's HTML (a student must see the stub).
HIDDEN = ("remove-input", "hide-input")


def marks(cell) -> dict | None:
    """The nbgrader marks of a cell, or None for an ordinary cell."""
    return cell.get("metadata", {}).get("nbgrader")


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook, from its marked cells."""

    label: str
    checked: bool  # has an auto-graded check cell
    discussed: bool  # has a hand-graded written answer
    points: int


def exercise_of(grade_id: str) -> tuple[str, str]:
    """``"ex-si-sdr-check"`` -> ``("ex-si-sdr", "check")``."""
    label, _, kind = grade_id.rpartition("-")
    if kind not in KINDS or not label:
        raise ValueError(f"grade_id {grade_id!r}: expected '<exercise label>-<{'|'.join(KINDS)}>'")
    return label, kind


def exercises_in(notebook) -> list[Exercise]:
    """The exercises of a notebook (an ``nbformat`` node), in page order."""
    found: dict[str, dict] = {}
    for cell in notebook.cells:
        if mark := marks(cell):
            label, kind = exercise_of(mark["grade_id"])
            entry = found.setdefault(label, {"kinds": set(), "points": 0})
            entry["kinds"].add(kind)
            entry["points"] += int(mark.get("points", 0)) if mark.get("grade") else 0
    return [Exercise(label, "check" in e["kinds"], "discussion" in e["kinds"], e["points"])
            for label, e in found.items()]


def exercise_rows(root: Path = ROOT) -> list[dict]:
    """One row per exercise of the book: page, label, how it is graded, points, solution lines."""
    rows = []
    for path in book_notebooks(root):
        notebook = nbformat.read(path, as_version=4)
        lines = {}
        for cell in notebook.cells:
            mark = marks(cell)
            if mark and mark.get("solution") and cell.cell_type == "code":
                region = cell.source.split(BEGIN, 1)[1].split(END, 1)[0]
                lines[exercise_of(mark["grade_id"])[0]] = sum(bool(x.strip()) for x in region.splitlines())
        for exercise in exercises_in(notebook):
            rows.append({"page": str(path.relative_to(root).with_suffix("")), "label": exercise.label,
                         "checked": exercise.checked, "discussed": exercise.discussed,
                         "points": exercise.points, "solution_lines": lines.get(exercise.label)})
    return rows


def book_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks of the table of contents, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [chapter["file"] for part in toc.get("parts", []) for chapter in part["chapters"]]
    return [root / f"{name}.ipynb" for name in files if (root / f"{name}.ipynb").is_file()]


def clear_solution(source: str, where: str) -> str:
    """Replace every ``### BEGIN/END SOLUTION`` region of a code cell by the stub, indented alike."""
    out, inside = [], False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            if inside:
                raise ValueError(f"{where}: a second {BEGIN!r} before {END!r}")
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + CODE_STUB)
        elif line.strip() == END:
            if not inside:
                raise ValueError(f"{where}: {END!r} without {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN!r} is never closed by {END!r}")
    return "\n".join(out)


def student_edition(notebook, name: str = "notebook"):
    """A copy of ``notebook`` with solutions replaced by stubs, outputs cleared, answers shown."""
    student = copy.deepcopy(notebook)
    for index, cell in enumerate(student.cells):
        mark = marks(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if not (mark and mark.get("solution")):
            continue
        where = f"{name}, cell {index} ({mark['grade_id']})"
        if cell.cell_type == "code":
            if BEGIN not in cell.source:
                raise ValueError(f"{where}: a solution cell without a {BEGIN!r} region")
            cell.source = clear_solution(cell.source, where)
            tags = [t for t in cell.metadata.get("tags", []) if t not in HIDDEN]
            cell.metadata["tags"] = tags
            if not tags:
                del cell.metadata["tags"]
        else:
            cell.source = TEXT_STUB
    return student


def rubrics(root: Path = ROOT) -> dict[str, dict[str, str]]:
    """The rubric of every written answer, by exercise label: ``{'full': ..., 'half': ..., 'none': ...}``."""
    path = root / RUBRICS
    found = yaml.safe_load(path.read_text()) or {}
    for label, rubric in found.items():
        if set(rubric) != set(LEVELS):
            raise ValueError(f"{path}: the rubric of {label} has {sorted(rubric)}; expected {list(LEVELS)}")
    return found


def teacher_edition(notebook, rubric_of: dict[str, dict[str, str]], name: str = "notebook"):
    """A copy of ``notebook`` with its solutions, each written answer followed by its rubric."""
    teacher = copy.deepcopy(notebook)
    cells = []
    for cell in teacher.cells:
        cells.append(cell)
        mark = marks(cell)
        if not mark or exercise_of(mark["grade_id"])[1] != "discussion":
            continue
        label = exercise_of(mark["grade_id"])[0]
        if label not in rubric_of:
            raise ValueError(f"{name}: the written answer {label} has no rubric in {RUBRICS}")
        lines = [f"- **{level}**: {rubric_of[label][level]}" for level in LEVELS]
        cells.append(nbformat.v4.new_markdown_cell(f"**Rubric for {label}** (one point)\n\n" + "\n".join(lines)))
    teacher.cells = cells
    return teacher


def write_student_editions(out: Path, root: Path = ROOT, teacher: bool = False) -> list[Path]:
    """Write the student edition (or, with ``teacher``, the teacher's edition) of every book notebook
    with exercises under ``out``."""
    rubric_of = rubrics(root) if teacher else {}
    written = []
    for path in book_notebooks(root):
        notebook = nbformat.read(path, as_version=4)
        if not exercises_in(notebook):
            continue
        target = out / path.relative_to(root / "chapters")
        target.parent.mkdir(parents=True, exist_ok=True)
        name = str(path.relative_to(root))
        edition = teacher_edition(notebook, rubric_of, name) if teacher else student_edition(notebook, name)
        nbformat.write(edition, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sepbook.classroom", description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default=None,
                        help="folder for the editions (default: _build/student, or _build/teacher)")
    parser.add_argument("--teacher", action="store_true",
                        help="write the teacher's edition: solutions kept, a rubric after each written answer")
    args = parser.parse_args(argv)
    out = Path(args.out or ROOT / "_build" / ("teacher" if args.teacher else "student"))
    for path in write_student_editions(out, teacher=args.teacher):
        print(path)

