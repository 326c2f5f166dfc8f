"""The built book as a reader's browser shows it: ``python -m sepbook.build.browser`` (run by CI after the build).

It serves ``_build/html`` from a local server, loads every page in a headless Chromium (Debian's
``chromium`` and ``chromium-driver``, installed by ``make setup``, driven by Selenium) and checks
what a text search of the HTML cannot see:

- no JavaScript error in the console, and no request to anything but the book's own server;
- every image decoded, with alt text that says what it shows (not a file name);
- every audio player's source loads (its duration read), and the player is labelled and reachable
  by keyboard;
- every formula typeset by MathJax: no TeX delimiter left in the rendered text;
- no horizontal overflow of the page at a phone's width (390 px) and a desktop's (1280 px): a wide
  table or code block scrolls inside its own box;
- one visible ``h1`` per page and headings that never skip a level going down;
- every link inside the book resolves, to a page and to an anchor on it;
- a notebook page's Colab and download links point at that page's notebook;
- the search page finds a chapter for a word the chapter contains.

Each problem names the page, the element and what is wrong; a page with a problem is saved as a
screenshot in ``--screenshots``. The checks are plain functions of a page, so the tests run them on
small broken pages as well as on the book.

Chapter: preface
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urldefrag, urlparse

ROOT = Path(__file__).resolve().parents[2]
#: The widths the pages are checked at: a phone's and a desktop's, in CSS pixels.
WIDTHS = {"phone": 390, "desktop": 1280}
#: Seconds a page, its formulas and its players may take to load.
LOAD_SECONDS = 30.0


@dataclass(frozen=True)
class Problem:
    """One thing wrong on one page."""

    page: str
    element: str
    what: str

    def __str__(self) -> str:
        return f"{self.page}: {self.element}: {self.what}"


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed."""


