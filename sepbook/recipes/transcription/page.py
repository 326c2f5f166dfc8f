"""What the transcription page shows beside the scores: the paper's numbers, the tables, and the
sentences that read them (scoring itself is in :mod:`sepbook.recipes.transcription.evaluation`).

Chapter: transcription/score_supervision
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from sepbook.experiments import report
from sepbook.recipes import Paper

#: The poster's tables. In the copy the book ships their captions are swapped: the dB values
#: are separation SI-SDR, the values between 0 and 1 transcription accuracy.
PAPER = Paper(
    source="Hung, Wichern and Le Roux (ICASSP 2021), Table 1 (separation SI-SDR, dB) and Table 2 "
           "(transcription accuracy) on Slakh2100 bass, guitar and piano",
    numbers={
        "separation": {
            "supervised": (11.1, 5.7, 7.7, 8.2),
            "isolated c-mix": (7.5, 1.2, 4.2, 4.3), "isolated h-mix": (7.8, 0.4, 4.1, 4.1),
            "isolated c+h-mix": (8.4, 1.6, 5.0, 5.0), "fine-tune": (9.0, 2.7, 5.3, 5.6),
            "fine-tune + AML": (9.1, 2.8, 5.4, 5.8), "fine-tune + ATL": (9.0, 2.5, 5.7, 5.7),
            "input mixture": (1.2, -5.8, -2.3, -2.3), "classifier baseline": (7.3, 0.5, 3.5, 3.8),
        },
        "transcription": {
            ("transcriptor", "mixture"): (0.85, 0.44, 0.58), ("fine-tune", "mixture"): (0.84, 0.42, 0.54),
            ("fine-tune + AML", "mixture"): (0.86, 0.51, 0.61), ("fine-tune + ATL", "mixture"): (0.85, 0.50, 0.60),
            ("transcriptor", "isolated"): (0.91, 0.52, 0.66), ("fine-tune", "isolated"): (0.90, 0.53, 0.63),
            ("fine-tune + AML", "isolated"): (0.91, 0.58, 0.68), ("fine-tune + ATL", "isolated"): (0.91, 0.57, 0.66),
        },
    })


#: Table 1's rows, in the paper's order, with the losses each used (c-mix, h-mix, AML, ATL).
SEPARATION_ROWS: dict[str, str] = {
    "supervised": "stems", "isolated c-mix": "c", "isolated h-mix": "h", "isolated c+h-mix": "c h",
    "fine-tune": "c h", "fine-tune + AML": "c h AML", "fine-tune + ATL": "c h ATL",
    "input mixture": "", "classifier baseline": "c, classifier critic",
}


TRANSCRIPTION_ROWS: tuple[str, ...] = ("transcriptor", "fine-tune", "fine-tune + AML", "fine-tune + ATL")


def average_rows(rows):
    """SI-SDR rows with one more ``source``, ``'Avg'``: the mean over instruments per song (the paper's Avg)."""
    frame = report.frame(rows)
    frame = frame[frame["metric"] == "SI-SDR"]
    mean = frame.groupby(["variant", "seed", "song"], dropna=False)["value"].mean().reset_index()
    return report.frame([*frame.to_dict("records"),
                         *mean.assign(source="Avg", metric="SI-SDR", domain="").to_dict("records")])


def separation_table(cfg: Mapping[str, Any], rows, profile: str, digits: int = 1):
    """Table 1's layout: SI-SDR per instrument and their average, ours (mean ± std over seeds) beside the paper's."""
    names = [*cfg["instruments"], "Avg"]
    paper = {(variant, name): values[i] for variant, values in PAPER.numbers["separation"].items()
             for i, name in enumerate(names)}
    frame = average_rows(rows)
    present = [v for v in SEPARATION_ROWS if v in set(frame["variant"])]
    return report.paper_table(frame, index="variant", columns=("source",), paper=paper, profile=profile,
                              index_order=present, column_order=[names], digits=digits)


#: The paper's claims about Table 1, as (better, worse) pairs of rows.
ORDERING: tuple[tuple[str, str], ...] = (
    ("classifier baseline", "input mixture"), ("isolated c+h-mix", "classifier baseline"),
    ("supervised", "isolated c+h-mix"), ("isolated c+h-mix", "isolated c-mix"), ("isolated c+h-mix", "isolated h-mix"),
    ("fine-tune", "isolated c+h-mix"), ("fine-tune + AML", "fine-tune"), ("fine-tune + ATL", "fine-tune"),
)


def versus_gain(cfg: Mapping[str, Any], rows, better: str, worse: str):
    """``better - worse`` in average SI-SDR, seed by seed: a row of :func:`sepbook.experiments.report.gains`
    (mean, std, wins, seeds), and the paper's difference of the two rows' Avg (dB)."""
    import pandas as pd

    frame = average_rows(rows)
    frame = frame[frame["source"] == "Avg"]
    seeds = sorted(frame["seed"].dropna().unique())
    # the mixture has one score per song and no seed: it stands beside every seed unchanged
    untrained = frame[frame["seed"].isna()]
    frame = pd.concat([frame[frame["seed"].notna()], *(untrained.assign(seed=s) for s in seeds)])
    gain = report.gains(frame, better, worse).iloc[0]
    paper = PAPER.numbers["separation"][better][-1] - PAPER.numbers["separation"][worse][-1]
    return gain, paper


def versus(cfg: Mapping[str, Any], rows, better: str, worse: str, profile: str) -> str:
    """Does ``better`` beat ``worse`` on average SI-SDR, seed by seed? One sentence, with the paper's
    difference (the numbers of :func:`versus_gain`)."""
    gain, paper = versus_gain(cfg, rows, better, worse)
    sentence = report.describe(gain, better, worse, "average SI-SDR", "on the test songs", profile)
    return f"{sentence} The paper: {paper:+.1f} dB."


def ordering(cfg: Mapping[str, Any], rows, profile: str) -> list[str]:
    """One :func:`versus` sentence per claim of :data:`ORDERING`."""
    return [versus(cfg, rows, better, worse, profile) for better, worse in ORDERING]


def transcription_table(cfg: Mapping[str, Any], rows, profile: str, digits: int = 2):
    """Table 2's layout: frame accuracy on mixtures and on isolated tracks, ours beside the paper's."""
    frame = report.frame(rows)
    frame = frame[frame["metric"].str.startswith("accuracy")].copy()
    frame["evaluated on"] = frame["metric"].str.extract(r"\((\w+)\)")[0]
    frame = frame[frame["variant"].isin(TRANSCRIPTION_ROWS)]
    paper = {((variant, where), name): values[i] for (variant, where), values in PAPER.numbers["transcription"].items()
             for i, name in enumerate(cfg["instruments"])}
    frame["row"] = list(zip(frame["variant"], frame["evaluated on"]))
    order = [(v, where) for where in ("mixture", "isolated") for v in TRANSCRIPTION_ROWS]
    return report.paper_table(frame, index="row", columns=("source",), paper=paper, profile=profile,
                              index_order=order, column_order=[list(cfg["instruments"])], digits=digits)


def transcription_gains(cfg: Mapping[str, Any], rows, where: str = "mixture") -> list[tuple[str, Any, float]]:
    """How fine-tuning (plain, AML, ATL) changes the transcriptor's frame accuracy on ``where``
    ('mixture' or 'isolated'), averaged over the instruments: ``(variant, gain, paper)`` for every
    fine-tuned variant in ``rows``, ``gain`` a row of :func:`sepbook.experiments.report.gains` against the
    pre-trained transcriptor and ``paper`` the paper's change of the mean over instruments."""
    frame = report.frame(rows)
    frame = frame[frame["metric"] == f"accuracy ({where})"]
    found = []
    for variant in [v for v in TRANSCRIPTION_ROWS[1:] if v in set(frame["variant"])]:
        paper = np.mean(PAPER.numbers["transcription"][(variant, where)]) - np.mean(PAPER.numbers["transcription"][("transcriptor", where)])
        found.append((variant, report.gains(frame, variant, "transcriptor").iloc[0], paper))
    return found


def transcription_differences(cfg: Mapping[str, Any], rows, profile: str, where: str = "mixture") -> list[str]:
    """Does fine-tuning (plain, AML, ATL) change the transcriptor's frame accuracy on ``where``
    ('mixture' or 'isolated'), averaged over the instruments? One sentence each, beside the paper's
    change (the numbers of :func:`transcription_gains`)."""
    sentences = []
    for variant, gain, paper in transcription_gains(cfg, rows, where):
        sentence = report.describe(gain, variant, "pre-trained transcriptor", f"frame accuracy on {where} tracks"
                                  if where == "isolated" else "frame accuracy on mixtures", "", profile, unit="",
                                  digits=3).replace(" :", ":").replace("  ", " ")
        sentences.append(f"{sentence} The paper: {paper:+.3f}.")
    return sentences


def first_and_last(histories, variant: str, key: str) -> tuple[float, float]:
    """The mean over seeds of the first and of the last logged ``key`` of ``variant``'s runs
    (``histories`` keyed ``(variant, seed)``): where a loss starts and where it ends."""
    runs = [h[key] for (v, _), h in histories.items() if v == variant]
    if not runs:
        raise ValueError(f"variant: no run of {variant!r} in the histories")
    return sum(r[0] for r in runs) / len(runs), sum(r[-1] for r in runs) / len(runs)
