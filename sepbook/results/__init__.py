"""A chapter's ``book`` experiment: trained on the CPU from one command, committed, re-checked on every build.

``python -m sepbook.results CHAPTER`` (or ``make results CHAPTER=...``) trains every run of the
chapter's recipe (``recipe.runs(cfg)``: each variant on each seed, plus ablations) in worker
processes of one thread each, evaluates them, and writes ``chapters/CHAPTER/results/book/``:

- ``metrics.csv``: one row per (variant, seed, song, domain, source, metric, value);
- ``manifest.json``: the command, the commit, the settings and their hash, package versions, the
  machine, the date, and for every run its wall time, the commit it was trained at and a digest of
  the package code that trained it (:func:`code_digest`);
- ``histories.json``: every run's training curve (every tenth step) and validation scores;
- ``checkpoints/VARIANT-seedS.pt``: every run's model as a float16 state dict (only the seed-0 models
  the page draws and plays in a chapter of very many runs; :func:`kept_checkpoints`).

An interrupted command resumes: finished runs are kept (``data/generated/runs/``) and a run cut
short continues from its own training checkpoint. Committed weights are rounded to float16
*before* evaluation, so ``metrics.csv`` describes exactly the committed models; the manifest
records how far float32 weights would score from them.

On many GPUs, ``torchrun --nproc_per_node=N -m sepbook.results CHAPTER --profile paper`` trains the
same runs one after another, each by all N processes together (:mod:`sepbook.experiments.distributed`: every
step's batch of ``batch_size`` items is split over them); rank 0 evaluates and writes the results.

:func:`load` reads the results for a page and, with ``check=True``, separates its first test songs
again with every committed checkpoint and stops with :class:`ResultsMismatch` if they no longer
give the numbers in ``metrics.csv``; :mod:`sepbook.results.verify` (``make verify``) does so on every test
song and retrains a sample of runs.

Chapter: preface
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from sepbook.data import profiles
from sepbook.experiments import distributed
from sepbook.recipes import activity, adversarial, foundations, metatasnet, transcription, transfer

#: Every chapter with committed results, and the recipe that produces them.
RECIPES: dict[str, ModuleType] = {"foundations": foundations, "adversarial": adversarial,
                                  "transcription": transcription, "activity": activity,
                                  "metatasnet": metatasnet, "transfer": transfer}
ROOT = Path(__file__).resolve().parents[2]
TOLERANCE_DB = 0.05
#: The repository's archive: an installed sepbook (on Colab) has no ``chapters/`` and reads the
#: committed results from it. ``$SEPBOOK_RESULTS_URL`` points elsewhere (a fork, a local file).
ARCHIVE_URL = "https://github.com/sepbook/sepbook/archive/refs/heads/main.tar.gz"
ARCHIVE_ENV = "SEPBOOK_RESULTS_URL"
HISTORY_STRIDE = 10


class ResultsMismatch(RuntimeError):
    """Committed results that their own checkpoints no longer reproduce."""


def recipe(chapter: str) -> ModuleType:
    """The recipe module of ``chapter``."""
    if chapter not in RECIPES:
        raise ValueError(f"chapter: expected one of {sorted(RECIPES)}, got {chapter!r}")
    return RECIPES[chapter]


def results_dir(chapter: str, profile: str = "book") -> Path:
    """``chapters/<chapter>/results/<profile>/`` of the checkout, or of the repository's archive when
    sepbook is installed without one (:func:`committed_results`)."""
    root = ROOT if (ROOT / "chapters").is_dir() else committed_results()
    return root / "chapters" / chapter / "results" / profile


def _results_path(name: str) -> Path | None:
    """``sepbook-main/chapters/x/results/...`` -> ``chapters/x/results/...``; None for anything else."""
    parts = Path(name).parts[1:]
    if len(parts) < 4 or parts[0] != "chapters" or parts[2] != "results" or ".." in parts:
        return None
    return Path(*parts)


def committed_results() -> Path:
    """The repository's committed ``chapters/*/results/``, fetched once from its archive and kept in
    the data folder (:func:`sepbook.data.corpora.data_root`); -> the folder that holds ``chapters/``."""
    from sepbook.data.corpora import data_root

    url = os.environ.get(ARCHIVE_ENV) or ARCHIVE_URL
    target = data_root() / "committed-results" / hashlib.sha256(url.encode()).hexdigest()[:12]
    if (target / "complete").is_file():
        return target
    print(f"sepbook is installed without the book's committed results: fetching them from {url}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="partial-", dir=target.parent))  # renamed into place when whole
    try:
        with urllib.request.urlopen(url, timeout=120) as response, tempfile.TemporaryFile() as archive:
            shutil.copyfileobj(response, archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                for member in tar:
                    path = _results_path(member.name)
                    if path is not None and member.isfile():
                        (partial / path).parent.mkdir(parents=True, exist_ok=True)
                        (partial / path).write_bytes(tar.extractfile(member).read())
    except (OSError, urllib.error.URLError, tarfile.TarError) as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise FileNotFoundError(f"sepbook is installed without the committed results, and fetching them from "
                                f"{url} (${ARCHIVE_ENV}) failed: {error}") from error
    if not (partial / "chapters").is_dir():
        shutil.rmtree(partial, ignore_errors=True)
        raise FileNotFoundError(f"{url} (${ARCHIVE_ENV}) holds no chapters/*/results/ folder")
    (partial / "complete").write_text(url + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def command(chapter: str) -> str:
    """The command that (re)generates ``chapter``'s committed results."""
    return f"make results CHAPTER={chapter}"


