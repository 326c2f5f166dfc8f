"""The grader: hidden inputs, a judge out of the submission's reach, every submission alone.

The hostile class below is what a class of students who want the points without the work would
hand in. CI runs it with bubblewrap (``SEPBOOK_REQUIRE_SANDBOX=1`` turns a missing sandbox into a
failure instead of a skip).
"""
from __future__ import annotations

import copy
import csv
import hashlib
import os
import uuid
from pathlib import Path

import nbformat
import pytest
import torch

from sepbook import classroom
from sepbook.classroom import exercises, grade, sandbox

ROOT = classroom.ROOT
PAGE = ROOT / "chapters/foundations/first_separator.ipynb"
LABEL = "ex-si-sdr"


def _needs_sandbox():
    if sandbox.bubblewrap() is None:
        if os.environ.get("SEPBOOK_REQUIRE_SANDBOX"):
            pytest.fail("bubblewrap is required here (SEPBOOK_REQUIRE_SANDBOX) but bwrap cannot run")
        pytest.skip("bubblewrap (bwrap) cannot make a sandbox on this machine")


def _answer_of(notebook, label: str) -> str:
    return next(c.source for c in notebook.cells if (classroom.marks(c) or {}).get("grade_id") == f"{label}-answer")


def _submit(folder: Path, name: str, answer: str | None = None, edit=None) -> Path:
    """The student edition of the first Separator page with ``answer`` in its answer cell."""
    notebook = classroom.student_edition(nbformat.read(PAGE, as_version=4))
    for cell in notebook.cells:
        if answer is not None and (classroom.marks(cell) or {}).get("grade_id") == f"{LABEL}-answer":
            cell.source = answer
    if edit:
        edit(notebook)
    path = folder / name / PAGE.name
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    return path


# ----------------------------------------------------------------------------- hidden inputs


@pytest.mark.parametrize("task", [t for tasks in grade.book_tasks().values() for t in tasks if t.checker],
                         ids=lambda t: t.label)
def test_the_book_answers_pass_under_hidden_inputs_and_stubs_fail(task):
    page = next(p for p in classroom.book_notebooks() if task in grade.book_tasks().get(p.name, []))
    namespace: dict = {}
    exec(_answer_of(nbformat.read(page, as_version=4), task.label), namespace)
    checker = getattr(exercises, task.checker)
    for seed in torch.randint(0, 2 ** 31, (8,)).tolist():
        checker(namespace[task.function], seed=seed, reveal=False)
    namespace.clear()
    exec(classroom.clear_solution(_answer_of(nbformat.read(page, as_version=4), task.label), "here"), namespace)
    with pytest.raises(AssertionError, match="your answer here"):
        checker(namespace[task.function], seed=1, reveal=False)


def _seed_zero_answer() -> torch.Tensor:
    """The SI-SDR values of the self-study check's inputs (seed 0), as a student copies them from a
    failure message."""
    from sepbook.metrics import si_sdr

    seen = []

    def record(estimate, reference):
        seen.append(si_sdr(estimate, reference))
        return seen[-1]

    exercises.check_si_sdr(record, seed=0)
    return seen[0]


def test_a_constant_that_matches_one_seed_fails_under_another():
    constant = _seed_zero_answer()
    with pytest.raises(AssertionError) as failure:
        exercises.check_si_sdr(lambda e, r: constant.clone(), seed=12345, reveal=False)
    assert not any(f"{v:.2f}" in str(failure.value) for v in constant.flatten().tolist())


def test_grading_messages_say_what_is_wrong_without_the_expected_values():
    from sepbook.metrics import si_sdr

    def halved(estimate, reference):
        return si_sdr(estimate, reference) / 2

    def off(estimate, reference):
        return si_sdr(estimate, reference) + 0.7

    with pytest.raises(AssertionError, match="factor of 2"):
        exercises.check_si_sdr(halved, seed=7, reveal=False)
    with pytest.raises(AssertionError) as hidden:
        exercises.check_si_sdr(off, seed=7, reveal=False)
    with pytest.raises(AssertionError) as shown:
        exercises.check_si_sdr(off, seed=7)
    assert "expected" in str(shown.value) and "dB" in str(shown.value)
    assert not any(ch.isdigit() for ch in str(hidden.value).replace("10 log10", "")), hidden.value


