"""The claims of Hung, Wichern and Le Roux (2021) that the chapter tests, fixed before its results.

Table 1 compares separators by their average SI-SDR over bass, guitar and piano; Table 2 compares
transcriptors fine-tuned with and without the adversarial losses by frame accuracy. Each claim's
paper effect is the difference of the paper's own rows (:data:`page.PAPER`). Judged by
:func:`sepbook.experiments.claims.judge`.

Chapter: transcription/score_supervision
"""
from __future__ import annotations

import numpy as np

from sepbook.experiments.claims import HIGHER, Claim, compare
from sepbook.recipes.transcription.page import PAPER

MIXTURE = "input mixture"
SMALL = ("the paper's difference is a few tenths of a dB, smaller than what 12 synthetic songs and "
         "3 seeds can resolve at this size")


def separation(better: str, worse: str, words: str, reason: str, **options) -> Claim:
    paper = PAPER.numbers["separation"][better][-1] - PAPER.numbers["separation"][worse][-1]
    return Claim(f"T1 {better} > {worse}", words, "Table 1, average SI-SDR of the two rows",
                 compare(better, worse), "SI-SDR", HIGHER, reason, paper_effect=round(paper, 2), **options)


def transcription(variant: str, where: str) -> Claim:
    gain = np.mean(PAPER.numbers["transcription"][(variant, where)]) - np.mean(PAPER.numbers["transcription"][("fine-tune", where)])
    loss = variant.split("+ ")[1]
    return Claim(f"T2 {loss} ({where})", f"Fine-tuning with {loss} transcribes {where} tracks better than plain "
                 "fine-tuning", "Table 2, frame accuracy, mean of the three instruments",
                 compare(variant, "fine-tune"), f"accuracy ({where})", HIGHER,
                 "the paper's gain is a few hundredths of accuracy; the book's transcriptor reads the synthetic "
                 "timbres so easily that fine-tuning leaves little to gain",
                 paper_effect=round(float(gain), 3), unit="")


CLAIMS: tuple[Claim, ...] = (
    separation("classifier baseline", MIXTURE, "The clip-label critic baseline separates better than doing "
               "nothing", "its mixture-loss weight was set for the transcriptor critic, whose loss is on a much "
               "smaller scale, so the classifier's loss dominates and the separator empties its estimates"),
    separation("isolated c+h-mix", "classifier baseline", "The score beats the clip labels as supervision",
               "the clip-label baseline collapsed below the mixture, so it cannot stand for the paper's baseline",
               floor=MIXTURE),
    separation("supervised", "isolated c+h-mix", "Stems still beat the score: supervised training stays ahead",
               "the synthetic instruments are nearly alike in spectrum, which limits the supervised separator"),
    separation("isolated c+h-mix", "isolated c-mix", "Both mixture-loss masks beat the clip-level mask alone", SMALL),
    separation("isolated c+h-mix", "isolated h-mix", "Both mixture-loss masks beat the harmonic mask alone", SMALL),
    separation("fine-tune", "isolated c+h-mix", "Fine-tuning separator and transcriptor together helps separation",
               SMALL),
    separation("fine-tune + AML", "fine-tune", "The adversarial mixture loss (AML) helps fine-tuning", SMALL),
    separation("fine-tune + ATL", "fine-tune", "The adversarial transcription loss (ATL) helps fine-tuning", SMALL),
    transcription("fine-tune + AML", "mixture"),
    transcription("fine-tune + ATL", "mixture"),
    transcription("fine-tune + AML", "isolated"),
    transcription("fine-tune + ATL", "isolated"),
)
