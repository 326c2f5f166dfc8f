"""Measure the budgets the project tracks and write them to benchmarks/RESULTS.md.

    python benchmarks/run.py                 # all measurements (slow: installs a fresh venv, builds the book)
    python benchmarks/run.py synth quality   # only some of them
    SEPBOOK_PROFILE=book python benchmarks/run.py quality times reproduce   # the committed book results
    python benchmarks/run.py speed           # training steps/s of each book model against its reference package
    python benchmarks/run.py speed-chimera   # only one pair of training_speed.PAIRS; replaces only that pair's rows

Each measurement is reported with a reference measured in the same run, so the ratio means something
on any machine: the synthesiser against real time, the BLSTM against the oracle ratio mask, set-up,
tests and book build against their budgets, each book model's training step against the reference
implementation's at the same sizes (``speed``: :mod:`training_speed`, in its own environment).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
RAW = ROOT / "benchmarks" / "results.json"


def _timed(command: list[str] | str, cwd: Path = ROOT, **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, **kwargs)
    return time.perf_counter() - start


def measure_synth() -> dict:
    from sepbook.data.synth import synthesize_songs

    n, seconds = 100, 8.0
    start = time.perf_counter()
    synthesize_songs(n, seed=0, seconds=seconds, sr=16000)
    took = time.perf_counter() - start
    return {"what": f"synthesise {n} songs x {seconds:g} s at 16 kHz", "seconds": took,
            "reference": f"{n * seconds:g} s of audio", "ratio": took / (n * seconds), "budget_s": 60.0}


def measure_quality(profile: str) -> dict:
    """BLSTM SI-SDRi over the oracle IRM's: trained live for ``tiny``, read from the committed results for ``book``."""
    import torch

    from sepbook import results
    from sepbook.experiments import report
    from sepbook.recipes import foundations

    start = time.perf_counter()
    if profile == "book":
        rows = results.load("foundations", check=False).rows
        source = "committed book results (make results CHAPTER=foundations)"
    else:
        if not torch.cuda.is_available():
            torch.set_num_threads(1)  # as the notebooks do (see the threads measurement)
        cfg = foundations.config(profile)
        splits = foundations.data(cfg)
        models = {("BLSTM", s): foundations.train(cfg, splits, "BLSTM", s, progress=False)[0] for s in cfg["seeds"]}
        rows = foundations.reference_rows(cfg, splits.test) + foundations.evaluate(cfg, models, splits.test)
        source = "trained in this run"
    summary = report.summary([r for r in _records(rows) if r["metric"] == "SI-SDRi"])
    blstm, irm = summary.loc["BLSTM"], summary.loc["oracle IRM", "mean"]
    return {"what": f"Foundations BLSTM SI-SDRi vs oracle IRM ({profile} profile, {int(blstm['seeds'])} seeds, {source})",
            "blstm_sisdri_mean": float(blstm["mean"]), "blstm_sisdri_std": float(blstm["std"]),
            "irm_sisdri": float(irm), "ratio": float(blstm["mean"] / irm), "seconds": time.perf_counter() - start}


def _records(rows):
    return rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)


def measure_reproduce(chapter: str = "adversarial", variant: str = "V", seed: int = 0) -> dict:
    """Retrain one committed ``book`` run from scratch and compare its rows with ``metrics.csv``."""
    import math

    from sepbook import results

    book = results.load(chapter, check=False)
    scratch = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    record = results.train_one(chapter, book.cfg, variant, seed, scratch)
    took = time.perf_counter() - start
    committed = book.rows.set_index(["variant", "seed", "song", "source", "metric"])["value"]
    worst = max(abs(committed.loc[(r["variant"], r["seed"], r["song"], r["source"], r["metric"])] - r["value"])
                for r in record["rows"] if math.isfinite(r["value"]))
    shutil.rmtree(scratch, ignore_errors=True)
    return {"what": f"retrain {chapter} book run {variant} seed {seed} and compare with metrics.csv",
            "seconds": took, "reference": f"largest difference {worst:.2e} dB over {len(record['rows'])} rows "
            f"(target 0.05 dB)", "ratio": worst / 0.05}


