"""Chapters as slides (issue 17): slide metadata from a chapter's structure, offline decks."""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import io
import os
import re
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import nbformat
import pytest

from pgm_lab import cli, slides
from pgm_lab.notebooks import read_notebook

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"


def _md(text, **meta):
    return nbformat.v4.new_markdown_cell(text, metadata=meta)


def _code(text, tags=(), outputs=()):
    cell = nbformat.v4.new_code_cell(text, metadata={"tags": list(tags)} if tags else {})
    cell.outputs = list(outputs)
    return cell


# (cell, expected slide type): one of each rule
CASES = [
    (_md("# Title (标题)\n\nWhat the chapter shows."), "slide"),
    (_code("import torch\n\nimport pgm_lab as pl\n\npl.setup()"), "skip"),
    (_md("## First section (第一节)"), "slide"),
    (_md("Some prose with $p(x) = \\sum_y p(x, y)$."), "-"),
    (_code("x = 1 + 1\nprint(x)"), "fragment"),
    (_code("y = x * 2"), "-"),
    (_md("### A subsection"), "subslide"),
    (_code("torch.manual_seed(0)\nnp.random.seed(1)"), "skip"),
    (_code("widget = explorer()", tags=["remove-cell"]), "skip"),
    (_code("plt.plot(x)", tags=["remove-input"]), "fragment"),  # prose came before, across the skips
    (_md("\n\n## Exercises (练习)\n"), "slide"),
    (_md("**Exercise 1.1 (a title).** Write `f(x)`."), "subslide"),
    (_code("def f(x):\n    return x", tags=["exercise"]), "fragment"),
    (_code("# NBVAL_CHECK_OUTPUT\nprint(f(1))", tags=["answer-key"]), "-"),
    (_code("from pgm_lab.grading import hidden", tags=["hidden-check", "remove-cell"]), "skip"),
    (_md("#### A minor heading stays on its slide"), "-"),
]


def _notebook(cases=CASES):
    nb = nbformat.v4.new_notebook(cells=[c.copy() for c, _ in cases])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_slide_types_follow_the_chapter_structure():
    types = slides.slide_types(_notebook())
    wrong = [(i, c.source[:30], t, want) for i, ((c, want), t) in enumerate(zip(CASES, types)) if t != want]
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("source", "plumbing"),
    [
        ("import numpy as np\nfrom pgm_lab import data", True),
        ("%matplotlib inline\nimport pgm_lab as pl\npl.setup(seed=3)", True),
        ("torch.set_num_threads(1)\nrng = np.random.seed(0)", True),
        ("import numpy as np\nx = np.zeros(3)", False),
        ("rng = np.random.default_rng(0)", False),  # a generator the chapter then uses: content
        ("def f(:\n", False),
        ("", False),
    ],
)
def test_is_plumbing(source, plumbing):
    assert slides.is_plumbing(source) is plumbing


def test_apply_is_idempotent_and_check_names_notebooks(tmp_path, capsys):
    path = tmp_path / "ch.ipynb"
    nbformat.write(_notebook(), str(path))
    ids = [c.id for c in read_notebook(path).cells]
    assert cli.main(["slides-metadata", "--check", str(path)]) == 1
    assert f"{path}: no slide metadata" in capsys.readouterr().out
    assert slides.lacking_slide_metadata(path).startswith("16 of 16 cells have no slide type")
    counts = slides.apply_slide_metadata(path)
    assert counts == {"slide": 3, "skip": 4, "-": 4, "fragment": 3, "subslide": 2}
    nb = read_notebook(path)
    assert [c.id for c in nb.cells] == ids
    assert [c.metadata["slideshow"]["slide_type"] for c in nb.cells] == [t for _, t in CASES]
    assert nb.cells[8].metadata["tags"] == ["remove-cell"]  # other metadata kept
    before = path.read_bytes()
    assert cli.main(["slides-metadata", str(path)]) == 0
    assert path.read_bytes() == before  # a second run changes nothing
    assert cli.main(["slides-metadata", "--check", str(path)]) == 0
    # the chapter changes: a section becomes a subsection, and --check says the types are stale
    nb.cells[2].source = "### First section, demoted"
    nbformat.write(nb, str(path))
    assert slides.lacking_slide_metadata(path) == (
        "1 slide types are out of date (cell 2: 'slide', headings say 'subslide')"
    )
    assert cli.main(["slides-metadata", "--check", str(path)]) == 1
    assert str(path) in capsys.readouterr().out


