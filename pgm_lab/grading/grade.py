"""Grade student notebooks against a chapter's answer keys with nbval.

An exercise is an answer-key cell of the reference notebook (the *key*); it is worth
``metadata["points"]`` (default 1), earned when nbval runs the cell without error and its
output equals the key's stored output. For every submission the grader

1. reads a copy (the submission file is never written) and restores each answer-key cell,
   source, stored output and metadata, from the key, matching cells by id, then by identical
   source, then by order; an edited check is noted ("check cell edited"), a deleted one is
   put back after the cell that precedes it in the key;
2. runs ``python -m pytest --nbval-lax --nbval-current-env`` on it in a scratch directory, in
   its own process session, with ``PGM_LAB_PROFILE=smoke``, a per-cell time-out
   (``--nbval-cell-timeout``), a wall-clock limit on the whole run (the process tree, kernel
   included, is killed when it is exceeded) and an address-space limit (``RLIMIT_AS`` set
   before ``exec``; the kernel inherits it);
3. reads nbval's per-cell results from the junit XML file into per-exercise points and a
   reason for each lost point.

See the instructor guide (book/instructor_guide.md) for the workflow and its limits.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..notebooks import ANSWER_KEY_TAG, NotebookError, is_answer_key, read_notebook, write_notebook
from .nbval_guard import KERNEL_DIED
from .release import check_key

MAX_NOTEBOOK_BYTES = 100 * 2**20
MAX_OUTPUT_FILE_BYTES = 2**30
RUN_TOKEN_VAR = "PGM_LAB_GRADING_RUN"
_ENV_KEEP = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "USER",
    "LOGNAME",
    "VIRTUAL_ENV",
    "PYTHONPATH",
)
_ANSI = re.compile(r"(?:\x1b|#x1B)\[[0-9;]*[A-Za-z]")
_EXC_LINE = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration)\w*)(?::\s?(.*))?$"
)
_TB_HEADER = re.compile(r"^(\S+)\s+Traceback \(most recent call last\)")
_OUTPUTS_DIFFER = re.compile(r"^Cell \d+: Cell outputs differ", re.MULTILINE)
_TIMEOUT = re.compile(r"^Cell \d+: Timeout of .* exceeded", re.MULTILINE)
_DIED = re.compile(r"^pytest plugin exception: (kernel died.*)$", re.MULTILINE)
_DEAD_AT_START = re.compile(r"^pytest plugin exception: Kernel dead on test start", re.MULTILINE)
_MEMORY_WORDS = (
    "MemoryError",
    "Unable to allocate",
    "can't allocate memory",
    "Cannot allocate memory",
    "bad_alloc",
)


# --------------------------------------------------------------------------- the key


@dataclass(frozen=True)
class Exercise:
    """One graded check: the ``number``-th answer-key cell of the key."""

    name: str
    cell_id: str | None
    key_index: int
    points: float
    source: str

    @property
    def summary(self) -> str:
        lines = [ln for ln in self.source.splitlines()[1:] if ln.strip() and not ln.lstrip().startswith("#")]
        return lines[0].strip() if lines else self.name


@dataclass
class Key:
    """A reference notebook: its exercises and what identifies its chapter."""

    path: Path
    chapter: str
    title: str | None
    nb: object
    exercises: list[Exercise]

    @property
    def max_points(self) -> float:
        return float(sum(ex.points for ex in self.exercises))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Key:
        path = Path(path)
        nb = read_notebook(path)
        if check_key(nb, name=str(path)) == 0:
            raise ValueError(f"{path}: no answer-key cells, nothing to grade")
        exercises = []
        for i, cell in enumerate(nb.cells):
            if is_answer_key(cell):
                exercises.append(
                    Exercise(
                        name=f"ex{len(exercises) + 1}",
                        cell_id=cell.get("id"),
                        key_index=i,
                        points=float(cell.metadata.get("points", 1)),
                        source=cell.source,
                    )
                )
        return cls(path, path.stem, notebook_title(nb), nb, exercises)


def notebook_title(nb) -> str | None:
    """The first ``# Title`` line of the first markdown cell that has one."""
    for cell in nb.cells:
        if cell.get("cell_type") != "markdown":
            continue
        for line in str(cell.get("source", "")).splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return None


