"""The slide map: every formula of the slides, linked to the cells that compute and check it.

The list of formulas lives in ``book/slide_formulas.yml`` (schema: CONTRIBUTING.md, "Slide
formulas"); a notebook code cell names the formulas it evaluates or asserts in its metadata,
``{"slide_formulas": {"computes": [id, ...], "checks": [id, ...]}}``. This extension

- gives every code cell that carries such metadata an HTML anchor ``cell-<nbformat cell id>``
  (myst-nb gives code cells none), so ``chapters/01_factorization.html#cell-448957ac`` lands on
  the cell (:class:`CellAnchors`);
- adds the ``{slide-map}`` directive (used by ``book/slide_map.md``), which reads the yml and
  the notebooks' metadata at build time and renders one row per formula, in slide order,
  grouped by chapter and slide section, with links to its cells. A formula without a
  computing or checking cell in its chapter, a cell naming an unknown id, a checking cell
  without an ``assert`` and a tagged cell the book removes each show a "missing"/"problem"
  marker and a Sphinx warning, so ``-W`` fails the build (:class:`SlideMapDirective`).

The functions before the Sphinx classes are pure (files in, data out) and are unit-tested in
tests/test_slide_map.py; they are the same ones the build uses.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from docutils import nodes
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

ROLES = ("computes", "checks")
FORMULAS_FILE = "book/slide_formulas.yml"
CHAPTER_GLOB = "chapters/[0-9][0-9]_*.ipynb"
REMOVING_TAGS = {"remove-cell", "remove_cell", "hidden-check"}

# ---------------------------------------------------------------------------- pure functions


@dataclass(frozen=True)
class Formula:
    """One entry of slide_formulas.yml (a display formula or an algorithm of the slides)."""

    id: str
    line: int
    chapter: str
    section: str
    latex: str = ""
    kind: str = "formula"
    title: str = ""
    same_as: str = ""
    uncheckable: str = ""
    note: str = ""


@dataclass(frozen=True)
class CellRef:
    """A notebook code cell that names formula ``formula_id`` under ``role`` in its metadata."""

    formula_id: str
    role: str  # "computes" or "checks"
    chapter: str  # "01"
    docname: str  # "chapters/01_factorization"
    cell_id: str
    index: int  # position in the notebook
    heading: str  # nearest heading above the cell
    cell_type: str = "code"
    has_assert: bool = True
    removed: bool = False  # tagged remove-cell / hidden-check: not on the page

    @property
    def anchor(self) -> str:
        return cell_anchor(self.cell_id)


@dataclass
class Row:
    """One formula of the map with its cells and what is wrong with it."""

    formula: Formula
    computes: list[CellRef] = field(default_factory=list)
    checks: list[CellRef] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # roles without a cell in its chapter


def cell_anchor(cell_id: str) -> str:
    """The HTML id given to a tagged code cell: ``cell-<nbformat cell id>``."""
    return f"cell-{cell_id}"


def chapter_key(value) -> str:
    """A chapter number from the yml ('01', 8, '10') as two digits; ValueError otherwise."""
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 99:
        raise ValueError(f"chapter must be a chapter number such as '01', got {value!r}")
    return f"{int(text):02d}"


def load_formulas(source: str | Path) -> list[Formula]:
    """Parse slide_formulas.yml (a path, or the yml text) into checked :class:`Formula` entries.

    Raises ValueError naming the entry when an id repeats, a key is missing or unknown,
    lines do not increase, or a ``same_as`` target is unknown or comes later.
    """
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    data = yaml.safe_load(text)
    if not isinstance(data, list) or not data:
        raise ValueError("slide_formulas.yml must be a non-empty list of entries")
    formulas: list[Formula] = []
    seen: dict[str, int] = {}  # id -> entry number
    for n, entry in enumerate(data):
        formulas.append(_formula(n, entry, formulas, seen))
        seen[formulas[-1].id] = n
    return formulas


def _formula(n: int, entry, earlier: list[Formula], seen: dict[str, int]) -> Formula:
    """Entry ``n`` of the yml checked against the entries before it, as a :class:`Formula`."""
    where = f"entry {n} ({entry.get('id', '?') if isinstance(entry, dict) else entry!r})"
    _check_keys(where, entry)
    fid = str(entry["id"])
    if fid in seen:
        raise ValueError(f"{where}: id {fid!r} repeats entry {seen[fid]}")
    _check_kind(where, entry)
    if not isinstance(entry["line"], int):
        raise ValueError(f"{where}: line must be an integer, got {entry['line']!r}")
    if earlier and entry["line"] <= earlier[-1].line:
        raise ValueError(f"{where}: line {entry['line']} does not follow line {earlier[-1].line}")
    target = entry.get("same_as")
    if target is not None and target not in seen:
        raise ValueError(f"{where}: same_as {target!r} is not an earlier entry")
    try:
        chapter = chapter_key(entry["chapter"])
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    values = {k: str(v) for k, v in entry.items() if k not in ("line", "chapter")}
    return Formula(**values, line=entry["line"], chapter=chapter)


def _check_keys(where: str, entry) -> None:
    """An entry is a mapping with the required keys and no unknown one."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: an entry must be a mapping")
    unknown = set(entry) - set(Formula.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("id", "line", "chapter", "section"):
        if key not in entry:
            raise ValueError(f"{where}: missing {key!r}")


def _check_kind(where: str, entry: dict) -> None:
    """A formula needs its ``latex``, an algorithm its ``title``."""
    kind = entry.get("kind", "formula")
    if kind == "algorithm":
        if not entry.get("title"):
            raise ValueError(f"{where}: an algorithm needs a 'title'")
    elif kind != "formula":
        raise ValueError(f"{where}: kind must be 'formula' or 'algorithm'")
    elif not entry.get("latex"):
        raise ValueError(f"{where}: a formula needs 'latex'")


def chapter_notebooks(srcdir: str | Path) -> dict[str, Path]:
    """The chapters' notebooks under ``srcdir``: {"01": .../chapters/01_factorization.ipynb}."""
    return {p.name[:2]: p for p in sorted(Path(srcdir).glob(CHAPTER_GLOB))}


def has_assert(source: str) -> bool:
    """True when code ``source`` asserts: an ``assert`` statement or an ``*.assert_*`` call
    (``np.testing.assert_allclose``, ``torch.testing.assert_close``); comments do not count."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        names = [
            tok.string
            for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline)
            if tok.type == tokenize.NAME
        ]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        code = re.sub(r"#.*", "", source)
        return bool(re.search(r"\bassert(\b|_)", code))
    return any(n == "assert" or n.startswith("assert_") for n in names)


_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")


def markdown_headings(text: str) -> list[str]:
    """The ATX headings of a markdown cell, in order (fenced code blocks skipped)."""
    found, fenced = [], False
    for line in text.splitlines():
        if re.match(r"^\s{0,3}(```|~~~)", line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append(match.group(2))
    return found


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def notebook_cells(notebook: dict, chapter: str, docname: str) -> list[CellRef]:
    """Every (formula, role) named in the ``slide_formulas`` metadata of ``notebook`` (its
    JSON as a dict). Raises ValueError for metadata of the wrong shape or a cell without id."""
    refs: list[CellRef] = []
    heading = ""
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") == "markdown":
            heads = markdown_headings(_source(cell))
            heading = heads[-1] if heads else heading
        meta = cell.get("metadata", {}).get("slide_formulas")
        if meta is None:
            continue
        where = f"{docname}, cell {index} (id {cell.get('id')!r})"
        if not isinstance(meta, dict) or set(meta) - set(ROLES):
            raise ValueError(f"{where}: slide_formulas must be a mapping with keys {ROLES}")
        if not cell.get("id"):
            raise ValueError(f"{where}: the cell has no nbformat id (nbformat >= 4.5)")
        tags = set(cell.get("metadata", {}).get("tags", []))
        for role in ROLES:
            ids = meta.get(role, [])
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError(f"{where}: slide_formulas.{role} must be a list of ids")
            for fid in ids:
                refs.append(
                    CellRef(
                        formula_id=fid,
                        role=role,
                        chapter=chapter,
                        docname=docname,
                        cell_id=cell["id"],
                        index=index,
                        heading=heading,
                        cell_type=cell.get("cell_type", ""),
                        has_assert=has_assert(_source(cell)),
                        removed=bool(tags & REMOVING_TAGS),
                    )
                )
    return refs


def collect_cells(notebooks: dict[str, Path]) -> list[CellRef]:
    """The tagged cells of every chapter notebook ({"01": path}), chapter by chapter."""
    refs: list[CellRef] = []
    for chapter, path in sorted(notebooks.items()):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        refs += notebook_cells(data, chapter, f"chapters/{Path(path).stem}")
    return refs


def map_rows(formulas: list[Formula], refs: list[CellRef]) -> tuple[list[Row], list[str]]:
    """One :class:`Row` per formula (repeats inherit the cells of the entry they repeat) and
    the list of problems: a formula without a computing or checking cell in its own chapter's
    notebook (unless ``uncheckable``), a cell naming an unknown id or a repeat, a tagged cell
    that is not a code cell, a checking cell without an assert, and a tagged cell the book
    does not show. Such faulty cells do not count for their formula."""
    by_id = {f.id: f for f in formulas}
    rows = {f.id: Row(f) for f in formulas}
    problems: list[str] = []
    for ref in refs:
        problem = _ref_problem(ref, by_id.get(ref.formula_id))
        if problem is not None:
            problems.append(problem)
        else:  # only a valid cell counts for its formula
            getattr(rows[ref.formula_id], ref.role).append(ref)
    for row in rows.values():
        problems += _complete_row(row, rows)
    return [rows[f.id] for f in formulas], problems


def _ref_problem(ref: CellRef, formula: Formula | None) -> str | None:
    """What is wrong with a tagged cell (``formula``: the entry it names, if any), or None."""
    cell = f"{ref.docname} cell {ref.cell_id}"
    if formula is None:
        return f"{cell} {ref.role} unknown formula id {ref.formula_id!r}"
    if formula.same_as:
        return (
            f"{cell} tags {ref.formula_id!r}, a repeat of {formula.same_as!r}: "
            f"tag {formula.same_as!r} instead"
        )
    if ref.cell_type != "code":
        return f"{cell} is a {ref.cell_type} cell: only code cells compute"
    if ref.role == "checks" and not ref.has_assert:
        return f"{cell} checks {ref.formula_id!r} but contains no assert"
    if ref.removed:
        return f"{cell} is removed from the book (remove-cell): no link target"
    return None


def _complete_row(row: Row, rows: dict[str, Row]) -> list[str]:
    """Give a repeat the cells of the entry it repeats; the problems of a formula lacking cells."""
    f = row.formula
    if f.same_as:
        source = rows[f.same_as]
        row.computes, row.checks = list(source.computes), list(source.checks)
        return []
    if f.uncheckable:
        return []
    problems = []
    for role, label in (("computes", "computing"), ("checks", "checking")):
        if not any(r.chapter == f.chapter for r in getattr(row, role)):
            row.missing.append(label)
            problems.append(
                f"formula {f.id!r} (slide line {f.line}, chapter {f.chapter}) has no "
                f"{label} cell in chapter {f.chapter}"
            )
    return problems


def chapter_title(path: Path | None, chapter: str) -> str:
    """The notebook's first heading without its Chinese gloss, e.g. 'Factorization of ...'."""
    if path is not None and path.exists():
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            heads = markdown_headings(_source(cell)) if cell.get("cell_type") == "markdown" else []
            if heads:
                return heads[0]
    return f"Chapter {int(chapter)}"


# ---------------------------------------------------------------------------- Sphinx parts


class CellAnchors(SphinxTransform):
    """Give each myst-nb code cell with ``slide_formulas`` metadata the id ``cell-<cell id>``.

    myst-nb keeps the cell's position (``cell_index``) and metadata on the container but not
    the nbformat id, so the id is read from the notebook file itself."""

    default_priority = 500

    def apply(self, **kwargs) -> None:
        cells = None
        for node in self.document.findall(nodes.container):
            if node.get("nb_element") != "cell_code":
                continue
            meta = node.get("cell_metadata") or {}
            if not isinstance(meta, dict) or "slide_formulas" not in meta:
                continue
            if cells is None:
                path = Path(self.env.doc2path(self.env.docname))
                cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
            index = node.get("cell_index")
            if index is None or index >= len(cells) or not cells[index].get("id"):
                continue
            anchor = cell_anchor(cells[index]["id"])
            if anchor not in node["ids"]:
                node["ids"].append(anchor)
                self.document.ids[anchor] = node


class SlideMapDirective(SphinxDirective):
    """``{slide-map}``: the table of slide formulas with links to their cells.

    Option ``:file:`` (default ``book/slide_formulas.yml``, relative to the source dir)."""

    has_content = False
    option_spec = {"file": str}  # noqa: RUF012

    def run(self) -> list[nodes.Node]:
        srcdir = Path(self.env.srcdir)
        yml = srcdir / self.options.get("file", FORMULAS_FILE)
        self.env.note_dependency(str(yml))
        notebooks = chapter_notebooks(srcdir)
        for path in notebooks.values():
            self.env.note_dependency(str(path))
        try:
            formulas = load_formulas(yml)
            refs = collect_cells(notebooks)
        except (OSError, ValueError) as err:
            logger.warning(f"slide map: {err}", location=self.get_location())
            return [nodes.paragraph(text=f"The slide map could not be built: {err}")]
        rows, problems = map_rows(formulas, refs)
        for problem in problems:
            logger.warning(f"slide map: {problem}", location=self.get_location())
        return self._render(rows, notebooks, problems)

    # -- rendering

    def _render(self, rows: list[Row], notebooks: dict[str, Path], problems) -> list[nodes.Node]:
        n_checked = sum(1 for r in rows if not r.missing and not r.formula.same_as)
        summary = nodes.paragraph(
            text=f"{len(rows)} entries ({sum(1 for r in rows if r.formula.same_as)} repeats), "
            f"{n_checked} with both a computing and a checking cell, "
            f"{sum(1 for r in rows if r.missing)} with a cell missing."
        )
        summary["classes"].append("slide-map-summary")
        out: list[nodes.Node] = [summary]
        if problems:
            out.append(self._problems(problems))
        used: set[str] = set()
        for chapter, group in itertools.groupby(rows, key=lambda r: r.formula.chapter):
            title = chapter_title(notebooks.get(chapter), chapter)
            sid = nodes.make_id(f"slide-map-chapter-{chapter}")
            while sid in used:
                sid += "-more"
            used.add(sid)
            section = nodes.section(ids=[sid], classes=["slide-map-chapter"])
            section += nodes.title(text=f"Chapter {int(chapter)}: {title}")
            for slide_section, entries in itertools.groupby(group, key=lambda r: r.formula.section):
                section += nodes.rubric(text=slide_section)
                for row in entries:
                    section += self._row(row)
            out.append(section)
        return out

    def _problems(self, problems: list[str]) -> nodes.Node:
        box = nodes.container(classes=["slide-map-problems"])
        box += nodes.paragraph(text="Problems found while building this page:")
        items = nodes.bullet_list()
        for problem in problems:
            items += nodes.list_item("", nodes.paragraph(text=problem))
        box += items
        return box

    def _row(self, row: Row) -> nodes.Node:
        f = row.formula
        box = nodes.container(ids=[nodes.make_id(f"formula-{f.id}")], classes=["slide-map-row"])
        head = nodes.paragraph(classes=["slide-map-head"])
        head += nodes.literal(text=f.id, classes=["slide-map-id"])
        head += nodes.inline(text=f"  slide line {f.line}", classes=["slide-map-line"])
        box += head
        if f.kind == "algorithm":
            box += nodes.paragraph("", "", nodes.strong(text=f.title), classes=["slide-map-algorithm"])
        else:
            scroll = nodes.container(classes=["slide-map-formula"])
            scroll += nodes.math_block(
                f.latex, f.latex, docname=self.env.docname, number=None, label=None, nowrap=False
            )
            box += scroll
        if f.same_as:
            para = nodes.paragraph(text="Repeats ", classes=["slide-map-same-as"])
            para += nodes.reference("", f.same_as, refid=nodes.make_id(f"formula-{f.same_as}"))
            para += nodes.Text(" on the slides; its cells:")
            box += para
        if f.note:
            box += nodes.paragraph(text=f"Note: {f.note}", classes=["slide-map-note"])
        if f.uncheckable:
            box += nodes.paragraph(
                text=f"Not checked in code: {f.uncheckable}", classes=["slide-map-uncheckable"]
            )
        for role, label in (("computes", "Computed in"), ("checks", "Checked in")):
            box += self._links(label, getattr(row, role), missing=role_label(role) in row.missing)
        return box

    def _links(self, label: str, refs: list[CellRef], *, missing: bool) -> nodes.Node:
        para = nodes.paragraph(classes=["slide-map-links"])
        para += nodes.strong(text=f"{label}: ")
        if missing:
            para += nodes.inline(text="✗ missing", classes=["slide-map-missing"])
            if refs:
                para += nodes.Text(" in its chapter; elsewhere: ")
        elif not refs:
            para += nodes.inline(text="none (see above)", classes=["slide-map-none"])
        for n, ref in enumerate(refs):
            if n:
                para += nodes.Text("; ")
            label_nodes = [nodes.Text(f"chapter {int(ref.chapter)}, ")]
            label_nodes += [
                nodes.math(part, part) if is_math else nodes.Text(part)
                for part, is_math in heading_parts(ref.heading or "top")
            ]
            if ref.docname in self.env.found_docs and not ref.removed:
                uri = self.env.app.builder.get_relative_uri(self.env.docname, ref.docname)
                para += nodes.reference("", "", *label_nodes, refuri=f"{uri}#{ref.anchor}", internal=True)
            else:
                para += nodes.inline("", "", *label_nodes, nodes.Text(" (not in this build)"))
        return para


def heading_parts(heading: str) -> list[tuple[str, bool]]:
    """A heading split into (text, is_math) pieces at its ``$...$`` spans, so that a link
    labelled with it renders the maths instead of showing raw TeX."""
    parts = []
    for n, piece in enumerate(re.split(r"(?<!\\)\$(.+?)(?<!\\)\$", heading)):
        if piece:
            parts.append((piece.replace("\\$", "$") if n % 2 == 0 else piece, n % 2 == 1))
    return parts


def role_label(role: str) -> str:
    """'computes' -> 'computing', 'checks' -> 'checking' (the words of Row.missing)."""
    return {"computes": "computing", "checks": "checking"}[role]


CSS = """\
.slide-map-row { border-top: 1px solid var(--pst-color-border, #ddd); padding: .4em 0; }
.slide-map-formula { overflow-x: auto; max-width: 100%; }
.slide-map-formula div.math { overflow-x: auto; }
.slide-map-head { margin-bottom: 0; }
.slide-map-line { color: var(--pst-color-text-muted, #666); font-size: .85em; }
.slide-map-links { margin: .1em 0; }
.slide-map-missing { color: #b00020; font-weight: bold; }
.slide-map-problems { border-left: 4px solid #b00020; padding-left: .8em; }
"""


def _write_css(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir, "_static")
        static.mkdir(parents=True, exist_ok=True)
        (static / "slide_map.css").write_text(CSS, encoding="utf-8")


def setup(app):
    app.add_transform(CellAnchors)
    app.add_directive("slide-map", SlideMapDirective)
    app.add_css_file("slide_map.css")
    app.connect("build-finished", _write_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
