#!/usr/bin/env python3
"""The Colab install check: does the book still work where most readers run it?

A reader on Google Colab meets the book in a runtime that already holds its own numpy, scipy, librosa,
matplotlib, ... and gets ``sepbook`` from the first code cell of a notebook (``%pip install`` from the
repository's git URL). ``pyproject.toml`` declares ranges so that Colab keeps its own versions, and
``make book`` never sees them: it installs the exact versions of ``requirements.lock``. So a teaching book
breaks on Colab by dependency drift (a helper package missing, numpy 2, a renamed library function)
while every local build stays green. This check rebuilds what a Colab reader has, for two dependency sets:

- ``colab``: the Colab runtime pinned in ``.ci/colab-constraints.txt`` (numpy 2.1, librosa 0.11, ...);
- ``newest``: the newest release of every dependency, so drift shows the day a release lands.

For each set it

1. builds a fresh venv in ``.venv-colab/SET`` on this machine's Python (3.11: Colab has 3.12 or newer, but
   the only torch wheel on this disk is for 3.11), installs torch first (the CPU wheel pinned in
   ``requirements.lock``; a plain ``torch`` requirement would download a CUDA build of several GB), then
   the packages a Colab runtime already holds (``RUNTIME``), and neither sepbook nor its less common
   dependencies (musdb, museval, mir_eval, pretty_midi, ...); the next set's venv is built in the
   background while this one runs its pages;
2. executes a real notebook top to bottom in a Jupyter kernel of that venv, with ``SEPBOOK_PROFILE=tiny``,
   in an empty working folder (Colab's ``/content``), its first cell read from the notebook file with the
   git URL replaced by a snapshot of this checkout; it asserts that sepbook was missing before and is
   installed after, that the first cell brought everything the page needs and changed none of the
   runtime's own packages (on Colab that would need a runtime restart), and that ``pip check`` is clean;
   then it executes the results-at-a-glance page, which reads every chapter's committed results: an
   installed sepbook has no ``chapters/`` and fetches them from the repository's archive (here a
   tarball of the snapshot, through ``$SEPBOOK_RESULTS_URL``);
3. runs the fast test subset (``pytest -m "not slow"``) with that venv's Python;
4. on a failure, prints the packages whose versions differ from ``requirements.lock`` and, when tests
   failed, puts back the lock's version of one differing package at a time and reruns the failing tests,
   to name the package that drifted.

Run it with ``make colab-check`` or ``python3 .ci/colab.py [--set colab|newest]``; ``--help`` lists the
options. It exits non-zero if any set fails. A passing set's venv is removed unless ``--keep``; a failing
one is kept for a look.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".venv-colab"
CONSTRAINTS = ROOT / ".ci" / "colab-constraints.txt"
LOCK = ROOT / "requirements.lock"
NOTEBOOK = "chapters/foundations/stft_and_masks.ipynb"
# A page that reads every chapter's committed results: an installed sepbook has no chapters/ and
# fetches them from the repository's archive, here a tarball of the snapshot in GitHub's layout.
RESULTS_NOTEBOOK = "chapters/glance/results_at_a_glance.ipynb"
ARCHIVE = WORK / "repository.tar.gz"
KERNEL = "colab-check"
SETS = {"colab": "a Colab runtime, as pinned in .ci/colab-constraints.txt",
        "newest": "the newest release of every dependency"}
#: What a Colab runtime already holds, of what the book and this check use; installed before the first
#: cell runs. The first cell has to bring sepbook and the rest of its dependencies, as it does on Colab.
RUNTIME = ("numpy", "scipy", "librosa", "numba", "soundfile", "matplotlib", "pandas", "ipywidgets",
           "ipython", "ipykernel", "nbclient", "nbformat", "pytest", "pyyaml", "tqdm")
SHOWN = ("torch", "numpy", "scipy", "librosa", "matplotlib", "pandas", "ipywidgets")
FAST = ("-m", "not slow")
BISECT_PACKAGES = 8      # at most this many packages are tried one at a time ...
BISECT_SECONDS = 300     # ... and for at most this long
CELL_TIMEOUT = 600       # seconds for one notebook cell
FAST_BUDGET = 240        # seconds the fast subset should take; past that, mark the slowest tests slow


class Failed(Exception):
    """One step of a set failed; the message says what and why."""


@dataclass
class Outcome:
    name: str
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    drift: list[tuple[str, str, str]] = field(default_factory=list)
    culprits: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        say(f"[{self.name}] FAILED: {message}")


#: Lines this machine's pip set-up adds to every install (index folders it lists but lacks), the kernel's
#: warning that it talks over loopback TCP, and colours.
NOISE = re.compile(r"^.*WARNING: Location '[^']*' is ignored: it is neither a file nor a directory\..*\n?"
                   r"|^\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption.*\n?"
                   r"|\x1b\[[0-9;]*m", re.MULTILINE)


def say(text: str = "") -> None:
    print(text, flush=True)


def denoise(text: str) -> str:
    return NOISE.sub("", text)


def heading(text: str) -> None:
    say(f"\n=== {text}")


def run(cmd: list, *, cwd: Path | None = None, env: dict | None = None,
        quiet: bool = False) -> tuple[int, str]:
    """Run ``cmd``, echoing it and (unless ``quiet``) its output as it comes; -> (exit code, output)."""
    say("$ " + shlex.join(str(c) for c in cmd))
    process = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if not quiet and denoise(line):
            print(line, end="", flush=True)
    return process.wait(), "".join(lines)


def must(cmd: list, what: str, **kwargs) -> str:
    code, output = run(cmd, **kwargs)
    if code:
        tail = "".join(denoise(output).splitlines(keepends=True)[-30:]) if kwargs.get("quiet") else ""
        raise Failed(f"{what} failed (exit code {code})" + (f":\n{tail}" if tail else ""))
    return output


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements or constraints file, by normalized name."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)", line)
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def installed(python: Path) -> dict[str, str]:
    output = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                            check=True).stdout
    return {normalize(p["name"]): p["version"] for p in json.loads(output)}


def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]


def direct_dependencies() -> list[str]:
    """The names in pyproject.toml's ``dependencies``, in order."""
    return [normalize(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in project()["dependencies"]]


def same_version(a: str, b: str) -> bool:
    """Equal but for a local label: the lock's torch 2.13.0 is the wheel 2.13.0+cpu."""
    return a.split("+")[0] == b.split("+")[0]


def environment(venv: Path) -> dict[str, str]:
    """This process's environment as a Colab kernel would see it, with ``venv`` first on the PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MPLBACKEND")
           and not k.startswith("SEPBOOK_")}
    # tiny: the CI profile; SEPBOOK_DATA: generate the synthetic data afresh under this set's packages
    # (seconds), instead of ~/.cache/sepbook, where an installed sepbook would put it
    env.update(SEPBOOK_PROFILE="tiny", SEPBOOK_DATA=str(venv / "data"), VIRTUAL_ENV=str(venv),
               PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    if ARCHIVE.is_file():
        env["SEPBOOK_RESULTS_URL"] = ARCHIVE.as_uri()
    return env


def archive(source: Path) -> Path:
    """``source`` as GitHub's archive of the repository serves it (one top folder); -> the tarball."""
    import tarfile

    with tarfile.open(ARCHIVE, "w:gz") as tar:
        tar.add(source / "chapters", arcname="sepbook-main/chapters")
    return ARCHIVE


def snapshot() -> Path:
    """Copy the checkout's files (what ``git add -A`` would commit) to ``.venv-colab/src``; -> that folder.

    pip builds a local folder in place: building from a copy keeps ``build/`` out of the checkout.
    """
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True)
    if listing.returncode:
        raise Failed(f"git ls-files failed in {ROOT}: {listing.stderr.strip()}")
    target = WORK / "src"
    shutil.rmtree(target, ignore_errors=True)
    for name in listing.stdout.split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def drift_rows(python: Path) -> list[tuple[str, str, str]]:
    """(package, lock version, installed version) for every installed package that the lock pins otherwise."""
    lock = pins(LOCK)
    return [(name, lock.get(name, "(not in the lock)"), version)
            for name, version in sorted(installed(python).items())
            if name not in ("pip", "sepbook") and not same_version(lock.get(name, ""), version)]


