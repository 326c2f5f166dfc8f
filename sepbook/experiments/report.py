"""From result rows to what a chapter reports: means and spread over seeds, the paper's table
layout with the paper's numbers beside ours, gains over a baseline, and sentences that describe them
(the verdicts on papers' claims are :mod:`sepbook.experiments.claims`').

Every chapter's ``evaluate`` returns rows with the same columns, :data:`COLUMNS`: one row per
(variant, seed, song, source, metric) with its ``value``; ``domain`` says where the song comes
from. Scores are averaged over songs within a seed first, then mean and standard deviation are
taken over seeds, so the spread is the seed-to-seed spread a reader would see on retraining.

Chapter: preface
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

COLUMNS = ("variant", "seed", "song", "domain", "source", "metric", "value")


def rows_for(values: Mapping[str, Mapping[str, float]], **keys: Any) -> list[dict]:
    """Rows from ``{source: {metric: value}}`` for one (variant, seed, song, domain) given as ``keys``."""
    return [{**keys, "source": source, "metric": metric, "value": float(value)}
            for source, by_metric in values.items() for metric, value in by_metric.items()]


def bss_rows(scores: Mapping[str, np.ndarray], source_names: Sequence[str], *, metrics=("SDR", "SIR", "SAR"),
             **keys: Any) -> list[dict]:
    """Rows from one track's :func:`sepbook.metrics.bss_eval` scores: the median over frames, as SiSEC does."""
    values = {}
    for k, source in enumerate(source_names):
        values[source] = {m: float(np.nanmedian(scores[m][k])) if np.isfinite(scores[m][k]).any() else math.nan
                          for m in metrics}
    return rows_for(values, **keys)


def frame(rows):
    """Rows (dicts or a DataFrame) as a DataFrame with at least :data:`COLUMNS`."""
    import pandas as pd

    table = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise ValueError(f"rows: missing columns {missing}; expected {list(COLUMNS)}")
    return table


def per_seed(rows, by: Sequence[str] = ("variant",)):
    """The mean over songs (and anything not in ``by``) of each seed: a Series indexed by ``(*by, seed)``."""
    table = frame(rows)
    return table.groupby([*by, "seed"], dropna=False)["value"].mean()


def summary(rows, by: Sequence[str] = ("variant",)):
    """``mean``, ``std`` (over seeds, ``ddof=1``; NaN for one seed) and ``seeds`` per group of ``by``."""
    seeds = per_seed(rows, by)
    grouped = seeds.groupby(level=list(range(len(by))), dropna=False)
    return grouped.agg(mean="mean", std=_spread, seeds="count")


def cell(mean: float, std: float, seeds: int, digits: int = 2, signed: bool = False) -> str:
    """``'mean ± std'`` (or just the mean for one seed; '–' when there is no number); ``signed``
    writes the mean's sign even when it is positive, as for a difference."""
    if not math.isfinite(mean):
        return "–"
    shown = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return f"{shown} ± {std:.{digits}f}" if seeds > 1 and math.isfinite(std) else shown


def table(rows, index: str, columns: Sequence[str], digits: int = 2, index_order=None, column_order=None):
    """Mean ± std over seeds in a grid: one row per value of ``index``, columns by ``columns``."""
    import pandas as pd

    stats = summary(rows, (index, *columns))
    cells = {key: cell(r["mean"], r["std"], int(r["seeds"]), digits) for key, r in stats.iterrows()}
    rows_ = index_order or sorted({k[0] for k in cells})
    cols = _product(column_order) if column_order else sorted({k[1:] for k in cells})
    cols = [c for c in cols if any((r, *c) in cells for r in rows_)]
    data = [[cells.get((r, *c), "–") for c in cols] for r in rows_]
    return pd.DataFrame(data, index=rows_, columns=pd.MultiIndex.from_tuples(cols, names=list(columns)))


