"""``make verify``: every committed number re-derived, from its checkpoint or by training its run again.

``python -m sepbook.results.verify`` checks every chapter's committed ``book`` results in two steps:

1. **Checkpoints.** The ``checkpoints/`` folder must hold exactly what ``manifest.json`` lists. Each
   committed model separates *every* test song again, and every row of that model in
   ``metrics.csv`` must come back within :data:`sepbook.results.TOLERANCE_DB` (a NaN against a
   number, or a row on one side only, fails). Rows without a seed (the unprocessed mixture, the
   oracle masks) are computed again too, where the recipe has ``reference_rows``.
2. **Retraining.** Runs are drawn at random, a different draw each time (``--seed`` replays one),
   and trained again from scratch exactly as ``make results`` trained them, one thread each (CPU
   training is deterministic), within ``--budget`` seconds of their recorded time; all of their
   rows are compared the same way. This covers the rows of runs without a committed checkpoint and
   checks that the code still trains the committed models. Only runs whose manifest records the
   code that trained them (a commit and :func:`sepbook.results.code_digest`, written since that
   record exists) and a CPU of this machine's kind (:func:`sepbook.results.cpu_kind`: another kind
   rounds differently, and a retrained run drifts) are drawn; other runs are covered by their
   checkpoints only, and their chapter's next ``make results`` brings them in.

Both steps run on ``--workers`` processes of one thread each (two by default, for a 2-core
machine). It prints what it covered, chapter by chapter, and exits non-zero on the first mismatch.

Chapter: preface
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sepbook import results
from sepbook.data import profiles

#: Seconds of recorded training that one ``make verify`` spends retraining runs, beside scoring every
#: committed checkpoint on every test song (which takes most of the check's time;
#: ``benchmarks/RESULTS.md`` records it).
BUDGET_SECONDS = 200.0


@dataclass
class Coverage:
    """How many of a chapter's committed rows one ``make verify`` re-derived, and how."""

    chapter: str
    rows: int
    from_checkpoints: int = 0
    from_retraining: int = 0  # rows of runs without a committed checkpoint
    reference: int = 0
    checkpoints: int = 0
    retrained: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def covered(self) -> int:
        return self.from_checkpoints + self.from_retraining + self.reference


def check_models(book: results.BookResults, keys: list[tuple[str, int]], coverage: Coverage) -> None:
    """Step 1 for some of a chapter's committed models: each on every test song, every row compared."""
    module = results.recipe(book.chapter)
    fresh = module.evaluate(book.cfg, {key: book.models[key] for key in keys}, book.test_tracks())
    made_on = {(r["variant"], r["seed"]): r.get("cpu") for r in book.manifest["runs"]}
    foreign = any(made_on.get(tuple(key)) != results.cpu_kind() for key in keys)
    loose = frozenset(getattr(module, "CPU_SENSITIVE_METRICS", ())) if foreign else frozenset()
    # a fresh row not committed raises
    worst, compared = results.compare(book.chapter, book.rows, fresh, loose)
    coverage.from_checkpoints += compared
    coverage.checkpoints += len(keys)
    what = f"{compared} rows" if fresh else "no rows (a model other runs start from, such as a critic)"
    lenient = f" ({', '.join(sorted(loose))} within {results.LOOSE_DB} dB: made on another kind of CPU)" if loose else ""
    print(f"  {book.chapter}: {', '.join(f'{v} seed {s}' for v, s in keys)} on {len(book.test_tracks())} songs: "
          f"{what}, largest difference {worst:.3f} dB{lenient}", flush=True)


def check_reference(book: results.BookResults, coverage: Coverage) -> None:
    """Step 1 for a chapter's rows without a seed (the unprocessed mixture, the oracle masks)."""
    module = results.recipe(book.chapter)
    # the cost rows (seconds per step, memory) are measurements of a machine, not derivable numbers
    fresh = [r for r in module.reference_rows(book.cfg, book.test_tracks()) if r["domain"] != "cost"]
    worst, coverage.reference = results.compare(book.chapter, book.rows, fresh)
    print(f"  {book.chapter}: {coverage.reference} reference rows, largest difference {worst:.3f} dB", flush=True)


def by_seed(keys) -> list[list[tuple[str, int]]]:
    """``keys`` ``(variant, seed)`` grouped by seed, one check job each: a job separates each test
    song with all of its models in turn, so the song's BSS Eval reference solve and its loading are
    shared (about half of a model's check), while the seeds still spread over the workers."""
    seeds = sorted({seed for _, seed in keys})
    return [sorted(key for key in keys if key[1] == seed) for seed in seeds]


