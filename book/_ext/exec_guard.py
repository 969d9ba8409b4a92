"""A book build never reports success with a chapter whose execution failed.

myst-nb records each notebook's execution in the Sphinx environment (``exec_data``:
``succeeded``, ``error``). A failed run is not cached, but the environment remembers the
page as read, so a second ``jupyter-book build`` (the Makefile retries once) would skip
it and publish the chapter without outputs. This extension

- re-reads every page whose last execution failed (so the retry executes it again), and
- at the end of the build, warns once per failed page with the error and the traceback
  file myst-nb saved; the book builds with ``-W --keep-going``, so the build fails.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def failed_executions(env) -> dict[str, str]:
    """``{docname: error}`` of the pages whose last notebook execution failed."""
    metadata = getattr(env, "nb_metadata", {}) or {}
    failed = {}
    for docname, data in metadata.items():
        exec_data = (data or {}).get("exec_data") or {}
        if exec_data.get("succeeded") is False and docname in env.found_docs:
            failed[docname] = exec_data.get("error") or "unknown error"
    return dict(sorted(failed.items()))


def _reread_failed(app, env, added, changed, removed) -> list[str]:
    return [doc for doc in failed_executions(env) if doc not in changed]


def _report_failed(app, exception) -> None:
    if exception is not None:
        return
    for docname, error in failed_executions(app.env).items():
        log = Path(app.outdir, "reports", *(docname + ".err.log").split("/"))
        logger.warning(
            "executing %s failed (%s): the chapter is published without its outputs; traceback in %s",
            docname,
            error,
            log,
            type="pgm_book",
            subtype="execution",
        )


def setup(app):
    app.connect("env-get-outdated", _reread_failed)
    app.connect("build-finished", _report_failed)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