def paper_table(rows, index: str, columns: Sequence[str], paper: Mapping[tuple, float], profile: str,
                digits: int = 2, index_order=None, column_order=None):
    """:func:`table` with the paper's number beside each of our cells (an extra column level ``numbers``)."""
    import pandas as pd

    ours = table(rows, index, columns, digits, index_order, column_order)
    data, keys = {}, []
    for column in ours.columns:
        for who in (f"ours ({profile})", "paper"):
            keys.append((*column, who))
            if who == "paper":
                data[keys[-1]] = [_number(paper.get((r, *column)), digits) for r in ours.index]
            else:
                data[keys[-1]] = list(ours[column])
    result = pd.DataFrame(data, index=ours.index)
    result.columns = pd.MultiIndex.from_tuples(keys, names=[*columns, "numbers"])
    return result


def gains(rows, variant: str, baseline: str, by: Sequence[str] = ()):
    """``variant - baseline`` per seed on the same songs, per group of ``by``: mean, std, wins, seeds."""
    seeds = per_seed(rows, (*by, "variant"))
    difference = (seeds.xs(variant, level="variant") - seeds.xs(baseline, level="variant")).dropna()
    groups = difference.groupby(level=list(range(len(by)))) if by else difference.groupby(lambda _: "all")
    return groups.agg(mean="mean", std=_spread, wins=lambda v: int((v > 0).sum()), seeds="count")


def describe(gain: Mapping[str, float], variant: str, baseline: str, what: str, where: str, profile: str,
             unit: str = " dB", digits: int = 2) -> str:
    """One sentence, built from a row of :func:`gains`, on how far ``variant`` lies from ``baseline``.

    It describes, it does not decide: whether a paper's claim reproduced is decided by
    :func:`sepbook.experiments.claims.judge` alone, and shown in each chapter's "What reproduced".
    """
    mean, std, wins, seeds = gain["mean"], gain["std"], int(gain["wins"]), int(gain["seeds"])
    if not math.isfinite(mean):
        return f"In the {profile} profile there are no {what} scores for {variant} {where}."
    if seeds > 1:
        spread = f"mean over {seeds} seeds, std {std:.{digits}f}{unit}; higher in {wins} of {seeds}"
    else:
        spread = "one seed only"
    return (f"In the {profile} profile, {variant} minus the {baseline} {where}: {mean:+.{digits}f}{unit} {what} "
            f"({spread}).")


def _spread(values) -> float:
    """Standard deviation over seeds (``ddof=1``); NaN for a single seed."""
    return values.std(ddof=1) if len(values) > 1 else math.nan


def _number(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _product(levels):
    import itertools

    return list(itertools.product(*levels))


def signed_rank(better, worse) -> float:
    """The one-sided Wilcoxon signed-rank test that ``better`` exceeds ``worse``, paired; -> p-value.

    Pairs with a NaN on either side are dropped; with no pair left the p-value is NaN.
    """
    from scipy.stats import wilcoxon

    better, worse = np.asarray(better, dtype=float), np.asarray(worse, dtype=float)
    if better.shape != worse.shape or better.ndim != 1:
        raise ValueError(f"better, worse: expected two 1-D arrays of paired scores, got shapes "
                         f"{better.shape} and {worse.shape}")
    keep = np.isfinite(better) & np.isfinite(worse)
    if not keep.any() or np.all(better[keep] == worse[keep]):
        return math.nan
    return float(wilcoxon(better[keep], worse[keep], alternative="greater").pvalue)


def paired_test(rows, variant: str, baseline: str, on: str = "song") -> float:
    """:func:`signed_rank` of ``variant`` over ``baseline`` per ``on`` (scores averaged over seeds and
    sources first), on the ``on`` values both have; -> p-value."""
    table = frame(rows)
    means = table[table["variant"].isin([variant, baseline])].groupby(["variant", on])["value"].mean()
    paired = means.unstack("variant").dropna()
    if variant not in paired or baseline not in paired:
        return math.nan
    return signed_rank(paired[variant].to_numpy(), paired[baseline].to_numpy())