def _tags(cell) -> list[str]:
    meta = cell.get("metadata")
    found = meta.get("tags") if isinstance(meta, dict) else None
    return [t for t in found if isinstance(t, str)] if isinstance(found, list) else []


def _norm_source(source) -> str:
    if isinstance(source, list):
        source = "".join(source)
    return "\n".join(line.rstrip() for line in str(source).strip().splitlines())


def normalise_outputs(outputs) -> dict[str, list]:
    """Outputs as nbval compares them: streams merged per name, one list per MIME type.

    Images, widget views, metadata and execution counts are left out (nbval skips them).
    """
    skip = {"image/png", "image/jpeg", "application/vnd.jupyter.widget-view+json"}
    streams: dict[str, str] = {}
    out: dict[str, list] = {}
    for o in outputs:
        kind = o.get("output_type")
        if kind == "stream":
            text = o.get("text", "")
            streams[o.get("name", "stdout")] = streams.get(o.get("name", "stdout"), "") + (
                "".join(text) if isinstance(text, list) else text
            )
        elif kind in ("execute_result", "display_data"):
            for mime, value in o.get("data", {}).items():
                if mime not in skip:
                    out.setdefault(mime, []).append("".join(value) if isinstance(value, list) else value)
        elif kind == "error":
            out.setdefault("error", []).append(f"{o.get('ename')}: {o.get('evalue')}")
    for name, text in streams.items():
        text = re.sub(r"^.*\r(?=[^\n])", "", text, flags=re.MULTILINE)
        out[name] = [text]
    return out


# --------------------------------------------------------------------------- preparing a submission


@dataclass
class Prepared:
    """The notebook that is run for a submission, or why it is not run."""

    nb: object | None = None
    notes: list[str] = field(default_factory=list)
    cell_number: dict[str, int] = field(default_factory=dict)  # exercise -> nbval's "Cell N"
    problem: str | None = None


def _match_exercises(key: Key, cells) -> tuple[dict[str, int], int]:
    """Map exercise names to submission cell indices: by id, by identical source, by order."""
    id_pos: dict[str, int] = {}
    for i, c in enumerate(cells):
        cid = c.get("id")
        if cid and cid not in id_pos:
            id_pos[cid] = i
    match: dict[str, int] = {}
    used: set[int] = set()
    for ex in key.exercises:
        i = id_pos.get(ex.cell_id) if ex.cell_id else None
        if i is not None and i not in used:
            match[ex.name] = i
            used.add(i)
    for ex in key.exercises:
        if ex.name in match:
            continue
        want = _norm_source(ex.source)
        for i, c in enumerate(cells):
            if i not in used and c.get("cell_type") == "code" and _norm_source(c.get("source", "")) == want:
                match[ex.name] = i
                used.add(i)
                break
    recognised = len(match)
    # By order: an unmatched answer-key cell of the submission that sits between the cells
    # matched to the neighbouring exercises.
    for k, ex in enumerate(key.exercises):
        if ex.name in match:
            continue
        lo = max((match[e.name] for e in key.exercises[:k] if e.name in match), default=-1)
        hi = min((match[e.name] for e in key.exercises[k + 1 :] if e.name in match), default=len(cells))
        for i in range(lo + 1, hi):
            if i not in used and cells[i].get("cell_type") == "code" and ANSWER_KEY_TAG in _tags(cells[i]):
                match[ex.name] = i
                used.add(i)
                break
    return match, recognised