# ----------------------------------------------------------------------------- serving and driving


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on a free local port; yields its base address (``http://127.0.0.1:PORT/``)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


#: Names a browser to use instead of the first of ``chromium``, ``chromium-browser`` and
#: ``google-chrome`` found (it must match ``chromedriver``'s version).
BROWSER_ENV = "SEPBOOK_CHROME"


def chromium() -> tuple[str, str]:
    """The paths of the Chromium browser and its driver; raises :class:`BrowserMissing` naming what to install."""
    names = [os.environ[BROWSER_ENV]] if os.environ.get(BROWSER_ENV) else ["chromium", "chromium-browser", "google-chrome"]
    browser = next((shutil.which(n) for n in names if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
        raise BrowserMissing(f"{missing} not found: install them ('make setup' does as root; on Debian "
                             "'apt-get install chromium chromium-driver')")
    return browser, driver


@contextlib.contextmanager
def driver() -> Iterator:
    """A headless Chromium under Selenium that records console messages and network requests."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", "--mute-audio", "--no-first-run", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--autoplay-policy=no-user-gesture-required",
                 f"--window-size={WIDTHS['desktop']},900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    session = webdriver.Chrome(options=options, service=Service(driver_path))
    session.set_page_load_timeout(LOAD_SECONDS)
    session.set_script_timeout(LOAD_SECONDS)
    try:
        yield session
    finally:
        session.quit()


def _width(session, width: int) -> None:
    """Make the page's viewport ``width`` CSS pixels wide, as a device of that width would."""
    session.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})


# ----------------------------------------------------------------------------- what a page runs

#: Waits for the page: loaded, MathJax done (where the page has formulas), every player's metadata
#: read or failed. Returns nothing; the checks below read the settled page.
_SETTLE = r"""
const done = arguments[arguments.length - 1];
(async () => {
  if (document.readyState !== 'complete') await new Promise(r => addEventListener('load', r, {once: true}));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const players = [...document.querySelectorAll('audio, video')];
  await Promise.all(players.map(p => new Promise(resolve => {
    if (p.readyState >= 1 || p.error) return resolve();
    p.addEventListener('loadedmetadata', resolve, {once: true});
    p.addEventListener('error', resolve, {once: true});
    (p.querySelector('source') || p).addEventListener('error', resolve, {once: true});
    p.preload = 'metadata';
    p.load();
  })));
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  done(null);
})().catch(e => done(String(e)));
"""

#: A short CSS-like name of an element, so that a problem says which one.
_NAME = r"""
function name(e) {
  let s = e.tagName.toLowerCase();
  if (e.id) s += '#' + e.id;
  else if (e.classList.length) s += '.' + [...e.classList].slice(0, 2).join('.');
  const src = e.getAttribute('src') || (e.querySelector && e.querySelector('source') || {}).src;
  if (src) s += `[src=${src.startsWith('data:') ? src.slice(0, 30) + '…' : src.split('/').pop()}]`;
  const section = e.closest('section[id]');
  return section ? `${s} in #${section.id}` : s;
}
function visible(e) {
  return !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length) && getComputedStyle(e).visibility !== 'hidden';
}
"""

_CONTENT = _NAME + r"""
const found = [];
const add = (e, what) => found.push([name(e), what]);
for (const img of document.images) {
  if (!visible(img)) continue;
  if (!img.complete || img.naturalWidth === 0) add(img, 'the image did not load');
  const alt = (img.getAttribute('alt') || '').trim();
  if (!alt) add(img, 'no alt text');
  else if (/\.(png|jpe?g|svg|gif|webp)$/i.test(alt) || alt.includes('_images/')) add(img, `alt text is a file name (${alt.slice(0, 60)})`);
}
for (const p of document.querySelectorAll('audio, video')) {
  if (p.error || !(p.duration > 0)) add(p, `the player's source did not load (error ${p.error ? p.error.code : 'none'}, duration ${p.duration})`);
  const label = p.getAttribute('aria-label') || p.getAttribute('title') ||
    (p.getAttribute('aria-labelledby') && (document.getElementById(p.getAttribute('aria-labelledby')) || {}).textContent);
  if (!label || !label.trim()) add(p, 'the player has no label (aria-label or title) saying what it plays');
  if (!p.controls || p.tabIndex < 0) add(p, 'the player cannot be reached by keyboard (no controls, or a negative tabindex)');
}
for (const w of document.querySelectorAll('button, input, select, textarea, [role=button]')) {
  if (visible(w) && w.tabIndex < 0 && !w.disabled && !w.closest('[aria-hidden=true]')) add(w, 'a control that the keyboard cannot reach');
}
// text as read, outside code: TeX left untypeset shows its delimiters
const walker = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT, {
  acceptNode(n) {
    const p = n.parentElement;
    if (!p || p.closest('pre, code, script, style, mjx-container, .MathJax, textarea, .highlight, .output')) return NodeFilter.FILTER_REJECT;
    return visible(p) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT;
  }});
const tex = /(\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\$[^$\s][^$]*\\[a-zA-Z]+[^$]*\$)/;
for (let n; (n = walker.nextNode());) {
  const m = n.textContent.match(tex);
  if (m) add(n.parentElement, `raw TeX left in the text: "${n.textContent.slice(Math.max(0, m.index - 30), m.index + 40).trim()}"`);
}
const h1 = [...document.querySelectorAll('h1')].filter(visible);
if (h1.length !== 1) found.push(['h1', `${h1.length} visible h1 headings, expected one`]);
let level = 0;
for (const h of [...(document.querySelector('main') || document.body).querySelectorAll('h1, h2, h3, h4, h5, h6')].filter(visible)) {
  const l = Number(h.tagName[1]);
  if (level && l > level + 1) add(h, `heading h${l} follows h${level}: a level is skipped`);
  level = l;
}
const links = [...document.querySelectorAll('a[href]')].map(a => [name(a), a.href, a.getAttribute('href'), a.className]);
return [found, links];
"""

#: Elements that stick out of the viewport on the right, outside any box that scrolls them.
_OVERFLOW = _NAME + r"""
const width = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth <= width + 1) return [];
const out = [];
for (const e of document.body.querySelectorAll('*')) {
  if (!visible(e)) continue;
  const r = e.getBoundingClientRect();
  if (r.right <= width + 1 || r.width === 0) continue;
  let held = false;
  for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
    const o = getComputedStyle(a).overflowX;
    if ((o === 'auto' || o === 'scroll' || o === 'hidden' || o === 'clip') && a.getBoundingClientRect().right <= width + 1) { held = true; break; }
  }
  if (held) continue;
  // a drawer or a skip link fixed to the viewport does not widen the page
  let fixed = false;
  for (let a = e; a && a !== document.body; a = a.parentElement) if (getComputedStyle(a).position === 'fixed') { fixed = true; break; }
  if (fixed) continue;
  // name the outermost element that sticks out, not each of its children
  if (out.length && out[out.length - 1][1].contains(e)) continue;
  out.push([name(e), e, Math.round(r.right)]);
}
return out.slice(0, 5).map(([n, , right]) => [n, right]);
"""


# ----------------------------------------------------------------------------- the checks


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def _requests(session, base: str) -> list[str]:
    """The addresses the page asked for outside the book's own server (data and blob URLs are the page's own)."""
    import json

    outside = []
    for entry in session.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        if not url.startswith((base, "data:", "blob:", "about:", "chrome-extension:")):
            outside.append(url)
    return outside


def _console_errors(session) -> list[str]:
    return [entry["message"] for entry in session.get_log("browser") if entry["level"] == "SEVERE"]


def check_links(page: str, links: list, folder: Path, base: str) -> list[Problem]:
    """Every link into the book resolves to a file and, with a ``#fragment``, to an element with that id."""
    problems = []
    for element, url, written, _ in links:
        if not url.startswith(base):
            continue
        address, fragment = urldefrag(url)
        relative = unquote(urlparse(address).path).lstrip("/")
        target = folder / relative
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            problems.append(Problem(page, element, f"links to {written}, which is not in the build"))
        elif fragment and target.suffix == ".html" and unquote(fragment) not in _anchors(target):
            problems.append(Problem(page, element, f"links to {written}, but {relative or 'index.html'} has no #{fragment}"))
    return problems


def check_launch_links(page: str, links: list, folder: Path, colab_prefix: str) -> list[Problem]:
    """A page built from a notebook offers that notebook: its Colab link opens it, its download link fetches it."""
    notebook = (folder / "_sources" / page).with_suffix(".ipynb")
    if not notebook.is_file():
        return []
    own = Path(page).with_suffix(".ipynb").as_posix()
    problems = []
    colab = [url for _, url, _, _ in links if url.startswith(colab_prefix)]
    if not colab:
        problems.append(Problem(page, "launch buttons", "no Colab link"))
    problems += [Problem(page, "Colab link", f"{url} does not open {own}") for url in colab if not url.endswith("/" + own)]
    downloads = [url for _, url, _, classes in links if "download-source" in classes]
    if not downloads:
        problems.append(Problem(page, "download button", "no link to download the page's notebook"))
    problems += [Problem(page, "download link", f"{url} does not fetch _sources/{own}")
                 for url in downloads if not url.endswith("_sources/" + own)]
    return problems


def check_page(session, base: str, folder: Path, page: str, colab_prefix: str = "https://colab.research.google.com"
               ) -> list[Problem]:
    """Every check of one page (``page`` relative to ``folder``), at both :data:`WIDTHS`."""
    session.get_log("browser"), session.get_log("performance")  # empty the logs of the page before
    _width(session, WIDTHS["desktop"])
    session.get(base + page)
    failed = session.execute_async_script(_SETTLE)
    problems = [Problem(page, "page", f"did not settle: {failed}")] if failed else []
    found, links = session.execute_script(_CONTENT)
    problems += [Problem(page, element, what) for element, what in found]
    problems += [Problem(page, "console", message) for message in _console_errors(session)]
    problems += check_links(page, links, folder, base)
    problems += check_launch_links(page, links, folder, colab_prefix)
    for device, width in WIDTHS.items():
        _width(session, width)
        time.sleep(0.2)  # one layout at the new width
        for element, right in session.execute_script(_OVERFLOW):
            problems.append(Problem(page, element, f"runs out of the page at the {device} width "
                                                   f"({width} px): its right edge is at {right} px"))
    problems += [Problem(page, "network", f"requests {url}, outside the book") for url in _requests(session, base)]
    return problems


def check_search(session, base: str, word: str, chapter: str) -> list[Problem]:
    """The search page, asked for ``word``, lists the page ``chapter`` among its results."""
    session.get(f"{base}search.html?q={word}")
    deadline = time.monotonic() + LOAD_SECONDS
    found: list[str] = []
    while time.monotonic() < deadline:
        found = session.execute_script(
            "return [...document.querySelectorAll('#search-results a')].map(a => a.getAttribute('href'))")
        if any(chapter in (href or "") for href in found):
            return []
        time.sleep(0.25)
    return [Problem("search.html", f"results for {word!r}",
                    f"{chapter} is not among them ({len(found)} results: {found[:5]})")]


def pages(folder: Path) -> list[str]:
    """The book's pages: every HTML file except Sphinx's generated index and search pages."""
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.html")
                  if p.name not in skip and not p.relative_to(folder).parts[0].startswith("_"))


