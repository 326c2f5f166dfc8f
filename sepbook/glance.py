"""Every chapter's committed ``book`` results beside the paper's claims, one :class:`Claim` per row.

Each paper chapter's recipe has a ``headline(book)`` in its ``evaluation`` module. It takes the
chapter's committed results (:func:`sepbook.results.load`) and returns that chapter's claims. The
numbers come from the same functions that write the chapter's own sentences, and the verdicts
come from the rules below. :func:`collect` gathers every chapter. :func:`table` lays the claims out
for the page, with links to the sections that show them.

The verdict rules, written out in :func:`direction` and :func:`share`:

- a claim that one system beats another (or scores lower, or the same) is judged by the sign of
  the book's difference, measured seed by seed, against the seed-to-seed spread (:func:`direction`);
- a claim about a share of cases, such as "in almost every case" or "in none", is judged by the
  share of cases in which it holds (:func:`share`).

Both rules judge only the direction. The size is shown beside the verdict: the book's small
synthetic experiments give different absolute numbers from the papers' full-size ones.

Chapter: glance/results_at_a_glance
"""
from __future__ import annotations

import importlib
import math
import posixpath
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from sepbook import report

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly", "not reproduced"
#: The three verdicts, best first.
VERDICTS: tuple[str, ...] = (REPRODUCED, PARTLY, NOT_REPRODUCED)
#: The share of cases a claim must hold in to count as reproduced by :func:`share`.
MOST = 0.75
#: A difference smaller than this rounds to 0.00 and has no sign.
NO_DIFFERENCE = 0.005
#: The page the table links from, as ``_toc.yml`` names it.
PAGE = "chapters/glance/results_at_a_glance"
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


@dataclass(frozen=True)
class Claim:
    """One claim of a paper beside what the book measured.

    ``page`` is the chapter's notebook as ``_toc.yml`` names it (``chapters/transfer/transfer_learning``),
    and ``section`` is the heading of the section that shows the numbers, exactly as the notebook's
    markdown writes it. The link's anchor is made from it (:attr:`anchor`).
    """

    chapter: str
    claim: str
    paper: str
    measured: str
    verdict: str
    page: str
    section: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: expected one of {VERDICTS}, got {self.verdict!r}")

    @property
    def anchor(self) -> str:
        """The section's id in the built HTML (see :func:`slug`)."""
        return slug(self.section)

    def href(self, start: str = PAGE) -> str:
        """The link to the section from the page ``start`` (both as ``_toc.yml`` names them)."""
        path = posixpath.relpath(self.page, posixpath.dirname(start))
        return f"{path}.html#{self.anchor}"


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


def sign(value: float) -> int:
    """+1, -1, or 0 for a difference that rounds to 0.00 (or is not a number)."""
    if not math.isfinite(value) or abs(value) < NO_DIFFERENCE:
        return 0
    return 1 if value > 0 else -1


def direction(mean: float, std: float, seeds: int, expected: int) -> str:
    """The verdict on a claim about the sign of a difference (system minus baseline).

    ``expected`` is the paper's sign: +1 for "better", -1 for "worse", 0 for "the same".
    ``mean`` and ``std`` are the book's difference over ``seeds`` seeds (the std over seeds).

    - Expected "better" or "worse": *reproduced* if the book's mean has the same sign and lies
      outside the seed-to-seed spread (``|mean| > std``); *partly* if it has the same sign but
      lies within the spread, or there is only one seed and so no spread to judge by; *not
      reproduced* if it has the opposite sign, rounds to zero, or is missing.
    - Expected "the same": *reproduced* if the mean lies within the spread or rounds to zero;
      *partly* with one seed only (and a mean that does not round to zero); *not reproduced* if
      it lies outside the spread.
    """
    if expected not in (-1, 0, 1):
        raise ValueError(f"expected: +1, -1 or 0, got {expected!r}")
    if not math.isfinite(mean):
        return NOT_REPRODUCED
    spread = std if seeds > 1 and math.isfinite(std) else math.nan
    found = sign(mean)
    if expected == 0:
        if found == 0 or abs(mean) <= spread:
            return REPRODUCED
        return PARTLY if math.isnan(spread) else NOT_REPRODUCED
    if found != expected:
        return NOT_REPRODUCED
    return REPRODUCED if abs(mean) > spread else PARTLY  # a NaN spread compares False


