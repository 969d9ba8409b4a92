"""A book build whose chapter fails to execute fails, on the retry too (book/_ext/exec_guard.py).

A copy of the book's configuration and extensions builds a two-page book whose chapter
raises; ``make book`` builds and, on failure, builds once more (and a lecturer may run it
again), so every run must fail, name the chapter, and execute it again rather than reuse
the environment of the run before (without the guard the third run reports success).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _notebook(code: str) -> dict:
    return {
        "cells": [
            {"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# A chapter"},
            {
                "cell_type": "code",
                "id": "work",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": code,
            },
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _make_book(tmp: Path, code: str) -> Path:
    book = tmp / "book-src"
    shutil.copytree(ROOT / "book" / "_ext", book / "book" / "_ext")
    shutil.copy(ROOT / "book" / "references.bib", book / "book" / "references.bib")
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    (book / "intro.md").write_text("# A test book\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapter\n")
    (book / "chapter.ipynb").write_text(json.dumps(_notebook(code)))
    return book


def _build(book: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe), "build", str(book), "--path-output", str(book / "out"), "-W", "-n", "--keep-going"]
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_a_failed_chapter_fails_the_build_and_its_retry(tmp_path):
    book = _make_book(tmp_path, "raise RuntimeError('planted failure')")
    for attempt in (1, 2, 3):
        result = _build(book)
        out = result.stdout + result.stderr
        assert result.returncode != 0, f"attempt {attempt} reported success:\n{out[-3000:]}"
        assert "executing chapter failed (CellExecutionError)" in out, out[-3000:]
        assert "Executing notebook" in out, f"attempt {attempt} did not execute the chapter"
        assert (book / "out" / "_build" / "html" / "reports" / "chapter.err.log").exists()


def test_a_chapter_that_runs_builds(tmp_path):
    book = _make_book(tmp_path, "print(6 * 7)")
    result = _build(book)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "42" in (book / "out" / "_build" / "html" / "chapter.html").read_text()
