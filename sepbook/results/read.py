"""Committed results read back for a page, and re-checked against their checkpoints.

Chapter: preface
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sepbook.data import profiles
from sepbook.results import store
from sepbook.results.store import TOLERANCE_DB, ResultsMismatch, _data, command, load_half, recipe, results_dir


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
        loaded = store._DATA.get((self.chapter, profiles.digest(self.cfg)))
        if loaded is not None:  # the whole data is already in memory: do not read the test songs again
            return loaded.test
        key = (self.chapter, profiles.digest(self.cfg), "test")
        if key not in store._DATA:
            store._DATA[key] = module.test_tracks(self.cfg)
        return store._DATA[key]

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
