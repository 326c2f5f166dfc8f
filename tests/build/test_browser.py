"""The browser check (:mod:`sepbook.build.browser`): on small pages broken on purpose, then on the built book.

The book test runs after ``make book`` (``.ci/run`` sets ``SEPBOOK_REQUIRE_BUILD=1``, so a missing
build fails rather than skips, and ``SEPBOOK_REQUIRE_BROWSER=1``, so a missing Chromium fails too)."""
import io
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from sepbook.build import browser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chromium():
    try:
        browser.chromium()
    except browser.BrowserMissing as missing:
        if os.environ.get("SEPBOOK_REQUIRE_BROWSER") == "1":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def session(chromium):
    with browser.driver() as chrome:
        yield chrome


def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(8000)
        file.writeframes((np.sin(np.arange(8000) * 0.1) * 8000).astype("<i2").tobytes())
    return out.getvalue()


GOOD_BODY = """
<main><section id="top"><h1>A page</h1>
<p>Text with <a href="#part">a link</a> and <a href="other.html#there">another</a>.</p>
<section id="part"><h2>Part</h2>
<img src="figure.png" alt="A line rising from left to right.">
<audio controls preload="none" aria-label="a sine tone" src="tone.wav"></audio>
<p>Inline <code class="docutils literal">code</code> and a price of $5.</p>
</section></section></main>
"""


def _site(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "figure.png").write_bytes(_png())
    (folder / "tone.wav").write_bytes(_wav())
    page = "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>" \
           "<meta name='viewport' content='width=device-width, initial-scale=1'>" \
           "<link rel='icon' href='data:,'><title>t</title></head><body>{}</body></html>"
    (folder / "index.html").write_text(page.format(body))
    (folder / "other.html").write_text(page.format("<main><h1 id='there'>Other</h1></main>"))
    return folder


def _problems(session, folder: Path) -> list[browser.Problem]:
    with browser.serve(folder) as base:
        return browser.check_page(session, base, folder, "index.html")


def test_a_sound_page_has_no_problems(session, tmp_path):
    assert _problems(session, _site(tmp_path, GOOD_BODY)) == []


BROKEN = {
    "an image that does not load": (
        ('src="figure.png"', 'src="missing.png"'), "img[src=missing.png]", "did not load"),
    "a figure without alt text": (
        ('alt="A line rising from left to right."', 'alt=""'), "img[src=figure.png]", "no alt text"),
    "alt text that is a file name": (
        ('alt="A line rising from left to right."', 'alt="../_images/figure.png"'), "img[src=figure.png]",
        "alt text is a file name"),
    "an audio source that does not load": (
        ('src="tone.wav"', 'src="missing.wav"'), "audio[src=missing.wav]", "source did not load"),
    "a player without a label": (('aria-label="a sine tone" ', ""), "audio[src=tone.wav]", "no label"),
    "a formula left as TeX": (
        ("a price of $5.", "a formula $$x^2 + \\alpha$$."), "p in #part", "raw TeX"),
    "an inline formula left as TeX": (
        ("a price of $5.", "a ratio \\(\\frac{a}{b}\\)."), "p in #part", "raw TeX"),
    "a table wider than a phone": (
        ("<p>Inline", "<table style='width:900px'><tr><td>wide</td></tr></table><p>Inline"), "table in #part",
        "phone width"),
    "a link to an anchor that does not exist": (('href="#part"', 'href="#nowhere"'), "a in #top", "#nowhere"),
    "a link to a page that does not exist": (
        ('href="other.html#there"', 'href="gone.html"'), "a in #top", "not in the build"),
    "a request outside the book": (
        ('src="figure.png"', 'src="https://cdn.example.org/figure.png"'), "network", "cdn.example.org"),
    "a JavaScript error": (("</main>", "</main><script>undefined_function()</script>"), "console",
                           "undefined_function"),
    "a skipped heading level": (("<h2>Part</h2>", "<h4>Part</h4>"), "h4 in #part", "a level is skipped"),
    "two h1 headings": (("<h2>Part</h2>", "<h1>Part</h1>"), "h1", "2 visible h1"),
}


@pytest.mark.parametrize("fault", list(BROKEN))
def test_a_broken_page_fails_naming_the_page_and_the_element(session, tmp_path, fault):
    (good, bad), element, what = BROKEN[fault]
    assert good in GOOD_BODY
    problems = _problems(session, _site(tmp_path, GOOD_BODY.replace(good, bad)))
    assert problems, f"{fault}: no problem found"
    named = [p for p in problems if p.page == "index.html" and p.element.startswith(element) and what in p.what]
    assert named, f"{fault}: expected {element!r} with {what!r}, got {[str(p) for p in problems]}"


def test_a_notebook_page_offers_its_own_notebook(tmp_path):
    folder = tmp_path / "book"
    (folder / "_sources" / "chapters").mkdir(parents=True)
    (folder / "_sources" / "chapters" / "page.ipynb").write_text("{}")
    colab = "https://colab.research.google.com/github/o/r/blob/main/chapters/page.ipynb"
    own = [("a", colab, colab, ""), ("a", "http://x/_sources/chapters/page.ipynb", "", "btn-download-source-button")]
    assert browser.check_launch_links("chapters/page.html", own, folder, "https://colab.research.google.com") == []
    wrong = [("a", colab.replace("page", "other"), "", ""), own[1]]
    problems = browser.check_launch_links("chapters/page.html", wrong, folder, "https://colab.research.google.com")
    assert [p.element for p in problems] == ["Colab link"]
    assert browser.check_launch_links("chapters/page.html", [], folder, "https://colab.research.google.com")


def test_every_page_of_the_built_book_passes_in_a_browser(chromium, html):  # check_book starts its own browser
    screenshots = ROOT / "_build" / "browser-check"
    assert len(browser.pages(html)) >= 10
    problems = browser.check_book(html, screenshots, search=("spectrogram", "chapters/foundations/"),
                                  say=lambda *_: None)
    assert not problems, "\n".join(map(str, problems)) + f"\n(screenshots in {screenshots})"
