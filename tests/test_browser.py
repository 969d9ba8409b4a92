"""Every page of the built book, opened in headless Chromium as a reader would.

Uses the smoke-profile book of the ``built_book`` fixture (tests/conftest.py), serves
``_build/smoke/_build/html`` on a localhost port, and drives Debian's ``/usr/bin/chromium``
with Playwright (no browser is ever downloaded). Each page is checked for: console errors,
formulas typeset by MathJax (no MathJax error, no raw TeX left in the text), images
loaded, internal links and anchors that resolve, no request to any host but localhost,
and, on chapter pages, at least one executed figure or animation. A full-page screenshot
of each page is written to ``_build/screenshots/``.

Without ``/usr/bin/chromium`` (``make browser`` installs it) the tests are skipped, except
in CI (``$CI`` set), where they fail.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("PGM_LAB_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
PAGE_TIMEOUT_MS = 90_000

# Runs in the page after it loaded: waits for MathJax's first typeset and for every image.
SETTLE_JS = """
async () => {
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    await window.MathJax.startup.promise;
  }
  const imgs = Array.from(document.images);
  for (const img of imgs) { img.loading = "eager"; }
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done);
    setTimeout(done, 20000);
  })));
}
"""

# Collects what the checks need from the rendered page.
INSPECT_JS = r"""
() => {
  const skip = "pre, code, script, style, textarea, mjx-container, .math, .highlight";
  const rawTex = [];
  const texLike = /\$\$|\\\(|\\\[|\$[^$\s][^$]*[\\^_][^$]*\$|\\(frac|sum|prod|mathbf|mathrm|mathcal|alpha|beta|theta|epsilon|sigma|mid|perp|left|right|begin)\b/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    const t = n.textContent;
    if (texLike.test(t)) rawTex.push(t.trim().slice(0, 120));
  }
  const math = Array.from(document.querySelectorAll("span.math, div.math"));
  const images = Array.from(document.images).map(i => ({
    src: (i.currentSrc || i.src || "").slice(0, 160),
    ok: i.complete && i.naturalWidth > 0,
    output: !!i.closest(".cell_output, .output, div.animation, figure"),
  }));
  return {
    title: document.title,
    math: math.length,
    mathUnrendered: math.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.slice(0, 120)),
    mathErrors: Array.from(document.querySelectorAll("mjx-merror, [data-mjx-error]"))
                  .map(e => e.getAttribute("data-mjx-error") || e.textContent.slice(0, 120)),
    rawTex: rawTex,
    images: images,
    animations: document.querySelectorAll("div.animation").length,
    figures: Array.from(document.querySelectorAll("figure[id]")).map(f => ({
      id: f.id, ok: Array.from(f.querySelectorAll("img")).some(i => i.complete && i.naturalWidth > 0),
    })),
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
    ids: Array.from(document.querySelectorAll("[id]")).map(e => e.id)
           .concat(Array.from(document.querySelectorAll("a[name]")).map(a => a.name)),
  };
}
"""


def _require_chromium() -> None:
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Debian's chromium with `make browser`"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (pip install -e '.[dev]')"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {reason}")
        pytest.skip(reason)


@dataclass
class PageReport:
    """What one page showed in Chromium."""

    doc: str
    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    screenshot: Path | None = None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def site(built_book):
    """Base URL of the built book served on a free localhost port."""
    _require_chromium()
    if not (built_book.html / "index.html").exists():
        pytest.fail(f"the book was not built (see _build/book-smoke.log):\n{built_book.tail()}")
    handler = functools.partial(_QuietHandler, directory=str(built_book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", built_book.html
    finally:
        server.shutdown()
        server.server_close()


def _pages(html: Path) -> list[str]:
    """Every HTML page of the book, relative to the HTML root (``book/intro.html``, ...)."""
    return sorted(
        str(p.relative_to(html))
        for p in html.rglob("*.html")
        if not p.relative_to(html).parts[0].startswith("_")
    )


def _is_redirect(page: Path) -> bool:
    return bool(re.search(r"<meta[^>]+http-equiv=\"?refresh", page.read_text(encoding="utf-8"), re.I))


@pytest.fixture(scope="module")
def browser_context():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()
            browser.close()


def _visit(context, base: str, rel: str, shot: Path | None) -> PageReport:
    report = PageReport(doc=rel)

    def route(route):
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            report.external_requests.append(url)
            route.abort()

    page = context.new_page()
    page.route("**/*", route)
    page.on("console", lambda m: report.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: report.console_errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: report.failed_requests.append(f"{r.url} ({r.failure})"))
    page.on(
        "response",
        lambda r: report.failed_requests.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None,
    )
    try:
        page.goto(f"{base}/{rel}", wait_until="load")
        page.evaluate(SETTLE_JS)
        report.info = page.evaluate(INSPECT_JS)
        if shot is not None:
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            report.screenshot = shot
    finally:
        page.close()
    # requests we aborted show up as failures and console errors too; report them once
    ext = tuple(report.external_requests)
    report.failed_requests = (
        [f for f in report.failed_requests if not f.startswith(ext)] if ext else report.failed_requests
    )
    return report


@pytest.fixture(scope="module")
def visits(site, browser_context) -> dict[str, PageReport]:
    """Open every page once; the tests below inspect the reports."""
    base, html = site
    for old in SCREENSHOTS.glob("*.png"):  # screenshots of pages that no longer exist would mislead
        old.unlink()
    reports = {}
    for rel in _pages(html):
        if _is_redirect(html / rel):
            continue
        shot = SCREENSHOTS / (rel.removesuffix(".html").replace("/", "__") + ".png")
        reports[rel] = _visit(browser_context, base, rel, shot)
    assert reports, "no pages found in the built book"
    return reports


def _fail_if(problems: dict, what: str) -> None:
    problems = {k: v for k, v in problems.items() if v}
    lines = [f"  {page}: {items}" for page, items in sorted(problems.items())]
    assert not problems, f"{what} on {len(problems)} page(s):\n" + "\n".join(lines)


def test_no_console_errors(visits):
    _fail_if({d: r.console_errors for d, r in visits.items()}, "console errors")


def test_no_request_leaves_localhost(visits):
    _fail_if({d: r.external_requests for d, r in visits.items()}, "requests to other hosts")


def test_every_request_succeeds(visits):
    _fail_if({d: r.failed_requests for d, r in visits.items()}, "failed requests")


def test_every_formula_is_rendered(visits):
    problems = {}
    for doc, r in visits.items():
        i = r.info
        problems[doc] = [f"unrendered: {m}" for m in i["mathUnrendered"]]
        problems[doc] += [f"MathJax error: {m}" for m in i["mathErrors"]]
        problems[doc] += [f"raw TeX: {m}" for m in i["rawTex"]]
    _fail_if(problems, "formulas not rendered")
    assert sum(r.info["math"] for r in visits.values()) > 0, "no formula anywhere: is MathJax wired up?"


def test_every_image_loads(visits):
    _fail_if(
        {d: [i["src"] for i in r.info["images"] if not i["ok"]] for d, r in visits.items()}, "broken images"
    )


def _broken_links(reports: dict[str, PageReport], html: Path) -> dict[str, list[str]]:
    """Links to this site whose file is missing, or whose #anchor is not on the target page."""
    ids = {doc: set(r.info["ids"]) for doc, r in reports.items()}
    problems = defaultdict(list)
    for doc, r in reports.items():
        for href in r.info["links"]:
            parts = urlsplit(href)
            if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_HOSTS:
                continue
            path = unquote(parts.path).lstrip("/")
            if not path or path.endswith("/"):
                path += "index.html"
            if not (html / path).exists():
                problems[doc].append(f"{path} does not exist")
            elif parts.fragment and path in ids and unquote(parts.fragment) not in ids[path]:
                problems[doc].append(f"{path}#{parts.fragment}: no such anchor")
    return problems