def torchrun_command(chapter: str, profile: str = "paper", gpus: int | str = "N") -> str:
    """The command that trains ``chapter``'s ``profile`` runs on ``gpus`` GPUs of one machine."""
    return f"torchrun --nproc_per_node={gpus} -m sepbook.results {chapter} --profile {profile}"


def plain(value: Any) -> Any:
    """Settings as JSON keeps them (tuples become lists)."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- producing


def half_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with floating-point tensors stored as float16 (on the CPU)."""
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
            for k, v in model.state_dict().items()}


def load_half(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Load float16 weights into ``model`` as float32; -> the model in eval mode."""
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    return model.eval()


_DATA: dict[tuple[str, str], Any] = {}


def _data(chapter: str, cfg: dict):
    key = (chapter, profiles.digest(cfg))
    if key not in _DATA:
        _DATA[key] = recipe(chapter).data(cfg)
    return _DATA[key]


def train_one(chapter: str, cfg: dict, variant: str, seed: int, scratch: Path) -> dict:
    """Train, round to float16, evaluate and record one run; -> its record.

    The record goes to ``scratch/VARIANT-seedS.json`` and the float16 weights to
    ``scratch/VARIANT-seedS.weights.pt``, from where :func:`write` takes the ones a page needs.
    Under torchrun every process trains the run and rank 0 alone evaluates and records it; the others
    return its record once it is written.
    """
    if not distributed.active():
        profiles.one_thread()  # worker processes share the cores; torchrun sets $OMP_NUM_THREADS itself
    module = recipe(chapter)
    splits = _data(chapter, cfg)
    name = f"{variant}-seed{seed}"
    started = time.perf_counter()
    needed = requires(module, variant, cfg)
    options = {"prerequisites": prerequisites(chapter, cfg, variant, seed, scratch)} if needed else {}
    model, history = module.train(cfg, splits, variant, seed, checkpoint=scratch / f"{name}.pt", progress=False,
                                  checkpoint_every=max(1, cfg.get("steps", 500) // 10), live=False, **options)
    trained = time.perf_counter() - started
    if not distributed.is_main():
        return _await_record(scratch / f"{name}.json")
    full = module.evaluate(cfg, {(variant, seed): model}, splits.test[:2])
    weights = half_weights(model)
    load_half(model, weights)
    rows = module.evaluate(cfg, {(variant, seed): model}, splits.test)
    drift = max((abs(a["value"] - b["value"]) for a, b in zip(full, rows) if math.isfinite(a["value"])),
                default=0.0)
    torch.save(weights, scratch / f"{name}.weights.pt")
    record = {"variant": variant, "seed": seed, "rows": rows, "train_seconds": trained,
              "commit": _commit(), "code_digest": code_digest(), "cpu": cpu_kind(),
              "wall_seconds": time.perf_counter() - started, "float16_drift_db": drift,
              "history": _thin(history)}
    _write_atomically(scratch / f"{name}.json", json.dumps(record))  # last: its presence means "done"
    return record


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # a reader never sees half a record


def _await_record(path: Path, poll_seconds: float = 2.0) -> dict:
    """The record rank 0 writes after evaluating a run. Polled, not a barrier: evaluating a paper-sized
    test set can outlast any collective's timeout (and torchrun stops every process if rank 0 fails)."""
    while not path.is_file():
        time.sleep(poll_seconds)
    return json.loads(path.read_text())


def requires(module: ModuleType, variant: str, cfg: dict | None = None) -> tuple[str, ...]:
    """The runs (same seed) ``variant`` starts from or chooses among: the recipe's ``requires``."""
    return tuple(module.requires(cfg, variant))


def prerequisites(chapter: str, cfg: dict, variant: str, seed: int, scratch: Path) -> dict[str, torch.nn.Module]:
    """The trained models ``variant`` starts from, read back from their float16 weights in ``scratch``."""
    module = recipe(chapter)
    models = {}
    for name in requires(module, variant, cfg):
        path = scratch / f"{name}-seed{seed}.weights.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: {variant!r} seed {seed} starts from {name!r}, which is not trained yet")
        models[name] = load_half(module.build(cfg, name), torch.load(path, map_location="cpu", weights_only=True))
    return models


