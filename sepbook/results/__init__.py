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

The package: :mod:`~sepbook.results.store` (the recipes, where results live, stored weights),
:mod:`~sepbook.results.make` (``make results``), :mod:`~sepbook.results.read` (reading and
re-checking), :mod:`~sepbook.results.fetch` (for an installed sepbook), :mod:`~sepbook.results.verify`
(``make verify``), :mod:`~sepbook.results.glance` (every chapter's verdicts) and
:mod:`~sepbook.results.realdata` (the real datasets). The names below are the ones pages and tools use.

Chapter: preface
"""
from sepbook.results.fetch import committed_results
from sepbook.results.make import (ALL_CHECKPOINTS_UP_TO_RUNS, kept_checkpoints, main, parse_overrides, prerequisites,
                                  produce, train_one, write)
from sepbook.results.read import LOOSE_DB, BookResults, check_checkpoints, compare, load, recheck
from sepbook.results.store import (HISTORY_STRIDE, RECIPES, ROOT, TOLERANCE_DB, ResultsMismatch, _data, code_digest,
                                   command, cpu_kind, half_weights, load_half, plain, recipe, requires, results_dir,
                                   torchrun_command)

__all__ = ["_data", "ALL_CHECKPOINTS_UP_TO_RUNS", "BookResults", "check_checkpoints", "code_digest", "command", "committed_results", "compare", "cpu_kind", "half_weights", "HISTORY_STRIDE", "kept_checkpoints", "load", "load_half", "LOOSE_DB", "main", "parse_overrides", "plain", "prerequisites", "produce", "recheck", "recipe", "RECIPES", "requires", "results_dir", "ResultsMismatch", "ROOT", "TOLERANCE_DB", "torchrun_command", "train_one", "write"]
