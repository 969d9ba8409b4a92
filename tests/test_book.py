"""The book builds in the smoke profile with warnings as errors and is self-contained.

The build itself is the ``built_book`` fixture (tests/conftest.py): ``jupyter-book build
. --path-output _build/smoke -W -n --keep-going --all`` with ``PGM_LAB_PROFILE=smoke``.
These checks read the HTML files; tests/test_browser.py opens them in Chromium.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def toc_files(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Every document named in the table of contents (root first), without suffix."""
    data = yaml.safe_load(toc.read_text())
    found = [data["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in data.items() if k != "root"})
    return [re.sub(r"\.(md|ipynb)$", "", f) for f in found]


def chapter_docs() -> list[str]:
    return [f for f in toc_files() if f.startswith("chapters/")]


class _Resources(HTMLParser):
    """Collects the URLs a page loads by itself (not the links a reader may follow)."""

    LOADS: ClassVar[dict[str, str]] = {
        "script": "src",
        "img": "src",
        "iframe": "src",
        "source": "src",
        "video": "src",
        "audio": "src",
    }

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in self.LOADS and a.get(self.LOADS[tag]):
            self.loaded.append(a[self.LOADS[tag]])
        if tag == "link" and a.get("href") and a.get("rel") not in ("canonical", "author", "license"):
            self.loaded.append(a["href"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


def parse(page: Path) -> _Resources:
    parser = _Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_book_builds_without_warnings(built_book):
    assert built_book.returncode == 0, f"book build failed (see _build/book-smoke.log):\n{built_book.tail()}"
    assert (built_book.html / "index.html").exists()


def test_every_toc_entry_has_a_page(built_book):
    missing = [doc for doc in toc_files() if not (built_book.html / f"{doc}.html").exists()]
    assert not missing, f"pages missing from the build: {missing}"


def test_pages_load_nothing_from_other_hosts(built_book):
    """Scripts, styles, fonts, images and frames all come from the build itself."""
    offenders = {}
    for page in sorted(built_book.html.rglob("*.html")):
        remote = [u for u in parse(page).loaded if re.match(r"^(https?:)?//", u)]
        css = page.read_text(encoding="utf-8")
        remote += re.findall(r"@import\s+url\(['\"]?(https?://[^'\")]+)", css)
        if remote:
            offenders[str(page.relative_to(built_book.html))] = sorted(set(remote))
    assert not offenders, f"pages load resources from other hosts: {offenders}"


def test_mathjax_is_served_from_the_build(built_book):
    assert (built_book.html / "_static" / "mathjax" / "tex-chtml.js").exists()
    fonts = list((built_book.html / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert len(fonts) > 10, "MathJax's CHTML fonts are missing"
    for doc in chapter_docs() or ["book/notation"]:
        scripts = parse(built_book.html / f"{doc}.html").loaded
        assert any(s.split("?")[0].endswith("_static/mathjax/tex-chtml.js") for s in scripts), (
            f"{doc}: no local MathJax"
        )


@pytest.mark.parametrize("doc", chapter_docs())
def test_chapter_has_notebook_download_and_launch_links(built_book, doc):
    links = parse(built_book.html / f"{doc}.html").links
    ipynb = [h for h in links if h.endswith(f"_sources/{doc}.ipynb")]
    assert ipynb, f"{doc}: no '.ipynb' download button"
    assert (built_book.html / "_sources" / f"{doc}.ipynb").exists()
    assert any("mybinder.org" in h or "colab.research.google.com" in h for h in links), (
        f"{doc}: no launch button"
    )


@pytest.mark.parametrize("doc", chapter_docs())
def test_solutions_are_folded_and_hidden_checks_absent(built_book, doc):
    """Reader edition: every exercise behind a "Show the solution" toggle, no hidden check in
    the page or in the downloaded notebook."""
    import nbformat

    page = (built_book.html / f"{doc}.html").read_text(encoding="utf-8")
    source = nbformat.read(ROOT / f"{doc}.ipynb", 4)
    n_exercises = sum("exercise" in c.metadata.get("tags", []) for c in source.cells)
    assert page.count("Show the solution") == n_exercises
    assert "hidden.check(" not in page and "hidden.rng(" not in page
    download = nbformat.read(built_book.html / "_sources" / f"{doc}.ipynb", 4)
    assert not any("hidden-check" in c.metadata.get("tags", []) for c in download.cells)


def test_course_edition_serves_the_student_copy(tmp_path):
    """Course edition: the download is the released copy; exercise code shows no solution."""
    import importlib.util
    import shutil

    import nbformat

    spec = importlib.util.spec_from_file_location("pgm_book", ROOT / "book" / "_ext" / "pgm_book.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    key = ROOT / "tests" / "fixtures" / "grading" / "01_fixture.ipynb"
    for edition in ("reader", "course"):
        path = tmp_path / f"{edition}.ipynb"
        shutil.copyfile(key, path)
        ext.download_copy(path, edition)
        text = path.read_text(encoding="utf-8")
        assert "hidden-check" not in text and "hidden.check" not in text
        assert ("BEGIN SOLUTION" in text) == (edition == "reader")
        assert ("NotImplementedError" in text) == (edition == "course")
    assert nbformat.read(tmp_path / "course.ipynb", 4).metadata["pgm_lab"]["released"] is True


def test_status_page_reports_every_chapter(built_book):
    text = (built_book.html / "book" / "status.html").read_text(encoding="utf-8")
    assert "profile" in text and "smoke" in text, "status page does not name the profile"
    assert "torch" in text and "jupyter-book" in text
    # plt.show() only puts figures into the book under the inline backend
    assert "backend_inline" in text, "kernels did not use matplotlib's inline backend (MPLBACKEND set?)"
    table = text[text.index("Run Time (s)") :]
    for doc in chapter_docs():
        assert doc in table, f"execution table lacks {doc}"
    assert "❌" not in table, "a page failed to execute"


def test_search_index_covers_the_chapters(built_book):
    index = (built_book.html / "searchindex.js").read_text(encoding="utf-8")
    for doc in chapter_docs():
        assert f'"{doc}"' in index, f"{doc} is not in the search index"


class _Ids(HTMLParser):
    """Every element id of a page, and the links and rows of the slide map."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.rows: list[str] = []
        self.links: list[str] = []
        self.missing = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if a.get("id"):
            self.ids.add(a["id"])
        if "slide-map-row" in classes:
            self.rows.append(a.get("id", ""))
        if "slide-map-missing" in classes:
            self.missing += 1
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


def _ids(page: Path) -> _Ids:
    parser = _Ids()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_slide_map_has_one_row_per_formula_and_its_links_land_on_cells(built_book):
    """book/slide_map.html: one row per entry of book/slide_formulas.yml, in order, none
    marked missing, and every "#cell-..." link resolves to an element id of its page."""
    page = built_book.html / "book" / "slide_map.html"
    entries = yaml.safe_load((ROOT / "book" / "slide_formulas.yml").read_text(encoding="utf-8"))
    found = _ids(page)
    assert found.rows == [f"formula-{e['id']}" for e in entries]
    assert found.missing == 0, "the map marks formulas without a cell"
    cell_links = [h for h in found.links if "#cell-" in h]
    assert cell_links, "the slide map links to no cell"
    broken, targets = [], {}
    for href in sorted(set(cell_links)):
        path, anchor = href.split("#", 1)
        target = (page.parent / path).resolve()
        if target not in targets:
            targets[target] = _ids(target).ids if target.exists() else set()
        if anchor not in targets[target]:
            broken.append(href)
    assert not broken, f"slide map links without a target: {broken}"
    same_as = [h for h in found.links if h.startswith("#formula-")]
    assert all(h[1:] in found.ids for h in same_as)
