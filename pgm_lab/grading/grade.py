"""``pgm-lab grade``: a gradebook from submissions, the key and its hidden checks.

One grading run

1. draws a secret seed (never written anywhere a kernel can read, never reused);
2. runs the key with its solutions and hidden checks under that seed: the expected values
   (:func:`.prepare.prepare_key`); a key whose own hidden check fails stops the run;
3. for each submission: restores the checks (:func:`.prepare.prepare`), runs nbval with the
   kernel in a sandbox (:mod:`.sandbox`) under the same seed, reads the values its hidden
   checks emitted, and scores them against the key's (:mod:`.scoring`);
4. writes ``gradebook.csv``/``gradebook.html``, and ``graded/`` and ``logs/`` for the
   instructor only: they hold the hidden checks and the values emitted.

Without a sandbox (``sandbox=False``, ``--no-sandbox``) every row says so. See the
instructor guide (book/instructor_guide.md) for the workflow and the threat table.
"""

from __future__ import annotations

import math
import os
import queue
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ..notebooks import write_notebook
from .hidden import OUT_VAR, SEED_VAR
from .key import Key
from .nbval_run import RunResult, cell_reason
from .nbval_run import run_nbval as _run_nbval
from .prepare import Prepared, prepare, prepare_key
from .sandbox import (
    UID_BASE,
    Limits,
    SandboxConfig,
    SandboxError,
    read_only_paths,
    sandbox_problem,
    short_runtime_root,
)
from .scoring import Row, empty_row, score
from .verdict import Records, read_records


class KeyRunError(RuntimeError):
    """The key's own hidden checks did not run: nothing can be graded against it."""


@dataclass
class Options:
    timeout: float
    cell_timeout: float
    memory_mb: int
    sandboxed: bool
    seed: str


def student_names(paths) -> list[str]:
    """File names without ``.ipynb``; repeated names get `` (2)``, `` (3)`` …"""
    names, seen = [], {}
    for p in paths:
        name = Path(p).name
        if name.lower().endswith(".ipynb"):
            name = name[: -len(".ipynb")]
        name = name or "(unnamed)"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        names.append(name)
    return names


def expand_submissions(items) -> list[Path]:
    """Files as given; a folder stands for the ``*.ipynb`` files inside it."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.glob("*.ipynb") if q.is_file()))
        else:
            out.append(p)
    return out


def safe_file_name(name: str) -> str:
    name = name.replace(os.sep, "_").replace("\0", "_")
    return "_" + name if name.startswith(".") else name


def _matplotlib_seed(folder: Path) -> str | None:
    """Build matplotlib's font cache once, to be copied into every sandbox (saves seconds each)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [sys.executable, "-c", "import matplotlib.font_manager"],
            env={**os.environ, "MPLCONFIGDIR": str(folder)},
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    os.chmod(folder, 0o755)
    for f in folder.iterdir():
        os.chmod(f, 0o644 if f.is_file() else 0o755)
    return str(folder)


class Runner:
    """Runs prepared notebooks (key or submissions), each in its own work and runtime folder."""

    def __init__(self, opts: Options, scratch_root: Path, jobs: int):
        self.opts = opts
        self.scratch_root = scratch_root
        self.runtime_root = short_runtime_root() if opts.sandboxed else None
        self.read_only = read_only_paths() if opts.sandboxed else []
        self.mpl_seed = _matplotlib_seed(self.runtime_root / "mpl") if self.runtime_root else None
        self.slots: queue.Queue[int] = queue.Queue()
        for slot in range(jobs):
            self.slots.put(slot)

    def run(self, nb, index: int, log_path: Path, copy_to: Path | None = None) -> tuple[RunResult, Records]:
        work = self.scratch_root / f"{index:04d}"
        work.mkdir(parents=True, exist_ok=True)
        nb_file = work / "submission.ipynb"
        write_notebook(nb, nb_file)
        if copy_to is not None:
            shutil.copyfile(nb_file, copy_to)
        slot = self.slots.get()
        try:
            return self._run(nb_file, work, index, slot, log_path)
        finally:
            self.slots.put(slot)

    def _run(self, nb_file: Path, work: Path, index: int, slot: int, log_path: Path):
        cfg = None
        if self.runtime_root is not None:
            runtime = self.runtime_root / f"{index:04d}"
            runtime.mkdir(mode=0o700)
            cfg = SandboxConfig(
                str(runtime),
                self.read_only,
                Limits(memory_mb=self.opts.memory_mb, cpu_s=int(self.opts.timeout) + 60),
                uid=UID_BASE + slot if os.getuid() == 0 else None,
                mpl_seed=self.mpl_seed,
            )
            records = runtime / "records.jsonl"
        else:
            records = work / "records.jsonl"
        env = {SEED_VAR: self.opts.seed, OUT_VAR: str(records)}
        try:
            run = _run_nbval(
                nb_file,
                timeout=self.opts.timeout,
                cell_timeout=self.opts.cell_timeout,
                memory_mb=self.opts.memory_mb,
                log_path=log_path,
                shared_dir=self.scratch_root,
                sandbox=cfg,
                env=env,
            )
            return run, read_records(records)
        finally:
            if cfg is not None:
                shutil.rmtree(cfg.runtime, ignore_errors=True)

    def close(self) -> None:
        if self.runtime_root is not None:
            shutil.rmtree(self.runtime_root, ignore_errors=True)