def test_plain_roles():
    text = "See {cite}`bishop2006`, {doc}`chapter 4 </chapters/04_belief_propagation>` and {numref}`fig-x`."
    assert slides.plain_roles(text) == "See [bishop2006], chapter 4 and fig-x."


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _executed(tmp_path) -> Path:
    """A small 'executed' notebook with math, a figure, stderr noise and a hidden check."""
    nb = _notebook()
    nb.cells[4].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="2\n"),
        nbformat.v4.new_output("stream", name="stderr", text="progress bar noise\n"),
    ]
    nb.cells[9].outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png()})]
    nb.cells[14].outputs = [nbformat.v4.new_output("stream", name="stdout", text="SECRET-HIDDEN\n")]
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, str(path))
    slides.apply_slide_metadata(path)
    return path


def test_export_writes_an_offline_deck(tmp_path):
    path = _executed(tmp_path)
    out = tmp_path / "decks"
    (deck,) = slides.export_decks([path], out)
    assert deck.path == out / "01_demo.html" and deck.title == "Title (标题)"
    assert deck.slides == 5  # 3 slide + 2 subslide cells
    page = deck.path.read_text(encoding="utf-8")
    assert "SECRET-HIDDEN" not in page and "progress bar noise" not in page and "explorer()" not in page
    assert "plt.plot(x)" not in page  # remove-input: the figure without its code
    assert "data:image/png;base64," in page
    assert "p(x) = \\sum_y p(x, y)" in page  # math left for MathJax
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    remote = [r for r in refs if urlsplit(r).scheme not in ("", "data")]
    assert not remote, f"the deck refers to other hosts: {remote}"
    for ref in refs:
        if not urlsplit(ref).scheme and not ref.startswith("#"):
            assert (out / ref).is_file(), f"{ref} is not beside the deck"
    assert (out / "_static/mathjax/output/chtml/fonts/woff-v2").is_dir()
    assert "01_demo.html" in (out / "index.html").read_text()


def test_course_edition_deck_has_no_solutions(tmp_path):
    path = _executed(tmp_path)
    nb = read_notebook(path)
    nb.cells[12].source = "def f(x):\n    ### BEGIN SOLUTION\n    return x * 31337\n    ### END SOLUTION"
    nbformat.write(nb, str(path))
    reader = slides.export_decks([path], tmp_path / "reader")[0].path.read_text()
    course = slides.export_decks([path], tmp_path / "course", edition="course")[0].path.read_text()
    assert "31337" in reader and "31337" not in course and "NotImplementedError" in course
    with pytest.raises(ValueError, match="edition must be one of"):
        slides.export_decks([path], tmp_path, edition="teacher")


def test_export_errors_and_a_deck_without_metadata(tmp_path):
    with pytest.raises(ValueError, match=r"run `make book` first"):
        slides.export_decks([], tmp_path)
    with pytest.raises(ValueError, match=r"no such notebook.*run `make book` first"):
        slides.export_decks([tmp_path / "missing.ipynb"], tmp_path)
    bare = tmp_path / "bare.ipynb"
    nbformat.write(_notebook(), str(bare))
    with pytest.warns(UserWarning, match=r"bare.ipynb: 16 of 16 cells have no slide type"):
        (deck,) = slides.export_decks([bare], tmp_path / "out")
    assert deck.slides == 5  # derived from the headings all the same


def test_every_chapter_has_current_slide_metadata():
    """Run `pgm-lab slides-metadata chapters/*.ipynb` after editing a chapter's headings."""
    problems = {p.name: slides.lacking_slide_metadata(p) for p in sorted(CHAPTERS.glob("*.ipynb"))}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, "chapters without current slide metadata:\n" + "\n".join(
        f"  {k}: {v}" for k, v in problems.items()
    )


def test_book_pages_link_their_deck(tmp_path):
    spec = importlib.util.spec_from_file_location("pgm_book_for_test", ROOT / "book/_ext/pgm_book.py")
    book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(book)
    ctx = {"pathto": lambda uri, resource: f"../{uri}", "body": "<h1>Chapter</h1>"}
    book._slides_link(None, "chapters/03_markov_random_fields", "page.html", ctx, None)
    assert ctx["body"].startswith('<p class="pgm-slides-link"><a class="reference external" ')
    assert 'href="../_slides/03_markov_random_fields.html"' in ctx["body"]
    other = {"pathto": ctx["pathto"], "body": "<h1>Intro</h1>"}
    book._slides_link(None, "book/intro", "page.html", other, None)
    assert other["body"] == "<h1>Intro</h1>"
    app = SimpleNamespace(
        outdir=str(tmp_path),
        builder=SimpleNamespace(format="html"),
        env=SimpleNamespace(found_docs={"chapters/03_markov_random_fields", "book/intro"}),
    )
    (tmp_path / "_slides").mkdir()
    (tmp_path / "_slides/04_belief_propagation.html").write_text("a real deck")
    book._slide_placeholders(app, None)
    page = (tmp_path / "_slides/03_markov_random_fields.html").read_text()
    assert "make slides" in page and 'href="../chapters/03_markov_random_fields.html"' in page
    assert sorted(p.name for p in (tmp_path / "_slides").iterdir()) == [
        "03_markov_random_fields.html",
        "04_belief_propagation.html",
    ]