def prepare(key: Key, path: str | os.PathLike) -> Prepared:
    """Read a submission and build the notebook to grade (answer keys restored)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return Prepared(problem="not a notebook (no such file)")
    except OSError as exc:
        return Prepared(problem=f"not a notebook (cannot read it: {exc.strerror})")
    if size > MAX_NOTEBOOK_BYTES:
        return Prepared(problem=f"not a notebook (file of {size / 2**20:.0f} MB, over the 100 MB limit)")
    try:
        sub = read_notebook(path)
    except NotebookError as exc:
        msg = str(exc).removeprefix(f"{path}: ")
        return Prepared(problem=msg if msg.startswith("not a notebook") else f"not a notebook ({msg})")
    cells = [
        c for c in sub.cells if isinstance(c, dict) and c.get("cell_type") in ("code", "markdown", "raw")
    ]
    match, recognised = _match_exercises(key, cells)
    if recognised == 0:
        chapter = (sub.metadata.get("pgm_lab") or {}).get("chapter")
        title = notebook_title(sub)
        if chapter and chapter != key.chapter:
            return Prepared(problem=f"wrong chapter ({chapter}, expected {key.chapter})")
        if title and key.title and title != key.title:
            return Prepared(problem=f"wrong chapter ({title!r}, expected {key.title!r})")

    prep = Prepared()
    key_cells = key.nb.cells
    edited, missing = [], []
    restored: dict[int, str] = {}  # id(cell) -> exercise name
    for ex in key.exercises:
        kcell = copy.deepcopy(key_cells[ex.key_index])
        if ex.name in match:
            i = match[ex.name]
            old = cells[i]
            if _norm_source(old.get("source", "")) != _norm_source(ex.source) or set(_tags(old)) != set(
                _tags(kcell)
            ):
                edited.append(ex.name)
            cells[i] = kcell
        else:
            missing.append(ex.name)
            continue
        restored[id(kcell)] = ex.name
    # Deleted checks go back after the cell that precedes them in the key (or at the end).
    for ex in key.exercises:
        if ex.name not in missing:
            continue
        kcell = copy.deepcopy(key_cells[ex.key_index])
        pos = len(cells)
        for j in range(ex.key_index - 1, -1, -1):
            kid = key_cells[j].get("id")
            hit = next((i for i, c in enumerate(cells) if kid and c.get("id") == kid), None)
            if hit is not None:
                pos = hit + 1
                break
        cells.insert(pos, kcell)
        restored[id(kcell)] = ex.name

    # Cells of the key found by id: out of order? missing?
    key_ids = [c.get("id") for c in key_cells if c.get("id")]
    sub_pos = {}
    for i, c in enumerate(cells):
        if c.get("id") and c.get("id") not in sub_pos:
            sub_pos[c.get("id")] = i
    seq = [sub_pos[k] for k in key_ids if k in sub_pos]
    if any(b < a for a, b in itertools.pairwise(seq)):
        prep.notes.append("cells reordered")
    key_code_ids = [c.get("id") for c in key_cells if c.get("id") and c.get("cell_type") == "code"]
    gone = [k for k in key_code_ids if k not in sub_pos]
    if gone and len(gone) <= len(key_code_ids) // 2:
        prep.notes.append(f"{len(gone)} code cell{'s' if len(gone) > 1 else ''} of the chapter missing")
    if edited:
        prep.notes.append(f"check cell edited: {', '.join(edited)} (restored from the key)")
    if missing:
        prep.notes.append(f"check cell missing: {', '.join(missing)} (restored from the key)")

    # Only restored answer-key cells keep outputs; student cells are cleaned.
    seen_ids: set[str] = set()
    code_number = 0
    for i, cell in enumerate(cells):
        cid = cell.get("id")
        if not cid or cid in seen_ids:
            cell["id"] = f"pgm-lab-{i}"
        seen_ids.add(cell["id"])
        if id(cell) in restored:
            prep.cell_number[restored[id(cell)]] = code_number
        elif cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            if not isinstance(cell.get("metadata"), dict):
                cell["metadata"] = {}
            if ANSWER_KEY_TAG in _tags(cell):
                cell["metadata"]["tags"] = [t for t in _tags(cell) if t != ANSWER_KEY_TAG]
        if cell.get("cell_type") == "code":
            code_number += 1
    sub.cells = cells
    sub.nbformat, sub.nbformat_minor = 4, max(5, int(sub.get("nbformat_minor", 5)))
    sub.metadata.pop("widgets", None)
    prep.nb = sub
    return prep


# --------------------------------------------------------------------------- running nbval


@dataclass
class CellOutcome:
    status: str  # passed, failed, error, skipped
    text: str = ""


@dataclass
class RunResult:
    cells: dict[int, CellOutcome]
    status: str  # ok, timeout, crashed
    seconds: float
    returncode: int | None = None


def _limits(memory_mb: int):
    """``preexec_fn`` for the pytest process: address space, file size, no core dumps."""

    def clamp(res, value):
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        return (value, value)

    wanted = []
    if memory_mb:
        wanted.append((resource.RLIMIT_AS, clamp(resource.RLIMIT_AS, int(memory_mb) * 2**20)))
    wanted.append((resource.RLIMIT_CORE, clamp(resource.RLIMIT_CORE, 0)))
    wanted.append((resource.RLIMIT_FSIZE, clamp(resource.RLIMIT_FSIZE, MAX_OUTPUT_FILE_BYTES)))

    def apply():  # runs in the child between fork and exec: no imports, no locks
        for res, lim in wanted:
            resource.setrlimit(res, lim)

    return apply


def _environment(work: Path, shared: Path, token: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    home = work / "home"
    for sub in ("home", "tmp", "cache", "ipython", "jupyter", "runtime"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "HOME": str(home),
            "TMPDIR": str(work / "tmp"),
            "XDG_CACHE_HOME": str(work / "cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "IPYTHONDIR": str(work / "ipython"),
            "JUPYTER_CONFIG_DIR": str(work / "jupyter"),
            "JUPYTER_DATA_DIR": str(work / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "MPLCONFIGDIR": str(shared / "matplotlib"),
            "MPLBACKEND": "Agg",
            "PGM_LAB_PROFILE": "smoke",
            "PGM_LAB_DEVICE": "cpu",
            "PGM_LAB_CACHE": str(work / "cache" / "pgm_lab"),
            "CUDA_VISIBLE_DEVICES": "",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            RUN_TOKEN_VAR: token,
        }
    )
    return env


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants (the kernel runs in a session of its own)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _sweep(token: str) -> int:
    """Kill leftover processes of one run (found by their environment); returns how many."""
    import psutil

    uid, killed = os.getuid(), 0
    for p in psutil.process_iter(["uids"]):
        try:
            if p.info["uids"] is None or p.info["uids"].real != uid or p.pid == os.getpid():
                continue
            if p.environ().get(RUN_TOKEN_VAR) == token:
                p.kill()
                killed += 1
        except (psutil.Error, OSError):
            continue
    return killed


def read_junit(path: str | os.PathLike) -> dict[int, CellOutcome]:
    """nbval's per-cell results (``Cell N`` test cases) from a junit XML file."""
    root = ET.parse(path).getroot()
    cells: dict[int, CellOutcome] = {}
    for case in root.iter("testcase"):
        m = re.fullmatch(r"Cell (\d+)", case.get("name", ""))
        if not m:
            continue
        n = int(m.group(1))
        outcome = CellOutcome("passed")
        for child in case:
            if child.tag == "error" and child.get("message", "").startswith("failed on teardown"):
                continue  # the cell itself passed; nbval's kernel shutdown is not the student's
            if child.tag in ("failure", "error", "skipped"):
                text = _ANSI.sub("", (child.text or "") or child.get("message", ""))
                status = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                if child.tag == "skipped":
                    text = child.get("message", "") or text
                if outcome.status == "passed" or (outcome.status == "skipped" and status != "skipped"):
                    outcome = CellOutcome(status, text)
        cells[n] = outcome
    return cells


