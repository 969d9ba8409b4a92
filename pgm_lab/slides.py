"""Chapters as slides: RISE slide types from a chapter's structure, and offline reveal.js decks.

A chapter follows the lecture's slide order, so its headings already say where slides
begin. :func:`slide_types` turns them into the ``metadata.slideshow.slide_type`` that RISE
(live, in JupyterLab) and nbconvert's reveal.js exporter (static, ``make slides``) read:

- ``slide``: the title cell (``# ``) and each section (``## ``), one per slide-deck section;
- ``subslide``: each subsection (``### ``) and each exercise statement (``**Exercise``);
- ``fragment``: a code cell that follows prose on the same slide (its result appears on
  the next key press, after the explanation);
- ``skip``: plumbing, i.e. the imports and ``pl.setup()`` cell, cells that only import or
  seed, book-only cells (``remove-cell``: widget stand-ins) and hidden grading checks;
- ``-``: everything else continues the current slide.

:func:`export_decks` writes the static decks with reveal.js and MathJax copied beside them
(from the ``sphinx-revealjs`` and ``sphinx-mathjax-offline`` packages), so a deck opens
from disk or a localhost server and asks no other host for anything.
"""

from __future__ import annotations

import ast
import html
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SLIDE_TYPES = ("slide", "subslide", "fragment", "skip", "-")
#: cells in a deck that start a reveal.js slide (a vertical subslide is a slide of its own)
STARTS_SLIDE = ("slide", "subslide")
_SKIP_TAGS = {"remove-cell", "hidden-check"}
#: calls that only prepare a chapter (seeds, threads, profile): a cell of nothing else is skipped
_SETUP_CALLS = re.compile(r"(^|\.)(setup|seed|manual_seed|seed_everything|set_num_threads|filterwarnings)$")


def _heading(source: str) -> str:
    lines = [line for line in source.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_call_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def is_plumbing(source: str) -> bool:
    """True for a code cell that only imports, seeds or sets up (``pl.setup()``, ``%matplotlib``):
    nothing a lecture shows. A cell that does anything else, or does not parse, is not."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return False
    if not body:
        return bool(source.strip())

    def setup_stmt(stmt) -> bool:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return True
        value = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign)) else None
        return isinstance(value, ast.Call) and bool(_SETUP_CALLS.search(_call_name(value.func)))

    return all(setup_stmt(s) for s in body)


def slide_types(nb) -> list[str]:
    """The slide type of each cell of ``nb`` by the rules in this module's docstring."""
    types = []
    previous = None  # the type of the previous shown cell
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        head = _heading(cell.source) if cell.cell_type == "markdown" else ""
        if tags & _SKIP_TAGS or (
            cell.cell_type == "code" and (is_plumbing(cell.source) or "pl.setup(" in cell.source)
        ):
            kind = "skip"
        elif cell.cell_type == "markdown" and re.match(r"#{1,2} ", head):
            kind = "slide"
        elif cell.cell_type == "markdown" and (head.startswith("### ") or head.startswith("**Exercise")):
            kind = "subslide"
        elif cell.cell_type == "code" and previous == "markdown":
            kind = "fragment"
        else:
            kind = "-"
        if kind != "skip":
            previous = cell.cell_type
        types.append(kind)
    return types


def _stored_types(nb) -> list[str | None]:
    return [c.get("metadata", {}).get("slideshow", {}).get("slide_type") for c in nb.cells]


def apply_slide_metadata(path) -> dict[str, int]:
    """Write ``metadata.slideshow.slide_type`` on every cell of the notebook at ``path``.

    Idempotent: a second run changes nothing (the file is rewritten only when a type
    changed). Returns how many cells got each type.
    """
    from .notebooks import read_notebook, write_notebook

    nb = read_notebook(path)
    types = slide_types(nb)
    if _stored_types(nb) != types:
        for cell, kind in zip(nb.cells, types):
            cell.metadata.setdefault("slideshow", {})["slide_type"] = kind
        write_notebook(nb, path)
    return dict(Counter(types))


def lacking_slide_metadata(path) -> str | None:
    """Why the notebook at ``path`` needs ``pgm-lab slides-metadata``, or None when it does not.

    Cells without a slide type, or types that no longer match the headings (a chapter
    edited since), are both reported, with the first cell concerned.
    """
    from .notebooks import read_notebook

    nb = read_notebook(path)
    stored, wanted = _stored_types(nb), slide_types(nb)
    missing = [i for i, s in enumerate(stored) if s is None]
    if missing:
        return f"{len(missing)} of {len(stored)} cells have no slide type (first: cell {missing[0]})"
    stale = [i for i, (s, w) in enumerate(zip(stored, wanted)) if s != w]
    if stale:
        i = stale[0]
        return (
            f"{len(stale)} slide types are out of date (cell {i}: {stored[i]!r}, headings say {wanted[i]!r})"
        )
    return None


# -- static decks ---------------------------------------------------------------------------------
REVEAL_DIR = "_static/reveal.js"
MATHJAX_DIR = "_static/mathjax"

# Blocks of nbconvert's reveal template that load jQuery, require.js, mermaid, the widget
# manager and MathJax 2 from CDNs, replaced by local reveal.js 5 and MathJax 3.
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}
<link rel="icon" href="data:,">
<script>
window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
        processEscapes: true, processEnvironments: true, tags: "ams"},
  startup: {typeset: true}
};
</script>
<script defer src="MATHJAX_DIR/tex-chtml.js"></script>
<style>
.reveal .slides { text-align: left; }
.reveal .slides > section, .reveal .slides > section > section { height: 100%; overflow-y: auto; }
.reveal .slides h1, .reveal .slides h2, .reveal .slides h3 { text-transform: none; }
.reveal img { max-height: 60vh; }
</style>
{%- endblock html_head_js_mathjax -%}
{% block footer_js %}
<script src="{{ reveal_url_prefix }}/dist/reveal.js"></script>
<script src="{{ reveal_url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({
  controls: true, progress: true, history: true, center: false, hash: true,
  transition: "{{ reveal_transition }}", slideNumber: "c/t",
  width: {{ reveal_width }}, height: {{ reveal_height }}, plugins: [RevealNotes]
});
window.addEventListener("load", () => {
  if (window.MathJax && MathJax.startup) { MathJax.startup.promise.then(() => Reveal.layout()); }
});
</script>
{% endblock footer_js %}
"""


@dataclass
class Deck:
    """One written deck: its file, title and number of slides (slide + subslide cells)."""

    path: Path
    title: str
    slides: int


def _installed_dir(dist: str, marker: str) -> Path:
    """Folder of an installed distribution's file whose path ends with ``marker``."""
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if str(f).replace("\\", "/").endswith(marker):
            return Path(f.locate()).parent
    raise ValueError(f"{dist} is not installed (it provides {marker} for offline slides): run `make install`")


