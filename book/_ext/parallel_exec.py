"""Execute the book's outdated notebooks side by side before Sphinx reads them.

myst-nb (``execute_notebooks: cache``) runs each notebook when Sphinx reads its page, one after
another. The chapters' training loops work on 8×8 images and keep about one core busy, so on a
2-core machine half of it idles. Before the read phase this extension executes every chapter
whose code is not in the execution cache with several kernels at a time (the
``PGM_LAB_BOOK_JOBS`` environment variable; default: the number of CPUs, at most 4), each
kernel with ``cpus / jobs`` torch threads (``PGM_LAB_THREADS``, unless set), the longest chapters
first (seconds from ``book/data/lecture_timings.json`` where measured, else later chapters
first). Each result goes into myst-nb's cache exactly as myst-nb would store it (the same
jupyter-cache worker, the same notebook hash), so the read phase then finds every chapter cached.
A notebook that fails here is not cached: myst-nb executes it again while reading, reports the
error, and ``exec_guard`` fails the build.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import time
from fnmatch import fnmatch
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)
TIMINGS = Path(__file__).resolve().parents[1] / "data" / "lecture_timings.json"


def jobs_from_env(value: str | None, cpus: int) -> int:
    """Kernels at a time: ``PGM_LAB_BOOK_JOBS`` if set (a positive integer), else ``min(cpus, 4)``."""
    if value is None or not value.strip():
        return max(1, min(cpus, 4))
    if not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"PGM_LAB_BOOK_JOBS must be a positive integer, got {value!r}")
    return int(value)


def longest_first(docnames: list[str], seconds: dict[str, float]) -> list[str]:
    """Measured chapters by their seconds, longest first; unmeasured ones by name, later first."""
    return sorted(docnames, key=lambda d: (-seconds.get(_chapter(d), -1.0), [-ord(c) for c in d]))


def _chapter(docname: str) -> str:
    return docname.rsplit("/", 1)[-1][:2]


def measured_seconds(path: Path = TIMINGS) -> dict[str, float]:
    """``{chapter: seconds}`` of the last cold run in ``lecture_timings.json`` (empty if none)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["chapters"]
        return {r["chapter"]: float(r["cold_total_s"]) for r in rows}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _execute(cache_path: str, pk: int, uri: str, timeout: int, allow_errors: bool) -> tuple[int, float]:
    """One notebook, run and cached by jupyter-cache's own worker (in a child process)."""
    from jupyter_cache import get_cache
    from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

    start = time.perf_counter()
    code, _ = ExecutionWorkerLocalMProc()(ProcessData(pk, uri, get_cache(cache_path), timeout, allow_errors))
    return code, time.perf_counter() - start


def _outdated(app, cache, docnames: list[str]) -> list[str]:
    import nbformat

    excluded = app.env.mystnb_config.execution_excludepatterns or []
    todo = []
    for doc in docnames:
        path = Path(app.env.doc2path(doc))
        if path.suffix != ".ipynb" or any(fnmatch(str(path), f"*{p}") for p in excluded):
            continue
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(doc)
    return todo


def _pre_execute(app, env, docnames: list[str]) -> None:
    config = app.env.mystnb_config  # myst-nb's settings, its cache path resolved (builder-inited)
    if config.execution_mode != "cache":
        return
    jobs = jobs_from_env(os.environ.get("PGM_LAB_BOOK_JOBS"), os.cpu_count() or 1)
    if jobs < 2:
        return
    from jupyter_cache import get_cache

    cache_path = config.execution_cache_path
    cache = get_cache(cache_path)
    todo = longest_first(_outdated(app, cache, docnames), measured_seconds())
    if len(todo) < 2:
        return
    records = {doc: cache.add_nb_to_project(str(env.doc2path(doc))) for doc in todo}
    threads = os.environ.get("PGM_LAB_THREADS") or str(max(1, (os.cpu_count() or 1) // jobs))
    logger.info(f"executing {len(todo)} notebooks, {jobs} at a time ({threads} torch threads each)")
    saved = os.environ.get("PGM_LAB_THREADS")
    os.environ["PGM_LAB_THREADS"] = threads  # inherited by the kernels
    try:
        _run_pool(
            records,
            str(cache_path),
            jobs,
            config.execution_timeout,
            config.execution_allow_errors,
        )
    finally:
        if saved is None:
            os.environ.pop("PGM_LAB_THREADS", None)
        else:
            os.environ["PGM_LAB_THREADS"] = saved


def _run_pool(records: dict, cache_path: str, jobs: int, timeout: int, allow_errors: bool) -> None:
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {
            pool.submit(_execute, cache_path, rec.pk, rec.uri, timeout, allow_errors): doc
            for doc, rec in records.items()
        }
        for future in cf.as_completed(futures):
            doc = futures[future]
            try:
                code, seconds = future.result()
            except Exception as exc:  # the read phase executes it again and reports the error
                logger.info(f"pre-executing {doc} failed ({exc!r}); it runs again while read")
                continue
            state = "executed" if code == 0 else "failed (runs again while read)"
            logger.info(f"{doc}: {state} in {seconds:.0f} s")


def setup(app):
    app.connect("env-before-read-docs", _pre_execute)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