def chain(book: results.BookResults, run: tuple[str, int]) -> list[tuple[str, int]]:
    """``run`` and the runs it starts from that have no committed checkpoint, prerequisites first."""
    module = results.recipe(book.chapter)
    variant, seed = run
    before = []
    for name in results.requires(module, variant, book.cfg):
        if (name, seed) not in book.models:
            before += [r for r in chain(book, (name, seed)) if r not in before]
    return before + [run]


def recorded_seconds(book: results.BookResults) -> dict[tuple[str, int], float]:
    """Each run's wall time in the manifest (training and evaluation)."""
    return {(r["variant"], r["seed"]): r["wall_seconds"] for r in book.manifest["runs"]}


def retrainable(book: results.BookResults) -> list[tuple[str, int]]:
    """The runs whose manifest records the code that trained them and a CPU of this machine's kind
    (:func:`sepbook.results.cpu_kind`), and that score rows (a run named
    like its rows' variant, or one whose checkpoint is committed: a recipe's runs may name their rows
    differently, as activity's ``IASS musdb`` scores ``IASS`` rows)."""
    scored = {(v, int(s)) for v, s in book.rows[book.rows["seed"].notna()][["variant", "seed"]].drop_duplicates()
              .itertuples(index=False, name=None)} | set(book.models)
    here = results.cpu_kind()
    return sorted((r["variant"], r["seed"]) for r in book.manifest["runs"]
                  if r.get("code_digest", "not recorded") != "not recorded" and r.get("cpu") == here
                  and (r["variant"], r["seed"]) in scored)


def draw(books: dict, budget: float, rng: random.Random) -> list[tuple[str, list]]:
    """Runs to retrain: ``(chapter, chain)`` drawn at random among every chapter's :func:`retrainable`
    runs, those without a committed checkpoint first, until their recorded seconds fill ``budget``."""
    candidates = []
    for chapter, book in books.items():
        seconds = recorded_seconds(book)
        for run in retrainable(book):
            runs = chain(book, run)
            cost = sum(seconds.get(r, float("inf")) for r in runs)
            candidates.append((run in book.models, rng.random(), cost, chapter, runs))
    chosen, spent = [], 0.0
    for _, _, cost, chapter, runs in sorted(candidates):
        if spent + cost <= budget:
            chosen.append((chapter, runs))
            spent += cost
    return chosen


