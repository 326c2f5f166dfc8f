"""The claims of Stoller, Ewert and Dixon (2018) that the chapter tests, fixed before its results.

The paper finds the semi-supervised V and VA above the supervised baseline on the datasets other
than the supervised one (its Fig. 2); it takes unlabelled mixtures and solo stems from the same
songs "to eliminate dataset bias as a confounding factor" (Sec. 4.2); and it warns in its
conclusion that scarce or mismatched unlabelled data can make things worse. The book adds the
premise all of these rest on, the headroom: a supervised separator that also had the unlabelled
songs' true pairs beats the baseline outside the supervised domain. Every claim is judged on the
test songs of the three unlabelled styles by :func:`sepbook.experiments.claims.judge`.

Chapter: adversarial/adversarial_separation
"""
from __future__ import annotations

from sepbook.data.profiles import SETTINGS
from sepbook.experiments.claims import HIGHER, LOWER, Claim, compare
from sepbook.recipes.adversarial.evaluation import MIXTURE
from sepbook.recipes.adversarial.page import PAPER, paper_gain

#: The styles whose songs are unlabelled during training: the paper's "other datasets".
OUTSIDE: tuple[str, ...] = tuple(SETTINGS["adversarial"]["book"]["domain_styles"])
ROWS = {"SDR V.": ("vocals", "the voice"), "SDR Inst.": ("accompaniment", "the accompaniment")}
SYSTEMS = {"V": "The critics (V)", "VA": "The critics with additive mixing (VA)"}


def gain(variant: str, row: str) -> Claim:
    source, words = ROWS[row]
    outside = [paper_gain(variant, row, subset) for subset in list(PAPER.numbers["table"][row])[2:]]
    return Claim(f"{variant} {row}", f"{SYSTEMS[variant]} separate {words} better than the supervised baseline "
                 "on songs outside the supervised domain",
                 f"Fig. 2, whole test set; {min(outside):+.2f} to {max(outside):+.2f} dB on the datasets "
                 "other than the supervised one", compare(variant, "baseline"), "SDR", HIGHER,
                 "a critic's gradient is a weak, noisy signal beside the supervised loss at this size, "
                 "and a few hundred updates after a converged start leave it little to move",
                 paper_effect=paper_gain(variant, row), sources=(source,), domains=OUTSIDE, floor=MIXTURE)


def warning(variant: str, words: str) -> Claim:
    return Claim(variant, words, "a warning in its conclusion, with no experiment", compare(variant, "baseline"),
                 "SDR", LOWER, "V itself stays close to the baseline at this size, so a harm as small as the "
                 "paper's warning implies is hard to tell from seed noise", sources=("vocals",), domains=OUTSIDE,
                 floor=MIXTURE)


HEADROOM = Claim(
    "headroom", "A supervised separator given the unlabelled songs' true pairs (the upper bound) separates the "
    "voice better than the baseline outside the supervised domain: there is something for the critics to supply",
    "the premise of Sec. 4.2: a supervised set whose sampling bias differs from the unlabelled and test sets",
    compare("upper bound", "baseline"), "SDR", HIGHER,
    "the synthetic domains share too much (one voice model, one composer) for the extra songs to teach anything",
    sources=("vocals",), domains=OUTSIDE, floor=MIXTURE)

CLAIMS: tuple[Claim, ...] = (
    HEADROOM,
    gain("V", "SDR V."), gain("V", "SDR Inst."), gain("VA", "SDR V."), gain("VA", "SDR Inst."),
    Claim("V (disjoint halves)", "Unlabelled mixtures and solo stems from disjoint songs (dataset bias between the "
          "two) make V worse than taking both from the same songs", "Sec. 4.2, the reason for its split",
          compare("V (disjoint halves)", "V"), "SDR", LOWER,
          "with half as many songs per side the critics' signal is weaker whichever way the songs are split, and "
          "V itself changes the separator little", sources=("vocals",), domains=OUTSIDE),
    warning("V (scarce)", "Too scarce unlabelled data makes V worse than the baseline"),
    warning("V (mismatched)", "Unlabelled data from another style than the test songs makes V worse than the "
                              "baseline"),
)

#: The book's own comparisons beside the paper's claims: how much of the headroom each system closes.
#: Judged by the same rule; an upper bound is expected to stay ahead.
BELOW_UPPER_BOUND: tuple[Claim, ...] = tuple(
    Claim(f"{variant} vs upper bound", f"{SYSTEMS[variant]} separate the voice worse than the upper bound outside "
          "the supervised domain", "not in the paper: the book's headroom", compare(variant, "upper bound"), "SDR",
          LOWER, "the critics closed the whole gap", sources=("vocals",), domains=OUTSIDE)
    for variant in ("V", "VA"))

#: The same comparisons on the paired domain's own test songs, where the paper's Fig. 2 shows the
#: critics costing a little (its DSD100 column). Judged by the same rule, beside the claims.
INSIDE: tuple[str, ...] = (SETTINGS["adversarial"]["book"]["paired_style"],)
IN_DOMAIN: tuple[Claim, ...] = tuple(
    Claim(f"{variant} in domain", f"{SYSTEMS[variant]} separate the voice worse than the baseline on the supervised "
          "domain's own songs", "Fig. 2, DSD100 column", compare(variant, "baseline"), "SDR", LOWER,
          "the warm start and early stopping on validation keep the separator close to the baseline where the "
          "paired songs already teach it", paper_effect=paper_gain(variant, "SDR V.", "DSD100"),
          sources=("vocals",), domains=INSIDE, floor=MIXTURE)
    for variant in ("V", "VA"))