def test_internal_links_resolve(visits, site):
    _, html = site
    _fail_if(_broken_links(visits, html), "broken internal links")


def _declared_figures(notebook: Path) -> list[str]:
    """Names of the numbered figures a notebook declares (``mystnb.figure.name`` cell metadata)."""
    if not notebook.exists():
        return []
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    names = [c.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name") for c in cells]
    return [n for n in names if n]


def test_chapters_show_their_executed_figures(visits, site):
    """Every chapter shows a figure or animation, and every numbered figure has its image."""
    _, html = site
    problems = defaultdict(list)
    for doc, r in visits.items():
        if not doc.startswith("chapters/"):
            continue
        figures = [i for i in r.info["images"] if i["output"] and i["ok"]]
        if not figures and not r.info["animations"]:
            problems[doc].append("no executed figure or animation")
        shown = {f["id"] for f in r.info["figures"] if f["ok"]}
        for name in _declared_figures(html / "_sources" / doc.replace(".html", ".ipynb")):
            if name not in shown:
                problems[doc].append(f"figure {name!r} has no image")
    _fail_if(problems, "chapters without their figures")


def test_screenshots_are_saved(visits):
    missing = [d for d, r in visits.items() if r.screenshot is None or r.screenshot.stat().st_size < 1000]
    assert not missing, f"no screenshot for {missing}"


def test_search_finds_pages(site, browser_context, visits):
    """The offline search page answers a query with links to pages of the book."""
    base, html = site
    chapters = sorted(d for d in visits if d.startswith("chapters/"))
    queries = {"probabilistic": None}
    if chapters:
        words = re.findall(r"[A-Za-z]{6,}", visits[chapters[0]].info["title"])
        if words:
            queries[max(words, key=len).lower()] = chapters[0]
    page = browser_context.new_page()
    try:
        for query, expected in queries.items():
            page.goto(f"{base}/search.html?q={query}", wait_until="load")
            page.wait_for_selector("#search-results ul.search li", timeout=PAGE_TIMEOUT_MS)
            hits = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
            assert hits, f"search for {query!r} found nothing"
            paths = {unquote(urlsplit(h).path).lstrip("/") for h in hits}
            assert all((html / p).exists() for p in paths), (
                f"search for {query!r} links to missing pages: {paths}"
            )
            if expected:
                assert expected in paths, f"search for {query!r} does not find {expected}: {sorted(paths)}"
    finally:
        page.close()


BROKEN_PAGE = r"""<!DOCTYPE html><html><head><title>broken</title>
<script src="https://cdn.example.invalid/lib.js"></script></head><body>
<p>Raw TeX left over: $\alpha + \beta$.</p>
<span class="math notranslate nohighlight">\(x^2\)</span>
<img src="missing.png"> <a href="nowhere.html">a dead link</a> <a href="#no-such-id">a dead anchor</a>
<script>console.error("deliberate");</script></body></html>"""


def test_checks_catch_a_broken_page(browser_context, tmp_path):
    """The checks can fail: a page with every kind of fault is reported for each of them."""
    (tmp_path / "broken.html").write_text(BROKEN_PAGE, encoding="utf-8")
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        report = _visit(browser_context, f"http://127.0.0.1:{server.server_address[1]}", "broken.html", None)
    finally:
        server.shutdown()
        server.server_close()
    assert report.external_requests == ["https://cdn.example.invalid/lib.js"]
    assert any("deliberate" in e for e in report.console_errors)
    assert any("missing.png" in f for f in report.failed_requests)
    assert report.info["rawTex"] and report.info["mathUnrendered"]
    assert [i["ok"] for i in report.info["images"]] == [False]
    links = _broken_links({"broken.html": report}, tmp_path)["broken.html"]
    assert "nowhere.html does not exist" in links and "broken.html#no-such-id: no such anchor" in links