_MATHJAX_PARTS = ("input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y", "sre")


def copy_assets(out: Path) -> None:
    """Copy reveal.js (dist and the notes plugin) and MathJax 3 under ``out/_static``."""
    reveal = _installed_dir("sphinx-revealjs", "revealjs/dist/reveal.js").parent
    mathjax = _installed_dir("sphinx-mathjax-offline", "mathjax/tex-chtml.js")
    skip = shutil.ignore_patterns("*.map", "*.esm.js", "*.scss")
    target = out / REVEAL_DIR
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(reveal / "dist", target / "dist", ignore=skip)
    shutil.copytree(reveal / "plugin" / "notes", target / "plugin" / "notes", ignore=skip)
    target = out / MATHJAX_DIR
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.copy2(mathjax / "tex-chtml.js", target)
    for sub in _MATHJAX_PARTS:  # what tex-chtml.js loads on demand: TeX extensions, fonts, menu
        shutil.copytree(mathjax / sub, target / sub, ignore=skip)


_ROLE = re.compile(r"\{(\w+)\}`([^`]*)`")
_TITLED_TARGET = re.compile(r"^(.*?)\s*<[^<>]*>$")


def plain_roles(text: str) -> str:
    """MyST roles that only the book resolves, as plain text: ``{cite}`bishop2006``` ->
    ``[bishop2006]``, ``{doc}`Chapter 4 </chapters/04_x>``` -> ``Chapter 4``, ``{key}`K``` -> ``K``."""

    def plain(m: re.Match) -> str:
        role, body = m.group(1), m.group(2)
        if role == "cite":
            return f"[{body}]"
        titled = _TITLED_TARGET.match(body)
        return titled.group(1) if titled else body

    return _ROLE.sub(plain, text)


EDITIONS = ("reader", "course")