def measure_verify() -> dict:
    """``make verify`` (``python -m sepbook.results.verify``): its wall time against its 10-minute budget, and how
    many committed rows it re-derived."""
    out = Path(tempfile.mkdtemp()) / "verify.json"
    took = _timed([sys.executable, "-m", "sepbook.results.verify", "--json", str(out)])
    found = json.loads(out.read_text())
    shutil.rmtree(out.parent, ignore_errors=True)
    chapters = found["chapters"]
    rows = sum(c["rows"] for c in chapters)
    covered = {c["chapter"]: c["from_checkpoints"] + c["reference"] + c["from_retraining"] for c in chapters}
    parts = "; ".join(f"{c['chapter']} {covered[c['chapter']]}/{c['rows']}" for c in chapters)
    retrained = sum(len(c["retrained"]) for c in chapters)
    return {"what": f"make verify: every committed checkpoint on every test song, {retrained} runs retrained "
                    f"(draw {found['seed']})",
            "seconds": took, "reference": f"budget 600 s; rows re-derived {sum(covered.values())} of {rows} "
            f"({parts})", "ratio": took / 600.0}


def measure_carryover() -> list[dict]:
    """How much of its oracle share the committed Foundations BLSTM keeps when the test scores are
    played by a SoundFont it never heard, and by the additive instrument models (target >= 0.8)."""
    from sepbook import results
    from sepbook.recipes import foundations

    book = results.load("foundations", profile="book", check=False)
    start = time.perf_counter()
    table = foundations.carry_over(book.cfg, book.models)
    took = time.perf_counter() - start
    shares = table.xs("BLSTM", level="variant")["share of oracle IRM"]
    irm = table.xs("oracle IRM", level="variant")["SI-SDRi"]
    own = shares.index[0]
    found = []
    for key, rendering in (("carryover-unheard", shares.index[1]), ("carryover-additive", shares.index[2])):
        found.append({"key": key, "what": f"Foundations BLSTM (book, {len(book.models)} seeds) on the test scores "
                      f"played by the {rendering}: its share of the oracle IRM's SI-SDRi over its share on "
                      f"{own} (target >= 0.80)", "seconds": took,
                      "reference": f"share {shares[rendering]:.3f} (IRM {irm[rendering]:.2f} dB) against "
                      f"{shares[own]:.3f} (IRM {irm[own]:.2f} dB)",
                      "ratio": float(shares[rendering] / shares[own])})
    return found


def measure_corpora() -> dict:
    """Every chapter's ``book`` data generated from nothing into an empty folder: time and disk."""
    from sepbook.data import profiles

    folder = Path(tempfile.mkdtemp())
    chapters = list(profiles.SETTINGS)
    script = ("import sys; from sepbook import results\n"
              "for chapter in sys.argv[1:]:\n"
              "    module = results.recipe(chapter)\n"
              "    module.data(module.config('book'))\n")
    env = dict(os.environ, SEPBOOK_DATA=str(folder), SEPBOOK_PROFILE="book")
    took = _timed([sys.executable, "-c", script, *chapters], env=env)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder, ignore_errors=True)
    return {"what": f"generate every chapter's book data from nothing ({', '.join(chapters)}), "
                    f"{size / 2**20:.0f} MB on disk", "seconds": took, "reference": "budget 300 s",
            "ratio": took / 300.0}


#: Book training budgets in seconds: an hour per chapter, except where its issue set another.
TRAINING_BUDGETS = {"transfer": 5400.0, "metatasnet": 5400.0, "activity": 5400.0}


