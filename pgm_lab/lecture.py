"""Lecture mode: warm the checkpoint cache before class, and list what it holds.

Chapters 06-10 train models in their cells with :func:`pgm_lab.train.fit` (directly, or
through a recipe such as :func:`pgm_lab.conditional.train`; scoring samples trains the
evaluation classifier of :func:`pgm_lab.metrics.evaluation_classifier` on first use). Each
checkpoint's key includes the model's initial weights (see :func:`pgm_lab.train.cache_key`),
and those depend on every random draw a chapter made before building the model. So
``warm`` does not rebuild the models from a copy of the chapters' code: it runs each
chapter's own cells, in order, up to its last training cell, in a kernel like the one a
lecturer opens. The lecture then hits the same keys, and its training cells load in
seconds. ``pgm-lab warm`` and ``pgm-lab info`` are the command-line side; ``pgm-lab lab``
(``make lab``) starts JupyterLab for the lecture.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

#: the chapters' folder of this checkout (``pgm_lab`` is installed in editable mode)
CHAPTERS_DIR = Path(__file__).resolve().parents[1] / "chapters"

#: the functions through which a chapter trains (or loads) a cached model
RECIPES = {
    "fit": "pgm_lab.train.fit",
    "train": "pgm_lab.conditional.train",
    "train_all": "pgm_lab.conditional.train_all",
    "score_samples": "pgm_lab.metrics.score_samples (trains the evaluation classifier once)",
    "evaluation_classifier": "pgm_lab.metrics.evaluation_classifier",
}

#: per chapter: its notebook and the recipes its cells call (tests/test_lecture.py checks
#: this against the notebooks, so a new training call cannot go unwarmed)
REGISTRY: dict[str, tuple[str, tuple[str, ...]]] = {
    "06": ("06_autoregressive_models", ("fit", "score_samples")),
    "07": ("07_variational_autoencoders", ("fit", "score_samples")),
    "08": ("08_diffusion_models", ("fit", "score_samples")),
    "09": ("09_generative_adversarial_networks", ("fit", "score_samples")),
    "10": ("10_conditional_generative_models", ("fit", "train")),
}

# ``pl.train.fit(``, ``train.fit(`` or a bare ``fit(`` (scikit-learn's ``clf.fit(`` is not
# ours); ``cd.train("cvae")``, ``conditional.train_all(``, ``pl.metrics.score_samples(``
_CALL = re.compile(
    r"(?:(?<![\w.])|(?<=\btrain\.))(fit)\("
    r"|(?:(?<![\w.])|(?<=\bcd\.)|(?<=\bconditional\.))(train|train_all)\("
    r"|(?:(?<![\w.])|(?<=\bmetrics\.))(score_samples|evaluation_classifier)\("
)


def recipes_called(source: str) -> set[str]:
    """Names of :data:`RECIPES` that a cell's source calls."""
    return {next(g for g in m.groups() if g) for m in _CALL.finditer(source)}


def chapter_ids(chapters_dir: Path | None = None) -> list[str]:
    """Chapters whose cells train models: the keys of :data:`REGISTRY` whose notebook exists."""
    folder = Path(chapters_dir or CHAPTERS_DIR)
    return [c for c, (stem, _) in REGISTRY.items() if (folder / f"{stem}.ipynb").exists()]


def resolve_chapters(names, chapters_dir: Path | None = None) -> list[str]:
    """``["7", "08_diffusion_models"]`` -> ``["07", "08"]``; all chapters when ``names`` is empty.

    An unknown name is a ``ValueError`` that lists the valid ones.
    """
    valid = chapter_ids(chapters_dir)
    if not names:
        return valid
    out = []
    for name in names:
        stem = Path(str(name)).stem
        match = re.match(r"\d+", stem)
        cid = f"{int(match.group()):02d}" if match else None
        if cid not in valid or (not stem.isdigit() and stem != REGISTRY[cid][0]):
            listed = ", ".join(f"{c} ({REGISTRY[c][0]})" for c in valid)
            raise ValueError(f"unknown chapter {name!r}: the chapters that train models are {listed}")
        if cid not in out:
            out.append(cid)
    return out


@dataclass
class Plan:
    """The cells ``warm`` runs for one chapter: code cells up to its last training cell."""

    chapter: str
    path: Path
    cells: list[int]
    training: list[int]


def plan(chapter: str, chapters_dir: Path | None = None, *, whole: bool = False) -> Plan:
    """Which cells of ``chapter`` to run: every code cell up to its last training cell, as
    "Run All" before a lecture runs them (``whole=True``: every code cell, as the lecture
    itself does). Leaving any out (a hidden check, a widget) could change the random state,
    and so the initial weights and the cache keys, of later models."""
    from .notebooks import read_notebook

    path = Path(chapters_dir or CHAPTERS_DIR) / f"{REGISTRY[chapter][0]}.ipynb"
    nb = read_notebook(path)
    training = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and recipes_called(c.source)]
    last = len(nb.cells) - 1 if whole else max(training, default=-1)
    cells = [i for i, c in enumerate(nb.cells[: last + 1]) if c.cell_type == "code"]
    return Plan(chapter, path, cells, training)


