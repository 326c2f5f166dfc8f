"""The claims of Hung, Wichern and Le Roux (2021) that the chapter tests, fixed before its results.

Table 1 compares separators by SI-SDR, on the average over bass, guitar and piano and, for the
adversaries against plain fine-tuning, instrument by instrument. Table 2 compares transcriptors by
note-level F-measure (the paper's note accuracy), on mixtures and on isolated tracks, with the
adversaries judged against plain fine-tuning, not against the pre-trained transcriptor: every
fine-tuned transcriptor gains from fine-tuning itself. Each claim's paper effect is the
difference of the paper's own rows (:data:`page.PAPER`). Judged by
:func:`sepbook.experiments.claims.judge`.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

import numpy as np

from sepbook.experiments.claims import HIGHER, Claim, compare
from sepbook.recipes.transcription.page import PAPER

MIXTURE = "input mixture"
INSTRUMENTS = ("bass", "guitar", "piano")
SMALL = ("the paper's difference is a few tenths of a dB, below what 24 synthetic songs and 3 seeds "
         "resolve at this size")
SATURATED = ("the transcriptor reads the sampled instruments of independent parts almost as well as it "
             "ever will at this size, so fine-tuning leaves the adversary little to improve")


def separation(better: str, worse: str, words: str, reason: str, source: str | None = None, **options) -> Claim:
    column = -1 if source is None else INSTRUMENTS.index(source)
    paper = PAPER.numbers["separation"][better][column] - PAPER.numbers["separation"][worse][column]
    where = "average SI-SDR" if source is None else f"{source} SI-SDR"
    return Claim(f"T1 {better} > {worse}" + (f" ({source})" if source else ""), words,
                 f"Table 1, {where} of the two rows", compare(better, worse), "SI-SDR", HIGHER, reason,
                 paper_effect=round(paper, 2), sources=None if source is None else (source,), **options)


def transcription(better: str, worse: str, where: str, words: str, reason: str) -> Claim:
    numbers = PAPER.numbers["transcription"]
    gain = np.mean(numbers[(better, where)]) - np.mean(numbers[(worse, where)])
    return Claim(f"T2 {better} > {worse} ({where})", words,
                 "Table 2, note accuracy, mean of the three instruments", compare(better, worse),
                 f"note F1 ({where})", HIGHER, reason, paper_effect=round(float(gain), 3), unit="")


CLAIMS: tuple[Claim, ...] = (
    separation("classifier baseline", MIXTURE, "The clip-label critic baseline separates better than doing "
               "nothing", "clip labels say little when every instrument plays in most clips, and a separator "
               "that only has to satisfy a clip classifier can pass mixture energy to every source"),
    separation("isolated c+h-mix", "classifier baseline", "The score beats the clip labels as supervision",
               "the clip-label baseline fell below the mixture, so it cannot stand for the paper's baseline",
               floor=MIXTURE),
    separation("supervised", "isolated c+h-mix", "Stems still beat the score: supervised training stays ahead",
               "the supervised U-Net is far below its ceiling at this size, as the page measures"),
    separation("isolated c+h-mix", "isolated c-mix", "Both mixture-loss masks beat the clip-level mask alone", SMALL),
    separation("isolated c+h-mix", "isolated h-mix", "Both mixture-loss masks beat the harmonic mask alone", SMALL),
    separation("fine-tune", "isolated c+h-mix", "Fine-tuning separator and transcriptor together separates better "
               "than training the separator alone", SMALL),
    separation("fine-tune + AML", "fine-tune", "The adversarial mixture loss (AML) helps fine-tuning", SMALL),
    separation("fine-tune + ATL", "fine-tune", "The adversarial transcription loss (ATL) helps fine-tuning", SMALL),
    *(transcription(v, "fine-tune", where, f"Fine-tuning with {v.split('+ ')[1]} transcribes {where} tracks "
                    "better than plain fine-tuning", SATURATED)
      for where in ("mixture", "isolated") for v in ("fine-tune + AML", "fine-tune + ATL")),
)


#: The poster's four conclusions (its Results bullets), each held only when every claim it rests on
#: is reproduced by the rule.
POSTER: dict[str, tuple[str, ...]] = {
    "Our proposed approach (using transcriptor) outperforms baseline system (using classifier)":
        ("T1 isolated c+h-mix > classifier baseline",),
    "Additional masking constraint can improve separation":
        ("T1 isolated c+h-mix > isolated c-mix", "T1 isolated c+h-mix > isolated h-mix"),
    "Adversarial fine-tuning improves both separation and transcription":
        tuple(c.id for c in CLAIMS if "AML" in c.id or "ATL" in c.id),
    "Compared to baseline system, we close a significant gap from the mixture SI-SDR to the supervised "
    "setting": ("T1 classifier baseline > input mixture", "T1 isolated c+h-mix > classifier baseline"),
}