def _run_key(key: Key, runner: Runner, out_dir: Path) -> Records:
    prep = prepare_key(key)
    log = out_dir / "logs" / "_key.log"
    run, records = runner.run(prep.nb, 0, log)
    if run.status != "ok":
        raise KeyRunError(f"the key did not run to the end ({run.status}); see {log}")
    for check in key.hidden_checks:
        n = prep.cell_number[check.cell_id]
        outcome = run.cells.get(n)
        if outcome is None or outcome.status != "passed":
            why = cell_reason(n, outcome, run.cells) if outcome else "not run"
            raise KeyRunError(
                f"the key's hidden check {check.cell_id} ({check.exercise}) failed: {why}; see {log}"
            )
        if not records.labels(check.cell_id):
            raise KeyRunError(f"the key's hidden check {check.cell_id} ({check.exercise}) emitted no value")
    return records


def _validate(timeout, cell_timeout, jobs, memory_mb) -> float:
    if not (isinstance(jobs, int) and jobs >= 1):
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    cell_timeout = min(timeout, 300.0) if cell_timeout is None else float(cell_timeout)
    if not cell_timeout > 0:
        raise ValueError(f"cell_timeout must be positive, got {cell_timeout!r}")
    if memory_mb < 0 or (memory_mb and memory_mb < 256):
        raise ValueError(f"memory limit must be 0 (none) or at least 256 MB, got {memory_mb}")
    return cell_timeout


def grade(
    key_path: str | os.PathLike,
    submissions,
    out_dir: str | os.PathLike,
    *,
    timeout: float = 600,
    cell_timeout: float | None = None,
    jobs: int = 1,
    memory_mb: int = 4096,
    scratch: str | os.PathLike | None = None,
    progress=None,
    sandbox: bool = True,
):
    """Grade ``submissions`` against the key; write ``out_dir/gradebook.{csv,html}``.

    Returns the :class:`~pgm_lab.grading.report.Gradebook`. ``timeout`` is the wall-clock
    limit of one submission (s), ``cell_timeout`` nbval's per-cell limit (default
    ``min(timeout, 300)``), ``memory_mb`` the address-space limit (0: none), ``jobs`` how many
    submissions run at once, ``sandbox`` whether kernels run in bubblewrap (when it cannot
    start, :class:`~pgm_lab.grading.sandbox.SandboxError` says how to install it). ``out_dir``
    also receives ``graded/NAME.ipynb`` and ``logs/NAME.log``: instructor-only, they hold
    the hidden checks.
    """
    from .report import Gradebook

    cell_timeout = _validate(timeout, cell_timeout, jobs, memory_mb)
    key = Key.load(key_path)
    say = progress or (lambda msg: None)
    if not key.hidden_checks:
        say(f"warning: {key.path} has no hidden checks: no exercise can earn points")
    paths = expand_submissions(submissions)
    if not paths:
        raise ValueError("no submissions to grade")
    if sandbox and (problem := sandbox_problem()):
        raise SandboxError(problem)
    names = student_names(paths)
    out_dir = Path(out_dir)
    for sub in ("graded", "logs"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    own_scratch = scratch is None
    scratch_root = Path(tempfile.mkdtemp(prefix="pgm-lab-grade-")) if own_scratch else Path(scratch)
    scratch_root.mkdir(parents=True, exist_ok=True)
    opts = Options(timeout, cell_timeout, memory_mb, sandbox, secrets.token_hex(16))
    runner = Runner(opts, scratch_root, jobs)
    start = time.monotonic()
    try:
        expected = _run_key(key, runner, out_dir) if key.hidden_checks else Records()
        rows = _grade_all(key, paths, names, runner, expected, out_dir, say)
    finally:
        runner.close()
        if own_scratch:
            shutil.rmtree(scratch_root, ignore_errors=True)
    options = {
        "timeout_s": timeout,
        "cell_timeout_s": cell_timeout,
        "memory_mb": memory_mb,
        "jobs": jobs,
        "sandbox": "bubblewrap" if sandbox else "none (--no-sandbox)",
        "seconds": round(time.monotonic() - start, 1),
    }
    book = Gradebook(key=key, rows=sorted(rows, key=lambda r: r.student.casefold()), options=options)
    book.write(out_dir)
    return book


def _grade_all(key, paths, names, runner: Runner, expected: Records, out_dir: Path, say) -> list[Row]:
    lock = threading.Lock()
    done = [0]

    def one(i: int, path: Path, name: str) -> Row:
        try:
            prep: Prepared = prepare(key, path)
            run = got = None
            if prep.problem is None:
                stem = safe_file_name(name)
                run, got = runner.run(
                    prep.nb,
                    i + 1,
                    out_dir / "logs" / f"{stem}.log",
                    copy_to=out_dir / "graded" / f"{stem}.ipynb",
                )
            row = score(
                key,
                name,
                prep,
                run,
                expected=expected,
                got=got,
                timeout=runner.opts.timeout,
                sandboxed=runner.opts.sandboxed,
            )
        except Exception as exc:  # one bad submission never stops the gradebook
            row = empty_row(key, name, [f"grader error: {type(exc).__name__}: {str(exc)[:150]}"])
        row.source = str(path)
        with lock:
            done[0] += 1
            say(f"[{done[0]}/{len(paths)}] {name}: {row.total:g}/{row.max:g}")
        return row

    with ThreadPoolExecutor(max_workers=runner.slots.qsize()) as pool:
        futures = [pool.submit(one, i, p, n) for i, (p, n) in enumerate(zip(paths, names))]
        return [f.result() for f in as_completed(futures)]
