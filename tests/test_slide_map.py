"""The slide formula map: book/slide_formulas.yml, the notebooks' cell metadata, and the
pure functions of the Sphinx extension that renders book/slide_map.md (book/_ext/slide_map.py).

Fast: no book build. The data checks read the yml and the notebooks directly (yaml, nbformat),
independently of the extension; the unit tests plant errors to show the extension sees them.
The built page itself is checked in tests/test_book.py.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
YML = ROOT / "book" / "slide_formulas.yml"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def _load_extension():
    spec = importlib.util.spec_from_file_location("slide_map", ROOT / "book" / "_ext" / "slide_map.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


sm = _load_extension()


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    data = yaml.safe_load(YML.read_text(encoding="utf-8"))
    assert isinstance(data, list) and data, "slide_formulas.yml must be a non-empty list"
    return data


@pytest.fixture(scope="module")
def tagged() -> list[tuple[str, nbformat.NotebookNode, str, str]]:
    """(chapter "NN", cell, role, formula id) for every id named in a notebook's metadata."""
    found = []
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            meta = cell.metadata.get("slide_formulas")
            if meta is None:
                continue
            assert isinstance(meta, dict) and set(meta) <= {"computes", "checks"}, (
                f"{path.name} cell {cell.get('id')}: bad slide_formulas metadata {meta!r}"
            )
            for role, ids in meta.items():
                assert isinstance(ids, list), f"{path.name} cell {cell.get('id')}: {role} must be a list"
                found += [(path.name[:2], cell, role, fid) for fid in ids]
    return found


def _chapter(value) -> str:
    return f"{int(str(value)):02d}"


# ------------------------------------------------------------------------------ the data


def test_yml_parses_with_the_required_keys(entries):
    for e in entries:
        assert {"id", "line", "chapter", "section"} <= set(e), e
        if e.get("kind") == "algorithm":
            assert e.get("title"), f"{e['id']}: an algorithm needs a title"
        else:
            assert e.get("latex"), f"{e['id']}: a formula needs latex"
    assert len(sm.load_formulas(YML)) == len(entries)  # the extension accepts it too


def test_ids_are_unique(entries):
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i) for i in ids), "ids: lowercase-kebab"


def test_lines_strictly_increase(entries):
    lines = [e["line"] for e in entries]
    bad = [(a["id"], b["id"]) for a, b in itertools.pairwise(entries) if b["line"] <= a["line"]]
    assert all(isinstance(n, int) for n in lines) and not bad, f"out of slide order: {bad}"


def test_chapters_exist(entries):
    have = {p.name[:2] for p in CHAPTERS}
    unknown = sorted({str(e["chapter"]) for e in entries if _chapter(e["chapter"]) not in have})
    assert not unknown, f"chapter values without a notebook: {unknown}"
    order = [_chapter(e["chapter"]) for e in entries]
    assert order == sorted(order), "chapters must follow the slides' order"


def test_same_as_targets_exist_and_precede(entries):
    seen: dict[str, dict] = {}
    for e in entries:
        if "same_as" in e:
            target = seen.get(e["same_as"])
            assert target is not None, f"{e['id']}: same_as {e['same_as']!r} is not an earlier entry"
            assert "same_as" not in target, f"{e['id']}: repeat of a repeat ({e['same_as']})"
        seen[e["id"]] = e


def test_every_formula_has_a_computing_and_a_checking_cell(entries, tagged):
    """Each non-repeat entry (not marked uncheckable) has >= 1 "computes" and >= 1 "checks"
    cell in its own chapter's notebook. All missing ids are listed in one message."""
    have = {(ch, role, fid) for ch, _, role, fid in tagged}
    missing = []
    for e in entries:
        if "same_as" in e or "uncheckable" in e:
            continue
        ch = _chapter(e["chapter"])
        lack = [role for role in ("computes", "checks") if (ch, role, e["id"]) not in have]
        if lack:
            missing.append(f"{ch} {e['id']} (no {' / '.join(lack)})")
    assert not missing, f"{len(missing)} formulas lack cells:\n" + "\n".join(missing)


def test_every_tagged_id_exists_and_is_not_a_repeat(entries, tagged):
    known = {e["id"]: e for e in entries}
    unknown = sorted({f"{ch} cell {c.get('id')}: {fid}" for ch, c, _, fid in tagged if fid not in known})
    assert not unknown, f"cells name ids not in slide_formulas.yml: {unknown}"
    repeats = sorted(
        {f"{ch} cell {c.get('id')}: {fid}" for ch, c, _, fid in tagged if "same_as" in known[fid]}
    )
    assert not repeats, f"cells tag repeats (tag the entry they repeat): {repeats}"