def retrain(book: results.BookResults, runs: list[tuple[str, int]], coverage: Coverage) -> None:
    """Train ``runs`` again (the last is the one drawn; the others are what it starts from) and
    compare every row they score with ``metrics.csv``."""
    scratch = Path(tempfile.mkdtemp(prefix=f"verify-{book.chapter}-"))
    try:
        for (variant, seed), model in book.models.items():  # committed prerequisites, as make results left them
            path = book.folder / "checkpoints" / f"{variant}-seed{seed}.pt"
            if path.is_file():
                shutil.copyfile(path, scratch / f"{variant}-seed{seed}.weights.pt")
        for variant, seed in runs:
            started = time.perf_counter()
            record = results.train_one(book.chapter, book.cfg, variant, seed, scratch)
            worst, compared = results.compare(book.chapter, book.rows, record["rows"])
            if (variant, seed) not in book.models:  # rows no checkpoint covers
                coverage.from_retraining += compared
            coverage.retrained.append(f"{variant} seed {seed}")
            print(f"  {book.chapter}: retrained {variant} seed {seed} in {time.perf_counter() - started:.0f} s: "
                  f"{compared} rows, largest difference {worst:.3f} dB", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _rows_of(book: results.BookResults, keys: list[tuple[str, int]]) -> int:
    """A job's size: the committed rows of the seeds of ``keys`` (without keys: the rows without a seed)."""
    if not keys:
        return int(book.rows["seed"].isna().sum())
    return int(book.rows["seed"].isin({seed for _, seed in keys}).sum())


def _check_job(chapter: str, profile: str, folder: Path | None, keys: list) -> Coverage:
    """Step 1 for some committed models of one chapter (none: its reference rows), in a worker
    process of one thread."""
    profiles.one_thread()
    started = time.perf_counter()
    book = results.load(chapter, profile, check=False, folder=folder)
    coverage = Coverage(chapter, rows=0)
    if keys:
        check_models(book, [tuple(k) for k in keys], coverage)
    else:
        check_reference(book, coverage)
    coverage.seconds = time.perf_counter() - started
    return coverage


def _retrain_job(chapter: str, profile: str, folder: Path | None, runs: list) -> Coverage:
    """Step 2 for one drawn run (and the runs it starts from), in a worker process."""
    profiles.one_thread()
    started = time.perf_counter()
    book = results.load(chapter, profile, check=False, folder=folder)
    coverage = Coverage(chapter, rows=0)
    retrain(book, runs, coverage)
    coverage.seconds = time.perf_counter() - started
    return coverage


def run(chapters: list[str], budget: float, seed: int, profile: str = "book",
        folders: dict[str, Path] | None = None, workers: int = 1) -> list[Coverage]:
    """Both steps for ``chapters`` (their committed ``profile`` results, or those in ``folders``), on
    ``workers`` processes of one thread each; raises :class:`sepbook.results.ResultsMismatch` on any
    mismatch."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    folders = folders or {}
    books = {c: results.load(c, profile, check=False, folder=folders.get(c)) for c in chapters}
    drawn = draw(books, budget, random.Random(seed))
    print(f"1. every committed checkpoint on every test song; 2. {len(drawn)} runs retrained "
          f"(draw {seed}, budget {budget:.0f} s of recorded time), on {workers} worker(s)", flush=True)
    for book in books.values():  # the checkpoints folder against the manifest, before anything runs
        results.check_checkpoints(book)
    jobs = [(_retrain_job, (c, profile, folders.get(c), runs)) for c, runs in drawn]  # the longest first
    checks = [(c, keys) for c in chapters for keys in by_seed(books[c].models)] + [(c, []) for c in chapters]
    checks.sort(key=lambda check: -_rows_of(books[check[0]], check[1]))  # the largest first, to end together
    jobs += [(_check_job, (c, profile, folders.get(c), keys)) for c, keys in checks]
    if workers == 1:
        done = [job(*args) for job, args in jobs]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(job, *args) for job, args in jobs]
            done = [future.result() for future in futures]  # the first mismatch raises here
    coverages = {c: Coverage(c, rows=len(books[c].rows)) for c in chapters}
    for part in done:
        whole = coverages[part.chapter]
        whole.from_checkpoints += part.from_checkpoints
        whole.reference += part.reference
        whole.checkpoints += part.checkpoints
        whole.from_retraining += part.from_retraining
        whole.retrained += part.retrained
        whole.seconds += part.seconds
    return list(coverages.values())


def report(coverages: list[Coverage]) -> str:
    """The coverage table, as markdown."""
    lines = ["| chapter | rows | from checkpoints | reference rows | retrained | not covered this time | seconds |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in coverages:
        lines.append(f"| {c.chapter} | {c.rows} | {c.from_checkpoints} | {c.reference} | {c.from_retraining} "
                     f"({', '.join(c.retrained) or 'none'}) | {c.rows - c.covered} | {c.seconds:.0f} |")
    total = sum(c.rows for c in coverages)
    covered = sum(c.covered for c in coverages)
    lines.append(f"| all | {total} | {sum(c.from_checkpoints for c in coverages)} | "
                 f"{sum(c.reference for c in coverages)} | {sum(c.from_retraining for c in coverages)} | "
                 f"{total - covered} | {sum(c.seconds for c in coverages):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sepbook.results.verify", description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapters to check (default: every chapter with results)")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS,
                        help=f"seconds of recorded training to spend retraining (default {BUDGET_SECONDS:.0f})")
    parser.add_argument("--seed", type=int, default=None, help="replay one draw of runs to retrain")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one thread each (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the coverage to this file")
    args = parser.parse_args(argv)
    from sepbook.results import glance

    chapters = args.chapters or glance.committed()
    unknown = sorted(set(chapters) - set(results.RECIPES))
    if unknown:
        parser.error(f"chapters: {unknown} are not chapters; expected some of {sorted(results.RECIPES)}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    started = time.perf_counter()
    try:
        coverages = run(chapters, args.budget, seed, workers=args.workers)
    except results.ResultsMismatch as error:
        print(f"make verify FAILED (draw {seed}; replay it with --seed {seed}): {error}", file=sys.stderr)
        return 1
    print(report(coverages))
    print(f"make verify passed in {time.perf_counter() - started:.0f} s (draw {seed})")
    if args.json:
        args.json.write_text(json.dumps({"seed": seed, "seconds": round(time.perf_counter() - started, 1),
                                         "chapters": [asdict(c) for c in coverages]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
