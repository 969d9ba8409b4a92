"""Small Sphinx additions for the pgm-lab book (loaded through ``sphinx.local_extensions``).

- The ``{chapter}`` role links a chapter like ``{doc}`` when the chapter is part of this
  build (listed in _toc.yml) and otherwise prints its file name as plain text, so that
  front matter that names all ten chapters builds with ``-W -n`` while chapters are
  still being added: ``{chapter}`/chapters/04_belief_propagation``` or, with a title,
  ``{chapter}`4 Belief propagation </chapters/04_belief_propagation>```.
- Pages listed in the config value ``pgm_always_read`` (default: the status page) are read,
  and so executed, on every build, even when nothing changed: the status page then always
  reports the environment of the latest build.
- sphinx-thebe 0.3.1 registers its inline configuration script once per read phase, so
  Sphinx 7.4 writes ``const THEBE_JS_URL = ...`` twice into every page and the browser
  reports "Identifier 'THEBE_JS_URL' has already been declared" (sphinx-togglebutton's
  selector is repeated the same way). Scripts with the same file and attributes are
  written once, at the first place they appear, whatever their priorities.
- Editions (config value ``pgm_edition``, from ``PGM_LAB_EDITION``; ``make book
  EDITION=course``): in the **reader** edition every exercise cell is folded behind a
  "Show the solution" toggle; in the **course** edition exercise cells show the student's
  version (solution regions replaced as ``pgm-lab release`` does). In both, hidden-check
  cells never reach a page, and the ``.ipynb`` download serves the notebook without hidden
  checks (reader) or the released student copy (course).
- Each chapter's page links to its reveal.js deck in ``_slides/`` (``make slides`` copies
  the decks there; until then a placeholder page says how to build them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from docutils import nodes
from sphinx.roles import XRefRole
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxRole

EDITIONS = ("reader", "course")


class ChapterRole(SphinxRole):
    """``{chapter}`/chapters/NN_topic``` : a ``{doc}`` link if the page is built, else the name."""

    def run(self):
        match = re.fullmatch(r"\s*(.*?)\s*<([^<>]+)>\s*", self.text)
        title, target = (match.group(1), match.group(2).strip()) if match else ("", self.text.strip())
        docname = target.lstrip("/")
        if docname in self.env.found_docs:
            doc_role = XRefRole(warn_dangling=True, innernodeclass=nodes.inline)
            return doc_role("std:doc", self.rawtext, self.text, self.lineno, self.inliner, {}, [])
        return [
            nodes.inline(self.rawtext, title or docname.rsplit("/", 1)[-1], classes=["chapter-pending"])
        ], []


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {})
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def _always_read(app, env, added, changed, removed) -> list[str]:
    return [doc for doc in app.config.pgm_always_read if doc in env.found_docs and doc not in changed]


def _cell_tags(node) -> list[str]:
    meta = node.get("cell_metadata") or {}
    return list(meta.get("tags", [])) if isinstance(meta, dict) else []


class ExerciseCells(SphinxPostTransform):
    """Fold (reader) or strip (course) the solutions; drop hidden checks. Runs before myst-nb's
    ``HideInputCells`` (priority 199), which turns ``hide_mode`` into a ``<details>`` toggle."""

    default_priority = 150
    formats = ("html",)

    def run(self, **kwargs):
        from pgm_lab.grading.release import strip_solution_regions

        edition = self.app.config.pgm_edition
        for node in list(self.document.findall(nodes.container)):
            if node.get("nb_element") != "cell_code":
                continue
            tags = _cell_tags(node)
            if "hidden-check" in tags:
                node.parent.remove(node)
            elif "exercise" in tags and edition == "reader":
                node["hide_mode"] = "input"
                node["prompt_show"] = "Show the solution"
                node["prompt_hide"] = "Hide the solution"
            elif "exercise" in tags:
                for block in node.findall(nodes.literal_block):
                    text, _ = strip_solution_regions(block.astext())
                    block.replace_self(nodes.literal_block(text, text, **block.attributes))


def download_copy(path: Path, edition: str) -> None:
    """Rewrite a chapter's ``_sources`` notebook as readers (no hidden checks) or students get it."""
    from pgm_lab.grading.release import release_notebook
    from pgm_lab.notebooks import is_hidden_check, read_notebook, strip_outputs, write_notebook

    nb = read_notebook(path)
    if not any(c.cell_type == "code" and "exercise" in c.metadata.get("tags", []) for c in nb.cells):
        return
    if edition == "course":
        nb = release_notebook(nb, name=path.stem)
    else:
        nb = strip_outputs(nb, keep_answer_keys=True)
        nb.cells = [c for c in nb.cells if not is_hidden_check(c)]
    write_notebook(nb, path)


def _check_edition(app, config) -> None:
    if config.pgm_edition not in EDITIONS:
        raise ValueError(
            f"pgm_edition (PGM_LAB_EDITION) must be one of {EDITIONS}, got {config.pgm_edition!r}"
        )


def _rewrite_downloads(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for path in sorted(Path(app.outdir, "_sources").glob("**/*.ipynb")):
        download_copy(path, app.config.pgm_edition)


SLIDES_DIR = "_slides"  # filled by `make slides`; a placeholder until then keeps every link alive
PLACEHOLDER = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Slides not built yet</title></head>
<body><p>The slides of this chapter are not built yet: run <code>make slides</code> after
<code>make book</code> (see the instructor guide, lecture mode).</p>
<p><a href="../{page}">Back to the chapter</a></p></body></html>
"""


def _slides_link(app, pagename, templatename, context, doctree) -> None:
    """A link from each chapter's page to its reveal.js deck (``make slides``, pgm_lab.slides)."""
    if not pagename.startswith("chapters/") or "body" not in context:
        return
    href = context["pathto"](f"{SLIDES_DIR}/{pagename.split('/', 1)[1]}.html", 1)
    context["body"] = (
        f'<p class="pgm-slides-link"><a class="reference external" href="{href}">'
        "Present this chapter as slides</a> (reveal.js, offline)</p>\n" + context["body"]
    )


def _slide_placeholders(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for doc in sorted(d for d in app.env.found_docs if d.startswith("chapters/")):
        name = doc.split("/", 1)[1]
        deck = Path(app.outdir, SLIDES_DIR, f"{name}.html")
        if not deck.exists():
            deck.parent.mkdir(parents=True, exist_ok=True)
            deck.write_text(PLACEHOLDER.format(page=f"{doc}.html"), encoding="utf-8")


def setup(app):
    app.setup_extension("slide_map")  # the slide map page (book/_ext/slide_map.py)
    app.add_config_value("pgm_edition", os.environ.get("PGM_LAB_EDITION", "reader"), "env")
    app.connect("config-inited", _check_edition)
    app.add_post_transform(ExerciseCells)
    app.connect("build-finished", _rewrite_downloads)
    app.add_config_value("pgm_always_read", ["book/status"], "env")
    app.connect("env-get-outdated", _always_read)
    app.add_role("chapter", ChapterRole())
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _slides_link)
    app.connect("build-finished", _slide_placeholders)
    app.setup_extension("exec_guard")  # a failed chapter execution fails the build
    app.setup_extension("parallel_exec")  # outdated notebooks execute side by side
    return {"parallel_read_safe": True, "parallel_write_safe": True}
