"""What the adversarial page shows beside the scores: the paper's numbers, the tables, and the
sentences that read them (scoring itself is in :mod:`sepbook.recipes.adversarial.evaluation`).

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from sepbook.experiments import report
from sepbook.recipes import Paper
from sepbook.recipes.adversarial.data import PAPER_ROLES
from sepbook.recipes.adversarial.evaluation import METRIC_ROWS, MIXTURE, OUT_OF_DOMAIN, TEST_SET

#: The paper's Fig. 2 (mean test-set BSS Eval v3 scores in dB of Baseline / V / VA), per subset.
PAPER = Paper(
    source="Stoller, Ewert and Dixon (ICASSP 2018), Fig. 2: mean SDR/SIR/SAR (dB, BSS Eval v3 via mir_eval) "
           "of Baseline / V / VA on the whole test set and per dataset",
    numbers={
        "systems": ("baseline", "V", "VA"),
        "table": {
            "SDR Inst.": {"Test set": (8.09, 8.89, 8.55), "DSD100": (11.11, 10.75, 10.76), "MedleyDB": (9.40, 9.60, 9.65),
                          "CCMixter": (10.65, 11.09, 10.89), "iKala": (6.34, 7.71, 7.13)},
            "SDR V.": {"Test set": (6.80, 7.28, 7.47), "DSD100": (3.74, 3.17, 3.54), "MedleyDB": (2.48, 2.43, 3.00),
                       "CCMixter": (3.25, 3.52, 3.70), "iKala": (9.50, 10.47, 10.52)},
            "SIR Inst.": {"Test set": (12.03, 12.58, 12.67), "DSD100": (14.46, 13.56, 13.86),
                          "MedleyDB": (12.18, 12.07, 12.74), "CCMixter": (15.99, 15.49, 16.08),
                          "iKala": (10.42, 11.79, 11.57)},
            "SIR V.": {"Test set": (13.72, 14.00, 14.45), "DSD100": (10.03, 9.92, 10.49), "MedleyDB": (9.40, 9.21, 9.48),
                       "CCMixter": (8.39, 8.94, 9.35), "iKala": (16.98, 17.44, 17.90)},
            "SAR Inst.": {"Test set": (11.27, 12.05, 11.40), "DSD100": (14.20, 14.60, 14.10),
                          "MedleyDB": (13.94, 14.23, 13.45), "CCMixter": (12.84, 13.69, 13.24),
                          "iKala": (9.43, 10.42, 9.70)},
            "SAR V.": {"Test set": (8.54, 9.00, 9.04), "DSD100": (5.50, 4.84, 5.12), "MedleyDB": (4.71, 4.69, 5.20),
                       "CCMixter": (6.43, 6.17, 6.17), "iKala": (10.81, 11.83, 11.73)},
        },
    })


def roles(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Which paper dataset each domain of ``cfg`` plays (the real datasets play themselves)."""
    if cfg["dataset"] != "synthetic":
        return {role: role for role in PAPER_ROLES}
    return dict(zip([cfg["paired_style"], *cfg["domain_styles"]], PAPER_ROLES))


def with_subsets(cfg: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]):
    """Rows as a DataFrame with the paper's ``subset`` of each song (plus the test-set and
    out-of-domain pools) and its table ``row`` label, such as 'SDR V.'."""
    import pandas as pd

    frame = report.frame(rows)
    frame["row"] = frame["metric"] + " " + frame["source"].map({"accompaniment": "Inst.", "vocals": "V."})
    by_role = frame.assign(subset=frame["domain"].map(roles(cfg)))
    whole = frame.assign(subset=TEST_SET)
    outside = by_role[by_role["subset"] != PAPER_ROLES[0]].assign(subset=OUT_OF_DOMAIN)
    return pd.concat([whole, by_role, outside], ignore_index=True)


def paper_table(cfg: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], profile: str, digits: int = 2):
    """The paper's Fig. 2 layout, ours (mean ± std over seeds) beside the paper's number in each cell."""
    frame = with_subsets(cfg, rows)
    frame = frame[(frame["subset"] != OUT_OF_DOMAIN) & frame["variant"].isin(PAPER.numbers["systems"])]
    paper = {(label, subset, system): values[i] for label, by_subset in PAPER.numbers["table"].items()
             for subset, values in by_subset.items() for i, system in enumerate(PAPER.numbers["systems"])}
    return report.paper_table(frame, index="row", columns=("subset", "variant"), paper=paper, profile=profile,
                              index_order=[label for label, _, _ in METRIC_ROWS],
                              column_order=([TEST_SET, *PAPER_ROLES], list(PAPER.numbers["systems"])), digits=digits)