# ----------------------------------------------------------------------------- the hostile class


def _fingerprint(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A class folder of hostile and broken submissions, graded once in the sandbox."""
    _needs_sandbox()
    folder = tmp_path_factory.mktemp("class")
    book = nbformat.read(PAGE, as_version=4)
    right = _answer_of(book, LABEL)
    copied = _seed_zero_answer().tolist()
    marker = f"/tmp/sepbook-snooped-{uuid.uuid4().hex}"
    snoop = (
        "import glob, os, pathlib\n"
        f"classmates = glob.glob({str(folder)!r} + '/*/*.ipynb')\n"
        "for path in classmates:\n"
        "    try:\n"
        "        pathlib.Path(path).write_text('overwritten')\n"
        "    except OSError:\n"
        "        pass\n"
        "for outside in (" + f"{str(folder / 'SNOOPED')!r}, {marker!r}, os.path.expanduser('~/../SNOOPED')" + "):\n"
        "    try:\n"
        "        pathlib.Path(outside).write_text(repr(classmates))\n"
        "    except OSError:\n"
        "        pass\n" + right)

    def duplicate_check(notebook):
        check = next(c for c in notebook.cells if (classroom.marks(c) or {}).get("grade_id") == f"{LABEL}-check")
        notebook.cells.insert(notebook.cells.index(check), copy.deepcopy(check))

    def strip_answer_marks(notebook):
        for cell in notebook.cells:
            if (classroom.marks(cell) or {}).get("grade_id") == f"{LABEL}-answer":
                del cell.metadata["nbgrader"]

    def edit_check(notebook):
        for cell in notebook.cells:
            mark = classroom.marks(cell) or {}
            if mark.get("grade_id") == f"{LABEL}-check":
                cell.source, mark["points"], mark["locked"] = "print('correct')", 100, False

    zeros = "import torch\n\ndef my_si_sdr(estimate, reference):\n    return torch.zeros(estimate.shape[:-1])\n"
    _submit(folder, "right", right)
    _submit(folder, "blank")
    _submit(folder, "halved", right.replace("return 10 *", "return 5 *"))
    _submit(folder, "constant",
            f"import torch\n\ndef my_si_sdr(estimate, reference):\n    return torch.tensor({copied})\n")
    _submit(folder, "judge", "import sepbook.classroom.exercises as ex\nimport sepbook.metrics as metrics\n"
            "ex.check_si_sdr = lambda *a, **k: 'correct'\nmetrics.si_sdr = lambda e, r: e[..., 0] * 0\n" + zeros)
    _submit(folder, "snoop", snoop)
    _submit(folder, "loop", "while True:\n    pass\n")
    _submit(folder, "flood", "import sys\nwhile True:\n    sys.stdout.write('x' * 1_000_000)\n")
    _submit(folder, "forks", "import os, time\nwhile True:\n    os.fork()\n")
    _submit(folder, "memory", "hoard = bytearray(64 << 30)\n" + right)
    _submit(folder, "killed", "import os, signal\n\ndef my_si_sdr(estimate, reference):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    _submit(folder, "duplicated", right, duplicate_check)
    _submit(folder, "unmarked", right, strip_answer_marks)
    _submit(folder, "edited", zeros, edit_check)
    (folder / "garbled").mkdir()
    (folder / "garbled" / PAGE.name).write_text("{ this is not a notebook")
    before = _fingerprint(folder)
    marks = grade.grade([folder], timeout=40, exercises_only=True, show=lambda text: None, workers=2)
    return {"folder": folder, "marks": marks, "before": before, "marker": marker}


def _rows(hostile, student):
    rows = [m for m in hostile["marks"] if m.notebook == f"{student}/{PAGE.name}"]
    return rows[0], {m.exercise: m for m in rows[1:]}


@pytest.mark.slow
@pytest.mark.parametrize("student,points", [
    ("right", 1), ("duplicated", 1), ("unmarked", 1), ("snoop", 1),
    ("blank", 0), ("halved", 0), ("constant", 0), ("judge", 0), ("edited", 0),
    ("loop", 0), ("flood", 0), ("forks", 0), ("memory", 0), ("killed", 0)])
def test_the_hostile_class_gets_exactly_its_marks(hostile, student, points):
    notebook, exercise = _rows(hostile, student)
    assert exercise[LABEL].points == points, (notebook, exercise[LABEL])
    assert exercise[LABEL].max_points == 1, "the points come from the book, not the submission"
    assert notebook.isolation == "bubblewrap"


@pytest.mark.slow
def test_the_hostile_class_rows_say_what_happened(hostile):
    row = {s: _rows(hostile, s) for s in ("loop", "flood", "killed", "duplicated", "unmarked", "blank", "halved")}
    assert row["loop"][0].status == "timed out" and row["loop"][1][LABEL].status == "not run"
    assert row["flood"][0].status == "stopped" and "MB of output" in row["flood"][0].message
    assert row["killed"][0].status == "stopped" and "SIGKILL" in row["killed"][0].message
    assert "appears 2 times" in row["duplicated"][0].message
    assert "lost its grade_id" in row["unmarked"][0].message
    assert "your answer here" in row["blank"][1][LABEL].message
    assert "factor of 2" in row["halved"][1][LABEL].message
    garbled = [m for m in hostile["marks"] if m.notebook.startswith("garbled/")]
    assert [(m.status, m.exercise) for m in garbled] == [("malformed", "(notebook)")]
    graded = {m.notebook.split("/")[0] for m in hostile["marks"]}
    assert len(graded) == 15, "every submission gets its rows"
    memory = _rows(hostile, "memory")[0]
    assert memory.status == "errors" and "MemoryError" in memory.message


@pytest.mark.slow
def test_the_snooping_submission_saw_no_classmate_and_wrote_nothing_outside(hostile):
    assert _fingerprint(hostile["folder"]) == hostile["before"]
    assert not Path(hostile["marker"]).exists()


@pytest.mark.slow
def test_the_marks_file_records_the_isolation(hostile, tmp_path):
    grade.write_csv(hostile["marks"], tmp_path / "marks.csv")
    rows = list(csv.DictReader(open(tmp_path / "marks.csv")))
    assert len(rows) == len(hostile["marks"])
    assert {r["isolation"] for r in rows} == {"bubblewrap"}


# ----------------------------------------------------------------------------- the book's own answers


@pytest.mark.slow
def test_every_book_answer_passes_across_the_wall():
    """The book's pages hold their solutions: each checker, run here, calls them in the sandbox
    (modules, gradients and frozen parameters cross the wall as data)."""
    _needs_sandbox()
    pages = [p for p in classroom.book_notebooks() if p.name in grade.book_tasks()]
    marks = grade.grade(pages, timeout=120, exercises_only=True, show=lambda text: None, workers=2)
    checked = [m for m in marks if m.exercise != "(notebook)" and m.status != "by hand"]
    assert len(checked) == sum(t.checker is not None for ts in grade.book_tasks().values() for t in ts)
    assert all(m.status == "passed" for m in checked), [m for m in checked if m.status != "passed"]


def test_values_gradients_and_module_changes_cross_the_wall_as_the_student_left_them(tmp_path):
    _needs_sandbox()
    cells = [(0, "import torch\n"
                 "def live(x, scale):\n    return (x * scale).sum()\n"
                 "def cut(x):\n    return (x * 2).sum().detach()\n"
                 "def freeze(layer):\n    layer.weight.requires_grad_(False)\n"
                 "    layer(torch.ones(1, 3)).sum().backward()\n    return 7\n"
                 "def as_list(x):\n    return x.tolist()\n"
                 "def broken(x):\n    raise ValueError('no')\n")]
    folder = tmp_path / "submission"
    folder.mkdir()
    if os.geteuid() == 0:
        os.chown(folder, sandbox.NOBODY, sandbox.NOBODY)
    wall = grade.Wall(folder, cells, timeout=60, isolation=sandbox.bubblewrap())
    try:
        assert wall.errors == []
        x = torch.randn(4, requires_grad=True)
        value = grade.Remote(wall, "live")(x, 3.0)
        value.backward()
        assert torch.allclose(value.detach(), (3 * x).sum().detach()) and torch.allclose(x.grad, torch.full((4,), 3.0))
        assert not grade.Remote(wall, "cut")(x).requires_grad
        layer = torch.nn.Linear(3, 2)
        assert grade.Remote(wall, "freeze")(layer) == 7
        assert not layer.weight.requires_grad and layer.weight.grad is None
        assert torch.equal(layer.bias.grad, torch.ones(2)), "the gradient the student left behind comes back"
        assert type(grade.Remote(wall, "as_list")(x)).__name__ == "list"
        with pytest.raises(Exception, match="no") as raised:
            grade.Remote(wall, "broken")(x)
        assert type(raised.value).__name__ == "ValueError"
        with pytest.raises(NameError, match="missing"):
            grade.Remote(wall, "missing")(x)
    finally:
        wall.close()


def test_a_submission_cannot_read_the_book_s_solutions(tmp_path):
    """Inside the wall the chapters' results are readable (a page run in full needs them), the
    chapter notebooks, which hold the solutions, are not."""
    _needs_sandbox()
    folder = tmp_path / "submission"
    folder.mkdir()
    if os.geteuid() == 0:
        os.chown(folder, sandbox.NOBODY, sandbox.NOBODY)
    probe = (f"import os, torch\nbook = {str(PAGE)!r}\nresults = {str(ROOT / 'chapters/foundations/results')!r}\n"
             "def seen():\n    return torch.tensor([os.path.exists(book), os.path.isdir(results)])\n")
    wall = grade.Wall(folder, [(0, probe)], timeout=60, isolation=sandbox.bubblewrap())
    try:
        assert grade.Remote(wall, "seen")().tolist() == [False, True]
    finally:
        wall.close()


def test_without_a_sandbox_only_the_explicit_flag_grades(monkeypatch, tmp_path, capsys):
    path = _submit(tmp_path, "right", _answer_of(nbformat.read(PAGE, as_version=4), LABEL))
    monkeypatch.setattr(sandbox, "bubblewrap", lambda: None)
    with pytest.raises(RuntimeError, match="--unsafe-no-sandbox"):
        grade.grade([path], timeout=60, exercises_only=True, show=lambda text: None)
    with pytest.raises(SystemExit):
        grade.main([str(path), "--exercises-only"])
    assert "bubblewrap" in capsys.readouterr().err
    marks = grade.grade([path], timeout=60, exercises_only=True, show=lambda text: None, unsafe_no_sandbox=True)
    assert marks[0].isolation == "none (--unsafe-no-sandbox)"
    assert [m.points for m in marks if m.exercise == LABEL] == [1.0]


def test_grader_command_line_names_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path / "missing.ipynb")])
    assert "missing.ipynb" in capsys.readouterr().err
    for flag, value in (("--timeout", "0"), ("--workers", "0")):
        with pytest.raises(SystemExit):
            grade.main([str(PAGE), flag, value])
        assert flag in capsys.readouterr().err


@pytest.mark.slow
def test_grader_passes_the_book_notebook_run_in_full():
    _needs_sandbox()
    page = ROOT / "chapters/foundations/stft_and_masks.ipynb"
    marks = grade.grade([page], timeout=400, show=lambda text: None)
    assert marks[0].status == "ran", marks[0]
    checked = [m for m in marks if m.exercise == "ex-ratio-mask"]
    assert [(m.status, m.points) for m in checked] == [("passed", 1.0)]
    assert ("ex-oracle-resolution", "by hand") in {(m.exercise, m.status) for m in marks}