def record_fits(log_path: str | os.PathLike) -> None:
    """Make every later :func:`pgm_lab.train.fit` call append a JSON line to ``log_path``:
    model, profile, wall seconds of the call and whether it loaded from the cache."""
    from . import train
    from .config import profile as active_profile

    inner = getattr(train.fit, "__wrapped__", train.fit)

    @functools.wraps(inner)
    def fit(model, data, **kw):
        start = time.perf_counter()
        history = inner(model, data, **kw)
        row = {
            "model": type(model).__name__,
            "profile": active_profile(kw.get("profile")).name,
            "seconds": time.perf_counter() - start,
            "hit": bool(history.loaded),
            "checkpoint": history.path.name if history.path else None,
        }
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        return history

    train.fit = fit


@dataclass
class Row:
    """One training call of a warm run."""

    chapter: str
    cell: int
    model: str
    profile: str
    seconds: float
    hit: bool


@dataclass
class WarmReport:
    """What ``warm`` did: one row per training call, each cell's wall time, and cell errors."""

    rows: list[Row] = field(default_factory=list)
    cell_seconds: dict[tuple[str, int], float] = field(default_factory=dict)
    training_cells: dict[str, list[int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def slowest_training_cell(self, chapter: str) -> tuple[int, float] | None:
        """``(cell index, seconds)`` of the chapter's slowest training cell in this run."""
        cells = [i for i in self.training_cells.get(chapter, []) if (chapter, i) in self.cell_seconds]
        return max(((i, self.cell_seconds[(chapter, i)]) for i in cells), key=lambda t: t[1], default=None)


def _check_cache_writable() -> Path:
    from .config import cache_dir

    folder = cache_dir(create=False)
    try:
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder / "checkpoints"):
            pass
    except OSError as exc:
        raise ValueError(
            f"the checkpoint cache {folder} is not writable ({exc.strerror or type(exc).__name__}): "
            "warming would train without keeping anything; set PGM_LAB_CACHE to a writable folder "
            "(the lecture itself still runs, training instead of loading)"
        ) from None
    return folder


def warm(
    chapters=(),
    profile: str | None = None,
    *,
    chapters_dir: Path | None = None,
    progress: bool = True,
    timeout: int = 900,
    whole: bool = False,
) -> WarmReport:
    """Run each chapter's cells up to its last training cell so that every model it trains is
    in the checkpoint cache for ``profile`` (default: the active one); ``whole=True`` runs
    every cell (``benchmarks/lecture_timings.py`` times whole chapters that way)."""
    from .config import profile as active_profile

    prof = active_profile(profile)
    ids = resolve_chapters(chapters, chapters_dir)
    _check_cache_writable()
    plans = [plan(c, chapters_dir, whole=whole) for c in ids]
    report = WarmReport(training_cells={p.chapter: p.training for p in plans})
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(p.cells) for p in plans), desc="warming", unit="cell", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory(prefix="pgm-lab-warm-") as tmp:
            for p in plans:
                _run_chapter(p, prof.name, Path(tmp) / f"{p.chapter}.jsonl", report, bar, timeout)
    finally:
        if bar is not None:
            bar.close()
    return report