def measure_training_times() -> list[dict]:
    """Each chapter's committed book training time against its budget (from the manifests)."""
    from sepbook import results

    out = []
    for chapter in results.RECIPES:
        manifest = results.load(chapter, check=False).manifest
        wall = manifest["wall_seconds_last_session"]
        budget = TRAINING_BUDGETS.get(chapter, 3600.0)
        out.append({"key": f"train-{chapter}", "what": f"{chapter}: whole book experiment ({len(manifest['runs'])} "
                    f"runs, {manifest['machine']['workers']} workers), wall clock of the session that finished it "
                    "(runs finished in an earlier, interrupted session are resumed, not retrained)", "seconds": wall,
                    "reference": f"budget {budget:.0f} s; {manifest['total_run_seconds']:.0f} s of runs summed; "
                    f"results dated {manifest['date']}", "ratio": wall / budget})
    return out


def measure_threads(steps: int = 30) -> dict:
    """Seconds per training step of the tiny Foundations BLSTM: one CPU thread against all cores,
    on an idle machine and while one busy process per core competes for the CPU."""
    import torch

    from sepbook.recipes import foundations

    cfg = foundations.config("tiny", steps=steps, valid_every=10 * steps)
    splits = foundations.data(cfg)
    cores, default = os.cpu_count(), torch.get_num_threads()

    def per_step(threads: int) -> float:
        torch.set_num_threads(threads)
        start = time.perf_counter()
        foundations.train(cfg, splits, "BLSTM", seed=0, progress=False)
        return (time.perf_counter() - start) / steps

    idle = {threads: per_step(threads) for threads in (cores, 1)}
    busy_loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        loaded = {threads: per_step(threads) for threads in (cores, 1)}
    finally:
        for process in busy_loops:
            process.kill()
        torch.set_num_threads(default)
    return {"what": f"BLSTM training step (tiny): 1 thread vs {cores}; idle, then with {cores} busy processes",
            "seconds": idle[1],
            "reference": (f"idle: {idle[cores]:.3f} s/step on {cores} threads, {idle[1]:.3f} on 1; loaded: "
                          f"{loaded[cores]:.3f} on {cores}, {loaded[1]:.3f} on 1 (ratio {loaded[1] / loaded[cores]:.3f})"),
            "ratio": idle[1] / idle[cores]}


def measure_setup() -> dict:
    """A fresh venv with requirements.lock and sepbook (the pip cache is warm after the first install)."""
    venv = Path(tempfile.mkdtemp()) / "venv"
    took = _timed(f"{sys.executable} -m venv {venv} && {venv}/bin/python -m pip install -q -r requirements.lock "
                  f"&& {venv}/bin/python -m pip install -q --no-deps --no-build-isolation -e .", shell=True)
    shutil.rmtree(venv.parent, ignore_errors=True)
    return {"what": "fresh venv + pinned install (warm pip cache)", "seconds": took, "budget_s": 180.0,
            "ratio": took / 180.0}


def measure_tests() -> list[dict]:
    """``make test`` on a fresh clone of the committed tree: once with its set-up (venv, pinned
    install from a warm pip cache, SoundFonts present), then the test run alone."""
    clone = Path(tempfile.mkdtemp()) / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("SEPBOOK_PROFILE", "SEPBOOK_DATA", "VIRTUAL_ENV")}
    fresh = _timed(["make", "test"], cwd=clone, env=env)
    again = _timed(["make", "test"], cwd=clone, env=env)
    shutil.rmtree(clone.parent, ignore_errors=True)
    return [{"key": "tests-fresh", "what": "make test on a fresh clone, set-up included (warm pip cache)",
             "seconds": fresh, "budget_s": 300.0, "ratio": fresh / 300.0},
            {"key": "tests", "what": "make test, the test run alone (both cores, pytest-xdist)",
             "seconds": again, "budget_s": 180.0, "ratio": again / 180.0}]