def gains(cfg: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], variant: str, baseline: str = "baseline"):
    """Per subset and metric row: ``variant - baseline`` per seed (same songs), summarised over seeds."""
    frame = with_subsets(cfg, rows)
    return report.gains(frame, variant, baseline, by=("subset", "row"))


def headroom_table(cfg: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], row: str = "SDR V.", digits: int = 2):
    """Mean ``row`` (over songs, then seeds) of the mixture, the baseline, the upper bound and the
    semi-supervised systems per subset, with the headroom (upper bound minus baseline) beside it."""
    frame = with_subsets(cfg, rows)
    frame = frame[(frame["row"] == row) & (frame["subset"] != TEST_SET)]
    systems = [s for s in (MIXTURE, "baseline", "upper bound", "V", "VA") if s in set(frame["variant"])]
    per_seed = frame[frame["variant"].isin(systems)].groupby(["subset", "variant", "seed"], dropna=False)["value"].mean()
    table = per_seed.groupby(["subset", "variant"]).mean().unstack("variant")[systems]
    if {"baseline", "upper bound"} <= set(systems):
        table["headroom"] = table["upper bound"] - table["baseline"]
    order = [s for s in [*PAPER_ROLES, OUT_OF_DOMAIN] if s in table.index]
    table = table.loc[order].round(digits)
    table.columns.name, table.index.name = f"{row}, dB (mean over songs and seeds)", "subset"
    return table


def choices(histories: Mapping[tuple[str, int], Mapping[str, Any]], digits: int = 4):
    """How each system was chosen: for every (system, seed), each candidate's validation ``L_s``
    and which one won. Read from the chosen runs' histories; the test songs play no part."""
    import pandas as pd

    records = []
    for (variant, seed), history in histories.items():
        for candidate, loss in history.get("candidates", {}).items():
            records.append({"system": variant, "seed": seed, "candidate": candidate.split(" @ ")[1],
                            "validation L_s": round(loss, digits), "chosen": candidate == history["chosen"]})
    return pd.DataFrame(records).set_index(["system", "seed", "candidate"])


def ablation_table(cfg: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], digits: int = 2):
    """The ablations beside the baseline and V, on the out-of-domain test songs of the ablation seeds."""
    frame = with_subsets(cfg, rows)
    frame = frame[(frame["subset"] == OUT_OF_DOMAIN) & frame["seed"].isin(cfg["ablation_seeds"])]
    variants = ["baseline", "V", *sorted(set(frame["variant"]) - {"baseline", "V", "VA", "upper bound", MIXTURE})]
    return report.table(frame, index="row", columns=("variant",), digits=digits, column_order=[variants],
                        index_order=[label for label, _, _ in METRIC_ROWS])


def paper_gain(variant: str, row: str, subset: str = TEST_SET) -> float:
    """The paper's gain of ``variant`` over its baseline (dB) on one metric row and subset."""
    values = PAPER.numbers["table"][row][subset]
    return round(values[PAPER.numbers["systems"].index(variant)] - values[0], 2)


def gains_table(cfg: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], variants=("V", "VA"), digits: int = 2):
    """Our gain over the baseline (mean over seeds) beside the paper's, per variant and subset."""
    import pandas as pd

    labels = [label for label, _, _ in METRIC_ROWS]
    records = {}
    for variant in variants:
        ours = gains(cfg, rows, variant)["mean"]
        for subset in [TEST_SET, *PAPER_ROLES, OUT_OF_DOMAIN]:
            record = {}
            for label in labels:
                value = ours.get((subset, label), math.nan)
                record[(label, "ours")] = round(value, digits) if math.isfinite(value) else "–"
                record[(label, "paper")] = paper_gain(variant, label, subset) if subset in PAPER.numbers["table"][label] else "–"
            records[(variant, subset)] = record
    table = pd.DataFrame.from_dict(records, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["metric", "numbers"])
    table.index.names = ["variant", "subset"]
    return table


def gain(cfg: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], variant: str, row: str = "SDR V.",
         subset: str = OUT_OF_DOMAIN):
    """``variant - baseline`` on one metric ``row`` and ``subset``: a row of :func:`gains` (mean, std,
    wins, seeds), or ``None`` when ``rows`` have no such scores."""
    table = gains(cfg, rows, variant)
    return table.loc[(subset, row)] if (subset, row) in table.index else None


def describe(cfg: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], variant: str, profile: str,
            row: str = "SDR V.", subset: str = OUT_OF_DOMAIN) -> str:
    """One sentence, computed from ``rows``, on how far ``variant`` lies from the baseline on ``subset``."""
    found = gain(cfg, rows, variant, row, subset)
    where = "outside the supervised domain" if subset == OUT_OF_DOMAIN else f"on the {subset} songs"
    if found is None:
        return f"In the {profile} profile there are no {row} scores for {variant} {where}."
    return report.describe(found, variant, "baseline", row, where, profile)
