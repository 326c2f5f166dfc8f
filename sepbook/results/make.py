"""``make results CHAPTER=...``: every run of a chapter trained, evaluated and written, resumably.

Chapter: preface
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from sepbook.data import profiles
from sepbook.experiments import distributed
from sepbook.results.store import (HISTORY_STRIDE, RECIPES, _commit, _data, _versions, code_digest, command, cpu_kind,
                                   half_weights, load_half, plain, recipe, requires, results_dir, torchrun_command)


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