def test_checking_cells_are_code_cells_with_an_assert(tagged):
    bad = []
    for ch, cell, role, fid in tagged:
        where = f"{ch} cell {cell.get('id')} ({fid})"
        if cell.cell_type != "code":
            bad.append(f"{where}: a {cell.cell_type} cell carries slide_formulas")
        elif role == "checks" and not re.search(r"\bassert(\b|_\w+\()", re.sub(r"#.*", "", cell.source)):
            bad.append(f"{where}: checks without an assert")
        if {"remove-cell", "hidden-check"} & set(cell.metadata.get("tags", [])):
            bad.append(f"{where}: removed from the book, the map could not link to it")
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------- the extension's functions

YML_TEXT = """
- {id: alpha, line: 10, chapter: '01', section: S1, latex: 'a = b'}
- {id: beta, line: 20, chapter: '01', section: S1, kind: algorithm, title: 'Algorithm B'}
- {id: gamma, line: 30, chapter: '02', section: S2, latex: 'c', uncheckable: a statement}
- {id: alpha-again, line: 40, chapter: '02', section: S2, latex: 'a = b', same_as: alpha}
"""


def _nb(*cells) -> dict:
    """A notebook dict (nbformat 4.5 JSON) from (cell_type, id, source, slide_formulas, tags)."""
    out = []
    for kind, cid, source, meta, tags in cells:
        md = {"slide_formulas": meta} if meta is not None else {}
        if tags:
            md["tags"] = tags
        out.append({"cell_type": kind, "id": cid, "metadata": md, "source": source})
    return {"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


GOOD_NB = _nb(
    ("markdown", "m1", "# Title\n\n## First part\n", None, None),
    ("code", "c1", "a = 1", {"computes": ["alpha", "beta"]}, None),
    ("markdown", "m2", "```\n# not a heading\n```\n### Checks (检查)", None, None),
    ("code", "c2", "b = 1\nassert a == b", {"checks": ["alpha"], "computes": []}, None),
    ("code", "c3", "np.testing.assert_allclose(a, 1)  # assert", {"checks": ["beta"]}, None),
)


def test_load_formulas_reads_entries_and_rejects_bad_ones():
    formulas = sm.load_formulas(YML_TEXT)
    assert [f.id for f in formulas] == ["alpha", "beta", "gamma", "alpha-again"]
    assert formulas[1].kind == "algorithm" and formulas[1].title == "Algorithm B"
    assert formulas[3].same_as == "alpha" and formulas[2].uncheckable == "a statement"
    assert formulas[0].chapter == "01"
    bad = {
        "repeats": YML_TEXT + "- {id: alpha, line: 50, chapter: '02', section: S, latex: x}",
        "does not follow": YML_TEXT + "- {id: z, line: 40, chapter: '02', section: S, latex: x}",
        "not an earlier entry": "- {id: z, line: 1, chapter: '01', section: S, latex: x, same_as: q}",
        "missing 'section'": "- {id: z, line: 1, chapter: '01', latex: x}",
        "needs 'latex'": "- {id: z, line: 1, chapter: '01', section: S}",
        "chapter must be": "- {id: z, line: 1, chapter: one, section: S, latex: x}",
        "unknown keys": "- {id: z, line: 1, chapter: '01', section: S, latex: x, colour: red}",
    }
    for message, text in bad.items():
        with pytest.raises(ValueError, match=message):
            sm.load_formulas(text)


def test_has_assert_ignores_comments_and_sees_testing_calls():
    assert sm.has_assert("x = 1\nassert x == 1")
    assert sm.has_assert("np.testing.assert_allclose(a, b)")
    assert sm.has_assert("torch.testing.assert_close(a, b)")
    assert not sm.has_assert("x = 1  # assert x == 1\nprint('assert')")
    assert sm.has_assert("%%time\nassert True")


def test_notebook_cells_names_cells_and_headings():
    refs = sm.notebook_cells(GOOD_NB, "01", "chapters/01_x")
    got = [(r.formula_id, r.role, r.cell_id, r.heading, r.has_assert) for r in refs]
    assert got == [
        ("alpha", "computes", "c1", "First part", False),
        ("beta", "computes", "c1", "First part", False),
        ("alpha", "checks", "c2", "Checks (检查)", True),
        ("beta", "checks", "c3", "Checks (检查)", True),
    ]
    assert refs[0].anchor == "cell-c1"
    bad = copy.deepcopy(GOOD_NB)
    bad["cells"][1]["metadata"]["slide_formulas"] = {"computed": ["alpha"]}
    with pytest.raises(ValueError, match="keys"):
        sm.notebook_cells(bad, "01", "chapters/01_x")


def test_map_rows_on_a_complete_map_has_no_problem():
    formulas = sm.load_formulas(YML_TEXT)
    rows, problems = sm.map_rows(formulas, sm.notebook_cells(GOOD_NB, "01", "chapters/01_x"))
    assert problems == []
    assert [len(r.computes) for r in rows] == [1, 1, 0, 1]  # the repeat inherits alpha's cells
    assert [r.checks[0].cell_id for r in rows if r.checks] == ["c2", "c3", "c2"]
    assert all(not r.missing for r in rows)  # gamma is uncheckable, alpha-again a repeat


def test_map_rows_reports_missing_unknown_and_bad_cells():
    formulas = sm.load_formulas(YML_TEXT)
    nb = _nb(
        ("code", "c1", "a = 1", {"computes": ["alpha", "delta"]}, None),  # delta: unknown
        ("code", "c2", "print(a)", {"checks": ["alpha"]}, None),  # a check without assert
        ("code", "c3", "assert 1", {"checks": ["alpha-again"]}, None),  # tags a repeat
        ("code", "c4", "assert 1", {"computes": ["beta"]}, ["remove-cell"]),  # not shown
        ("markdown", "m5", "text", {"checks": ["beta"]}, None),  # not a code cell
    )
    rows, problems = sm.map_rows(formulas, sm.notebook_cells(nb, "01", "chapters/01_x"))
    text = "\n".join(problems)
    assert "unknown formula id 'delta'" in text
    assert "c2 checks 'alpha' but contains no assert" in text
    assert "a repeat of 'alpha'" in text
    assert "c4 is removed from the book" in text
    assert "m5 is a markdown cell" in text
    # faulty cells do not count: alpha is computed (c1) but not checked, beta neither
    by_id = {r.formula.id: r for r in rows}
    assert by_id["alpha"].missing == ["checking"]
    assert by_id["beta"].missing == ["computing", "checking"]
    assert by_id["alpha-again"].missing == [] and by_id["alpha-again"].computes[0].cell_id == "c1"
    assert "formula 'beta' (slide line 20, chapter 01) has no checking cell in chapter 01" in text
    # a formula whose cells sit in another chapter is missing in its own
    rows, problems = sm.map_rows(formulas, sm.notebook_cells(GOOD_NB, "02", "chapters/02_y"))
    assert {r.formula.id: r.missing for r in rows}["alpha"] == ["computing", "checking"]
    assert "formula 'alpha' (slide line 10, chapter 01) has no computing cell in chapter 01" in problems


def test_collect_cells_reads_notebook_files(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "01_x.ipynb").write_text(json.dumps(GOOD_NB), encoding="utf-8")
    (tmp_path / "chapters" / "notes.ipynb").write_text("{}", encoding="utf-8")  # not a chapter
    notebooks = sm.chapter_notebooks(tmp_path)
    assert list(notebooks) == ["01"]
    refs = sm.collect_cells(notebooks)
    assert {r.docname for r in refs} == {"chapters/01_x"} and len(refs) == 4
    assert sm.chapter_title(notebooks["01"], "01") == "Title"


def test_the_repository_map_is_consistent_with_the_extension(entries):
    """The extension and the data tests agree on the real notebooks (same problem count)."""
    formulas = sm.load_formulas(YML)
    rows, problems = sm.map_rows(formulas, sm.collect_cells(sm.chapter_notebooks(ROOT)))
    assert len(rows) == len(entries)
    unknown = [p for p in problems if "unknown formula id" in p]
    assert not unknown, unknown


def test_heading_parts_split_maths_from_text():
    assert sm.heading_parts("From $p(\\mathbf{x})$ to $p(y)$") == [
        ("From ", False),
        ("p(\\mathbf{x})", True),
        (" to ", False),
        ("p(y)", True),
    ]
    assert sm.heading_parts("Algorithm 1 and $L_\\text{simple}$") == [
        ("Algorithm 1 and ", False),
        ("L_\\text{simple}", True),
    ]
    assert sm.heading_parts("costs \\$5, no maths") == [("costs $5, no maths", False)]
    assert sm.heading_parts("") == []
    # every heading of the chapters splits into pieces that join back to it, no '$' left over
    for path in CHAPTERS:
        for cell in nbformat.read(path, 4).cells:
            if cell.cell_type != "markdown":
                continue
            for heading in sm.markdown_headings(cell.source):
                parts = sm.heading_parts(heading)
                joined = "".join(f"${p}$" if m else p.replace("$", "\\$") for p, m in parts)
                assert joined == heading, heading
                assert not any("$" in p for p, m in parts if not m), heading