def _run_chapter(p: Plan, profile: str, log: Path, report: WarmReport, bar, timeout: int) -> None:
    import nbformat
    from nbclient import NotebookClient

    from .notebooks import read_notebook

    nb = read_notebook(p.path)
    setup = nbformat.v4.new_code_cell(f"from pgm_lab.lecture import record_fits\nrecord_fits({str(log)!r})")
    run = nbformat.v4.new_notebook(metadata=nb.metadata, cells=[setup, *(nb.cells[i] for i in p.cells)])
    for cell in run.cells:
        cell.outputs, cell.execution_count = [], None
    index = [None, *p.cells]  # position in ``run`` -> cell index in the chapter
    started: dict[int, float] = {}
    seen = 0

    def on_start(cell, cell_index, **kw):
        started[cell_index] = time.perf_counter()

    def on_done(cell, cell_index, **kw):
        nonlocal seen
        i = index[cell_index]
        if i is None:
            return
        report.cell_seconds[(p.chapter, i)] = time.perf_counter() - started[cell_index]
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        for line in lines[seen:]:
            r = json.loads(line)
            report.rows.append(Row(p.chapter, i, r["model"], r["profile"], r["seconds"], r["hit"]))
        seen = len(lines)
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        for o in errors:
            report.errors.append(f"chapter {p.chapter}, cell {i}: {o.get('ename')}: {o.get('evalue')}")
        if bar is not None:
            bar.set_postfix_str(f"chapter {p.chapter}, cell {i}")
            bar.update(1)

    env = {"PGM_LAB_PROFILE": profile, "PGM_LAB_PROGRESS": "0", "MPLBACKEND": "Agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = NotebookClient(
            run,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(p.path.parent)}},
            on_cell_start=on_start,
            on_cell_executed=on_done,
        )
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def format_table(rows: list[Row]) -> str:
    """The closing table of ``pgm-lab warm``: chapter, cell, model, profile, seconds, cache hit."""
    head = ("chapter", "cell", "model", "profile", "seconds", "cache hit")
    body = [
        (r.chapter, str(r.cell), r.model, r.profile, f"{r.seconds:.2f}", "yes" if r.hit else "no")
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in (head, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- JupyterLab for the lecture (``make lab``) ------------------------------------------------------
def check_port_free(port: int, ip: str = "127.0.0.1") -> None:
    """``ValueError`` naming the port, and how to pick another, when something listens on it."""
    import socket

    if not 0 < int(port) < 65536:
        raise ValueError(f"port must be between 1 and 65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as sock:
        # as Jupyter's server does: a port left in TIME_WAIT by a stopped lab is free, a listener is not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, int(port)))
        except OSError as exc:
            raise ValueError(
                f"port {port} on {ip} is busy ({exc.strerror}): another Jupyter may be running there. "
                f"Pick another port: make lab PORT={int(port) + 2} (or pgm-lab lab --port {int(port) + 2})"
            ) from None


def lab_command(port: int, ip: str = "127.0.0.1", root: Path | None = None) -> list[str]:
    """The JupyterLab command ``make lab`` runs: on ``chapters/``, this port only (no silent
    retry on another), no browser opened (the URL is printed), ``--allow-root`` only as root."""
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.ip={ip}"]
    cmd += [f"--ServerApp.port={int(port)}", "--ServerApp.port_retries=0"]
    cmd += [f"--ServerApp.root_dir={Path(root or CHAPTERS_DIR).resolve()}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and lab servers run as root
        cmd.append("--allow-root")
    return cmd


def run_lab(port: int = 8888, ip: str = "127.0.0.1", root: Path | None = None) -> None:
    """Print the URL (with a fresh token) and replace this process by JupyterLab."""
    import secrets

    check_port_free(port, ip)
    token = secrets.token_hex(24)
    host = "127.0.0.1" if ip in ("0.0.0.0", "::", "") else ip
    print(f"JupyterLab on {Path(root or CHAPTERS_DIR).resolve()}; open this URL:", flush=True)
    print(f"    http://{host}:{int(port)}/lab?token={token}", flush=True)
    if ip in ("0.0.0.0", "::"):
        print("(listening on every interface: from another machine use its address instead of 127.0.0.1)")
    print("Stop it with Ctrl-C. In a notebook, Alt+R starts the RISE slideshow.", flush=True)
    os.environ["JUPYTER_TOKEN"] = token  # not on the command line, where `ps` would show it
    cmd = lab_command(port, ip, root)
    os.execv(cmd[0], cmd)


# -- what the cache holds -------------------------------------------------------------------------
_CHECKPOINT = re.compile(r"(?P<model>\w+?)-(?P<profile>smoke|quick|full)-(?P<key>[0-9a-f]+)\.pt")


def cached_models(folder: Path | None = None) -> dict[str, list[tuple[str, int]]]:
    """Checkpoints in the cache, per profile: ``{profile: [(model class, bytes), ...]}``.

    Files written before the profile entered their names (cache format 1) are listed under
    ``"older format"``: no current key can reach them, and they may be deleted.
    """
    from .config import cache_dir

    folder = Path(folder or cache_dir(create=False)) / "checkpoints"
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for f in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        m = _CHECKPOINT.fullmatch(f.name)
        out[m["profile"] if m else "older format"].append((m["model"] if m else f.stem, f.stat().st_size))
    return dict(out)


def describe_cache(folder: Path | None = None) -> list[str]:
    """Lines for ``pgm-lab info``: per profile, how many checkpoints of which models, and their size."""
    listing = cached_models(folder)
    if not listing:
        return ["(empty: `pgm-lab warm` fills it before a lecture)"]
    lines = []
    for prof, items in sorted(listing.items()):
        counts: dict[str, int] = defaultdict(int)
        for model, _ in items:
            counts[model] += 1
        names = ", ".join(f"{m} x{n}" if n > 1 else m for m, n in sorted(counts.items()))
        size = sum(b for _, b in items) / 2**20
        lines.append(f"{prof}: {len(items)} checkpoints, {size:.1f} MiB ({names})")
    return lines


__all__ = [
    "CHAPTERS_DIR",
    "RECIPES",
    "REGISTRY",
    "Plan",
    "Row",
    "WarmReport",
    "cached_models",
    "chapter_ids",
    "check_port_free",
    "describe_cache",
    "format_table",
    "lab_command",
    "plan",
    "recipes_called",
    "record_fits",
    "resolve_chapters",
    "run_lab",
    "warm",
]