def run_nbval(
    nb_path: str | os.PathLike,
    *,
    timeout: float = 600,
    cell_timeout: float = 300,
    memory_mb: int = 4096,
    log_path: str | os.PathLike | None = None,
    shared_dir: str | os.PathLike | None = None,
) -> RunResult:
    """Run nbval on ``nb_path`` (inside its folder, the scratch directory) under the limits."""
    nb_path = Path(nb_path).resolve()
    work = nb_path.parent
    shared = Path(shared_dir) if shared_dir else work
    (shared / "matplotlib").mkdir(parents=True, exist_ok=True)
    (work / "pytest.ini").write_text("[pytest]\naddopts =\n", encoding="utf-8")
    xml = work / "nbval-junit.xml"
    xml.unlink(missing_ok=True)
    token = uuid.uuid4().hex
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "nbval.plugin",
        "-p",
        "pgm_lab.grading.nbval_guard",
        "-p",
        "no:cacheprovider",
        "-c",
        "pytest.ini",
        "--rootdir",
        ".",
        "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-cell-timeout={cell_timeout:g}",
        f"--junitxml={xml.name}",
        "-q",
        "--color=no",
        nb_path.name,
    ]
    log = open(log_path or work / "pytest.log", "wb")
    start = time.monotonic()
    status, code = "ok", None
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            env=_environment(work, shared, token),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_limits(memory_mb),
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = "timeout"
            _kill_tree(proc.pid)
            proc.wait()
    finally:
        log.close()
        _sweep(token)
    seconds = time.monotonic() - start
    if status == "timeout":
        return RunResult({}, status, seconds, None)
    try:
        cells = read_junit(xml)
    except (OSError, ET.ParseError):
        return RunResult({}, "crashed", seconds, code)
    return RunResult(cells, status, seconds, code)


