"""The claims of Samuel, Ganeshan and Naradowsky (2020) that the chapter tests, fixed before its
results.

1. Generated, instrument-specific extractors are "more effective" than independent extractors
   (one network per instrument) or one shared multi-task extractor; the paper gives the direction
   only. The book compares them at equal parameter counts in SI-SDR, the training objective, of
   the last stage, averaged over the four stems.
2. The same against the control: independent streams that start as the generated ones, so that
   the way weights are made during training is all that differs.
3. The last stage, at a higher sample rate, gives a better estimate than the first (the paper's
   multi-stage architecture, which "progressively enhances the resolution"), pooled over the
   three systems, both scored at the last stage's rate: the first stage's estimate, brought up to
   that rate, has nothing above its own Nyquist frequency, and that is part of what the paper
   claims the later stages add. How much of a gain lies within the first stage's band the page
   shows beside the verdict.

The unprocessed mixture is the floor of every comparison. Judged by :func:`sepbook.experiments.claims.judge`.

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

from sepbook.experiments.claims import HIGHER, Claim, compare
from sepbook.recipes.metatasnet.evaluation import stage_name
from sepbook.recipes.metatasnet.training import CONTROL, SYSTEMS

WORDS = {"independent": "independent extractors, one per instrument",
         "multi-task": "one multi-task extractor shared by all instruments",
         CONTROL: "independent extractors that start from the generated weights"}

CLAIMS: tuple[Claim, ...] = tuple(
    Claim(f"meta > {baseline}", f"Generated extractors (meta) separate better than {words}",
          "Sec. 4, in words: more effective", compare("meta", baseline), "SI-SDR", HIGHER,
          "at this size and number of steps, how the extractors' weights are made moves SI-SDR less "
          "than retraining and the choice of song do",
          floor="mixture")
    for baseline, words in WORDS.items()) + (
    Claim("last stage > stage 1", "The last stage, at a higher sample rate, separates better than the "
          "first (each at the last stage's rate)", "Sec. 3, multi-stage architecture",
          tuple((v, stage_name(v, 1)) for v in SYSTEMS), "SI-SDR", HIGHER,
          "the higher band holds little of the stems' energy, and what the last stage adds within the "
          "first stage's band is no more than retraining moves",
          floor="mixture"),
)
