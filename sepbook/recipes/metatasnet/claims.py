"""The claim of Samuel, Ganeshan and Naradowsky (2020) that the chapter tests, fixed before its results.

Generated, instrument-specific extractors are "more effective" than independent extractors (one
network per instrument) or one shared multi-task extractor; the paper gives the direction only.
The book compares the three at equal parameter counts in SI-SDR, the training objective, averaged
over the four stems, with the unprocessed mixture as the floor. Judged by
:func:`sepbook.claims.judge`.

Chapter: metatasnet/meta_tasnet
"""
from __future__ import annotations

from sepbook.claims import HIGHER, Claim, compare

WORDS = {"independent": "independent extractors, one per instrument",
         "multi-task": "one multi-task extractor shared by all instruments"}

CLAIMS: tuple[Claim, ...] = tuple(
    Claim(f"meta > {baseline}", f"Generated extractors (meta) separate better than {words}",
          "Sec. 4, in words: more effective", compare("meta", baseline), "SI-SDR", HIGHER,
          "with a few test songs and three seeds at this size, retraining moves each system more than the "
          "three systems differ",
          floor="mixture")
    for baseline, words in WORDS.items())