# --------------------------------------------------------------------------- scoring


def _exception_line(text: str) -> str | None:
    """``Name: message`` of the exception in an IPython traceback (the last one shown)."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    names = [m.group(1) for ln in lines if (m := _TB_HEADER.match(ln))]
    for line in reversed(lines):
        m = _EXC_LINE.match(line)
        named = names and (line == names[-1] or line.startswith(names[-1] + ":"))
        if named or m:
            name, _, msg = line.partition(":")
            return f"{name}: {msg.strip()}" if msg.strip() else name
    return None


def _shorten(text: str, n: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def cell_reason(n: int, outcome: CellOutcome, cells: dict[int, CellOutcome]) -> str:
    """Why nbval's cell ``n`` did not pass, in the gradebook's words."""
    text = outcome.text

    def first(pred):
        return next((k for k in sorted(cells) if cells[k].status != "passed" and pred(cells[k].text)), None)

    def timeout_cell():
        return first(lambda t: bool(_TIMEOUT.search(t)))

    if outcome.status == "skipped":
        t = timeout_cell()
        return f"timed out in cell {t}" if t is not None else "skipped"
    if _OUTPUTS_DIFFER.search(text):
        return "output differs"
    if _TIMEOUT.search(text):
        return f"timed out in cell {n}"
    died = _DIED.search(text)
    if died:
        return f"kernel died in cell {n}" + died.group(1).strip()[len(KERNEL_DIED) :]
    if _DEAD_AT_START.search(text):
        d = first(lambda t: bool(_DIED.search(t)))
        if d is not None and d != n:
            return cell_reason(d, cells[d], cells)
        t = timeout_cell()
        return f"timed out in cell {t}" if t is not None else "kernel died"
    exc = _exception_line(text)
    if outcome.status == "error" and "Notebook cell execution failed" not in text:
        # a failure outside the cell: nbval could not start the kernel, ...
        what = exc or _shorten(text.strip().splitlines()[-1] if text.strip() else "unknown error", 100)
        if any(w in text for w in _MEMORY_WORDS):
            return "memory limit exceeded (the kernel could not start)"
        return f"kernel failed to start: {_shorten(what, 100)}"
    if exc and any(w in exc for w in _MEMORY_WORDS):
        return f"memory limit exceeded in cell {n}"
    if exc:
        return f"error in cell {n}: {_shorten(exc, 100)}"
    return f"error in cell {n}"


@dataclass
class Row:
    """One gradebook line."""

    student: str
    points: dict[str, float]
    total: float
    max: float
    notes: list[str]
    source: str = ""
    seconds: float = 0.0

    @property
    def notes_text(self) -> str:
        return "; ".join(self.notes)


def score(key: Key, student: str, prep: Prepared, run: RunResult | None, *, timeout: float = 0) -> Row:
    """Points per exercise and the reasons for every point lost."""
    points = dict.fromkeys((ex.name for ex in key.exercises), 0.0)
    notes = list(prep.notes)
    if prep.problem is not None:
        return Row(student, points, 0.0, key.max_points, [prep.problem, *notes])
    assert run is not None
    if run.status == "timeout":
        notes.append(f"timed out: the notebook ran over the {timeout:g} s limit")
        return Row(student, points, 0.0, key.max_points, notes, seconds=run.seconds)
    if run.status == "crashed":
        notes.append(
            f"grader error: pytest exited with code {run.returncode} and wrote no results (see the log)"
        )
        return Row(student, points, 0.0, key.max_points, notes, seconds=run.seconds)
    reasons: dict[str, list[str]] = {}
    order = sorted(prep.cell_number.items(), key=lambda kv: kv[1])
    for k, (name, n) in enumerate(order):
        outcome = run.cells.get(n)
        if outcome is None:
            reason = "not run"
        elif outcome.status == "passed":
            points[name] = next(ex.points for ex in key.exercises if ex.name == name)
            continue
        else:
            reason = cell_reason(n, outcome, run.cells)
            if (
                not reason.startswith(("output differs", "timed out", "kernel died"))
                and outcome.status != "skipped"
            ):
                # The check raised: report the first failing cell of the exercise, the likely cause.
                lo = order[k - 1][1] if k else -1
                for m in range(lo + 1, n):
                    if m in run.cells and run.cells[m].status in ("failed", "error"):
                        reason = cell_reason(m, run.cells[m], run.cells)
                        break
        reasons.setdefault(reason, []).append(name)
    for reason, names in reasons.items():
        notes.append(f"{', '.join(names)}: {reason}")
    total = float(sum(points.values()))
    return Row(student, points, total, key.max_points, notes, seconds=run.seconds)


# --------------------------------------------------------------------------- the gradebook run


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


def _safe_file_name(name: str) -> str:
    name = name.replace(os.sep, "_").replace("\0", "_")
    return "_" + name if name.startswith(".") else name


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
):
    """Grade ``submissions`` against the key; write ``out_dir/gradebook.{csv,html}``.

    Returns the :class:`~pgm_lab.grading.report.Gradebook`. ``timeout`` is the wall-clock
    limit of one submission (s), ``cell_timeout`` nbval's per-cell limit (default
    ``min(timeout, 300)``), ``memory_mb`` the address-space limit (0: none), ``jobs`` how many
    submissions run at once. ``out_dir`` also receives ``graded/NAME.ipynb`` (the notebook as
    run) and ``logs/NAME.log`` (pytest's report) for every submission.
    """
    from .report import Gradebook

    if not (isinstance(jobs, int) and jobs >= 1):
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    cell_timeout = min(timeout, 300.0) if cell_timeout is None else float(cell_timeout)
    if not cell_timeout > 0:
        raise ValueError(f"cell_timeout must be positive, got {cell_timeout!r}")
    if memory_mb < 0 or (memory_mb and memory_mb < 256):
        raise ValueError(f"memory limit must be 0 (none) or at least 256 MB, got {memory_mb}")
    key = Key.load(key_path)
    paths = expand_submissions(submissions)
    if not paths:
        raise ValueError("no submissions to grade")
    names = student_names(paths)
    out_dir = Path(out_dir)
    (out_dir / "graded").mkdir(parents=True, exist_ok=True)
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    own_scratch = scratch is None
    scratch_root = Path(tempfile.mkdtemp(prefix="pgm-lab-grade-")) if own_scratch else Path(scratch)
    scratch_root.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    done = [0]
    start = time.monotonic()

    def one(i: int, path: Path, name: str) -> Row:
        try:
            prep = prepare(key, path)
            run = None
            if prep.problem is None:
                work = scratch_root / f"{i:04d}"
                work.mkdir(parents=True, exist_ok=True)
                nb_file = work / "submission.ipynb"
                write_notebook(prep.nb, nb_file)
                shutil.copyfile(nb_file, out_dir / "graded" / f"{_safe_file_name(name)}.ipynb")
                run = run_nbval(
                    nb_file,
                    timeout=timeout,
                    cell_timeout=cell_timeout,
                    memory_mb=memory_mb,
                    log_path=out_dir / "logs" / f"{_safe_file_name(name)}.log",
                    shared_dir=scratch_root,
                )
                if own_scratch:
                    shutil.rmtree(work, ignore_errors=True)
            row = score(key, name, prep, run, timeout=timeout)
        except Exception as exc:  # one bad submission never stops the gradebook
            row = Row(name, dict.fromkeys((e.name for e in key.exercises), 0.0), 0.0, key.max_points, [])
            row.notes.append(f"grader error: {type(exc).__name__}: {_shorten(str(exc), 150)}")
        row.source = str(path)
        with lock:
            done[0] += 1
            if progress is not None:
                progress(f"[{done[0]}/{len(paths)}] {name}: {row.total:g}/{row.max:g}")
        return row

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, i, p, n) for i, (p, n) in enumerate(zip(paths, names))]
            rows = [f.result() for f in as_completed(futures)]
    finally:
        if own_scratch:
            shutil.rmtree(scratch_root, ignore_errors=True)
    book = Gradebook(
        key=key,
        rows=sorted(rows, key=lambda r: r.student.casefold()),
        options={
            "timeout_s": timeout,
            "cell_timeout_s": cell_timeout,
            "memory_mb": memory_mb,
            "jobs": jobs,
            "seconds": round(time.monotonic() - start, 1),
        },
    )
    book.write(out_dir)
    return book
