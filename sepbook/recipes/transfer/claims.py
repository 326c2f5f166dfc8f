"""The claims of Bugler, Pardo and Seetharaman (2020) that the chapter tests, fixed before its results.

H1: a pre-trained, fine-tuned whole-model beats training from scratch for as many steps (Fig. 1:
on Bach10 and Remixpacks from every pre-training set; on Dagstuhl only from Slakh), declared per
set; "H1 plateau" asks the same with each system trained to its own validation plateau, so that
the fine-tuning budget is not what is measured. H2: augmenting the pre-training gives no reliable
gain ("ambiguous at best", Fig. 2); a claim of no difference, with an equivalence margin. R2:
fine-tuning the mask head alone scores below fine-tuning the whole network (Table 2). Several
comparisons of one claim are pooled song by song. Judged by :func:`sepbook.experiments.claims.judge`.

Chapter: transfer/transfer_learning
"""
from __future__ import annotations

import numpy as np

from sepbook.experiments.claims import HIGHER, LOWER, SAME, Claim
from sepbook.recipes.transfer.data import AUGMENTATIONS, DOWNSTREAM, PRETRAINING
from sepbook.recipes.transfer.page import PAPER

#: What "no reliable gain" means for H2 (dB SI-SDR).
H2_MARGIN = 0.5


def pretrained(down: str, sets=PRETRAINING) -> Claim:
    where = "from every pre-training set" if len(sets) > 1 else f"from {sets[0]}"
    return Claim(f"H1 {down}", f"On {down}, pre-trained whole-models ({where}) beat scratch at equal total steps",
                 "Fig. 1, no number in the text",
                 tuple((f"{down}-{pre}-none-whole", f"{down}-scratch") for pre in sets), "SI-SDR", HIGHER,
                 "the book's pre-training sets are synthetic and small, so what they teach transfers less",
                 domains=(down,))


def plateau(down: str, pre: str = "musdb+slakh") -> Claim:
    return Claim(f"H1 plateau {down}", f"On {down}, a fine-tuned whole-model (from {pre}) beats scratch when "
                 "each trains to its validation plateau", "Sec. 4: fine-tuned networks 'far out-strip' scratch",
                 ((f"{down}-{pre}-none-whole-long", f"{down}-scratch-long"),), "SI-SDR", HIGHER,
                 "given time to converge on the small set, training from scratch catches up with what "
                 "pre-training gave", domains=(down,))


CLAIMS: tuple[Claim, ...] = (
    pretrained("bach10"), pretrained("remixpacks"), pretrained("dagstuhl", ("slakh",)),
    plateau("bach10"), plateau("remixpacks"), plateau("dagstuhl"),
    Claim("H2", "Augmenting the pre-training gives no reliable gain to whole-models",
          f"Fig. 2: 'ambiguous at best'; no difference within ±{H2_MARGIN:g} dB",
          tuple((f"{down}-{pre}-{aug}-whole", f"{down}-{pre}-none-whole")
                for down in DOWNSTREAM for pre in PRETRAINING for aug in AUGMENTATIONS[1:]),
          "SI-SDR", SAME, "the book's pre-training sets are small, so an augmentation changes what the trunk "
          "learns more than it would on hours of real audio", margin=H2_MARGIN),
    Claim("R2", "Fine-tuning the mask head alone scores below fine-tuning the whole network",
          "Table 2, median of its 36 cells",
          tuple((f"{down}-{pre}-{aug}-mask", f"{down}-{pre}-{aug}-whole")
                for down in DOWNSTREAM for pre in PRETRAINING for aug in AUGMENTATIONS),
          "SI-SDR", LOWER, "the book's fine-tuning budget is short enough that the whole network has little "
          "time to pull ahead", paper_effect=round(float(np.median(list(PAPER.numbers.values()))), 2)),
)
