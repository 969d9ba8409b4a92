"""The ``pgm-lab`` command: ``info``, ``keys``, lecture mode (``warm``, ``slides-metadata``,
``slides``) and the grading commands ``release``/``grade``."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path


def _info(args) -> int:
    import torch

    from . import __version__
    from .config import cache_dir, device, profile

    prof = profile()
    rows = [
        ("pgm_lab", __version__),
        ("profile", f"{prof.name} ({prof.description})"),
        ("device", str(device())),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("CUDA", torch.version.cuda or "none (CPU build)"),
        ("CUDA available", str(torch.cuda.is_available())),
        ("cache", str(cache_dir(create=False))),
    ]
    if torch.cuda.is_available():
        rows.append(("GPU", torch.cuda.get_device_name(0)))
    from .lecture import describe_cache

    rows += [("cached", line) for line in describe_cache()]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def _warm(args) -> int:
    from .lecture import format_table, warm

    report = warm(args.chapters, args.profile, progress=not args.no_progress)
    print(format_table(report.rows))
    for chapter in report.training_cells:
        slowest = report.slowest_training_cell(chapter)
        if slowest is not None:
            print(f"chapter {chapter}: slowest training cell {slowest[0]} took {slowest[1]:.1f} s")
    for err in report.errors:
        print(f"pgm-lab warm: {err}", file=sys.stderr)
    return 1 if report.errors else 0


def _lab(args) -> int:
    from .lecture import run_lab

    run_lab(args.port, args.ip)  # replaces this process by JupyterLab
    return 0


def _slides_metadata(args) -> int:
    from .slides import apply_slide_metadata, lacking_slide_metadata

    if args.check:
        missing = [str(p) for p in args.notebooks if lacking_slide_metadata(p)]
        for path in missing:
            print(f"{path}: no slide metadata (run `pgm-lab slides-metadata {path}`)")
        return 1 if missing else 0
    for path in args.notebooks:
        counts = apply_slide_metadata(path)
        print(f"{path}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 0


def _slides(args) -> int:
    from .slides import export_decks

    decks = export_decks(args.notebooks, args.out, edition=args.edition)
    for deck in decks:
        print(f"{deck.path}: {deck.slides} slides")
    print(f"open {Path(args.out).resolve() / 'index.html'}")
    return 0


def _keys(args) -> int:
    from .notebooks import refresh_answer_keys

    for path in args.notebooks:
        n = refresh_answer_keys(path, profile=args.profile)
        print(f"{path}: {n} answer-key cells refreshed, hidden checks ran ({args.profile} profile)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgm-lab", description="pgm-lab workbook tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="profile, device, torch and CUDA versions, cache path")
    p.set_defaults(func=_info)
    p = sub.add_parser("keys", help="execute notebooks and store outputs only in answer-key cells")
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--profile", default="smoke")
    p.set_defaults(func=_keys)
    p = sub.add_parser("warm", help="train and cache every model the chapters train, before a lecture")
    p.add_argument("chapters", nargs="*", metavar="CHAPTER", help="06 ... 10 (default: all)")
    p.add_argument("--profile", default=None, help="smoke, quick or full (default: the active profile)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_warm)
    p = sub.add_parser("lab", help="JupyterLab on chapters/ for a lecture; prints the URL to open")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--ip", default="127.0.0.1", help="0.0.0.0 to be reachable from outside a container")
    p.set_defaults(func=_lab)
    p = sub.add_parser("slides-metadata", help="set RISE slide types on chapter cells from their headings")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    p.add_argument("--check", action="store_true", help="only report notebooks that lack slide metadata")
    p.set_defaults(func=_slides_metadata)
    p = sub.add_parser("slides", help="reveal.js decks (offline HTML) of executed chapter notebooks")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    p.add_argument("--out", required=True, help="folder for the decks and their reveal.js and MathJax")
    p.add_argument(
        "--edition",
        choices=("reader", "course"),
        default="reader",
        help="course: exercises as students get them, solutions removed (as make book EDITION=course)",
    )
    p.set_defaults(func=_slides)
    try:
        from . import grading
    except ImportError:
        grading = None
    if grading is not None:
        grading.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"pgm-lab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
