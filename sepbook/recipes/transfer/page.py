"""What the transfer page shows beside the scores: the paper's numbers, the tables, and the
sentences that read them (scoring itself is in :mod:`sepbook.recipes.transfer.evaluation`).

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from sepbook.experiments import report
from sepbook.recipes import Paper
from sepbook.recipes.transfer.evaluation import DC_METRIC
from sepbook.recipes.transfer.training import finetuned, pretrained, scratch

#: The paper's significance threshold.
P_THRESHOLD = 1e-3


#: Table 2 of the paper: SI-SDR (dB) of the mask-model minus the whole-model,
#: keyed (augmentation, pre-training set, downstream set).
PAPER = Paper(
    source="Bugler, Pardo and Seetharaman (2020), Table 2: SI-SDR (dB) of the mask-model minus the "
           "whole-model, keyed (augmentation, pre-training set, downstream set)",
    numbers={
        (aug, pre, down): value
        for aug, by_pre in {
            "none": {"musdb": (-4.04, -1.27, -5.05), "slakh": (-2.32, -1.76, -3.43), "musdb+slakh": (-4.78, -3.03, -4.94)},
            "pitch": {"musdb": (-5.34, 1.16, -3.78), "slakh": (-2.80, -2.29, -4.72), "musdb+slakh": (-2.38, -2.02, -4.91)},
            "stretch": {"musdb": (-4.08, 0.85, -4.68), "slakh": (-3.33, -0.34, -3.60),
                        "musdb+slakh": (-1.69, -2.17, -3.99)},
            "incoherent": {"musdb": (-4.50, 0.69, -4.57), "slakh": (-3.40, -0.10, -2.32),
                           "musdb+slakh": (-1.75, -0.63, -4.85)},
        }.items()
        for pre, values in by_pre.items()
        for down, value in zip(("remixpacks", "dagstuhl", "bach10"), values)
    })


#: The paper's Fig. 2 caption: the median SI-SDR change (dB) of whole-models from augmenting.
PAPER_AUGMENTATION_MEDIAN = 0.13


#: The paper's Section 4 on Dagstuhl: the steps the best fine-tuned model and the baseline took to
#: reach ``level`` dB SI-SDR.
PAPER_DAGSTUHL_REACH = {"level": 5.0, "fine-tuned": 100, "scratch": 2500}


def _of(rows, domain: str, variants: Sequence[str], metric: str = "SI-SDR"):
    table = report.frame(rows)
    return table[(table["domain"] == domain) & table["variant"].isin(list(variants)) & (table["metric"] == metric)]


def _cell(rows, domain: str, variant: str, metric: str = "SI-SDR") -> str:
    stats = report.summary(_of(rows, domain, [variant], metric))
    if stats.empty:
        return "–"
    row = stats.iloc[0]
    return report.cell(row["mean"], row["std"], int(row["seeds"]))


def _gain(rows, domain: str, variant: str, baseline: str) -> dict | None:
    """``variant - baseline`` SI-SDR on ``domain``: ``mean``, ``std``, ``wins`` and ``seeds`` over
    seeds, or ``None`` without rows of both."""
    gain = report.gains(_of(rows, domain, [variant, baseline]), variant, baseline)
    if len(gain) == 0:
        return None
    g = gain.iloc[0]
    return {"mean": float(g["mean"]), "std": float(g["std"]), "wins": int(g["wins"]), "seeds": int(g["seeds"])}


def _gain_cell(rows, domain: str, variant: str, baseline: str) -> str:
    g = _gain(rows, domain, variant, baseline)
    return "–" if g is None else report.cell(g["mean"], g["std"], g["seeds"], signed=True)


def _budgets(cfg: Mapping[str, Any]) -> dict:
    """Each budget's (fine-tuned, scratch) pair of variants on a small set ``d``: equal steps on the
    small set, the paper's equal total, and each system to its validation plateau."""
    pre = cfg["sweep_from"]
    return {"fine-tuning steps": lambda d: (finetuned(d, pre), scratch(d, "short")),
            "total steps": lambda d: (finetuned(d, pre), scratch(d)),
            "plateau": lambda d: (finetuned(d, pre, budget="long"), scratch(d, "long"))}


def budget_table(rows, cfg: Mapping[str, Any]):
    """H1 at three budgets: SI-SDR (dB, mean ± std over seeds) of a whole-model fine-tuned from
    ``cfg['sweep_from']`` and of training from scratch, at equal downstream steps (the
    fine-tuning steps), at the paper's equal total steps, and each at its validation plateau."""
    import pandas as pd

    budgets = _budgets(cfg)
    columns = {
        "scratch, fine-tuning steps": lambda d: budgets["fine-tuning steps"](d)[1],
        "fine-tuned": lambda d: budgets["fine-tuning steps"](d)[0],
        "scratch, total steps (paper)": lambda d: budgets["total steps"](d)[1],
        "scratch, plateau": lambda d: budgets["plateau"](d)[1],
        "fine-tuned, plateau": lambda d: budgets["plateau"](d)[0],
    }
    return pd.DataFrame({down: [_cell(rows, down, name(down)) for name in columns.values()]
                         for down in cfg["downstream"]}, index=list(columns)).T


