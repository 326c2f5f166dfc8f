"""What the activity page shows beside the scores: the paper's numbers, the tables, and the
sentences that read them (scoring itself is in :mod:`sepbook.recipes.activity.evaluation`).

Chapter: activity/activity_aware
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from sepbook.experiments import report
from sepbook.recipes import Paper
from sepbook.recipes.activity.evaluation import SCORES, UNWEIGHTED, WEIGHTINGS, _settings, describe, row_name
from sepbook.recipes.activity.training import DETECTORS

#: What the paper found (its Figures 3 and 4 give no numbers in the text we have): IASS against
#: Open-Unmix per instrument, and which instruments both separate best on the MedleyDB set.
PAPER = Paper(
    source="Hung and Lerch (ISMIR 2020), Figures 3 and 4 and their discussion",
    numbers={
        "musdb": {"vocals": "IASS better", "drums": "IASS better", "other": "equal", "bass": "slightly worse"},
        "medley": {name: "IASS better" for name in
                   ("vocals", "bass", "drums", "piano", "electric_guitar", "acoustic_guitar")},
        "medley_easier": ("drums", "bass", "vocals"),
        "medley_harder": ("electric_guitar", "piano", "acoustic_guitar"),
    })


def scores(rows, metric: str = "SDR", dataset: str | None = None):
    """The test-song rows of ``metric`` (of ``dataset``, or both sets)."""
    rows = report.frame(rows)
    rows = rows[rows["metric"] == metric]
    return rows if dataset is None else rows[rows["domain"] == dataset]


def instrument_table(rows, dataset: str, profile: str, metric: str = "SDR",
                     systems: Sequence[str] = ("BLSTM", "U-Net", UNWEIGHTED, "IASS", "IASS oracle",
                                               "IBM", "mixture")):
    """The paper's Figure 3 / 4 as a table: ``metric`` per instrument (rows) for ``systems``
    (columns), mean ± std over seeds, and what the paper found for IASS against its baseline."""
    import pandas as pd

    chosen = scores(rows, metric, dataset)
    names = [n for n in PAPER.numbers[dataset] if n in set(chosen["source"])]
    ours = report.table(chosen, "source", ["variant"], index_order=names, column_order=[list(systems)])
    ours.columns = [f"{c[0]} ({profile})" for c in ours.columns]
    ours["paper: IASS vs Open-Unmix"] = [PAPER.numbers[dataset][n] for n in names]
    return pd.DataFrame(ours)


#: The 2 x 2 design's cells: (network, activity head) -> the model trained there.
DESIGN: dict[tuple[str, str], str] = {("BLSTM", "without head"): "BLSTM", ("BLSTM", "with head"): "BLSTM + head",
                                      ("residual U-Net", "without head"): "U-Net",
                                      ("residual U-Net", "with head"): "IASS"}


def design_table(rows, profile: str, metric: str = "SDR"):
    """The 2 x 2 design: ``metric`` averaged over instruments and songs, per set (column groups),
    network and head (rows) and weighting (columns); mean ± std over seeds."""
    import pandas as pd

    chosen = scores(rows, metric)
    stats = report.summary(chosen, ("variant", "domain"))
    cells = {}
    for (network, head), model in DESIGN.items():
        cells[(network, head, model)] = {}
        for dataset in dict.fromkeys(chosen["domain"]):
            for weighting in WEIGHTINGS:
                key = (row_name(model, weighting), dataset)
                usable = weighting != "detector" or model in DETECTORS
                cells[(network, head, model)][(dataset, weighting)] = (
                    report.cell(*stats.loc[key][["mean", "std"]], int(stats.loc[key]["seeds"]))
                    if usable and key in stats.index else "–")
    table = pd.DataFrame(cells).T
    table.index.names = ["network", "activity head", "system"]
    table.columns.names = ["set", f"{metric} ({profile})"]
    return table


def metric_table(rows, profile: str, systems: Sequence[str] = ("BLSTM", "U-Net", UNWEIGHTED, "IASS", "IASS oracle",
                                                                 "BLSTM + head unweighted", "BLSTM + head",
                                                                 "mixture", "IBM")):
    """Every score of every system, averaged over instruments, songs and seeds of both sets:
    whole-song SDR, framewise SDR and SIR (higher is better), leakage (lower is better), and the
    share of (song, instrument) pairs the framewise scores could score at all."""
    import pandas as pd

    table = {system: {} for system in systems}
    for metric in SCORES:
        chosen = scores(rows, metric)
        for system in systems:
            values = chosen.loc[chosen["variant"] == system, "value"]
            table[system][f"{metric} (dB)"] = f"{values.mean():.2f}" if values.notna().any() else "–"
            if metric == "framewise SDR":
                table[system]["pairs framewise-scored"] = f"{values.notna().mean():.0%}" if len(values) else "–"
    frame = pd.DataFrame(table).T
    frame.columns.name = f"{profile} profile"
    return frame


def weighting_choices(rows):
    """The weighting setting each detector's validation songs chose, per set and seed."""
    import pandas as pd

    keys = _settings(rows)[["variant", "domain", "seed"]].drop_duplicates().itertuples(index=False, name=None)
    out = {(variant, domain, int(seed)): describe(chosen_setting(rows, variant, domain, seed))
           for variant, domain, seed in keys}
    table = pd.Series(out).unstack(-1)
    table.index.names = ["system", "set"]
    table.columns = [f"seed {s}" for s in table.columns]
    return table


