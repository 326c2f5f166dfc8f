"""The built book, read back: run after ``make book`` (``.ci/run`` does, with ``SEPBOOK_REQUIRE_BUILD=1``,
so that a missing build fails instead of skipping)."""
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml

from sepbook import classroom
from sepbook.results import glance

ROOT = Path(__file__).resolve().parents[2]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def test_every_notebook_page_launches_its_own_notebook_on_colab(html):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/").strip("/")
    base = f"{config['launch_buttons']['colab_url']}/github/{repo}/blob/{config['repository']['branch']}/"
    notebooks = classroom.book_notebooks()
    assert notebooks
    for notebook in notebooks:
        page = html / notebook.relative_to(ROOT).with_suffix(".html")
        links = [h for h in _parse(page).hrefs if h.startswith(config["launch_buttons"]["colab_url"])]
        assert links, f"{page.name}: no Colab launch link"
        for link in links:
            assert link.startswith(base), f"{page.name}: {link} is not in the repository {repo}"
            target = ROOT / config["repository"]["path_to_book"] / link.removeprefix(base)
            assert target == notebook, f"{page.name} launches {link}, not its own notebook"


@pytest.mark.parametrize("page", ["chapters/glance/results_at_a_glance", "chapters/teachers/for_teachers"])
def test_every_link_of_a_gathering_page_lands_on_its_target(html, page):
    built = html / f"{page}.html"
    parsed = {built: _parse(built)}
    relative = [h for h in parsed[built].hrefs if not re.match(r"^[a-z][a-z0-9+.-]*:|^//", h)]
    if page.endswith("results_at_a_glance"):
        chapters = glance.collect(glance.load("book"))
        assert {glance.href(c) for c in chapters} <= set(relative), "the claims' links are missing from the page"
    else:
        labels = {r["label"] for r in classroom.exercise_rows()}
        assert {h.partition("#")[2] for h in relative} >= labels, "an exercise has no link"
    for href in relative:
        path, _, anchor = href.partition("#")
        target = (built.parent / path).resolve() if path else built
        if target.is_dir():
            target = target / "index.html"
        assert target.is_file(), f"{href}: {target} does not exist"
        if anchor and target.suffix == ".html":
            if target not in parsed:
                parsed[target] = _parse(target)
            assert anchor in parsed[target].ids, f"{href}: no id={anchor!r} in {target}"


class _Resources(HTMLParser):
    """Every resource a page makes the browser fetch: ``(tag, attribute, url)``."""

    FETCHED = {"script": "src", "img": "src", "audio": "src", "source": "src", "video": "src", "iframe": "src",
               "embed": "src", "track": "src"}

    def __init__(self):
        super().__init__()
        self.fetched = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.FETCHED and attrs.get(self.FETCHED[tag]):
            self.fetched.append((tag, self.FETCHED[tag], attrs[self.FETCHED[tag]]))
        if tag == "link" and attrs.get("href") and set((attrs.get("rel") or "").split()) & {
                "stylesheet", "preload", "icon", "modulepreload", "prefetch"}:
            self.fetched.append((tag, "href", attrs["href"]))


def _outside(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url.strip(), re.I))


def test_no_page_fetches_anything_from_outside_the_book(html):
    """The book reads offline: no script, style sheet, font, image or player source comes from a
    CDN or any other server (links a reader clicks, such as Colab's, are not fetched)."""
    found = []
    for page in sorted(html.rglob("*.html")):
        parser = _Resources()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        found += [f"{page.relative_to(html)}: <{t} {a}={u}>" for t, a, u in parser.fetched if _outside(u)]
    for sheet in sorted((html / "_static").rglob("*.css")):
        text = sheet.read_text(encoding="utf-8", errors="replace")
        remote = re.findall(r"(?:@import|url\()\s*['\"]?(?:https?:)?//[^)'\"\s]+", text)
        found += [f"{sheet.relative_to(html)}: {m}" for m in remote]
    assert not found, f"{len(found)} resources from outside the book, e.g. {found[:5]}"


def test_formulas_are_typeset_by_the_book_s_own_mathjax(html):
    pages = [p for p in sorted(html.rglob("*.html"))
             if 'class="math' in p.read_text(encoding="utf-8", errors="replace")]
    assert pages, "no page holds a formula"
    for page in pages:
        parser = _Resources()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        mathjax = [u for t, _, u in parser.fetched if t == "script" and "mathjax" in u.lower()]
        assert mathjax, f"{page.relative_to(html)}: formulas but no MathJax script"
        for url in mathjax:
            assert not _outside(url) and (page.parent / url.split("?")[0]).resolve().is_file(), \
                f"{page.relative_to(html)}: MathJax from {url}, not from the book"


def test_the_published_book_holds_no_solution_in_its_pages_or_downloads(html):
    """Graded exercises are answered in the teacher's edition only: the pages leave out the answer
    cells' code and the written solutions, and the notebook a reader downloads is the student edition."""
    pages = [p for p in classroom.book_notebooks() if classroom.exercises_in(nbformat.read(p, as_version=4))]
    assert pages
    for notebook in pages:
        relative = notebook.relative_to(ROOT)
        page = (html / relative.with_suffix(".html")).read_text()
        assert "BEGIN SOLUTION" not in page, f"{relative}: solution code in the page"
        assert not re.search(r'class="[^"]*\bsolution\b', page), f"{relative}: a written solution in the page"
        download = nbformat.read(html / "_sources" / relative, as_version=4)
        text = "\n".join(cell.source for cell in download.cells)
        assert "BEGIN SOLUTION" not in text and "{solution}" not in text, f"{relative}: the download holds solutions"
        assert classroom.CODE_STUB in text or classroom.TEXT_STUB in text, f"{relative}: the download has no stub"
