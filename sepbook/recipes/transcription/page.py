"""What the transcription page shows beside the scores: the paper's numbers, the tables, and the
sentences that read them (scoring itself is in :mod:`sepbook.recipes.transcription.evaluation`).

Chapter: transcription/score_supervision
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from sepbook.experiments import report
from sepbook.recipes import Paper

if TYPE_CHECKING:
    import pandas as pd

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

#: The SI-SDR (dB) the supervised separator should reach on every instrument for the score-supervised
#: systems to be compared under a ceiling that separates.
CEILING_AIM = 4.0


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


def transcription_table(cfg: Mapping[str, Any], rows, profile: str, metric: str = "note F1", digits: int = 2):
    """Table 2's layout: ``metric`` (``'note F1'``, the paper's note accuracy, or ``'accuracy'``, frame
    accuracy) on mixtures and on isolated tracks, ours beside the paper's (the paper's numbers are
    note accuracy, so they stand beside note F1 only)."""
    frame = report.frame(rows)
    frame = frame[frame["metric"].str.startswith(f"{metric} (")].copy()
    frame["evaluated on"] = frame["metric"].str.extract(r"\((\w+)\)")[0]
    frame = frame[frame["variant"].isin(TRANSCRIPTION_ROWS)]
    paper = {((variant, where), name): values[i] for (variant, where), values in PAPER.numbers["transcription"].items()
             for i, name in enumerate(cfg["instruments"])} if metric == "note F1" else {}
    frame["row"] = list(zip(frame["variant"], frame["evaluated on"]))
    order = [(v, where) for where in ("mixture", "isolated") for v in TRANSCRIPTION_ROWS]
    return report.paper_table(frame, index="row", columns=("source",), paper=paper, profile=profile,
                              index_order=order, column_order=[list(cfg["instruments"])], digits=digits)


def transcription_gains(cfg: Mapping[str, Any], rows, where: str = "mixture",
                        metric: str = "note F1") -> list[tuple[str, str, Any, float]]:
    """How fine-tuning changes the transcriptor's ``metric`` on ``where`` ('mixture' or 'isolated'),
    averaged over the instruments: plain fine-tuning against the pre-trained transcriptor, each
    adversary against plain fine-tuning. ``(variant, reference, gain, paper)``, ``gain`` a row of
    :func:`sepbook.experiments.report.gains` and ``paper`` the paper's difference of the two rows'
    mean over instruments (note accuracy)."""
    frame = report.frame(rows)
    frame = frame[frame["metric"] == f"{metric} ({where})"]
    numbers = PAPER.numbers["transcription"]
    found = []
    for variant, reference in (("fine-tune", "transcriptor"), ("fine-tune + AML", "fine-tune"),
                               ("fine-tune + ATL", "fine-tune")):
        if {variant, reference} <= set(frame["variant"]):
            paper = np.mean(numbers[(variant, where)]) - np.mean(numbers[(reference, where)])
            found.append((variant, reference, report.gains(frame, variant, reference).iloc[0], paper))
    return found


def transcription_differences(cfg: Mapping[str, Any], rows, profile: str, where: str = "mixture") -> list[str]:
    """One sentence per pair of :func:`transcription_gains` (note F1), beside the paper's difference."""
    sentences = []
    for variant, reference, gain, paper in transcription_gains(cfg, rows, where):
        what = "note F1 on isolated tracks" if where == "isolated" else "note F1 on mixtures"
        sentence = report.describe(gain, variant, reference, what, "", profile, unit="", digits=3)
        sentences.append(f"{sentence.replace(' :', ':').replace('  ', ' ')} The paper: {paper:+.3f}.")
    return sentences


def against_plain_fine_tuning(cfg: Mapping[str, Any], rows) -> "pd.DataFrame":
    """Each adversary minus plain fine-tuning, seed by seed on the same songs: SI-SDR per instrument
    and on average, note F1 and frame accuracy on mixtures and on isolated tracks (averaged over
    instruments). Cells read ``mean ± std (higher in wins/seeds)``."""
    import pandas as pd

    frame = report.frame(rows)
    separation = average_rows(rows)
    table = {}
    for variant in ("fine-tune + AML", "fine-tune + ATL"):
        cells = {}
        for source in [*cfg["instruments"], "Avg"]:
            cells[f"SI-SDR {source} (dB)"] = _cell(separation[separation["source"] == source], variant, 2)
        for metric in ("note F1", "accuracy"):
            for where in ("mixture", "isolated"):
                cells[f"{metric} ({where})"] = _cell(frame[frame["metric"] == f"{metric} ({where})"], variant, 3)
        table[variant] = cells
    return pd.DataFrame(table).T.rename_axis("minus plain fine-tuning")


def _cell(frame, variant: str, digits: int) -> str:
    if not {variant, "fine-tune"} <= set(frame["variant"]):
        return "–"
    gain = report.gains(frame, variant, "fine-tune").iloc[0]
    return f"{gain['mean']:+.{digits}f} ± {gain['std']:.{digits}f} ({int(gain['wins'])}/{int(gain['seeds'])})"