def check_book(folder: Path, screenshots: Path | None = None, search: tuple[str, str] | None = None,
               colab_prefix: str = "https://colab.research.google.com", say=print) -> list[Problem]:
    """Every check of every page in ``folder``; a page with problems is saved to ``screenshots``."""
    if not (folder / "index.html").is_file():
        raise FileNotFoundError(f"{folder}: no index.html; build the book first (make book)")
    problems = []
    with serve(folder) as base, driver() as session:
        for page in pages(folder):
            started = time.perf_counter()
            found = check_page(session, base, folder, page, colab_prefix)
            say(f"  {page}: {len(found)} problem(s) in {time.perf_counter() - started:.1f} s")
            if found and screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                _width(session, WIDTHS["desktop"])
                session.save_screenshot(str(screenshots / (page.replace("/", "__") + ".png")))
            problems += found
        if search is not None:
            problems += check_search(session, base, *search)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sepbook.build.browser", description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=ROOT / "_build" / "html", help="the built book")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "browser-check",
                        help="where a failing page's screenshot goes")
    parser.add_argument("--search", nargs=2, default=("spectrogram", "chapters/foundations/"),
                        metavar=("WORD", "PAGE"), help="a word and the page (or part of its path) its search must find")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        problems = check_book(args.folder, args.screenshots, tuple(args.search))
    except (BrowserMissing, FileNotFoundError) as error:
        print(f"browser check: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    verdict = f"{len(problems)} problem(s); screenshots in {args.screenshots}" if problems else "no problems"
    print(f"browser check of {args.folder}: {len(pages(args.folder))} pages, {verdict}, "
          f"{time.perf_counter() - started:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
