"""The claims of every chapter: declared as data, decided by the one rule on the rows the paper
compares, shown alike on the chapter pages and the results-at-a-glance page, with links that land."""
import posixpath
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from sepbook import results
from sepbook.experiments import claims as rule
from sepbook.results import glance

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def books():
    return glance.load("book")


@pytest.fixture(scope="module")
def found(books):
    return glance.collect(books)


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                yield entry["file"]
            yield from walk(entry.get("chapters", []) + entry.get("sections", []))

    return {toc["root"], *walk([c for part in toc["parts"] for c in part["chapters"]])}


def _headings(page: str) -> list[str]:
    """The markdown headings of a notebook, without their #s (outside code fences)."""
    notebook = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
    found = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        fenced = False
        for line in cell.source.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            elif not fenced and re.match(r"#{1,6} ", line):
                found.append(line.lstrip("#").strip())
    return found


# ----------------------------------------------------------------------------- every chapter


def test_every_chapter_with_committed_results_declares_claims_or_says_why(books, found):
    with_results = [c for c in results.RECIPES if (results.results_dir(c) / "manifest.json").is_file()]
    assert with_results and glance.committed() == with_results
    for chapter in with_results:
        if chapter in glance.EXCLUDED:
            assert len(glance.EXCLUDED[chapter]) > 20, f"{chapter}: say why it is left out"
            with pytest.raises(ValueError, match="declares no claims"):
                glance.declared(chapter)
            continue
        assert glance.declared(chapter), f"{chapter}: no claims"
        assert chapter in glance.CHAPTERS and chapter in glance.PAGES
    assert set(found) == set(with_results) - set(glance.EXCLUDED)


def test_every_declared_comparison_has_rows_to_compare(books):
    """A claim naming a variant, metric, source or domain the results lack would be silently empty."""
    for chapter, book in books.items():
        if chapter in glance.EXCLUDED:
            continue
        for claim in glance.declared(chapter):
            paired = rule.differences(claim, book.rows)
            assert len(paired) >= rule.MIN_SONGS, f"{chapter} {claim.id}: {len(paired)} songs paired"
            assert claim.reason and claim.words and claim.paper, claim.id


def test_every_verdict_is_filled_and_the_counts_add_up(found):
    verdicts = [v for chapter in found.values() for v in chapter]
    for v in verdicts:
        assert v.verdict in rule.VERDICTS
        assert np.isfinite(v.effect) and v.low <= v.effect <= v.high, v.claim.id
    tally = glance.counts(found)
    assert list(tally) == list(rule.VERDICTS) and sum(tally.values()) == len(verdicts)


def test_the_page_and_the_chapters_use_the_same_rule_on_the_same_claims():
    for chapter, page in glance.PAGES.items():
        source = "\n".join(c.source for c in nbformat.read(ROOT / f"{page}.ipynb", as_version=4).cells)
        assert f"from sepbook.recipes.{chapter}.claims import CLAIMS" in source, chapter
        assert "claims.judge(CLAIMS, book.rows)" in source, chapter
        assert glance.SECTION in _headings(page), f"{page}: no '{glance.SECTION}' section"
    glance_source = (ROOT / f"{glance.PAGE}.ipynb").read_text()
    assert "glance.collect(" in glance_source and "direction(" not in glance_source


# ----------------------------------------------------------------------------- the claims compare what the paper compares


def _declared(chapter, claim_id):
    (claim,) = [c for c in glance.declared(chapter) if c.id == claim_id]
    return claim


def test_adversarial_losses_are_judged_against_plain_fine_tuning():
    for loss in ("AML", "ATL"):
        for where in ("mixture", "isolated"):
            claim = _declared("transcription", f"T2 fine-tune + {loss} > fine-tune ({where})")
            assert claim.versus == ((f"fine-tune + {loss}", "fine-tune"),)


def test_a_collapsed_baseline_is_flagged_not_counted(books, found):
    claim = _declared("transcription", "T1 isolated c+h-mix > classifier baseline")
    assert claim.floor == "input mixture"
    flagged = rule.collapsed(claim, books["transcription"].rows)
    (verdict,) = [v for v in found["transcription"] if v.claim.id == claim.id]
    assert (verdict.verdict == rule.NOT_COMPARABLE) == bool(flagged)


def test_a_no_gain_claim_has_a_margin_and_cannot_pass_for_lack_of_power():
    h2 = _declared("transfer", "H2")
    assert h2.expect == rule.SAME and h2.margin > 0
    rows = []
    g = np.random.default_rng(0)
    for down, pre, aug in [("bach10", "musdb", "pitch")]:
        for seed in range(3):
            for i in range(30):
                base = g.normal(0, 3)
                for variant, value in ((f"{down}-{pre}-none-whole", base), (f"{down}-{pre}-{aug}-whole",
                                                                          base - 0.45 + g.normal(0, 0.4))):
                    rows.append(dict(variant=variant, seed=seed, song=f"{down} {i}", domain=down, source="x",
                                     metric="SI-SDR", value=value))
    (verdict,) = rule.judge([h2], pd.DataFrame(rows))
    assert verdict.verdict != rule.REPRODUCED  # mostly losses near the margin: not "no difference"


# ----------------------------------------------------------------------------- the links


def test_every_link_lands_on_the_what_reproduced_heading_of_a_page_in_the_toc():
    from docutils.nodes import make_id

    listed = _toc_files()
    assert glance.PAGE in listed
    for chapter, page in glance.PAGES.items():
        assert page in listed, f"{page} is not in _toc.yml"
        slugs = [glance.slug(h) for h in _headings(page)]
        assert slugs.count(glance.slug(glance.SECTION)) == 1, f"{page}: '{glance.SECTION}' is not unique"
        target, anchor = glance.href(chapter).split("#")
        assert (ROOT / posixpath.dirname(glance.PAGE) / target).with_suffix(".ipynb").is_file(), target
        assert anchor == make_id(glance.SECTION)


def test_the_table_links_every_row_to_its_chapter(found):
    table = glance.table(found)
    assert len(table) == sum(len(v) for v in found.values())
    for (chapter_name, _), link in table["shown in"].items():
        (chapter,) = [c for c, name in glance.CHAPTERS.items() if name == chapter_name]
        assert glance.href(chapter) in link


def test_slug_is_the_id_docutils_gives_every_heading_of_the_book():
    from docutils.nodes import make_id

    tricky = ["The `make_id` trick", "**Bold** start", "3 stems, 2 seeds", "Café: the paper's Fig. 1"]
    for heading in tricky:
        assert glance.slug(heading) == make_id(glance._plain(heading)), heading
    for page in sorted(p for p in _toc_files() if (ROOT / f"{p}.ipynb").is_file()):
        for heading in _headings(page):
            assert glance.slug(heading) == make_id(glance._plain(heading)), (page, heading)