def budget_gains(rows, cfg: Mapping[str, Any]) -> dict[str, dict[str, dict]]:
    """Fine-tuned (from ``cfg['sweep_from']``) minus scratch per small set, at each budget of
    :func:`budget_table`: ``{set: {'fine-tuning steps' | 'total steps' | 'plateau': gain}}``, each
    gain a dict of ``mean``, ``std``, ``wins`` and ``seeds`` over seeds (absent without rows)."""
    out: dict[str, dict[str, dict]] = {}
    for down in cfg["downstream"]:
        for budget, pair in _budgets(cfg).items():
            gain = _gain(rows, down, *pair(down))
            if gain is not None:
                out.setdefault(down, {})[budget] = gain
    return out


def sweep_table(rows, cfg: Mapping[str, Any]):
    """The data-size sweep: fine-tuned (from ``cfg['sweep_from']``) minus scratch at the paper's
    budget (dB, mean ± std over seeds), on each share of every small set's training songs."""
    import pandas as pd

    pre = cfg["sweep_from"]
    shares = [*sorted(cfg["shares"]), 1.0]
    data = {down: [_gain_cell(rows, down, finetuned(down, pre, share=share), scratch(down, share=share))
                   for share in shares] for down in cfg["downstream"]}
    return pd.DataFrame(data, index=[f"{share:g} of the songs" for share in shares]).T


def clustering_table(rows, cfg: Mapping[str, Any]):
    """Where the deep-clustering representation stands: SI-SDR (dB, mean ± std over seeds) of the
    deep-clustering head's k-means separation before fine-tuning (pre-trained on
    ``cfg['sweep_from']``), after whole fine-tuning and from scratch, beside the mask head."""
    import pandas as pd

    pre = cfg["sweep_from"]
    columns = {
        "DC head, pre-trained": (lambda d: pretrained(pre), DC_METRIC),
        "DC head, fine-tuned": (lambda d: finetuned(d, pre), DC_METRIC),
        "DC head, scratch": (lambda d: scratch(d), DC_METRIC),
        "mask head, fine-tuned": (lambda d: finetuned(d, pre), "SI-SDR"),
        "mask head, scratch": (lambda d: scratch(d), "SI-SDR"),
    }
    return pd.DataFrame({down: [_cell(rows, down, name(down), metric) for name, metric in columns.values()]
                         for down in cfg["downstream"]}, index=list(columns)).T


def pretraining_table(rows, cfg: Mapping[str, Any]):
    """Fig. 1 as numbers: SI-SDR (dB, mean ± std over seeds) per downstream set, from scratch and
    from each pre-training set (whole-model, no augmentation); ``*`` marks p < 0.001 over scratch."""
    import pandas as pd

    columns = ["scratch", *cfg["pretraining"]]
    data = {}
    for down in cfg["downstream"]:
        cells = []
        for column in columns:
            variant = scratch(down) if column == "scratch" else finetuned(down, column)
            stats = report.summary(_of(rows, down, [variant]))
            if stats.empty:
                cells.append("–")
                continue
            row = stats.iloc[0]
            text = report.cell(row["mean"], row["std"], int(row["seeds"]))
            if column != "scratch" and report.paired_test(_of(rows, down, [variant, scratch(down)]),
                                                          variant, scratch(down)) < P_THRESHOLD:
                text += " *"
            cells.append(text)
        data[down] = cells
    return pd.DataFrame(data, index=columns).T


def gain_rows(rows, cfg: Mapping[str, Any], versus: str = "scratch") -> list[dict]:
    """Gains in SI-SDR, one dict per (downstream set, pre-training set, augmentation, mode):

    - ``versus='scratch'``: the whole-model over training from scratch (H1);
    - ``versus='none'``: the whole-model over the one pre-trained without augmentation (H2);
    - ``versus='whole'``: the mask-model over the whole-model of the same pre-training (R2).

    Each holds the mean, std, wins and number of seeds of the per-seed gain, the one-sided Wilcoxon
    p-value over test songs, and (for R2) the paper's Table 2 number.
    """
    mode = "mask" if versus == "whole" else "whole"
    out = []
    for down, pre, aug in itertools.product(cfg["downstream"], cfg["pretraining"], cfg["augmentations"]):
        variant = finetuned(down, pre, aug, mode)
        baseline = {"scratch": scratch(down), "none": finetuned(down, pre, "none", mode),
                    "whole": finetuned(down, pre, aug, "whole")}[versus]
        g = _gain(rows, down, variant, baseline) if variant != baseline else None
        if g is None:
            continue
        out.append({"downstream": down, "pretraining": pre, "augmentation": aug, "mode": mode,
                    "gain": g["mean"], "std": g["std"], "wins": g["wins"], "seeds": g["seeds"],
                    "p": report.paired_test(_of(rows, down, [variant, baseline]), variant, baseline),
                    "paper": PAPER.numbers.get((aug, pre, down)) if versus == "whole" else None})
    return out