def gap_closed(rows, variant: str = "isolated c+h-mix") -> tuple[float, float]:
    """How much of the way from the mixture to the supervised separator ``variant`` goes, on average
    SI-SDR over songs and seeds: ``(ours, the paper's)`` as fractions."""
    frame = average_rows(rows)
    mean = frame[frame["source"] == "Avg"].groupby("variant")["value"].mean()
    numbers = {v: PAPER.numbers["separation"][v][-1] for v in (variant, "input mixture", "supervised")}
    ours = (mean[variant] - mean["input mixture"]) / (mean["supervised"] - mean["input mixture"])
    paper = (numbers[variant] - numbers["input mixture"]) / (numbers["supervised"] - numbers["input mixture"])
    return float(ours), float(paper)


def critic_reads(cfg: Mapping[str, Any], rows) -> "pd.DataFrame":
    """The pre-trained transcriptor's note F1 and frame accuracy per instrument, on the mixture and
    on each instrument alone (mean over songs and seeds): a critic should read a source alone at
    least as well as inside the mixture."""
    frame = report.frame(rows)
    frame = frame[(frame["variant"] == "transcriptor")]
    table = frame.groupby(["metric", "source"])["value"].mean().unstack("source")
    order = [f"{m} ({w})" for m in ("note F1", "accuracy") for w in ("mixture", "isolated")]
    return table.reindex(index=order, columns=list(cfg["instruments"])).round(3)


def adversary_choices(histories) -> "pd.DataFrame":
    """Each adversary's candidate weights ``w`` with their score-only validation losses, seed by
    seed, and the one chosen (from the chosen runs' histories, keyed ``(variant, seed)``)."""
    import pandas as pd

    records = []
    for (variant, seed), history in sorted(histories.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        if "candidates" not in history:
            continue
        for name, loss in history["candidates"].items():
            records.append({"adversary": variant, "seed": seed, "w": float(name.split(" @ ")[1]),
                            "validation loss": round(loss, 4), "chosen": "✓" if name == history["chosen"] else ""})
    return pd.DataFrame(records)


def ceiling_table(cfg: Mapping[str, Any], rows, tracks) -> "pd.DataFrame":
    """SI-SDR (dB) per instrument, mean over ``tracks`` (and seeds): the unprocessed mixture, the
    supervised separator of ``rows`` and the ideal ratio mask scored on ``tracks`` now, with
    whether the supervised separator reaches :data:`CEILING_AIM`."""
    import pandas as pd

    from sepbook.recipes.transcription.evaluation import ideal_mask_rows

    frame = pd.concat([report.frame(rows), report.frame(ideal_mask_rows(cfg, tracks))], ignore_index=True)
    frame = frame[(frame["metric"] == "SI-SDR") & frame["song"].isin([t.name for t in tracks])]
    table = frame.groupby(["variant", "source"])["value"].mean().unstack("source")
    table = table.reindex(index=["input mixture", "supervised", "ideal mask"], columns=list(cfg["instruments"]))
    reached = ["yes" if value >= CEILING_AIM else "no" for value in table.loc["supervised"]]
    table = table.map(lambda value: f"{value:.1f}")
    table.loc[f"supervised ≥ {CEILING_AIM:g} dB"] = reached
    return table


def poster_verdicts(verdicts, poster: Mapping[str, Sequence[str]]) -> "pd.DataFrame":
    """Which of the poster's conclusions held: each ``poster`` conclusion -> the ids of the claims it
    rests on, and the rule's :class:`~sepbook.experiments.claims.Verdict` of each. A conclusion
    *held* when all of its claims were reproduced, was *contradicted* when any was, and is *not
    shown* otherwise (inconclusive or not comparable at this size)."""
    import pandas as pd

    from sepbook.experiments.claims import CONTRADICTED, REPRODUCED

    by_id = {v.claim.id: v.verdict for v in verdicts}
    missing = [claim for ids in poster.values() for claim in ids if claim not in by_id]
    if missing:
        raise ValueError(f"poster: claims {missing} have no verdict")
    records = []
    for conclusion, ids in poster.items():
        found = [by_id[claim] for claim in ids]
        held = ("held" if all(v == REPRODUCED for v in found) else
                "contradicted" if CONTRADICTED in found else "not shown at this size")
        records.append({"the poster says": conclusion, "rests on": "; ".join(f"{claim}: {by_id[claim]}" for claim in ids),
                        "at this size": held})
    return pd.DataFrame(records)


def first_and_last(histories, variant: str, key: str) -> tuple[float, float]:
    """The mean over seeds of the first and of the last logged ``key`` of ``variant``'s runs
    (``histories`` keyed ``(variant, seed)``): where a loss starts and where it ends."""
    runs = [h[key] for (v, _), h in histories.items() if v == variant]
    if not runs:
        raise ValueError(f"variant: no run of {variant!r} in the histories")
    return sum(r[0] for r in runs) / len(runs), sum(r[-1] for r in runs) / len(runs)