def print_drift(name: str, rows: list[tuple[str, str, str]]) -> None:
    if not rows:
        say(f"[{name}] every installed package has the version requirements.lock pins")
        return
    say(f"[{name}] installed packages whose version differs from requirements.lock:")
    width = max(len(r[0]) for r in rows)
    say(f"    {'package':<{width}}  {'requirements.lock':<18}  installed")
    for package, lock, version in rows:
        say(f"    {package:<{width}}  {lock:<18}  {version}")


# ----------------------------------------------------------------------------- the steps of one set


def build_venv(name: str, venv: Path) -> tuple[Path, float]:
    """A fresh venv holding what a Colab runtime holds before the first cell; -> its python and the
    seconds it took."""
    clock = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    must([sys.executable, "-m", "venv", venv], "creating the venv")
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q"]
    must(pip + ["--upgrade", "pip"], "upgrading pip", quiet=True)
    torch = pins(LOCK)["torch"]
    # torch first, at the lock's version: the CPU wheel on this disk. With it installed, pip takes any
    # torch>=... requirement as met; asked for a range with no torch installed, pip fetches a CUDA build.
    must(pip + [f"torch=={torch}"], f"installing torch {torch}", quiet=True)
    if name == "colab":
        must(pip + ["-c", CONSTRAINTS, f"torch=={torch}", *RUNTIME], "installing the Colab runtime", quiet=True)
    else:
        must(pip + ["--upgrade", "--upgrade-strategy", "eager", f"torch=={torch}", *RUNTIME],
             "installing the newest runtime packages", quiet=True)
    must([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL, "--display-name",
          f"Colab check ({name})"], "registering the venv's Jupyter kernel", quiet=True)
    return python, time.monotonic() - clock


