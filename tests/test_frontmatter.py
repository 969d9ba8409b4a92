"""Front and back matter keep up with the chapters (fast: reads files, builds nothing).

- every Chinese term a chapter introduces as ``English term (中文)`` is in the glossary;
- every chapter is in the table of contents and mapped to its slides in the intro;
- every citation key used anywhere in the book exists in book/references.bib.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

CJK = "\u4e00-\u9fff"
# "English words (中文)" or "English words（中文）": a key term with its slide term
TERM = re.compile(
    rf"([A-Za-z][A-Za-z0-9 \-'’/]{{0,60}}?)\s*[（(]([{CJK}A-Za-z0-9·\- ]*[{CJK}][{CJK}A-Za-z0-9·\- ]*)[)）]"
)
CITE = re.compile(r"\{(?:cite|cite:p|cite:t|cite:ps|cite:ts)\}`([^`]+)`")


def markdown_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def chinese_terms(texts: list[str]) -> dict[str, str]:
    """Chinese term -> English words before it, from body text (headings are titles, not terms)."""
    found: dict[str, str] = {}
    for text in texts:
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            for english, chinese in TERM.findall(line):
                found.setdefault(chinese.strip(), english.strip())
    return found


def glossary_terms(path: Path = BOOK / "glossary.md") -> set[str]:
    """The term lines of every ```{glossary} block (unindented lines before a definition)."""
    terms, inside = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```{glossary}"):
            inside = True
        elif inside and line.startswith("```"):
            inside = False
        elif inside and line.strip() and not line.startswith((" ", "\t", ":")):
            terms.add(line.strip())
    return terms


def test_term_pattern_reads_english_and_chinese():
    text = ["A graph has nodes (结点) and a Bayesian network (贝叶斯网络) too.", "## Summary (小结)"]
    assert chinese_terms(text) == {"结点": "A graph has nodes", "贝叶斯网络": "and a Bayesian network"}


def test_glossary_has_english_and_chinese_entries():
    terms = glossary_terms()
    assert {"Markov blanket", "马尔可夫毯", "d-separation", "D分离", "mode collapse", "模式丢失"} <= terms
    assert len(terms) > 150


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_glossary_covers_the_chapter_terms(chapter):
    terms = glossary_terms()
    missing = {zh: en for zh, en in chinese_terms(markdown_cells(chapter)).items() if zh not in terms}
    assert not missing, (
        f"{chapter.name} introduces terms that book/glossary.md lacks (Chinese: English context): {missing}"
    )


def _toc_files() -> set[str]:
    text = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {data["root"], *re.findall(r"file:\s*(\S+)", text)}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_in_toc_and_intro(chapter):
    doc = f"chapters/{chapter.stem}"
    assert doc in _toc_files(), f"{doc} is missing from _toc.yml"
    assert f"</{doc}>`" in (BOOK / "intro.md").read_text(encoding="utf-8"), (
        f"book/intro.md does not map {doc}"
    )


def test_front_matter_is_in_toc():
    files = _toc_files()
    for page in (
        "book/intro",
        "book/setup",
        "book/notation",
        "book/glossary",
        "book/references",
        "book/status",
    ):
        if (ROOT / f"{page}.md").exists():
            assert page in files, f"{page} exists but is not in _toc.yml"


def test_every_cited_key_is_in_the_bibliography():
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    sources = [(p.name, "\n".join(markdown_cells(p))) for p in CHAPTERS]
    sources += [(p.name, p.read_text(encoding="utf-8")) for p in BOOK.glob("*.md")]
    unknown = {}
    for name, text in sources:
        cited = {k.strip() for group in CITE.findall(text) for k in group.split(",")}
        if cited - keys:
            unknown[name] = sorted(cited - keys)
    assert not unknown, f"citation keys missing from book/references.bib: {unknown}"
