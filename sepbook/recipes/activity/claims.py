"""The claims of Hung and Lerch (2020) that the chapter tests, fixed before its results.

The paper's Figures 3 and 4 compare IASS with Open-Unmix instrument by instrument (the book's
baseline is its BLSTM), giving directions but no numbers; the paper's mechanism, weighting each
mask by the predicted activity, is tested against IASS without the weighting. Judged by
:func:`sepbook.claims.judge`.

Chapter: activity/activity_aware
"""
from __future__ import annotations

from sepbook.claims import HIGHER, LOWER, SAME, Claim, compare
from sepbook.recipes.activity.data import TITLES
from sepbook.recipes.activity.evaluation import PAPER, UNWEIGHTED

#: What "equal" means for the paper's "IASS and Open-Unmix equal" (dB SDR).
EQUAL_MARGIN = 0.5
DIRECTION = {"IASS better": HIGHER, "equal": SAME, "slightly worse": LOWER}
FIGURE = {"musdb": "Fig. 3", "medley": "Fig. 4"}


def instrument(dataset: str, name: str, finding: str) -> Claim:
    expect = DIRECTION[finding]
    what = "the other stem" if name == "other" else name.replace("_", " ")
    words = {HIGHER: f"IASS separates {what} better than its baseline",
             SAME: f"IASS and its baseline separate {what} equally well",
             LOWER: f"IASS separates {what} slightly worse than its baseline"}[expect]
    return Claim(f"{dataset} {name}", f"{words} ({TITLES[dataset]})", f"{FIGURE[dataset]}, in words only",
                 compare("IASS", "BLSTM"), "SDR", expect,
                 "the book's baseline is a small BLSTM, not Open-Unmix, and 8 test songs per set leave "
                 "per-instrument differences within the noise",
                 sources=(name,), domains=(dataset,), margin=EQUAL_MARGIN if expect == SAME else 0.0)


CLAIMS: tuple[Claim, ...] = (
    *(instrument(dataset, name, finding) for dataset in ("musdb", "medley")
      for name, finding in PAPER[dataset].items()),
    Claim("weighting", "Weighting each mask by the predicted activity improves separation",
          "the method's premise (Sec. 3); the paper reports no ablation", compare("IASS", UNWEIGHTED), "SDR",
          HIGHER, "a frame wrongly judged silent loses all of the instrument in it, and at this size the "
          "detector errs often enough to cost more than the interference it removes"),
)