def mask_minus_whole_table(rows, cfg: Mapping[str, Any], profile: str):
    """Table 2: mask-model minus whole-model SI-SDR (dB), ours (mean ± std over seeds, ``*`` where the
    mask-model is significantly better, p < 0.001) beside the paper's."""
    import pandas as pd

    cells: dict[tuple, dict] = {}
    for g in gain_rows(rows, cfg, versus="whole"):
        key = (g["augmentation"], g["pretraining"])
        mark = " *" if g["p"] < P_THRESHOLD else ""
        cells.setdefault(key, {})[(g["downstream"], f"ours ({profile})")] = \
            report.cell(g["gain"], g["std"], g["seeds"]) + mark
        cells[key][(g["downstream"], "paper")] = "–" if g["paper"] is None else f"{g['paper']:.2f}"
    columns = [(d, who) for d in cfg["downstream"] for who in (f"ours ({profile})", "paper")]
    table = pd.DataFrame([[cells[k].get(c, "–") for c in columns] for k in cells],
                         index=pd.MultiIndex.from_tuples(list(cells), names=["augmentation", "pre-training"]),
                         columns=pd.MultiIndex.from_tuples(columns, names=["downstream", "numbers"]))
    return table


def findings(rows, cfg: Mapping[str, Any]) -> dict[str, dict]:
    """The numbers behind :func:`claims` and :func:`headline`, one dict per hypothesis, from :func:`gain_rows`:

    - ``H1`` (whole-models, no augmentation, over scratch): ``cases``, ``significant`` (gains with
      p < :data:`P_THRESHOLD`), and the ``mean``, ``low`` and ``high`` gain over the cases;
    - ``H2`` (augmented whole-models over unaugmented): ``cases``, ``significant``, and the
      ``median``, ``low`` and ``high`` gain (NaN with no augmentation);
    - ``R1``: the ``best`` pre-training set of each downstream set and the ``mean`` H1 gain over
      the pre-training sets per downstream set;
    - ``R2`` (mask-model minus whole-model): ``cases``, ``below`` (negative), ``significant``
      (significantly better) and the ``median``;

    and ``seeds``, the fewest seeds any of those gains is taken over.
    """
    h1 = [g for g in gain_rows(rows, cfg, "scratch") if g["augmentation"] == "none"]
    h2 = [g for g in gain_rows(rows, cfg, "none") if g["mode"] == "whole"]
    r2 = gain_rows(rows, cfg, "whole")

    def significant(gains):
        return sum(g["gain"] > 0 and g["p"] < P_THRESHOLD for g in gains)

    def values(gains):
        return [g["gain"] for g in gains]

    best, mean = {}, {}
    for down in cfg["downstream"]:
        by_pre = {g["pretraining"]: g["gain"] for g in h1 if g["downstream"] == down}
        if by_pre:
            best[down] = max(by_pre, key=by_pre.get)
            mean[down] = float(np.mean(list(by_pre.values())))
    nothing = math.nan
    return {
        "H1": {"cases": len(h1), "significant": significant(h1), "mean": np.mean(values(h1)) if h1 else nothing,
               "low": min(values(h1), default=nothing), "high": max(values(h1), default=nothing)},
        "H2": {"cases": len(h2), "significant": significant(h2),
               "median": np.median(values(h2)) if h2 else nothing,
               "low": min(values(h2), default=nothing), "high": max(values(h2), default=nothing)},
        "R1": {"best": best, "mean": mean},
        "R2": {"cases": len(r2), "below": sum(g["gain"] < 0 for g in r2), "significant": significant(r2),
               "median": np.median(values(r2)) if r2 else nothing},
        "seeds": min((g["seeds"] for g in [*h1, *h2, *r2]), default=0),
    }


