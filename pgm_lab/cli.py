"""The ``pgm-lab`` command: ``info``, ``keys`` (and the grading commands ``release``/``grade``)."""

from __future__ import annotations

import argparse
import platform
import sys


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
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
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