def measure_pages() -> list[dict]:
    """Every page executed on its own, one after the other, as a build executes it (tiny profile,
    a fresh kernel, static players): its wall time and its longest cell."""
    import datetime as dt

    import nbformat
    from nbclient import NotebookClient

    from sepbook import classroom

    def seconds(cell) -> float:
        times = cell.metadata.get("execution", {})
        if "iopub.execute_input" not in times or "shell.execute_reply" not in times:
            return 0.0
        parse = lambda t: dt.datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
        return (parse(times["shell.execute_reply"]) - parse(times["iopub.execute_input"])).total_seconds()

    os.environ.update(SEPBOOK_PROFILE="tiny", SEPBOOK_STATIC_HTML="1")
    found = []
    for path in classroom.book_notebooks(ROOT):
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(notebook, timeout=1800, kernel_name="python3", record_timing=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        took = time.perf_counter() - start
        longest, index = max((seconds(c), i) for i, c in enumerate(notebook.cells) if c.cell_type == "code")
        name = str(path.relative_to(ROOT))
        found.append({"key": f"page-{path.stem}", "what": f"{name} executed on its own (tiny profile, one "
                      f"thread, as the build runs it)", "seconds": took,
                      "reference": f"budget 180 s; longest cell {longest:.0f} s (cell {index}, budget 75 s)",
                      "ratio": took / 180.0})
    return found


def measure_book() -> list[dict]:
    """The tiny book built three ways in one run, into a scratch folder.

    1. every notebook executed inside the build, one after the other (``SEPBOOK_EXECUTE=force``);
    2. ``make book``'s way from an empty cache, as CI builds: ``sepbook.build.prebuild`` executes the notebooks
       two at a time, then the build takes every output from the cache;
    3. ``make book`` again after a text-only edit of one page: nothing executes.
    """
    from sepbook.build import prebuild

    env = dict(os.environ, SEPBOOK_PROFILE="tiny")
    env.pop("SEPBOOK_EXECUTE", None)
    out = Path(tempfile.mkdtemp())
    build = [str(ROOT / ".venv" / "bin" / "jupyter-book"), "build", ".", "--path-output", str(out)]
    sequential = _timed(build + ["-W", "-n", "--keep-going"], env=dict(env, SEPBOOK_EXECUTE="force"))
    shutil.rmtree(ROOT / prebuild.settings()["cache"], ignore_errors=True)
    shutil.rmtree(out / "_build", ignore_errors=True)
    start = time.perf_counter()
    report = subprocess.run([sys.executable, "-m", "sepbook.build.prebuild"], env=env, check=True, cwd=ROOT,
                            capture_output=True, text=True).stdout
    subprocess.run(build, env=env, check=True, cwd=ROOT)
    parallel = time.perf_counter() - start
    peaks = {m[0]: float(m[1]) for m in re.findall(r"prebuild: (\S+) executed in \d+ s, kernel peak (\d+) MB", report)}
    heaviest = max(peaks, key=peaks.get)
    page = ROOT / "chapters" / "foundations" / "stft_and_masks.ipynb"
    original = page.read_bytes()
    try:
        notebook = json.loads(original)
        notebook["cells"][0]["source"].append("\n\nA sentence added by the rebuild benchmark.")
        page.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sepbook.build.prebuild"], env=env, check=True, cwd=ROOT)
        subprocess.run(build, env=env, check=True, cwd=ROOT)
        rebuild = time.perf_counter() - start
    finally:
        page.write_bytes(original)
    shutil.rmtree(out, ignore_errors=True)
    return [
        {"key": "book", "what": "full tiny build, every notebook executed in the build one after the other "
                                "(SEPBOOK_EXECUTE=force jupyter-book build . -W -n --keep-going)",
         "seconds": sequential, "budget_s": 900.0, "ratio": sequential / 900.0},
        {"key": "book-parallel", "what": "full tiny build from an empty cache, two notebooks at a time (make book, as CI "
                                         "builds)",
         "seconds": parallel, "reference": f"sequential build {sequential:.0f} s; heaviest kernel "
                                           f"{peaks[heaviest]:.0f} MB ({heaviest})",
         "ratio": parallel / sequential},
        {"key": "book-rebuild", "what": "make book after a text-only edit of one page (all outputs cached)",
         "seconds": rebuild, "budget_s": 60.0, "ratio": rebuild / 60.0},
    ]


def measure_ci() -> list[dict]:
    """``.ci/run`` on a fresh clone of the committed tree (its own venv, corpus and book build): the whole
    run, and each of its steps from the start times ``.ci/run`` echoes (``set -x`` with a timed ``PS4``)."""
    clone = Path(tempfile.mkdtemp()) / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    lines = []
    start = time.perf_counter()
    process = subprocess.Popen([str(clone / ".ci" / "run")], cwd=clone, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    if process.wait():
        raise subprocess.CalledProcessError(process.returncode, ".ci/run")
    took = time.perf_counter() - start
    shutil.rmtree(clone.parent, ignore_errors=True)
    rows = [{"key": "ci", "what": ".ci/run on a fresh clone (set-up, make book with warnings as errors, make test, "
                                  "make verify, Colab check, nbgrader check)",
             "seconds": took, "budget_s": 1800.0, "ratio": took / 1800.0}]
    for step, seconds in ci_steps(lines):
        rows.append({"key": f"ci-step-{step}", "what": f".ci/run on a fresh clone, the step `{step}`",
                     "seconds": seconds, "reference": f"share of the whole run {seconds / took:.2f}",
                     "ratio": seconds / took})
    return rows


def ci_steps(lines: list[str]) -> list[tuple[str, float]]:
    """``(command, seconds)`` of each top-level step of a ``.ci/run`` log, from the start times its
    trace lines carry (``+ [HH:MM:SS] command``); the last traced line marks the end."""
    starts = []
    for line in lines:
        found = re.match(r"^\+ \[(\d\d):(\d\d):(\d\d)\] (.*)$", line.rstrip("\n"))
        if found:
            h, m, sec, command = found.groups()
            if not re.fullmatch(r"\w+=\S*", command):  # bash traces `VAR=1 make test` as two lines
                starts.append((int(h) * 3600 + int(m) * 60 + int(sec), command))
    steps = []
    for (t0, command), (t1, _) in zip(starts, starts[1:]):
        steps.append((command, float((t1 - t0) % 86400)))  # a run may pass midnight
    return steps


def measure_bss() -> list[dict]:
    """``sepbook.metrics.bss_eval`` against ``museval.metrics.bss_eval`` on the same song (four mono sources,
    12 s at 8 kHz, 1 s frames, as Meta-TasNet's test songs), one thread, alternated three times each."""
    import museval
    import numpy as np
    import torch

    from sepbook import metrics

    torch.set_num_threads(1)
    sr, rng = 8000, np.random.default_rng(0)
    refs = rng.standard_normal((4, 1, 12 * sr))
    ests = refs + 0.5 * rng.standard_normal(refs.shape) + 0.3 * refs[::-1]
    ours, theirs = [], []
    for _ in range(3):
        metrics._SOLVERS.clear()  # a song scored for the first time
        start = time.perf_counter()
        mine = metrics.bss_eval(refs, ests, sr)["SDR"]
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference = museval.metrics.bss_eval(refs.transpose(0, 2, 1), ests.transpose(0, 2, 1), window=sr, hop=sr)[0]
        theirs.append(time.perf_counter() - start)
    worst = float(np.nanmax(np.abs(mine - reference)))
    once = {"key": "bss", "what": "BSS Eval v4 of one song (4 mono sources, 12 s at 8 kHz, 1 s frames), "
            "sepbook.metrics.bss_eval against museval.metrics.bss_eval, one thread, median of 3 each",
            "seconds": float(np.median(ours)),
            "reference": f"museval {np.median(theirs):.2f} s; largest SDR difference {worst:.1e} dB",
            "ratio": float(np.median(ours) / np.median(theirs))}
    # one song's three sets of estimates, as the activity chapter scores them (unweighted, oracle- and
    # detector-weighted), six sources: the references' factorisation is reused by the second and third
    refs = rng.standard_normal((6, 1, 12 * sr))
    sets = [refs + (0.3 + 0.2 * i) * rng.standard_normal(refs.shape) for i in range(3)]
    ours, theirs = [], []
    for _ in range(3):
        metrics._SOLVERS.clear()
        start = time.perf_counter()
        mine = [metrics.bss_eval(refs, e, sr)["SDR"] for e in sets]
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference = [museval.metrics.bss_eval(refs.transpose(0, 2, 1), e.transpose(0, 2, 1), window=sr, hop=sr)[0]
                     for e in sets]
        theirs.append(time.perf_counter() - start)
    worst = max(float(np.nanmax(np.abs(m - r))) for m, r in zip(mine, reference))
    again = {"key": "bss-repeat", "what": "BSS Eval v4 of one song scored three times (6 mono sources, 12 s at 8 kHz, "
             "three sets of estimates, as one activity song), sepbook.metrics.bss_eval against museval, one thread, "
             "median of 3 each", "seconds": float(np.median(ours)),
             "reference": f"museval {np.median(theirs):.2f} s; largest SDR difference {worst:.1e} dB",
             "ratio": float(np.median(ours) / np.median(theirs))}
    return [once, again]


def measure_colab() -> dict:
    """``make colab-check``: both dependency sets, each a fresh venv, a page, the results page and
    the fast tests (``.ci/colab.py``)."""
    took = _timed(["make", "colab-check"])
    return {"what": "make colab-check (both sets: fresh venvs, a page from its first cell, the results page, "
                    "the fast tests)", "seconds": took, "budget_s": 600.0, "ratio": took / 600.0}


def measure_browser() -> dict:
    """``make browser-check`` (``python -m sepbook.build.browser``) over the built book: every page in a
    headless Chromium at two widths, against its 3-minute budget. Needs ``_build/html``."""
    from sepbook.build import browser

    pages = len(browser.pages(ROOT / "_build" / "html"))
    took = _timed([sys.executable, "-m", "sepbook.build.browser"])
    return {"what": f"browser check of the built book ({pages} pages at 390 and 1280 px, and the search page)",
            "seconds": took, "reference": "budget 180 s", "ratio": took / 180.0}


def _class_folder(size: int) -> Path:
    """``size`` submissions that answer every checked exercise as the book does: the chapter pages
    with exercises, in turn, each in a student's folder."""
    from sepbook import classroom
    from sepbook.classroom import grade

    pages = [p for p in classroom.book_notebooks() if p.name in grade.book_tasks()]
    folder = Path(tempfile.mkdtemp(prefix="sepbook-class-"))
    for i in range(size):
        page = pages[i % len(pages)]
        (folder / f"student{i:02d}").mkdir()
        shutil.copy(page, folder / f"student{i:02d}" / page.name)
    return folder


def measure_grading(size: int = 30, repeats: int = 3) -> list[dict]:
    """The grader on a class of ``size`` submissions in ``--exercises-only`` mode with bubblewrap
    (one worker per core) against its 5-minute budget; and what the sandbox adds per notebook:
    the same 7 pages graded one at a time with and without it, alternated ``repeats`` times."""
    from sepbook.classroom import grade

    folder = _class_folder(size)
    started = time.perf_counter()
    marks = grade.grade([folder], timeout=300, exercises_only=True, show=lambda text: None)
    whole = time.perf_counter() - started
    passed = sum(m.status == "passed" for m in marks)
    checked = sum(m.status in ("passed", "failed", "not run") for m in marks)
    shutil.rmtree(folder, ignore_errors=True)
    pages = _class_folder(7)
    times = {True: [], False: []}
    for _ in range(repeats):
        for walled in (True, False):
            started = time.perf_counter()
            grade.grade([pages], timeout=300, exercises_only=True, show=lambda text: None, workers=1,
                        unsafe_no_sandbox=not walled)
            times[walled].append((time.perf_counter() - started) / 7)
    shutil.rmtree(pages, ignore_errors=True)
    walled, bare = statistics.median(times[True]), statistics.median(times[False])
    return [{"key": "grading-class", "what": f"grade a class of {size} submissions (--exercises-only, bubblewrap, "
             f"{os.cpu_count()} workers; {passed} of {checked} checks passed)", "seconds": whole,
             "budget_s": 300.0, "ratio": whole / 300.0},
            {"key": "grading-sandbox", "what": "what bubblewrap adds per notebook (7 pages graded one at a time, "
             f"median of {repeats} alternated runs each)", "seconds": walled - bare,
             "reference": f"{walled:.2f} s per notebook walled, {bare:.2f} s bare; budget 2 s added",
             "ratio": (walled - bare) / 2.0}]


#: Timed steps of each contender per speed run (training_speed.py's --steps): more than its default,
#: since the machine is often shared.
SPEED_STEPS = 31


def measure_speed(pair: str | None = None) -> list[dict]:
    """Training steps per second of each book model (or only ``pair``'s, a key of
    ``training_speed.PAIRS``) against its reference implementation, both timed interleaved in one run
    of ``benchmarks/training_speed.py`` inside the reference environment (created first if missing,
    see that file), 1 and 2 threads; one entry per pair and thread count."""
    import training_speed

    if not training_speed.PYTHON.is_file():
        training_speed.setup()
    out = Path(tempfile.mkdtemp()) / "speed.json"
    subprocess.run([str(training_speed.PYTHON), str(Path(training_speed.__file__)), *([pair] if pair else []),
                    "--threads", "1", "2", "--steps", str(SPEED_STEPS), "--json", str(out)], check=True, cwd=ROOT)
    run = json.loads(out.read_text())
    shutil.rmtree(out.parent, ignore_errors=True)
    name = f"speed-{pair}" if pair else "speed"
    context = {k: v for k, v in run.items() if k != "rows"} | {"command": f"python benchmarks/run.py {name}"}
    return [{"key": f"speed-{row['key']}-{row['threads']}t", "what": f"{row['model']}: training step, "
             f"{row['threads']} thread(s)", "seconds": 1 / row["steps_per_s_book"],
             "reference": f"{row['reference_model']}: {1 / row['steps_per_s_reference']:.3f} s/step",
             "ratio": row["ratio"], "row": row, "run": context} for row in run["rows"]]


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}, CUDA: {torch.cuda.is_available()}")


def write_results(results: dict) -> None:
    lines = ["# Benchmark results", "",
             "Written by `python benchmarks/run.py` (`make benchmarks`); each row comes from the run dated in its last column.", "",
             f"- last run: {results['date']} on {results['machine']}", "",
             "| measurement | seconds | reference (same run) | ratio | load | date |",
             "| --- | ---: | --- | ---: | --- | --- |"]
    speed = {key: entry for key, entry in results["measurements"].items() if key.startswith("speed-")}
    for key, entry in results["measurements"].items():
        if key in speed:
            continue
        reference = entry.get("reference") or (f"budget {entry['budget_s']:.0f} s" if "budget_s" in entry else "")
        if key.startswith("quality"):
            reference = f"oracle IRM SI-SDRi {entry['irm_sisdri']:.2f} dB; BLSTM {entry['blstm_sisdri_mean']:.2f} ± {entry['blstm_sisdri_std']:.2f} dB"
        lines.append(f"| {entry['what']} | {entry['seconds']:.1f} | {reference} | {entry['ratio']:.3f} | "
                     f"{entry.get('load', 'not recorded')} | {entry['date']} |")
    lines += ["", "Load: the machine's 1-minute load average when the measurement started / ended (2 cores); "
              "a row measured under other load says so there."]
    machines = sorted({entry["machine"] for entry in results["measurements"].values()})
    lines += ["", "Machines: " + "; ".join(machines)]
    lines += ["", "Ratios: synthesis time over audio duration; one-thread over all-core step time; BLSTM SI-SDRi over oracle IRM SI-SDRi (the "
              "figure tracked for Foundations, target >= 0.80 at book); largest retraining difference over 0.05 dB; "
              "set-up, tests, book build, page and book training time over their budgets; a CI step's time over the whole run; "
              "BSS Eval: sepbook's time over museval's; grading: a class's time over its 5-minute budget, and the seconds the sandbox "
              "adds per notebook over the 2 s allowed; make verify and the browser check: their time over their budgets.", ""]
    if speed:
        import training_speed

        lines += ["## Training speed against the reference implementations", "",
                  "Written by `python benchmarks/run.py speed` (`benchmarks/training_speed.py`, whose docstring says "
                  "what each pair is and how the reference environment is made): steps per second of one training "
                  "step (forward, loss, backward, Adam step) on the CPU, book model and reference at the same "
                  "`book`-profile sizes, timed interleaved in one run.", ""]
        runs: dict[str, dict] = {}
        for entry in speed.values():
            runs.setdefault(entry["run"]["date"], dict(entry["run"], rows=[]))["rows"].append(entry["row"])
        for date in sorted(runs):
            lines += training_speed.table(runs[date]) + [""]
    RESULTS.write_text("\n".join(lines))


def main(argv: list[str]) -> None:
    wanted = argv or ["setup", "tests", "book", "pages", "synth", "threads", "quality", "times", "reproduce",
                      "verify", "colab", "ci", "speed", "carryover", "corpora", "bss", "grading", "browser"]
    results = json.loads(RAW.read_text()) if RAW.is_file() else {"measurements": {}}
    results["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results["machine"] = machine()
    profile = os.environ.get("SEPBOOK_PROFILE", "tiny")
    jobs = {"setup": measure_setup, "tests": measure_tests, "book": measure_book, "pages": measure_pages, "synth": measure_synth,
            "threads": measure_threads, "quality": lambda: measure_quality(profile),
            "times": measure_training_times, "reproduce": measure_reproduce, "verify": measure_verify, "colab": measure_colab, "ci": measure_ci,
            "speed": measure_speed, "carryover": measure_carryover, "corpora": measure_corpora,
            "bss": measure_bss, "grading": measure_grading, "browser": measure_browser}
    import training_speed

    jobs |= {f"speed-{pair}": (lambda pair=pair: measure_speed(pair)) for pair in training_speed.PAIRS}
    unknown = set(wanted) - set(jobs)
    if unknown:
        raise SystemExit(f"unknown measurement(s) {sorted(unknown)}; choose from {sorted(jobs)}")
    for name in wanted:
        key = f"quality-{profile}" if name == "quality" else name
        print(f"measuring {name} ...", flush=True)
        load_before = os.getloadavg()[0]
        found = jobs[name]()
        # the machine's 1-minute load average when the measurement started and ended: a timing taken
        # while something else ran (load well above the cores in use) is marked by it
        load = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
        if name.startswith("speed"):  # a new run replaces the last one's rows of its pairs (all pairs for `speed`)
            stale = "speed-" if name == "speed" else f"{name}-"
            results["measurements"] = {k: v for k, v in results["measurements"].items() if not k.startswith(stale)}
        for entry in found if isinstance(found, list) else [dict(found, key=key)]:
            entry = entry | {"date": results["date"], "machine": results["machine"], "load": load}
            results["measurements"][entry.pop("key")] = entry
            print(json.dumps(entry, indent=1), flush=True)
    RAW.write_text(json.dumps(results, indent=1))
    write_results(results)


if __name__ == "__main__":
    main(sys.argv[1:])