def _thin(history: dict) -> dict:
    """Every tenth value of the per-step logs (lists as long as ``history['step']``); the rest whole."""
    per_step = {k for k, v in history.items() if isinstance(v, list) and len(v) == len(history["step"])
                and k not in ("valid", "valid_step", "best_step")}
    return {k: v[HISTORY_STRIDE - 1::HISTORY_STRIDE] if k in per_step else v for k, v in history.items()}


def _worker(job):
    return train_one(*job)


def produce(chapter: str, profile: str = "book", workers: int | None = None, out: Path | None = None,
            **overrides) -> Path:
    """Train every run of ``chapter`` (resuming what is done) and write its results folder.

    ``workers`` processes train runs side by side (default 2). Under torchrun (see
    :mod:`sepbook.experiments.distributed`) the processes instead train each run together, one run after
    another, so ``workers`` must be 1 or left out, and ``batch_size`` a multiple of their number.
    ``out`` defaults to :func:`results_dir`; ``overrides`` change settings (the tests shrink runs
    this way) and are recorded in the manifest.
    """
    import multiprocessing

    module = recipe(chapter)
    cfg = module.config(profile, **overrides)
    parallel = distributed.active()
    if parallel and workers not in (None, 1):
        raise ValueError(f"workers: under torchrun the {distributed.world()} processes train every run "
                         f"together, so there are no worker processes; leave workers out (got {workers})")
    workers = workers if workers is not None else 1 if parallel else 2
    if parallel and "batch_size" in cfg:
        distributed.check_divisible(cfg["batch_size"])  # before any data is read
    out = Path(out) if out is not None else results_dir(chapter, profile)
    scratch = _scratch(chapter, profile, cfg)
    started = time.perf_counter()
    with distributed.main_first():
        _data(chapter, cfg)  # builds any generated corpus once, before workers (or other processes) read it
    # every process must train the same runs: rank 0's view of what is done decides
    todo = distributed.from_main(lambda: [(chapter, cfg, v, s, scratch) for v, s in module.runs(cfg)
                                          if not (scratch / f"{v}-seed{s}.json").is_file()])
    commit = _commit()
    how = f"{distributed.world()} processes together" if parallel else f"{workers} workers"
    _say(f"{chapter} ({profile}): {len(todo)} of {len(module.runs(cfg))} runs to train on {how}")
    missing = {r for _, _, v, _, _ in todo for r in requires(module, v, cfg)} - {v for v, _ in module.runs(cfg)}
    if missing:
        raise ValueError(f"{chapter}: requires() names {sorted(missing)}, which are not runs of the recipe")

    def ready(job) -> bool:
        return all((scratch / f"{name}-seed{job[3]}.json").is_file() for name in requires(module, job[2], cfg))

    def report(record) -> None:
        _say(f"  {record['variant']} seed {record['seed']}: {record['wall_seconds'] / 60:.1f} min")

    if todo and workers == 1:
        while todo:  # each run after the runs it starts from
            job = next((j for j in todo if ready(j)), None)
            if job is None:
                raise RuntimeError(f"{chapter}: runs {[(j[2], j[3]) for j in todo]} wait for runs that are not scheduled")
            todo.remove(job)
            report(_worker(job))
    elif todo:
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(workers, len(todo))) as pool:
            running = []
            while todo or running:
                if not running and not any(ready(j) for j in todo):
                    raise RuntimeError(f"{chapter}: runs {[(j[2], j[3]) for j in todo]} wait for runs that are not scheduled")
                for job in [j for j in todo if ready(j)][:max(0, workers - len(running))]:
                    todo.remove(job)
                    running.append(pool.apply_async(_worker, (job,)))
                finished = [r for r in running if r.ready()]
                for result in finished:
                    running.remove(result)
                    report(result.get())
                if not finished:
                    time.sleep(0.5)
            pool.close()
            pool.join()
    if not distributed.is_main():
        return out
    return write(chapter, cfg, scratch, out, time.perf_counter() - started, workers, overrides, commit)