def chosen_setting(rows, variant: str, dataset: str, seed: int) -> dict[str, Any]:
    """The weighting setting the validation songs chose for one detector, from its rows."""
    rows = _settings(rows)
    chosen = rows[(rows["variant"] == variant) & (rows["domain"] == dataset) & (rows["seed"] == seed)]
    if chosen.empty:
        raise ValueError(f"rows: no weighting chosen for {variant!r} on {dataset!r}, seed {seed}")
    v = dict(zip(chosen["metric"], chosen["value"]))
    return {"threshold": v["weighting threshold"], "median_frames": int(v["weighting median frames"]),
            "soft": bool(v["weighting soft"])}


def detection_table(rows, profile: str):
    """Activity-detection accuracy and F1 of both detectors per set and instrument, mean ± std over
    seeds, with the fraction of silent frames in the test songs."""
    rows = report.frame(rows)
    detection = rows[rows["metric"].str.startswith("activity")]
    table = report.table(detection, "source", ["domain", "variant", "metric"])
    silent = rows[rows["metric"] == "silent fraction"].groupby(["domain", "source"])["value"].mean()
    for dataset in table.columns.get_level_values(0).unique():
        table[(dataset, "labels", "silent fraction")] = [
            f"{silent[(dataset, n)]:.2f}" if (dataset, n) in silent else "–" for n in table.index]
    table.columns.names = ["set", "system", f"{profile} profile"]
    return table.sort_index(axis=1)


def gain_rows(rows, variant: str = "IASS", baseline: str = "BLSTM", metric: str = "SDR"):
    """``variant - baseline`` per set and instrument (mean, std, wins, seeds) beside the
    instrument's fraction of silent test frames: a DataFrame indexed ``(domain, source)``."""
    rows = report.frame(rows)
    chosen = scores(rows, metric)
    gain = report.gains(chosen[chosen["value"].notna()], variant, baseline, by=("domain", "source"))
    silent = rows[rows["metric"] == "silent fraction"].groupby(["domain", "source"])["value"].mean()
    return gain.assign(silent=silent.reindex(gain.index).to_numpy())


def gain_table(rows, variant: str, baseline: str, profile: str, metric: str = "SDR"):
    """``variant`` minus ``baseline`` in ``metric`` per instrument of each set: mean ± std over
    seeds, in how many seeds ``variant`` is ahead, and the silent fraction."""
    import pandas as pd

    gain = gain_rows(rows, variant, baseline, metric)
    cells = {(dataset, name): {f"{variant} − {baseline} ({profile})": report.cell(g["mean"], g["std"], int(g["seeds"])),
                               "seeds ahead": f"{int(g['wins'])} of {int(g['seeds'])}",
                               "silent fraction": f"{g['silent']:.2f}"}
             for (dataset, name), g in gain.iterrows()}
    table = pd.DataFrame(cells).T
    table.index.names = ["set", "instrument"]
    return table


def silence_correlation(rows, variant: str = "IASS", baseline: str = UNWEIGHTED) -> float:
    """Pearson correlation, over every (set, instrument), of the mean SDR gain with the silent fraction."""
    gain = gain_rows(rows, variant, baseline)
    return float(np.corrcoef(gain["mean"], gain["silent"])[0, 1])


def critical_r(n: int, alpha: float = 0.05) -> float:
    """The two-sided critical value of Pearson's r for ``n`` points at level ``alpha``, from the t
    distribution with n - 2 degrees of freedom: r = t / sqrt(n - 2 + t^2)."""
    from scipy import stats

    t = stats.t.ppf(1 - alpha / 2, n - 2)
    return float(t / math.sqrt(n - 2 + t * t))


