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
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.roles import XRefRole
from sphinx.util.docutils import SphinxRole


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


def setup(app):
    app.add_config_value("pgm_always_read", ["book/status"], "env")
    app.connect("env-get-outdated", _always_read)
    app.add_role("chapter", ChapterRole())
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
