"""The claims of Stoller, Ewert and Dixon (2018) that the chapter tests, fixed before its results.

The paper finds the semi-supervised V and VA above the supervised baseline on the datasets other
than the supervised one (its Fig. 2), and warns in its conclusion that scarce or mismatched
unlabelled data can make things worse. The book tests both on the test songs of its three
unlabelled styles. Judged by :func:`sepbook.claims.judge`.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from sepbook.claims import HIGHER, LOWER, Claim, compare
from sepbook.profiles import SETTINGS
from sepbook.recipes.adversarial.evaluation import PAPER, paper_gain

#: The styles whose songs are unlabelled during training: the paper's "other datasets".
OUTSIDE: tuple[str, ...] = tuple(SETTINGS["adversarial"]["book"]["domain_styles"])
ROWS = {"SDR V.": ("vocals", "the voice"), "SDR Inst.": ("accompaniment", "the accompaniment")}
SYSTEMS = {"V": "The critics (V)", "VA": "The critics with additive mixing (VA)"}


def gain(variant: str, row: str) -> Claim:
    source, words = ROWS[row]
    outside = [paper_gain(variant, row, subset) for subset in list(PAPER["table"][row])[2:]]
    return Claim(f"{variant} {row}", f"{SYSTEMS[variant]} separate {words} better than the supervised baseline "
                 "on songs outside the supervised domain",
                 f"Fig. 2, whole test set; {min(outside):+.2f} to {max(outside):+.2f} dB on the datasets "
                 "other than the supervised one", compare(variant, "baseline"), "SDR", HIGHER,
                 "the synthetic styles share their instruments, so the supervised baseline already generalises "
                 "and the critics have little to add at this size",
                 paper_effect=paper_gain(variant, row), sources=(source,), domains=OUTSIDE)


def warning(variant: str, words: str) -> Claim:
    return Claim(variant, words, "a warning in its conclusion, with no experiment", compare(variant, "baseline"),
                 "SDR", LOWER, "the baseline and V are close at this size, so a harm as small as the paper's "
                 "warning implies is hard to tell from seed noise", sources=("vocals",), domains=OUTSIDE)


CLAIMS: tuple[Claim, ...] = (
    gain("V", "SDR V."), gain("V", "SDR Inst."), gain("VA", "SDR V."), gain("VA", "SDR Inst."),
    warning("V (scarce)", "Too scarce unlabelled data makes V worse than the baseline"),
    warning("V (mismatched)", "Unlabelled data from another style than the test songs makes V worse than the "
                              "baseline"),
)
