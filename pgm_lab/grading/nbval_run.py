"""Running nbval on a prepared notebook, and reading its per-cell results.

``python -m pytest --nbval-lax`` runs in its own process session in a work folder that the
kernel cannot see, with ``PGM_LAB_PROFILE=smoke``, a per-cell time-out
(``--nbval-cell-timeout``) and a wall-clock limit on the whole run (the process tree is
killed when it is exceeded). With a sandbox (:mod:`.sandbox`) nbval starts the kernel
through a per-run kernelspec (``--nbval-kernel-name``) and the limits are set inside the
sandbox; without one (``--no-sandbox``) the kernel is nbval's current environment and the
limits are set on pytest before ``exec`` (the kernel inherits them). nbval's per-cell results
are read from its junit XML file.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .nbval_guard import KERNEL_DIED
from .sandbox import SandboxConfig, write_kernelspec

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


def _pytest_command(nb_name: str, xml_name: str, cell_timeout: float, kernel: str | None) -> list[str]:
    kernel_args = [f"--nbval-kernel-name={kernel}"] if kernel else ["--nbval-current-env"]
    return [
        sys.executable,
        *("-m", "pytest", "-p", "nbval.plugin", "-p", "pgm_lab.grading.nbval_guard"),
        *("-p", "no:cacheprovider", "-c", "pytest.ini", "--rootdir", "."),
        "--nbval-lax",
        *kernel_args,
        f"--nbval-cell-timeout={cell_timeout:g}",
        f"--junitxml={xml_name}",
        *("-q", "--color=no", nb_name),
    ]


def run_nbval(
    nb_path: str | os.PathLike,
    *,
    timeout: float = 600,
    cell_timeout: float = 300,
    memory_mb: int = 4096,
    log_path: str | os.PathLike | None = None,
    shared_dir: str | os.PathLike | None = None,
    sandbox: SandboxConfig | None = None,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run nbval on ``nb_path`` (inside its folder, which the kernel never sees) under the limits.

    With ``sandbox`` the kernel starts in it (its limits come from ``sandbox.limits``);
    without, the kernel is pytest's own environment, limited to ``memory_mb``. ``env`` is
    added to the environment of pytest and so of the kernel (the hidden-check seed, …).
    """
    nb_path = Path(nb_path).resolve()
    work = nb_path.parent
    shared = Path(shared_dir) if shared_dir else work
    (shared / "matplotlib").mkdir(parents=True, exist_ok=True)
    (work / "pytest.ini").write_text("[pytest]\naddopts =\n", encoding="utf-8")
    xml = work / "nbval-junit.xml"
    xml.unlink(missing_ok=True)
    token = uuid.uuid4().hex
    run_env = {**_environment(work, shared, token), **(env or {})}
    kernel = None
    if sandbox is not None:
        config = work / "sandbox.json"
        sandbox.save(config)
        kernel = write_kernelspec(work / "kernelspec", config)
        run_env["JUPYTER_PATH"] = str(work / "kernelspec")
        run_env["JUPYTER_RUNTIME_DIR"] = sandbox.runtime
    cmd = _pytest_command(nb_path.name, xml.name, cell_timeout, kernel)
    log = open(log_path or work / "pytest.log", "wb")
    start = time.monotonic()
    status, code = "ok", None
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_limits(0 if sandbox is not None else memory_mb),
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
    if outcome.status == "skipped":
        return _timed_out_or(cells, "skipped")
    if _OUTPUTS_DIFFER.search(text):
        return "output differs"
    if _TIMEOUT.search(text):
        return f"timed out in cell {n}"
    died = _DIED.search(text)
    if died:
        return f"kernel died in cell {n}" + died.group(1).strip()[len(KERNEL_DIED) :]
    if _DEAD_AT_START.search(text):
        return _dead_kernel_reason(n, cells)
    return _error_reason(n, outcome)


def _first_failed(cells: dict[int, CellOutcome], pattern: re.Pattern) -> int | None:
    """The first cell (by number) that did not pass and whose text matches ``pattern``."""
    return next(
        (k for k in sorted(cells) if cells[k].status != "passed" and pattern.search(cells[k].text)), None
    )


def _timed_out_or(cells: dict[int, CellOutcome], otherwise: str) -> str:
    """``timed out in cell T`` for the first cell that timed out, else ``otherwise``."""
    t = _first_failed(cells, _TIMEOUT)
    return f"timed out in cell {t}" if t is not None else otherwise


def _dead_kernel_reason(n: int, cells: dict[int, CellOutcome]) -> str:
    """Cell ``n`` found the kernel dead: blame the cell where it died, or a timeout."""
    d = _first_failed(cells, _DIED)
    if d is not None and d != n:
        return cell_reason(d, cells[d], cells)
    return _timed_out_or(cells, "kernel died")


def _error_reason(n: int, outcome: CellOutcome) -> str:
    """An exception in cell ``n`` (memory errors named as such), or a kernel that never started."""
    text = outcome.text
    exc = _exception_line(text)
    if outcome.status == "error" and "Notebook cell execution failed" not in text:
        return _start_failure_reason(text, exc)
    if exc and any(w in exc for w in _MEMORY_WORDS):
        return f"memory limit exceeded in cell {n}"
    if exc:
        return f"error in cell {n}: {_shorten(exc, 100)}"
    return f"error in cell {n}"


def _start_failure_reason(text: str, exc: str | None) -> str:
    """A failure outside the cell: nbval could not start the kernel, ..."""
    if any(w in text for w in _MEMORY_WORDS):
        return "memory limit exceeded (the kernel could not start)"
    what = exc or _shorten(text.strip().splitlines()[-1] if text.strip() else "unknown error", 100)
    return f"kernel failed to start: {_shorten(what, 100)}"