def sepbook_location(python: Path, cwd: Path) -> str | None:
    """Where ``import sepbook`` finds the package in ``python``, run in ``cwd``; None if it does not."""
    probe = "import importlib.util as u; s = u.find_spec('sepbook'); print(s.origin if s else '')"
    output = subprocess.run([python, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True).stdout
    return output.strip() or None


def first_cell_and_page(outcome: Outcome, python: Path, venv: Path, notebook: Path, source: Path) -> None:
    """Step 2: sepbook missing, the notebook run top to bottom in the venv's kernel, sepbook installed."""
    content = venv / "content"          # Colab's working folder: empty, outside any checkout
    content.mkdir()
    found = sepbook_location(python, content)
    if found:
        raise Failed(f"sepbook imports before the first cell ran ({found}): not what a Colab reader has")
    say(f"[{outcome.name}] before the first cell: `import sepbook` fails, as on a fresh Colab runtime")
    before = installed(python)
    code, _ = run([python, Path(__file__), "--execute", notebook, "--url", source.as_uri(), "--cwd", content,
                   "--out", venv / notebook.name], env=environment(venv))
    after = installed(python)
    added = sorted(set(after) - set(before))
    say(f"[{outcome.name}] the first cell installed {len(added)} packages: "
        + ", ".join(f"{n} {after[n]}" for n in added))
    changed = [f"{n} {before[n]} -> {after[n]}" for n in sorted(before)
               if n in after and after[n] != before[n]]
    restart = ("the first cell changed packages the runtime already had: " + "; ".join(changed)
               + ". On Colab that needs a runtime restart: widen the range in pyproject.toml.")
    if code:
        raise Failed(f"{notebook.relative_to(ROOT)} failed in the {outcome.name} set (output above)"
                     + (f"; {restart}" if changed else ""))
    found = sepbook_location(python, content)
    if not found or not Path(found).resolve().is_relative_to(venv.resolve()):
        raise Failed(f"after the first cell, sepbook is not installed in the venv (found: {found})")
    say(f"[{outcome.name}] after the first cell: sepbook {after.get('sepbook')} imports from {found}")
    if changed:
        raise Failed(restart)
    pip_check(python)
    say(f"[{outcome.name}] the page ran top to bottom with nothing installed but by its first cell")


# tinysoundfont declares pyaudio for live playback; the book only renders offline and installs it
# without (sepbook.data.soundfonts), so that one unmet requirement is expected.
EXPECTED_UNMET = re.compile(r"^tinysoundfont [^ ]+ requires pyaudio, which is not installed\.$", re.I)


def pip_check(python: Path) -> None:
    """``pip check`` after the first cell: clean but for ``EXPECTED_UNMET``."""
    code, output = run([python, "-m", "pip", "check"])
    problems = [line for line in output.splitlines()
                if line.strip() and not EXPECTED_UNMET.match(line.strip()) and "No broken" not in line]
    if problems:
        raise Failed("pip check after the first cell failed:\n" + "\n".join(problems))


def fast_tests(outcome: Outcome, python: Path, venv: Path) -> dict[str, str]:
    """Step 3: the fast subset with the venv's python; -> {failing test id: its failure message}."""
    tests = project().get("optional-dependencies", {}).get("test", [])
    if tests:   # the tests' own tools (pyproject's test extra); a reader needs none of them
        constraints = ["-c", CONSTRAINTS] if outcome.name == "colab" else []
        must([python, "-m", "pip", "install", "-q", *constraints, *tests], "installing the test extra")
    report = venv / "pytest.xml"
    # `python -m pytest` in the checkout: the tests import the checkout's sepbook (the code the first cell
    # installed), which finds its committed results and notebooks where the tests look for them.
    # one test process per core, as make test runs them (pytest-xdist comes with the test extra)
    code, _ = run([python, "-m", "pytest", "-q", "-n", "auto", "--dist", "loadfile", *FAST,
                   "-p", "no:cacheprovider", "--durations=5",
                   f"--junitxml={report}"], cwd=ROOT, env=environment(venv))
    if code == 0:
        return {}
    failing = junit_failures(report)
    if not failing:
        raise Failed(f"pytest exited with code {code} and named no failing test (output above)")
    return failing


def junit_failures(report: Path) -> dict[str, str]:
    import xml.etree.ElementTree as ElementTree

    if not report.is_file():
        return {}
    failing = {}
    for case in ElementTree.parse(report).iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            module = case.get("classname", "").replace(".", "/")
            failing[f"{module}.py::{case.get('name')}"] = problem.get("message", "") + (problem.text or "")
    return failing


def missing_modules(failing: dict[str, str]) -> dict[str, list[str]]:
    """{module: the failing tests that could not import it}."""
    missing: dict[str, list[str]] = {}
    for test, message in failing.items():
        for module in set(re.findall(r"No module named '([^']+)'", message)):
            missing.setdefault(module, []).append(test)
    return missing


def name_the_drift(outcome: Outcome, python: Path, venv: Path, failing: list[str]) -> list[str]:
    """Put back the lock's version of one differing package at a time and rerun the failing tests.

    -> the packages whose lock version makes the failing tests pass."""
    heading(f"[{outcome.name}] which package drifted? The lock's version of one package at a time")
    env = environment(venv)
    rerun = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", *failing]
    if run(rerun, cwd=ROOT, env=env, quiet=True)[0] == 0:
        say(f"[{outcome.name}] the failing tests pass on a rerun: flaky, not drift")
        return []
    order = {name: i for i, name in enumerate(direct_dependencies())}
    # torch is the lock's own wheel in every set; any other torch would be a download of several GB
    candidates = sorted((r for r in outcome.drift if not r[1].startswith("(") and r[0] != "torch"),
                        key=lambda r: (order.get(r[0], len(order)), r[0]))
    culprits, start = [], time.monotonic()
    for package, lock, version in candidates[:BISECT_PACKAGES]:
        if time.monotonic() - start > BISECT_SECONDS:
            say(f"[{outcome.name}] stopped after {BISECT_SECONDS} s; untried: the rest of the table above")
            break
        pip = [python, "-m", "pip", "install", "-q", "--no-deps"]
        if run(pip + [f"{package}=={lock}"], quiet=True)[0]:
            say(f"    {package}: could not install {lock}, skipped")
            continue
        passed = run(rerun, cwd=ROOT, env=env, quiet=True)[0] == 0
        must(pip + [f"{package}=={version}"], f"restoring {package} {version}", quiet=True)
        say(f"    {package} {lock} instead of {version}: the failing tests "
            + ("PASS: this package drifted" if passed else "still fail"))
        if passed:
            culprits.append(f"{package} (lock {lock}, installed {version})")
    if len(candidates) > BISECT_PACKAGES:
        say(f"    (tried the first {BISECT_PACKAGES} of {len(candidates)} differing packages)")
    return culprits


def check_set(name: str, notebook: Path, source: Path, keep: bool, built: Future) -> Outcome:
    """Every step for one set, in the venv that ``built`` (:func:`build_venv`) is making or has made."""
    outcome = Outcome(name)
    venv = WORK / name
    heading(f"[{name}] {SETS[name]}: a fresh venv in {venv.relative_to(ROOT)}")
    clock = time.monotonic()
    failing: dict[str, str] = {}
    try:
        python, outcome.seconds["venv and runtime"] = built.result()
        outcome.seconds["waiting for it"] = time.monotonic() - clock
        have = installed(python)
        say(f"[{name}] the runtime before the first cell: "
            + ", ".join(f"{p} {have.get(p, '-')}" for p in SHOWN))

        heading(f"[{name}] {notebook.relative_to(ROOT)}, first cell included, in the venv's kernel")
        clock = time.monotonic()
        try:
            first_cell_and_page(outcome, python, venv, notebook, source)
        except Failed as failure:
            outcome.fail(str(failure))
        outcome.seconds["first cell and page"] = time.monotonic() - clock

        heading(f"[{name}] {RESULTS_NOTEBOOK}: the committed results, fetched as a Colab install does")
        clock = time.monotonic()
        if "sepbook" in installed(python):
            code, _ = run([python, Path(__file__), "--execute", ROOT / RESULTS_NOTEBOOK, "--url", source.as_uri(),
                           "--cwd", venv / "content", "--out", venv / Path(RESULTS_NOTEBOOK).name],
                          env=environment(venv))
            if code:
                outcome.fail(f"{RESULTS_NOTEBOOK} failed in the {name} set (output above)")
        outcome.seconds["results page"] = time.monotonic() - clock

        heading(f"[{name}] the fast test subset: pytest {shlex.join(FAST)}")
        clock = time.monotonic()
        if "sepbook" not in installed(python):
            outcome.fail("tests not run: the first cell did not install sepbook")
        else:
            try:
                failing = fast_tests(outcome, python, venv)
            except Failed as failure:
                outcome.fail(str(failure))
        if failing:
            outcome.fail(f"{len(failing)} tests failed: " + ", ".join(list(failing)[:10])
                         + (" ..." if len(failing) > 10 else ""))
        for module, tests in missing_modules(failing).items():
            outcome.fail(f"{len(tests)} of them cannot import {module!r}, which neither sepbook's "
                         "dependencies nor its test extra install: add it to pyproject.toml")
            failing = {t: m for t, m in failing.items() if t not in tests}
        outcome.seconds["fast tests"] = time.monotonic() - clock
        if outcome.seconds["fast tests"] > FAST_BUDGET:
            took = outcome.seconds["fast tests"]
            say(f"[{name}] WARNING: the fast subset took {took:.0f} s, more than its {FAST_BUDGET} s: "
                "mark the slowest tests above @pytest.mark.slow")

        have = installed(python)
        outcome.versions = {p: have.get(p, "-") for p in SHOWN}
        outcome.drift = drift_rows(python)
        if outcome.failures:
            heading(f"[{name}] FAILED; the packages that may have drifted")
        print_drift(name, outcome.drift)
        if failing:
            clock = time.monotonic()
            outcome.culprits = name_the_drift(outcome, python, venv, list(failing))
            outcome.seconds["naming the drift"] = time.monotonic() - clock
    except Failed as failure:
        outcome.fail(str(failure))
    if not outcome.failures and not keep:
        shutil.rmtree(venv, ignore_errors=True)
    return outcome


# ----------------------------------------------------------------------------- inside the venv


def execute(notebook: Path, url: str, cwd: Path, out: Path) -> int:
    """Run ``notebook`` in the ``colab-check`` kernel, its first cell installing from ``url``; -> exit code.

    Runs under the venv's python (``--execute``), which has nbclient and the kernel.
    """
    import nbformat
    import yaml
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    first = next(cell for cell in nb.cells if cell.cell_type == "code")
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    if first.source.count(f"git+{repository}") != 1:
        say(f"{notebook.name}: its first code cell does not install git+{repository} once:\n{first.source}")
        return 1
    first.source = first.source.replace(f"git+{repository}", url)
    say("The first code cell as a Colab reader runs it (the repository's git URL replaced by this checkout):")
    say(textwrap.indent(first.source, "    | "))
    probe = ("import sys, sepbook  # added by .ci/colab.py: which python ran the page\n"
             "print(sys.prefix); print(sepbook.__file__)")
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    running = {}

    def started(cell, cell_index):
        running["index"], running["start"] = cell_index, time.monotonic()

    def finished(cell, cell_index, execute_reply):
        seconds = time.monotonic() - running["start"]
        if cell is first:
            text = denoise("".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream"))
            say("Its output:\n" + textwrap.indent(text.rstrip() or "(none)", "    | "))
        elif seconds > 5:
            say(f"cell {cell_index + 1} of {len(nb.cells)}: {seconds:.0f} s")

    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL, on_cell_execute=started,
                            on_cell_executed=finished, resources={"metadata": {"path": str(cwd)}})
    # nbclient stands in for the browser's widget manager by answering Output widgets on the shell channel
    # while it waits there for the cell's reply; now and then the reply is then seen only at the cell's
    # time-out (jupyter/nbclient#312). The kernel side of the widgets runs as on Colab without it.
    client.comm_open_handlers["jupyter.widget"] = lambda msg: None
    start = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as error:
        index = running.get("index")
        where = ("the first code cell (the Colab set-up)" if nb.cells[index] is first
                 else f"cell {index + 1} of {len(nb.cells)}")
        say(f"{notebook.name} failed in {where}:\n{denoise(str(error))}")
        for module in re.findall(r"No module named '([^']+)'", str(error)):
            say(f"The page imports {module!r}, which the first cell did not install: sepbook's dependencies "
                "in pyproject.toml should bring it (the book build has it from requirements.lock).")
        return 1
    finally:
        nbformat.write(nb, out)
    prefix, package = "".join(o.get("text", "") for o in nb.cells[-1].outputs).split()
    if Path(prefix).resolve() != Path(sys.prefix).resolve():
        say(f"the page ran in {prefix}, not in this venv ({sys.prefix})")
        return 1
    say(f"{notebook.name} ran top to bottom in {time.monotonic() - start:.0f} s, in the kernel of {prefix}, "
        f"with sepbook from {package}; executed copy: {out}")
    return 0


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 .ci/colab.py", description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=[*SETS, "all"], default="all", help="dependency set (default: all)")
    parser.add_argument("--notebook", default=NOTEBOOK, help=f"the page to run (default: {NOTEBOOK})")
    parser.add_argument("--keep", action="store_true", help="keep the venvs of passing sets too")
    parser.add_argument("--execute", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--cwd", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.execute:
        return execute(args.execute, args.url, args.cwd, args.out)

    started = time.monotonic()
    notebook = (ROOT / args.notebook).resolve()
    missing = set(map(normalize, RUNTIME)) - set(pins(CONSTRAINTS))
    if missing:
        say(f"{CONSTRAINTS.relative_to(ROOT)} pins no version of {sorted(missing)}: add them")
        return 2
    if not notebook.is_file():
        say(f"{notebook} does not exist")
        return 2
    if shutil.which("ffprobe") is None:
        say("ffprobe is missing (musdb calls it; Colab has it): install ffmpeg, or run `make colab-check`")
        return 2
    say(f"Python {platform.python_version()} ({sys.executable}): this machine's Python. Colab runs 3.12 or "
        "newer, but the torch wheel on this disk is built for 3.11, so every set runs on it.")
    WORK.mkdir(exist_ok=True)
    source = snapshot()
    say(f"sepbook is installed from a snapshot of this checkout: {source}")
    say(f"the committed results are fetched from a tarball of it: {archive(source)}")
    names = list(SETS) if args.set == "all" else [args.set]
    # The venvs are built one after the other in the background: the next set's is made while this
    # one runs its pages on one core.
    with ThreadPoolExecutor(1) as builder:
        built = {name: builder.submit(build_venv, name, WORK / name) for name in names}
        outcomes = [check_set(name, notebook, source, args.keep, built[name]) for name in names]

    heading("Colab check: summary")
    for outcome in outcomes:
        timing = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in outcome.seconds.items())
        say(f"[{outcome.name}] {'FAILED' if outcome.failures else 'passed'} ({timing})")
        say("    " + ", ".join(f"{p} {v}" for p, v in outcome.versions.items()))
        for failure in outcome.failures:
            first, *rest = failure.splitlines()
            say(f"    FAILED: {first}" + "".join(f"\n        {line}" for line in rest))
        if outcome.failures and outcome.drift:
            say("    differs from requirements.lock: " + ", ".join(f"{p} {v} (lock {lk})"
                                                          for p, lk, v in outcome.drift))
        for culprit in outcome.culprits:
            say(f"    DRIFTED: {culprit}")
    say(f"Colab check took {time.monotonic() - started:.0f} s")
    if any(o.failures for o in outcomes):
        return 1
    if not args.keep:
        shutil.rmtree(source, ignore_errors=True)
        if not any(WORK.iterdir()):
            WORK.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