def share(held: int, cases: int, most: float = MOST) -> str:
    """The verdict on a claim that holds in ``held`` of ``cases`` cases (or parts).

    *Reproduced* if it holds in at least ``most`` of them (three quarters by default), *partly*
    if it holds in some but fewer, *not reproduced* if it holds in none (or there are no cases).
    """
    if not 0 <= held <= cases:
        raise ValueError(f"held, cases: expected 0 <= held <= cases, got {held} of {cases}")
    if cases == 0 or held == 0:
        return NOT_REPRODUCED
    return REPRODUCED if held >= most * cases else PARTLY


def difference(mean: float, std: float, seeds: int, unit: str = " dB", digits: int = 2) -> str:
    """A measured difference as text: ``'+0.73 ± 1.09 dB over 3 seeds'`` (or ``'…, one seed'``)."""
    if not math.isfinite(mean):
        return "no score"
    number = report.cell(mean, std, seeds, digits, signed=True) + unit
    return f"{number} over {seeds} seeds" if seeds > 1 else f"{number}, one seed"


# ----------------------------------------------------------------------------- the whole book


def headline(chapter: str):
    """The ``headline(book)`` function of ``chapter``'s recipe."""
    if chapter in EXCLUDED:
        raise ValueError(f"chapter {chapter!r} has no headline claims: {EXCLUDED[chapter]}")
    return importlib.import_module(f"sepbook.recipes.{chapter}.evaluation").headline


def committed(profile: str = "book") -> list[str]:
    """The chapters of :data:`sepbook.results.RECIPES` with committed ``profile`` results."""
    from sepbook import results

    return [c for c in results.RECIPES if (results.results_dir(c, profile) / "manifest.json").is_file()]


def load(profile: str = "book", check: bool = False) -> dict[str, Any]:
    """Every chapter's committed results, keyed by chapter. ``check=False`` by default: each chapter's own
    page re-separates test songs with its checkpoints when it builds, and this page only reads
    the numbers."""
    from sepbook import results

    return {chapter: results.load(chapter, profile, check=check) for chapter in committed(profile)}


def collect(books: Mapping[str, Any]) -> list[Claim]:
    """Every claim of every chapter in ``books`` (chapter -> its results) that has claims, in
    the order of ``books``."""
    return [claim for chapter, book in books.items() if chapter not in EXCLUDED
            for claim in headline(chapter)(book)]


def counts(claims: Iterable[Claim]) -> dict[str, int]:
    """How many claims got each verdict, every verdict present (best first)."""
    claims = list(claims)
    return {v: sum(c.verdict == v for c in claims) for v in VERDICTS}


def table(claims: Sequence[Claim], profile: str = "book", start: str = PAGE):
    """The claims as a DataFrame indexed (chapter, claim), its text HTML-escaped. The ``shown in``
    column holds HTML links to the sections, so show it unescaped (as :func:`styled` does)."""
    import html

    import pandas as pd

    def text(value: str) -> str:
        return html.escape(value, quote=False)

    records = [{"chapter": text(CHAPTERS.get(c.chapter, c.chapter)), "claim": text(c.claim),
                "the paper": text(c.paper), f"this book ({profile} profile)": text(c.measured),
                "verdict": c.verdict,
                "shown in": f'<a href="{html.escape(c.href(start))}">{text(_plain(c.section))}</a>'}
               for c in claims]
    return pd.DataFrame(records).set_index(["chapter", "claim"])


#: Background colours of the three verdicts in :func:`styled` (with dark text, for both themes).
COLOURS = {REPRODUCED: "#d9efd5", PARTLY: "#fbeecb", NOT_REPRODUCED: "#f6d6d6"}


def styled(frame):
    """:func:`table`'s DataFrame as a pandas Styler: verdicts coloured, text left-aligned, links live."""
    def colour(value):
        return f"background-color: {COLOURS[value]}; color: #1f1f1f" if value in COLOURS else ""

    cells = "text-align: left; vertical-align: top; padding: 0.3em 0.5em;"
    return (frame.style.format(escape=None)
            .hide(axis="index", names=True)
            .map(colour, subset=["verdict"])
            .set_table_styles([{"selector": "", "props": "font-size: 0.85em; border-collapse: collapse;"},
                               {"selector": "th, td", "props": cells},
                               {"selector": "tbody tr", "props": "border-top: 1px solid #d0d0d0;"},
                               {"selector": "th.row_heading.level0", "props": "min-width: 8em;"},
                               {"selector": "th.row_heading.level1", "props": "font-weight: 600; min-width: 12em;"},
                               {"selector": "td.col2", "props": "white-space: nowrap;"}]))


def _plain(heading: str) -> str:
    """A markdown heading's text without the backticks of code or the asterisks of emphasis."""
    return re.sub(r"[`*]", "", heading)
