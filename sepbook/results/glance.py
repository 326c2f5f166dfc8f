"""Every chapter's committed ``book`` results beside its paper's claims, judged by the one rule.

Each paper chapter declares its paper's claims in ``sepbook/recipes/<chapter>/claims.py``
(``CLAIMS``); :func:`sepbook.experiments.claims.judge` decides them on the chapter's committed rows, exactly as
the chapter's own "What reproduced" section does. :func:`collect` gathers every chapter and
:func:`table` lays the verdicts out for the page, each linked to its chapter's section.

Chapter: glance/results_at_a_glance
"""
from __future__ import annotations

import importlib
import posixpath
import re
import unicodedata
from typing import Any, Mapping

from sepbook.experiments import claims
from sepbook.experiments.claims import Claim, Verdict

#: The page the table links from, as ``_toc.yml`` names it.
PAGE = "chapters/glance/results_at_a_glance"
#: The heading every paper chapter ends with, where its verdicts are shown.
SECTION = "What reproduced"
#: Chapters with committed results that make no claim a paper made, and why.
EXCLUDED: dict[str, str] = {
    "foundations": "it follows no paper; its BLSTM is measured against the unprocessed mixture and "
                   "the oracle masks, not against a published claim",
}
#: Each paper chapter's name in the table, in the book's order.
CHAPTERS: dict[str, str] = {
    "adversarial": "Adversarial semi-supervised separation (Stoller et al., 2018)",
    "transcription": "Score as supervision (Hung et al., 2021)",
    "activity": "Instrument-activation-aware separation (Hung and Lerch, 2020)",
    "metatasnet": "Generated extractors: Meta-TasNet (Samuel et al., 2020)",
    "transfer": "Transfer learning (Bugler et al., 2020)",
}
#: Each paper chapter's notebook, as ``_toc.yml`` names it.
PAGES: dict[str, str] = {
    "adversarial": "chapters/adversarial/adversarial_separation",
    "transcription": "chapters/transcription/score_supervision",
    "activity": "chapters/activity/activity_aware",
    "metatasnet": "chapters/metatasnet/meta_tasnet",
    "transfer": "chapters/transfer/transfer_learning",
}


def slug(heading: str) -> str:
    """The id Sphinx gives the section of a markdown ``heading``, as docutils' ``make_id`` makes it.

    It takes the heading's plain text (without the backticks of code or the asterisks of
    emphasis), lower-cased and stripped of accents. Each run of characters other than letters and
    digits becomes one hyphen, and leading digits and hyphens are dropped: "H1: pre-trained (the
    paper's Fig. 1)" becomes ``h1-pre-trained-the-paper-s-fig-1``.
    """
    text = _plain(heading.lstrip("#").strip()).lower()
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-z0-9]+", "-", " ".join(text.split()))
    return re.sub(r"^[-0-9]+|-+$", "", text)


def href(chapter: str, start: str = PAGE) -> str:
    """The link from the page ``start`` to ``chapter``'s "What reproduced" section."""
    path = posixpath.relpath(PAGES[chapter], posixpath.dirname(start))
    return f"{path}.html#{slug(SECTION)}"


def declared(chapter: str) -> tuple[Claim, ...]:
    """The claims ``chapter`` declares (``sepbook.recipes.<chapter>.claims.CLAIMS``)."""
    if chapter in EXCLUDED:
        raise ValueError(f"chapter {chapter!r} declares no claims: {EXCLUDED[chapter]}")
    if chapter not in PAGES:
        raise ValueError(f"chapter: expected one of {sorted(PAGES)}, got {chapter!r}")
    return importlib.import_module(f"sepbook.recipes.{chapter}.claims").CLAIMS


def verdicts(chapter: str, rows) -> list[Verdict]:
    """``chapter``'s claims decided on ``rows`` by :func:`sepbook.experiments.claims.judge` (one family)."""
    return claims.judge(declared(chapter), rows)


# ----------------------------------------------------------------------------- the whole book


def committed(profile: str = "book") -> list[str]:
    """The chapters of :data:`sepbook.results.RECIPES` with committed ``profile`` results."""
    from sepbook import results

    return [c for c in results.RECIPES if (results.results_dir(c, profile) / "manifest.json").is_file()]


def load(profile: str = "book", check: bool = False, songs: int = 1) -> dict[str, Any]:
    """Every chapter's committed results, keyed by chapter; with ``check``, each re-checked against its
    checkpoints on its first ``songs`` test songs (:func:`sepbook.results.recheck`)."""
    from sepbook import results

    return {chapter: results.load(chapter, profile, check=check, songs=songs) for chapter in committed(profile)}


def collect(books: Mapping[str, Any]) -> dict[str, list[Verdict]]:
    """The verdicts of every chapter in ``books`` (chapter -> its results) that declares claims."""
    return {chapter: verdicts(chapter, book.rows) for chapter, book in books.items() if chapter not in EXCLUDED}


def counts(found: Mapping[str, list[Verdict]]) -> dict[str, int]:
    """How many verdicts of each kind over every chapter, every kind present."""
    return claims.counts(v for chapter in found.values() for v in chapter)


def table(found: Mapping[str, list[Verdict]], profile: str = "book", start: str = PAGE):
    """Every chapter's :func:`sepbook.experiments.claims.table`, one block per chapter, each row linked to the
    chapter's "What reproduced" section."""
    import html

    import pandas as pd

    blocks = []
    for chapter, verdicts_ in found.items():
        link = f'<a href="{html.escape(href(chapter, start))}">{SECTION}</a>'
        block = claims.table(verdicts_, profile, links=[link] * len(verdicts_)).reset_index()
        block.insert(0, "chapter", html.escape(CHAPTERS.get(chapter, chapter), quote=False))
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True).set_index(["chapter", "id"])


def _plain(heading: str) -> str:
    """A markdown heading's text without the backticks of code or the asterisks of emphasis."""
    return re.sub(r"[`*]", "", heading)
