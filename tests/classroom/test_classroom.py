"""The exercises as assignments: nbgrader marks and student editions (the grader: test_grade.py)."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import nbformat
import pytest

from sepbook import classroom
from sepbook.classroom import exercises

ROOT = classroom.ROOT
NOTEBOOKS = [p for p in classroom.book_notebooks() if "{exercise}" in p.read_text()]
NBGRADER_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


def _read(path: Path):
    return nbformat.read(path, as_version=4)


@pytest.fixture(scope="module")
def students(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    classroom.main([str(out)])
    return out


def _edition(students: Path, book_path: Path) -> Path:
    return students / book_path.relative_to(ROOT / "chapters")


def test_every_chapter_has_exercises():
    chapters = {p.parent.name for p in classroom.book_notebooks()} - {"glance", "teachers", "real_data"}  # reference pages, not lessons
    assert {p.parent.name for p in NOTEBOOKS} == chapters


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_is_marked_as_nbgrader_reads_it(path):
    notebook = _read(path)
    labels = {m for c in notebook.cells if c.cell_type == "markdown"
              for m in re.findall(r"\{exercise\}\n:label: (\S+)", c.source)}
    assert labels, f"{path.name} has no exercise"
    assert {e.label for e in classroom.exercises_in(notebook)} == labels
    ids = [classroom.marks(c)["grade_id"] for c in notebook.cells if classroom.marks(c)]
    assert len(ids) == len(set(ids)), f"{path.name}: repeated grade_id"
    for cell in notebook.cells:
        mark = classroom.marks(cell)
        if not mark:
            continue
        assert NBGRADER_KEYS <= set(mark) and mark["schema_version"] == 3, mark
        label, kind = classroom.exercise_of(mark["grade_id"])
        if mark["grade"]:
            assert mark["points"] > 0, mark
        if kind == "answer":
            assert cell.cell_type == "code" and mark["solution"] and not mark["grade"]
            assert cell.source.count(classroom.BEGIN) == 1 == cell.source.count(classroom.END)
            assert "remove-input" in cell.metadata.get("tags", []), "the HTML leaves the solution out"
        elif kind == "check":
            assert cell.cell_type == "code" and mark["grade"] and mark["locked"] and not mark["solution"]
            (checker,) = re.findall(r"\b(check_\w+)\(", cell.source)
            assert callable(getattr(exercises, checker)), checker
        else:
            assert cell.cell_type == "markdown" and mark["solution"] and mark["grade"]
            assert re.match(r"`{3,4}\{solution\} " + re.escape(label), cell.source)


def _solution_lines(notebook) -> set[str]:
    """Lines that only the solutions hold."""
    secret, public = set(), set()
    for cell in notebook.cells:
        mark = classroom.marks(cell)
        lines = {line.strip() for line in cell.source.splitlines() if len(line.strip()) > 3}
        if mark and mark["solution"] and cell.cell_type == "code":
            region = cell.source.split(classroom.BEGIN)[1].split(classroom.END)[0]
            secret |= {line.strip() for line in region.splitlines() if len(line.strip()) > 3}
        elif mark and mark["solution"]:
            secret |= {line for line in lines if not line.startswith((":class:", "```"))}
        else:
            public |= lines
    return secret - public


def test_student_editions_hold_no_solution_text_and_no_outputs(students):
    for path in NOTEBOOKS:
        book = _read(path)
        edition = _read(_edition(students, path))
        text = "\n".join(c.source for c in edition.cells)
        leaked = [line for line in _solution_lines(book) if line in text]
        assert not leaked, f"{path.name}: solution text in the student edition: {leaked[:3]}"
        assert classroom.BEGIN not in text and classroom.END not in text
        assert all(c.outputs == [] and c.execution_count is None for c in edition.cells if c.cell_type == "code")
        assert [e.label for e in classroom.exercises_in(edition)] == [e.label for e in classroom.exercises_in(book)]
        assert len(edition.cells) == len(book.cells)


def test_every_stub_fails_its_check_with_your_answer_here(students):
    stubs = 0
    for path in NOTEBOOKS:
        namespace: dict = {}
        for cell in _read(_edition(students, path)).cells:
            mark = classroom.marks(cell)
            if not mark or cell.cell_type != "code":
                continue
            if mark["solution"]:
                tags = cell.metadata.get("tags", [])
                assert classroom.CODE_STUB in cell.source and not set(tags) & set(classroom.HIDDEN)
                exec(cell.source, namespace)
            else:
                with pytest.raises(AssertionError, match="NotImplementedError: your answer here"):
                    exec(cell.source, namespace)
                stubs += 1
    assert stubs >= 2 * 5, "two checked exercises per paper chapter"


def test_the_book_solutions_pass_their_checks():
    for path in NOTEBOOKS:
        namespace: dict = {}
        for cell in _read(path).cells:
            mark = classroom.marks(cell)
            if mark and cell.cell_type == "code":
                exec(cell.source, namespace)  # a check raises on a wrong solution


def test_clear_solution_keeps_the_signature_and_names_a_broken_region():
    source = "import torch\n\ndef f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert classroom.clear_solution(source, "here") == f"import torch\n\ndef f(x):\n    {classroom.CODE_STUB}"
    with pytest.raises(ValueError, match="nb.ipynb, cell 3.*never closed"):
        classroom.clear_solution("### BEGIN SOLUTION\nx = 1", "nb.ipynb, cell 3")
    with pytest.raises(ValueError, match="without"):
        classroom.clear_solution("x = 1\n### END SOLUTION", "here")
    with pytest.raises(ValueError, match="grade_id 'ex-x-solution'"):
        classroom.exercise_of("ex-x-solution")


def test_make_student_runs_the_classroom_module():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^student:.*\n\t(.+)$", makefile, re.M)
    assert recipe and "-m sepbook.classroom $(STUDENT_DIR)" in recipe.group(1)


# ----------------------------------------------------------------------------- the teacher's edition


def test_every_written_answer_has_a_rubric_and_every_rubric_an_answer():
    written = {r["label"] for r in classroom.exercise_rows() if r["discussed"]}
    assert set(classroom.rubrics()) == written


def test_the_teachers_edition_keeps_the_solutions_and_adds_each_rubric_after_its_answer(tmp_path):
    classroom.main(["--teacher", str(tmp_path)])
    rubric_of = classroom.rubrics()
    for path in NOTEBOOKS:
        book, edition = _read(path), _read(tmp_path / path.relative_to(ROOT / "chapters"))
        written = [e for e in classroom.exercises_in(book) if any(
            classroom.exercise_of(classroom.marks(c)["grade_id"]) == (e.label, "discussion")
            for c in book.cells if classroom.marks(c))]
        assert len(edition.cells) == len(book.cells) + len(written), path.name
        for before, after in zip(edition.cells, edition.cells[1:]):
            mark = classroom.marks(before)
            if mark and classroom.exercise_of(mark["grade_id"])[1] == "discussion":
                label = classroom.exercise_of(mark["grade_id"])[0]
                assert after.source.startswith(f"**Rubric for {label}**")
                assert all(rubric_of[label][level] in after.source for level in classroom.LEVELS)
        solutions = [c.source for c in book.cells if (classroom.marks(c) or {}).get("solution")]
        assert all(s in [c.source for c in edition.cells] for s in solutions), path.name


def test_a_written_answer_without_a_rubric_is_named(tmp_path):
    notebook = _read(NOTEBOOKS[0])
    with pytest.raises(ValueError, match=r"the written answer ex-\S+ has no rubric"):
        classroom.teacher_edition(notebook, {}, "page")


def test_student_editions_hold_no_rubric(students):
    text = "\n".join(c.source for p in NOTEBOOKS for c in _read(_edition(students, p)).cells)
    assert "**Rubric for" not in text
    assert not any(r["full"][:60] in text for r in classroom.rubrics().values())


SELF_CHECKED = ["foundations/stft_and_masks", "foundations/first_separator", "foundations/evaluation_and_statistics",
                "adversarial/adversarial_separation", "transcription/score_supervision", "activity/activity_aware",
                "metatasnet/meta_tasnet", "transfer/transfer_learning"]


@pytest.mark.parametrize("page", SELF_CHECKED)
def test_a_reader_alone_can_check_themselves_on_every_lesson(page):
    """A "Check yourself" section with at least three questions, each followed by its answer in a
    dropdown, before the graded exercises (whose solutions the published book leaves out)."""
    cells = _read(ROOT / "chapters" / f"{page}.ipynb").cells
    sources = ["".join(c.source) for c in cells]
    [check] = [k for k, s in enumerate(sources) if s.startswith("## Check yourself")]
    exercises = [k for k, s in enumerate(sources) if s.startswith("## Exercises")]
    assert not exercises or check < exercises[0]
    text = sources[check]
    questions = re.findall(r"^\*\*(\d+)\.\*\*", text, flags=re.MULTILINE)
    assert len(questions) >= 3 and questions == [str(n) for n in range(1, len(questions) + 1)]
    assert text.count("```{dropdown} Answer") == len(questions)


def _shown(path: Path) -> set[str]:
    """The names whose source a page prints with ``show_source`` (the last part of a dotted name)."""
    cells = [c for c in _read(path).cells if c.cell_type == "code"]
    return {name.split(".")[-1] for c in cells for name in re.findall(r"show_source\(([\w.]+)", c.source)}


def _references(path: Path) -> dict[str, set[str]]:
    """Each code exercise of a page -> what its answer must not be copied from: the function the
    student writes (``my_ratio_mask`` asks for a ``ratio_mask``) and the package names its checker
    compares the answer with."""
    found = {}
    cells = _read(path).cells
    for cell in cells:
        label = (classroom.marks(cell) or {}).get("grade_id", "")
        if cell.cell_type == "code" and label.endswith("-answer"):
            found.setdefault(label.removesuffix("-answer"), set()).update(re.findall(r"def my_(\w+)\(", cell.source))
        if cell.cell_type == "code" and label.endswith("-check"):
            for checker in re.findall(r"\b(check_\w+)\(", cell.source):
                source = inspect.getsource(getattr(exercises, checker))
                imported = re.findall(r"from sepbook[\w.]* import (\([^)]*\)|[^\n]+)", source)
                names = [n.strip(" ()\n").split(" as ")[0] for group in imported for n in group.split(",")]
                found.setdefault(label.removesuffix("-check"), set()).update(n for n in names if n)
    return found


def _printed(names: set[str], shown: set[str]) -> set[str]:
    return {s for s in shown for n in names if s == n or s.endswith(n)}


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if _references(p)], ids=lambda p: p.name)
def test_a_code_exercise_whose_answer_no_page_nearby_prints(path):
    """At least one code exercise per page asks for something neither its page nor the page before
    prints with show_source: the student works from the equation, not from the code above."""
    order = classroom.book_notebooks()
    before = order[order.index(path) - 1] if order.index(path) else None
    shown = _shown(path) | (_shown(before) if before else set())
    unseen = [label for label, names in _references(path).items() if names and not _printed(names, shown)]
    assert unseen, f"{path.name}: every code exercise's reference is printed nearby: {_references(path)} vs {shown}"


def test_the_transcription_page_prints_neither_the_clip_mixture_loss_nor_atl():
    shown = _shown(ROOT / "chapters/transcription/score_supervision.ipynb")
    assert not shown & {"mixture_loss", "interference_loss"}
