"""The claims of Hung and Lerch (2020) that the chapter tests, fixed before its results, and the
controls that say where an effect comes from.

The paper's Figures 3 and 4 compare IASS with Open-Unmix instrument by instrument, giving
directions but no numbers; here they compare the IASS network with its weighting against the
BLSTM baseline, and so test the network and the weighting together. The paper's two ideas are
then tested apart: training with the activity head (multi-task learning) improves the masks
themselves (the U-Net with its head against the same U-Net without it, both unweighted), and
weighting the masks by the detected activity improves separation (IASS against itself
unweighted). ``CONTROLS`` are not the paper's claims and are not counted on the results page:
the same two ideas on the BLSTM, the architecture alone, and what a perfect detector would give.
Every comparison is on the whole-song SDR and has the unprocessed mixture as its floor. Judged by
:func:`sepbook.experiments.claims.judge`, each tuple as one family.

Chapter: activity/activity_aware
"""
from __future__ import annotations

from sepbook.experiments.claims import HIGHER, LOWER, SAME, Claim, compare
from sepbook.recipes.activity.data import TITLES
from sepbook.recipes.activity.evaluation import UNWEIGHTED
from sepbook.recipes.activity.page import PAPER

#: What "equal" means for the paper's "IASS and Open-Unmix equal" (dB SDR).
EQUAL_MARGIN = 0.5
DIRECTION = {"IASS better": HIGHER, "equal": SAME, "slightly worse": LOWER}
FIGURE = {"musdb": "Fig. 3", "medley": "Fig. 4"}


def instrument(dataset: str, name: str, finding: str) -> Claim:
    expect = DIRECTION[finding]
    what = "the other stem" if name == "other" else name.replace("_", " ")
    words = {HIGHER: f"separates {what} better than", SAME: f"separates {what} as well as",
             LOWER: f"separates {what} slightly worse than"}[expect]
    return Claim(f"{dataset} {name}", f"IASS (network + weighting) {words} the baseline ({TITLES[dataset]})",
                 f"{FIGURE[dataset]}, in words only", compare("IASS", "BLSTM"), "SDR", expect,
                 "the baseline is a BLSTM far smaller than Open-Unmix, the U-Net is still improving when "
                 "training stops, and one instrument's difference is within what the songs vary",
                 sources=(name,), domains=(dataset,), margin=EQUAL_MARGIN if expect == SAME else 0.0,
                 floor="mixture")


CLAIMS: tuple[Claim, ...] = (
    *(instrument(dataset, name, finding) for dataset in ("musdb", "medley")
      for name, finding in PAPER.numbers[dataset].items()),
    Claim("multi-task", "Training with the activity head gives the U-Net better masks (both unweighted)",
          "the title's multi-task learning (Sec. 3)", compare(UNWEIGHTED, "U-Net"), "SDR", HIGHER,
          "the activity labels say little that the separation loss does not already teach: a mask "
          "that is right is near zero where its instrument rests", floor="mixture"),
    Claim("weighting", "Weighting each mask by the detected activity improves separation",
          "the method's premise (Sec. 3); the paper reports no ablation", compare("IASS", UNWEIGHTED), "SDR",
          HIGHER, "a frame wrongly judged silent loses all of the instrument in it, and the masks already "
          "leak little into rests, so there is little for the weighting to remove", floor="mixture"),
)

CONTROLS: tuple[Claim, ...] = (
    Claim("architecture", "The residual U-Net separates better than the BLSTM (neither has a head)",
          "control", compare("U-Net", "BLSTM"), "SDR", HIGHER,
          "the two networks are about equally good at this size", floor="mixture"),
    Claim("head on the BLSTM", "An activity head gives the BLSTM better masks (both unweighted)",
          "control", compare("BLSTM + head unweighted", "BLSTM"), "SDR", HIGHER,
          "as for the U-Net", floor="mixture"),
    Claim("weighting on the BLSTM", "Weighting by its own detector improves the BLSTM with a head",
          "control", compare("BLSTM + head", "BLSTM + head unweighted"), "SDR", HIGHER,
          "as for IASS", floor="mixture"),
    Claim("oracle", "Weighting by the true activity improves IASS (what a perfect detector gives)",
          "control: the bound on the weighting", compare("IASS oracle", UNWEIGHTED), "SDR", HIGHER,
          "the masks leak so little into rests that even a perfect detector has nothing to remove",
          floor="mixture"),
    Claim("leakage", "IASS's weighting lowers the energy leaked into rests",
          "control: what the weighting targets", compare("IASS", UNWEIGHTED), "leakage", LOWER,
          "the detector misses rests as often as it finds them"),
)