def in_words(rows, cfg: Mapping[str, Any], profile: str) -> dict[str, str]:
    """One sentence each on H1, H2, R1 and R2, from the rows (the numbers of :func:`findings`)."""
    found = findings(rows, cfg)
    h1, h2, r1, r2 = found["H1"], found["H2"], found["R1"], found["R2"]
    return {
        "H1": (f"In the {profile} profile, {h1['significant']} of {h1['cases']} pre-trained whole-models (no "
               f"augmentation) beat training from scratch with the same number of steps significantly (one-sided "
               f"Wilcoxon over test songs, p < {P_THRESHOLD:g}); the mean gain is "
               f"{h1['mean']:+.2f} dB, from {h1['low']:+.2f} to {h1['high']:+.2f} dB."),
        "H2": (f"In the {profile} profile, augmenting the pre-training changes the fine-tuned whole-models' SI-SDR "
               f"by a median of {h2['median']:+.2f} dB (from {h2['low']:+.2f} to "
               f"{h2['high']:+.2f} dB over {h2['cases']} set pairs and augmentations); "
               f"{h2['significant']} of them are significant gains.")
        if h2["cases"] else f"The {profile} profile trains no augmentation.",
        "R1": (f"In the {profile} profile, the best pre-training set is "
               + "; ".join(f"{best} for {down}" for down, best in r1["best"].items()) + "."),
        "R2": (f"In the {profile} profile, the mask-model is below the whole-model in "
               f"{r2['below']} of {r2['cases']} cases (median {r2['median']:+.2f} dB); "
               f"it is significantly better in {r2['significant']}."),
    }


def curve(histories: Mapping[tuple[str, int], Mapping[str, list]], variant: str):
    """``(steps, mean, std)`` of the validation SI-SDR curve of ``variant`` over its seeds."""
    runs = [h for (v, _), h in histories.items() if v == variant and h.get("valid")]
    if not runs:
        return np.array([]), np.array([]), np.array([])
    steps = np.array(runs[0]["valid_step"])
    values = np.array([[v["valid SI-SDR"] for v in h["valid"]] for h in runs])
    return steps, values.mean(0), values.std(0, ddof=1) if len(runs) > 1 else np.full(len(steps), math.nan)


def first_reaching(histories, variant: str, level: float) -> float:
    """The first step at which the seed-mean validation SI-SDR curve of ``variant`` reaches ``level`` dB
    (NaN if it never does)."""
    steps, mean, _ = curve(histories, variant)
    reached = np.flatnonzero(mean >= level)
    return float(steps[reached[0]]) if len(reached) else math.nan


def best_pretraining(rows, cfg: Mapping[str, Any]) -> str:
    """H1 in one sentence per downstream set: the best pre-training's gain over scratch (without
    augmentation), in how many seeds it was better, and its p-value."""
    h1 = [g for g in gain_rows(rows, cfg, "scratch") if g["augmentation"] == "none"]
    parts = []
    for down in cfg["downstream"]:
        best = max((g for g in h1 if g["downstream"] == down), key=lambda g: g["gain"])
        parts.append(f"on {down} the best pre-training ({best['pretraining']}) gives {best['gain']:+.2f} dB over "
                     f"scratch, better in {best['wins']} of {best['seeds']} seeds (p = {best['p']:.2g})")
    return "; ".join(parts)


def scratch_peaks(histories, cfg: Mapping[str, Any]) -> str:
    """Where each downstream set's from-scratch validation curve peaks, and where it ends."""
    peaks = []
    for down in cfg["downstream"]:
        steps, mean, _ = curve(histories, scratch(down))
        i = int(np.argmax(mean))
        peaks.append(f"on {down} its best is {mean[i]:.2f} dB at step {steps[i]} and its last {mean[-1]:.2f} dB")
    return "; ".join(peaks)


def at_equal_steps(histories, cfg: Mapping[str, Any]) -> str:
    """Scratch after as many steps as fine-tuning takes, against the best fine-tuned model's end."""
    same = []
    for down in cfg["downstream"]:
        steps, mean, _ = curve(histories, scratch(down))
        early = mean[np.flatnonzero(steps == cfg["finetune_steps"])[0]]
        tuned = {p: curve(histories, finetuned(down, p))[1][-1] for p in cfg["pretraining"]}
        best = max(tuned, key=tuned.get)
        same.append(f"on {down} {early:.2f} dB from scratch against {tuned[best]:.2f} dB fine-tuned from {best}")
    return "; ".join(same)


def reaching_scratch(histories, cfg: Mapping[str, Any], down: str = "dagstuhl") -> tuple[float, str]:
    """The level scratch ends at on ``down``, and after how many steps each fine-tuned model
    first reaches it (the paper's Section 4 comparison)."""
    level = curve(histories, scratch(down))[1][-1]
    reach = {p: first_reaching(histories, finetuned(down, p), level) for p in cfg["pretraining"]}
    said = {p: "not within fine-tuning" if np.isnan(s) else f"after {s:.0f} steps" for p, s in reach.items()}
    return float(level), "; ".join(f"from {p}, {text}" for p, text in said.items())
