"""Try a chapter's hidden checks the way the grader uses them, without a sandbox.

``python -m pgm_lab.grading.selftest chapters/NN_topic.ipynb`` executes the key twice with
two secret seeds and its student copy once, in the ``smoke`` profile, and prints for every
hidden check: the labels it emits, whether the key's values change with the seed (fresh
inputs), and what the unsolved student copy earns (it must earn nothing). For authors of
exercises; ``pgm-lab grade`` is the real thing.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from pathlib import Path

from ..notebooks import is_hidden_check, read_notebook, strip_outputs
from .hidden import OUT_VAR, SEED_VAR
from .verdict import judge_check, read_records

BEGIN_LINE = "__import__('pgm_lab.grading.hidden', fromlist=['begin']).begin({check!r})\n"


def with_begin_lines(nb):
    """Copy of ``nb`` whose hidden-check cells start by announcing their cell id."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if is_hidden_check(cell):
            cell.source = BEGIN_LINE.format(check=cell.get("id")) + cell.source
    return nb


def hidden_checks(nb) -> list[tuple[str, float, float, float]]:
    """``(cell id, points, rtol, atol)`` of every hidden check of ``nb``."""
    from .verdict import DEFAULT_ATOL, DEFAULT_RTOL

    out = []
    for cell in nb.cells:
        if is_hidden_check(cell):
            m = cell.metadata
            out.append(
                (
                    cell.get("id"),
                    float(m.get("points", 1)),
                    float(m.get("rtol", DEFAULT_RTOL)),
                    float(m.get("atol", DEFAULT_ATOL)),
                )
            )
    return out


def execute_recording(nb, seed: str, cwd: Path, records: Path, *, timeout: int = 600):
    """Execute ``nb`` (begin lines added) with the secret ``seed``; records go to ``records``."""
    from nbclient import NotebookClient

    nb = with_begin_lines(strip_outputs(nb, keep_answer_keys=False))
    saved = {k: os.environ.get(k) for k in (SEED_VAR, OUT_VAR, "PGM_LAB_PROFILE")}
    os.environ.update({SEED_VAR: seed, OUT_VAR: str(records), "PGM_LAB_PROFILE": "smoke"})
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(cwd)}},
        ).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return read_records(records)


def selftest(path: str | os.PathLike) -> list[str]:
    """Problems found in the hidden checks of the chapter at ``path`` (printed as it goes)."""
    from .release import release_notebook

    path = Path(path)
    nb = read_notebook(path)
    checks = hidden_checks(nb)
    if not checks:
        return [f"{path}: no hidden-check cells"]
    student = release_notebook(nb, name=path.stem)
    with tempfile.TemporaryDirectory(prefix="pgm-lab-selftest-") as tmp:
        tmp = Path(tmp)
        key_a = execute_recording(nb, "selftest-a", path.parent.resolve(), tmp / "a.jsonl")
        key_b = execute_recording(nb, "selftest-b", path.parent.resolve(), tmp / "b.jsonl")
        copy_a = execute_recording(student, "selftest-a", path.parent.resolve(), tmp / "s.jsonl")
    problems = []
    for cid, points, rtol, atol in checks:
        labels = key_a.labels(cid)
        same_key = judge_check(cid, points, key_a, key_a, rtol=rtol, atol=atol)
        other_seed = judge_check(cid, points, key_a, key_b, rtol=rtol, atol=atol)
        unsolved = judge_check(cid, points, key_a, copy_a, rtol=rtol, atol=atol)
        print(f"{cid}: {points:g} pt, labels {labels}")
        print(
            f"   key vs itself {same_key.earned:g}; seeds differ on {other_seed.failed}; unsolved copy earns {unsolved.earned:g}"
        )
        if not labels:
            problems.append(f"{cid}: the key emitted nothing")
        if same_key.earned != points:
            problems.append(f"{cid}: the key does not match itself")
        if unsolved.earned > 0:
            problems.append(f"{cid}: the unsolved copy earns {unsolved.earned:g}")
        fixed = [lab for lab in labels if lab not in other_seed.failed]
        if fixed:
            print(f"   note: same value under both seeds: {fixed}")
    if key_a.tamper:
        problems.append(f"tampering reported for the key: {key_a.tamper}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pgm_lab.grading.selftest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("notebooks", nargs="+")
    args = parser.parse_args(argv)
    bad = 0
    for p in args.notebooks:
        problems = selftest(p)
        for line in problems:
            print("PROBLEM:", line)
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