def _say(text: str) -> None:
    if distributed.is_main():  # one copy of each line, not one per process
        print(text, flush=True)


def _scratch(chapter: str, profile: str, cfg: dict) -> Path:
    from sepbook.data.corpora import data_root

    scratch = data_root() / "runs" / f"{chapter}-{profile}-{profiles.digest(cfg)}"
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


def write(chapter: str, cfg: dict, scratch: Path, out: Path, session_seconds: float, workers: int,
          overrides: dict, commit: str) -> Path:
    """Assemble the runs in ``scratch`` into ``metrics.csv``, ``histories.json`` and ``manifest.json`` in ``out``."""
    module = recipe(chapter)
    records = [json.loads((scratch / f"{v}-seed{s}.json").read_text()) for v, s in module.runs(cfg)]
    rows = [row for r in records for row in r["rows"]]
    rows = module.reference_rows(cfg, _data(chapter, cfg).test) + rows
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    for old in (out / "checkpoints").glob("*.pt"):
        old.unlink()
    for name in kept_checkpoints(module, cfg, records):
        shutil.copyfile(scratch / f"{name}.weights.pt", out / "checkpoints" / f"{name}.pt")
    with open(out / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["variant", "seed", "song", "domain", "source", "metric", "value"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "seed": "" if row["seed"] is None else row["seed"],
                             "value": repr(float(row["value"]))})
    histories = {f"{r['variant']}/{r['seed']}": r["history"] for r in records}
    (out / "histories.json").write_text(json.dumps(histories, separators=(",", ":")))
    machine = {"system": platform.platform(), "processor": platform.machine(), "cores": os.cpu_count(),
               "workers": workers, "threads_per_worker": 1}
    used = command(chapter)
    if distributed.active():
        per_machine = os.environ.get("LOCAL_WORLD_SIZE", distributed.world())
        used = torchrun_command(chapter, cfg["profile"], per_machine)
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        machine |= {"processes": distributed.world(), "backend": torch.distributed.get_backend(), "gpu": gpu}
    manifest = {
        "chapter": chapter, "profile": cfg["profile"], "overrides": plain(overrides),
        "command": used if not overrides else f"sepbook.results.produce({chapter!r}, **{overrides!r})",
        "commit": commit,
        "settings": plain(cfg), "settings_digest": profiles.digest(cfg),
        "versions": _versions(), "machine": machine,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": [{"variant": r["variant"], "seed": r["seed"], "train_seconds": round(r["train_seconds"], 1),
                  "wall_seconds": round(r["wall_seconds"], 1), "commit": r.get("commit", "not recorded"),
                  "code_digest": r.get("code_digest", "not recorded"), "cpu": r.get("cpu", "not recorded")}
                 for r in records],
        "total_run_seconds": round(sum(r["wall_seconds"] for r in records), 1),
        "wall_seconds_last_session": round(session_seconds, 1),
        "float16_storage_max_drift_db": max(r["float16_drift_db"] for r in records),
        "checkpoints": sorted(p.name for p in (out / "checkpoints").glob("*.pt")),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


#: A chapter with at most this many runs that score rows commits all their checkpoints (every seed, every ablation),
#: so that :mod:`sepbook.results.verify` can re-derive each of its rows; a larger one (transfer's hundreds of
#: fine-tunes) commits seed 0 of its compared systems, and its other rows are covered by retraining.
ALL_CHECKPOINTS_UP_TO_RUNS = 40