def deck_notebook(nb, edition: str = "reader"):
    """What a deck shows of an executed chapter: no skipped cells, no hidden checks, no stderr
    (progress bars, warnings: as in the book); slide types from the headings where absent.
    The ``course`` edition shows exercises as students get them (solutions replaced, no output)."""
    import copy

    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {EDITIONS}, got {edition!r}")

    nb = copy.deepcopy(nb)
    types = slide_types(nb)
    kept = []
    for cell, derived in zip(nb.cells, types):
        show = cell.metadata.setdefault("slideshow", {})
        kind = show.setdefault("slide_type", derived)
        if kind == "skip" or "hidden-check" in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "markdown":
            cell.source = plain_roles(cell.source)
        if edition == "course" and "exercise" in cell.metadata.get("tags", []):
            from .grading.release import strip_solution_regions

            cell.source, _ = strip_solution_regions(cell.source)
            cell.outputs = []
        if cell.cell_type == "code":
            cell.outputs = [
                o
                for o in cell.outputs
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
        kept.append(cell)
    nb.cells = kept
    return nb


def count_slides(nb) -> int:
    """Slides reveal.js will show for a deck notebook: slide and subslide cells (the first shown
    cell always starts one)."""
    types = [c.metadata.get("slideshow", {}).get("slide_type", "-") for c in nb.cells]
    shown = [t for t in types if t not in ("skip", "notes")]
    return sum(t in STARTS_SLIDE for t in shown) + (1 if shown and shown[0] not in STARTS_SLIDE else 0)


def export_deck(path, out: Path, edition: str = "reader") -> Deck:
    """Write the reveal.js deck of the executed notebook at ``path`` to ``out/<name>.html``
    (assets: :func:`copy_assets`; ``edition`` as in :func:`deck_notebook`)."""
    from nbconvert import SlidesExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    from .notebooks import read_notebook

    path, out = Path(path), Path(out)
    nb = deck_notebook(read_notebook(path), edition)
    if not nb.cells:
        raise ValueError(f"{path}: every cell is skipped, there is nothing to present")
    title = _heading(nb.cells[0].source).lstrip("# ").strip() or path.stem
    nb.metadata["title"] = title
    with tempfile.TemporaryDirectory(prefix="pgm-lab-slides-") as tmp:
        Path(tmp, "deck.html.j2").write_text(TEMPLATE.replace("MATHJAX_DIR", MATHJAX_DIR), encoding="utf-8")
        exporter = SlidesExporter(
            template_name="reveal",
            template_file="deck.html.j2",
            extra_template_paths=[tmp],
            reveal_url_prefix=REVEAL_DIR,
            reveal_theme="white",
            reveal_transition="none",
        )
        tags = TagRemovePreprocessor(
            remove_cell_tags={"remove-cell"},
            remove_input_tags={"remove-input", "hide-input"},
            remove_all_outputs_tags={"remove-output"},
            enabled=True,
        )
        exporter.register_preprocessor(tags, enabled=True)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
    target = out / f"{path.stem}.html"
    target.write_text(body, encoding="utf-8")
    return Deck(target, title, count_slides(nb))


def export_decks(notebooks, out, edition: str = "reader") -> list[Deck]:
    """Decks of every executed notebook in ``notebooks`` under ``out``, with the assets and an
    ``index.html`` that links them. A notebook without slide metadata is still exported, with
    slide types derived from its headings, and named in a warning."""
    import warnings

    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {EDITIONS}, got {edition!r}")
    out = Path(out)
    paths = [Path(p) for p in notebooks]
    if not paths:
        raise ValueError(
            "no notebooks given: run `make book` first (decks are made from its executed chapters)"
        )
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"no such notebook: {', '.join(missing)} (run `make book` first)")
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out)
    decks = []
    for p in paths:
        reason = lacking_slide_metadata(p)
        if reason:
            warnings.warn(f"{p.name}: {reason}; run `pgm-lab slides-metadata` on the chapter", stacklevel=2)
        decks.append(export_deck(p, out, edition))
    items = "\n".join(
        f'<li><a href="{html.escape(d.path.name)}">{html.escape(d.title)}</a> ({d.slides} slides)</li>'
        for d in decks
    )
    (out / "index.html").write_text(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>pgm-lab slides</title></head>\n'
        f"<body><h1>pgm-lab: the chapters as slides</h1>\n<ul>\n{items}\n</ul></body></html>\n",
        encoding="utf-8",
    )
    return decks


__all__ = [
    "SLIDE_TYPES",
    "Deck",
    "apply_slide_metadata",
    "copy_assets",
    "count_slides",
    "deck_notebook",
    "export_deck",
    "export_decks",
    "is_plumbing",
    "lacking_slide_metadata",
    "plain_roles",
    "slide_types",
]