# -- the decks in Chromium ------------------------------------------------------------------------
CHROMIUM = Path(os.environ.get("PGM_LAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"]
CHROMIUM_ARGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
DECK_CHAPTERS = ("01_factorization", "03_markov_random_fields")

INSPECT_DECK = """
async () => {
  await new Promise(done => {
    const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
    const wait = () => ready() ? done() : setTimeout(wait, 50);
    wait();
  });
  await MathJax.startup.promise;
  return {
    total: Reveal.getTotalSlides(),
    ready: Reveal.isReady(),
    math: document.querySelectorAll("mjx-container").length,
    errors: Array.from(document.querySelectorAll("mjx-merror")).map(e => e.textContent.slice(0, 80)),
    rawDollars: Array.from(document.querySelectorAll(".jp-MarkdownOutput"))
      .map(e => e.innerText).filter(t => /\\$[^$\\s][^$]*[\\\\^_][^$]*\\$/.test(t)).map(t => t.slice(0, 80)),
  };
}
"""


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    """Copies of two chapters with slide metadata applied by the tool, executed in smoke,
    exported as decks and served on a localhost port."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} not found: `make browser` installs it")
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium with `make browser`")
    from pgm_lab.notebooks import execute, write_notebook

    tmp = tmp_path_factory.mktemp("decks")
    executed = []
    for stem in DECK_CHAPTERS:
        copy = tmp / f"{stem}.ipynb"
        shutil.copy(CHAPTERS / f"{stem}.ipynb", copy)
        slides.apply_slide_metadata(copy)
        assert slides.lacking_slide_metadata(copy) is None, f"{copy.name} has no slide metadata"
        done = execute(read_notebook(copy), profile="smoke", cwd=CHAPTERS)
        write_notebook(done, copy)
        executed.append(copy)
    out = tmp / "slides"
    built = slides.export_decks(executed, out)
    handler = functools.partial(_Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", built
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.browser
def test_decks_open_offline_with_their_slides_and_math(decks):
    from playwright.sync_api import sync_playwright

    base, built = decks
    problems = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            for deck in built:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                external, errors, failed = [], [], []

                def route(r, external=external):
                    parts = urlsplit(r.request.url)
                    if parts.scheme in ("data", "blob", "about") or parts.hostname in (
                        "127.0.0.1",
                        "localhost",
                    ):
                        r.continue_()
                    else:
                        external.append(r.request.url)
                        r.abort()

                page.route("**/*", route)
                page.on(
                    "console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None
                )
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.on(
                    "response", lambda r, failed=failed: failed.append(r.url) if r.status >= 400 else None
                )
                page.goto(f"{base}/{deck.path.name}", wait_until="load", timeout=90_000)
                info = page.evaluate(INSPECT_DECK)
                page.keyboard.press("ArrowRight")  # the deck responds to the keyboard
                moved = page.evaluate("Reveal.getIndices()")
                page.close()
                found = []
                if info["total"] != deck.slides:
                    found.append(f"{info['total']} slides, expected {deck.slides} (slide + subslide cells)")
                if not info["ready"]:
                    found.append("reveal.js did not start")
                if info["math"] == 0:
                    found.append("no formula rendered by MathJax")
                found += [f"MathJax error: {e}" for e in info["errors"]]
                found += [f"raw TeX: {t}" for t in info["rawDollars"]]
                found += [f"request off localhost: {u}" for u in external]
                found += [f"console error: {e}" for e in errors]
                found += [f"failed request: {u}" for u in failed]
                if moved == {"h": 0, "v": 0, "f": None} or moved == {"h": 0, "v": 0}:
                    found.append(f"the right arrow did not advance: {moved}")
                if found:
                    problems[deck.path.name] = found
        finally:
            browser.close()
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