def kept_checkpoints(module: ModuleType, cfg: dict, records: list[dict]) -> list[str]:
    """The runs (``VARIANT-seedS``) whose float16 weights go into the committed ``checkpoints/``: seed 0 of
    the systems the page shows, and every run that scores rows unless the chapter has very many."""
    shown = [f"{variant}-seed{cfg['seeds'][0]}" for variant in module.VARIANTS]  # what the page draws and plays
    scored = [f"{r['variant']}-seed{r['seed']}" for r in records if r["rows"]]
    if len(scored) > ALL_CHECKPOINTS_UP_TO_RUNS:
        return shown
    return scored + [name for name in shown if name not in scored]


def code_digest() -> str:
    """A SHA-256 of the package's source (every ``sepbook/**/*.py``, by path and content): the code that
    trained a run, whatever the commit says about uncommitted changes."""
    digest = hashlib.sha256()
    package = ROOT / "sepbook"
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cpu_kind() -> str:
    """The kind of CPU a run trains on, as far as its arithmetic goes: the vendor, the architecture and the
    vector instructions PyTorch uses (``AVX512``, ``AVX2``, ...). Training is deterministic on one kind;
    on another, the same code rounds differently and a retrained run drifts."""
    vendor = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{vendor} {platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


def _commit() -> str:
    """The commit the code was checked out at, with ``+changes`` if ``sepbook/`` differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + ("+changes" if git("status", "--porcelain", "sepbook") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("sepbook", "torch", "numpy", "scipy", "museval", "mir_eval", "librosa", "soxr", "musdb",
                 "pandas", "pretty_midi"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


# ----------------------------------------------------------------------------- reading


@dataclass
class BookResults:
    """A chapter's committed results: ``rows`` (DataFrame), ``manifest``, and ``histories`` and
    ``models`` keyed ``(variant, seed)``; ``largest_difference`` (dB) is what :func:`recheck` found."""

    chapter: str
    cfg: dict
    rows: Any
    manifest: dict
    histories: dict
    models: dict
    largest_difference: float | None = None
    checked: dict | None = None
    folder: Path | None = None

    def data(self):
        """The recipe's data at these results' settings (built once per process)."""
        return _data(self.chapter, self.cfg)

    def test_tracks(self) -> list:
        """The test songs at these results' settings, through the recipe's ``test_tracks(cfg)``, so
        checking results need not load the training songs."""
        module = recipe(self.chapter)
        key = (self.chapter, profiles.digest(self.cfg), "test")
        if key not in _DATA:
            _DATA[key] = module.test_tracks(self.cfg)
        return _DATA[key]

    def check_sentence(self) -> str:
        """What the last :func:`recheck` compared, in one sentence for the page."""
        c = self.checked
        if c is None:
            return "These results were not re-checked in this build."
        seeds = sorted({s for _, s in self.models})
        models = "committed checkpoint" if c["checkpoints"] == 1 else f"{c['checkpoints']} committed checkpoints"
        return (f"the {models} (seeds {', '.join(map(str, seeds))}) separated "
                f"{c['songs']} of the {c['of_songs']} test songs again, and all {c['rows']} of their rows on those "
                f"songs matched metrics.csv (largest difference {c['worst']:.3f} dB, tolerance {TOLERANCE_DB} dB). "
                f"The other rows of the {c['of_rows']} are left to `make verify`, which re-derives every row a "
                f"committed checkpoint scores and retrains a random sample of the runs whose code is recorded")

    def provenance(self) -> str:
        """Where these numbers come from, in one sentence for the page."""
        m, machine = self.manifest, self.manifest["machine"]
        seeds = ", ".join(map(str, m["settings"]["seeds"]))
        workers = f"{machine['workers']} worker process" + ("es" if machine["workers"] > 1 else "")
        return (f"{m['profile']} profile, seeds {seeds}, trained with '{m['command']}' on {m['date']} on a "
                f"{machine['cores']}-core {machine['processor']} CPU ({workers} of one thread each, "
                f"{len(m['runs'])} runs taking {m['total_run_seconds'] / 60:.1f} min in all, "
                f"{m['wall_seconds_last_session'] / 60:.1f} min wall clock in the session that finished them), "
                f"commit {m['commit'][:10]}")


def load(chapter: str, profile: str = "book", check: bool = True, songs: int | None = 2,
         folder: Path | None = None) -> BookResults:
    """Read ``chapter``'s committed results; with ``check``, verify them against their checkpoints."""
    import pandas as pd

    module = recipe(chapter)
    folder = Path(folder) if folder is not None else results_dir(chapter, profile)
    if not (folder / "manifest.json").is_file():
        raise FileNotFoundError(f"{folder / 'manifest.json'} does not exist: the {chapter} chapter has no committed "
                                f"{profile} results; create them with `{command(chapter)}`")
    manifest = json.loads((folder / "manifest.json").read_text())
    cfg = module.config(profile, **manifest.get("overrides", {}))
    if manifest["settings_digest"] != profiles.digest(cfg):
        raise ResultsMismatch(f"{chapter}: the {profile} settings in sepbook/data/profiles.py changed since the results in "
                              f"{folder} were made; regenerate them with `{command(chapter)}`")
    rows = pd.read_csv(folder / "metrics.csv", dtype={"domain": str}, keep_default_na=False, na_values={"value": ["nan"]})
    rows["seed"] = pd.to_numeric(rows["seed"], errors="coerce")
    histories = {(key.rsplit("/", 1)[0], int(key.rsplit("/", 1)[1])): history
                 for key, history in json.loads((folder / "histories.json").read_text()).items()}
    models = {}
    for path in sorted((folder / "checkpoints").glob("*.pt")):
        variant, seed = path.stem.rsplit("-seed", 1)
        weights = torch.load(path, map_location="cpu", weights_only=True)
        models[(variant, int(seed))] = load_half(module.build(cfg, variant), weights)
    results = BookResults(chapter, cfg, rows, manifest, histories, models, folder=folder)
    if check:
        results.largest_difference = recheck(results, songs)
    return results


def recheck(results: BookResults, songs: int | None = 2) -> float:
    """Separate the first ``songs`` test songs (every one with ``None``) with every committed model and
    compare each of those models' rows on those songs with ``metrics.csv`` (:func:`compare`).

    Raises :class:`ResultsMismatch` on any difference. Records what it checked in
    ``results.checked`` (:meth:`BookResults.check_sentence`). -> the largest difference (dB).
    """
    module = recipe(results.chapter)
    check_checkpoints(results)
    tracks = results.test_tracks()
    if songs is not None:  # the first songs the committed models score (each transfer model scores one set)
        scored = set(results.rows["song"][results.rows["variant"].isin({v for v, _ in results.models})])
        tracks = ([t for t in tracks if t.name in scored] or tracks)[:songs]
    fresh = module.evaluate(results.cfg, results.models, tracks)
    worst, compared = compare(results.chapter, results.rows, fresh)
    if results.models and not compared:
        raise ResultsMismatch(f"{results.chapter}: the committed checkpoints score none of the rows of metrics.csv "
                              f"on {[t.name for t in tracks]}; regenerate the results with `{command(results.chapter)}`")
    results.checked = {"rows": compared, "songs": len(tracks), "of_songs": len(results.test_tracks()),
                       "checkpoints": len(results.models), "of_rows": len(results.rows), "worst": worst}
    return worst


#: How far a CPU-sensitive row (a recipe's ``CPU_SENSITIVE_METRICS``) may move on a CPU of another
#: kind, and the share of them that may move past :data:`TOLERANCE_DB` at all.
LOOSE_DB, LOOSE_SHARE = 1.0, 0.05


def compare(chapter: str, rows, fresh: list[dict], loose: frozenset[str] = frozenset()) -> tuple[float, int]:
    """Compare freshly computed ``fresh`` rows with the committed ``rows`` (a DataFrame) of the same
    variants, seeds and songs, one to one.

    A row on one side only, a NaN against a number, or a difference above :data:`TOLERANCE_DB`
    raises :class:`ResultsMismatch` naming the row. Rows of the ``loose`` metrics (checked on a CPU
    of another kind than the one that made them) may differ by up to :data:`LOOSE_DB`, but only
    :data:`LOOSE_SHARE` of them by more than the tolerance. -> (largest difference, rows compared).
    """
    key = ["variant", "seed", "song", "source", "metric"]
    made = {(r["variant"], _plain_key(r["seed"]), r["song"]) for r in fresh}
    committed = {tuple(_plain_key(v) for v in k): float(value)
                 for k, value in zip(rows[key].itertuples(index=False, name=None), rows["value"])
                 if (k[0], _plain_key(k[1]), k[2]) in made}
    redo = f"Regenerate the results with `{command(chapter)}`"
    worst, moved, counted = 0.0, 0, 0
    seen = set()
    for row in fresh:
        k = tuple(_plain_key(row[c]) for c in key)
        seen.add(k)
        if k not in committed:
            raise ResultsMismatch(f"{chapter}: metrics.csv has no row for {k}; the test songs changed. {redo}")
        old, new = committed[k], float(row["value"])
        if math.isnan(old) and math.isnan(new):
            continue
        if math.isnan(old) != math.isnan(new):
            raise ResultsMismatch(f"{chapter}: {k} is {old} in metrics.csv but {new} when computed again. {redo}")
        if row["metric"] in loose and abs(old - new) <= LOOSE_DB:
            moved += abs(old - new) > TOLERANCE_DB
            counted += 1
            continue
        worst = max(worst, abs(old - new))
        if not abs(old - new) <= TOLERANCE_DB:
            raise ResultsMismatch(f"{chapter}: {k} is {old:.4f} in metrics.csv but {new:.4f} when computed again "
                                  f"(tolerance {TOLERANCE_DB} dB); the code changed since the results were made. {redo}")
    if moved > LOOSE_SHARE * counted:
        raise ResultsMismatch(f"{chapter}: {moved} of {counted} rows of {sorted(loose)} moved by more than "
                              f"{TOLERANCE_DB} dB on this CPU, more than the {LOOSE_SHARE:.0%} another CPU's "
                              f"rounding explains. {redo}")
    missing = set(committed) - seen
    if missing:
        raise ResultsMismatch(f"{chapter}: {len(missing)} rows of metrics.csv, such as {sorted(missing)[0]}, were not "
                              f"computed again: the recipe no longer scores them. {redo}")
    return worst, len(seen)


def _plain_key(value):
    """Seeds as ints (pandas reads them as floats) and a missing seed as None, everything else as is."""
    if isinstance(value, float):
        return None if math.isnan(value) else int(value) if value.is_integer() else value
    return value


def check_checkpoints(results: BookResults) -> None:
    """The checkpoints folder must hold exactly the checkpoints the manifest lists."""
    listed = set(results.manifest.get("checkpoints", []))
    present = {f"{v}-seed{s}.pt" for v, s in results.models}
    if listed != present:
        missing, extra = sorted(listed - present), sorted(present - listed)
        raise ResultsMismatch(f"{results.chapter}: the checkpoints folder does not match manifest.json "
                              f"(missing: {missing or 'none'}; not in the manifest: {extra or 'none'}). "
                              f"Regenerate the results with `{command(results.chapter)}`")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``['steps=20', "seeds=(0,)"]`` -> ``{'steps': 20, 'seeds': (0,)}``; values are Python literals,
    and a bare word is a string (``--set dataset=musdb18hq``)."""
    import ast

    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        overrides[name.strip()] = value
    return overrides


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sepbook.results", description=__doc__.splitlines()[0])
    parser.add_argument("chapter", choices=sorted(RECIPES))
    parser.add_argument("--profile", default="book", choices=profiles.PROFILES)
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes, one thread each (default 2); not under torchrun, whose "
                             "processes train each run together")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the results folder here (default: chapters/CHAPTER/results/PROFILE/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="change one setting of the profile (a Python literal: --set steps=20 "
                             "--set seeds='(0,)'); repeat for more; recorded in the manifest")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
    except ValueError as error:
        parser.error(f"--set: {error}")
    if distributed.requested() and args.workers not in (None, 1):
        parser.error(f"--workers: under torchrun (WORLD_SIZE={os.environ['WORLD_SIZE']}) the processes train "
                     f"every run together; leave --workers out (got {args.workers})")
    distributed.init()  # joins the other processes under torchrun; nothing otherwise
    out = produce(args.chapter, args.profile, args.workers, args.out, **overrides)
    if distributed.is_main():
        check = "" if args.out else (f"; check it with: python -c \"from sepbook import results; "
                                     f"results.load('{args.chapter}', '{args.profile}')\"")
        print(f"wrote {out}{check}")