def silence_verdict(rows, profile: str) -> str:
    """The paper's explanation of its bass result (an instrument that rarely rests gains least from
    the weighting) as a test: the weighting's gain should rise with the silent fraction."""
    gain = gain_rows(rows, "IASS", UNWEIGHTED)
    r, n = silence_correlation(rows), len(gain)
    limit = critical_r(n)
    if r >= limit:
        verdict = "supported: the gain rises with the silent fraction, beyond what chance gives"
    elif r <= -limit:
        verdict = "contradicted: the gain falls as the silent fraction rises"
    else:
        verdict = "not supported: the correlation is within what chance gives"
    return (f"In the {profile} profile the weighting's gain (IASS − IASS unweighted) correlates with the "
            f"silent fraction at r = {r:+.2f} over {n} instruments (|r| ≥ {limit:.2f} is needed at the 5 % "
            f"level); the paper's explanation is {verdict}.")


def difficulty_check(rows) -> dict[str, dict[str, Any]]:
    """The numbers behind :func:`difficulty`, per system (IASS, BLSTM) on the MedleyDB-like set:
    the ``lowest`` mean SDR of drums, bass and vocals, the ``highest`` of the guitars and piano,
    and whether the first is above the second (``holds``)."""
    sdr = scores(rows, "SDR", "medley")
    easier, harder = list(PAPER.numbers["medley_easier"]), list(PAPER.numbers["medley_harder"])
    found = {}
    for system in ("IASS", "BLSTM"):
        means = report.summary(sdr[sdr["variant"] == system], ("source",))["mean"]
        lowest, highest = means[easier].min(), means[harder].max()
        found[system] = {"lowest": lowest, "highest": highest, "holds": lowest > highest}
    return found


def difficulty(rows, profile: str) -> str:
    """The paper's second observation on its MedleyDB set, checked on ours: both systems score higher
    on drums, bass and vocals than on the guitars and piano."""
    found = difficulty_check(rows)
    holds = [f["holds"] for f in found.values()]
    parts = [f"{system}: lowest of the first group {f['lowest']:.2f} dB, highest of the second {f['highest']:.2f} dB"
             for system, f in found.items()]
    verdict = "holds for both systems" if all(holds) else (
        "holds for " + " and ".join(s for s, f in found.items() if f["holds"]) if any(holds)
        else "holds for neither system")
    return (f"In the {profile} profile, 'drums, bass and vocals above electric guitar, piano and acoustic "
            f"guitar' {verdict} ({'; '.join(parts)}).")


def weighting_extremes(rows, dataset: str = "medley", variant: str = "IASS", baseline: str = UNWEIGHTED,
                       seed: int = 0) -> dict[str, tuple[str, str, float]]:
    """The (song, instrument) of ``dataset`` where the weighting helps most and where it hurts most
    for one seed's model: ``{'best': (song, instrument, gain), 'worst': ...}``."""
    chosen = scores(rows, "SDR", dataset)
    chosen = chosen[chosen["seed"] == seed]
    ours = chosen[chosen["variant"] == variant].set_index(["song", "source"])["value"]
    theirs = chosen[chosen["variant"] == baseline].set_index(["song", "source"])["value"]
    gain = (ours - theirs).dropna()
    return {"best": (*gain.idxmax(), float(gain.max())), "worst": (*gain.idxmin(), float(gain.min()))}


def contributions(rows) -> dict[str, float]:
    """What each part of the design adds, in whole-song SDR (dB) averaged over both sets' songs,
    instruments and seeds: the ``architecture`` (U-Net minus BLSTM, neither with a head), the
    activity ``head`` (with minus without, both unweighted, mean of the two networks), the
    detector's ``weighting`` (weighted minus unweighted, mean of the two detectors) and the
    ``oracle`` weighting of IASS (true activity minus unweighted)."""
    chosen = scores(rows, "SDR")

    def gain(variant: str, baseline: str) -> float:
        paired = chosen[chosen["variant"].isin([variant, baseline])].pivot_table(
            index=["song", "source", "seed"], columns="variant", values="value").dropna()
        return float((paired[variant] - paired[baseline]).mean()) if len(paired) else math.nan

    return {"architecture": gain("U-Net", "BLSTM"),
            "head": float(np.mean([gain(UNWEIGHTED, "U-Net"), gain("BLSTM + head unweighted", "BLSTM")])),
            "weighting": float(np.mean([gain("IASS", UNWEIGHTED), gain("BLSTM + head", "BLSTM + head unweighted")])),
            "oracle": gain("IASS oracle", UNWEIGHTED)}


def conclusion(rows, profile: str) -> str:
    """:func:`contributions` in one sentence."""
    c = contributions(rows)
    return (f"In the {profile} profile, averaged over both sets' songs, instruments and seeds, the residual "
            f"U-Net in place of the BLSTM changes SDR by {c['architecture']:+.2f} dB, an activity head trained "
            f"beside the masks by {c['head']:+.2f} dB (mean of both networks, unweighted), and weighting the "
            f"masks by the detected activity by {c['weighting']:+.2f} dB (mean of both detectors); weighting "
            f"IASS by the true activity would change it by {c['oracle']:+.2f} dB.")
