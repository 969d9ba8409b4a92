"""Lecture mode, measured: each chapter's cells with a cold and a warm cache.

``python benchmarks/lecture_timings.py [--profile quick] [CHAPTER ...]`` runs every cell of
each chapter (``pgm_lab.lecture.warm(whole=True)``) twice on an empty checkpoint cache (a
temporary folder): the first run trains every model, as the book's execution from clean
does; the second runs the same cells as a lecturer would after ``pgm-lab warm``. It writes
``book/data/lecture_timings.json``, which the status page shows (profile, device, machine
load, and per chapter: the whole chapter's seconds, its slowest cell and its slowest
training cell in both runs, and every cell over the two-minute budget of a training cell).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "data" / "lecture_timings.json"
TRAINING_CHAPTERS = ("06", "07", "08", "09", "10")
BUDGET_S = 120  # a training cell in `quick` (DEVELOPERS.md)


def measure(profile: str, chapters, cache: Path | None = None) -> dict:
    """Cold then warm whole-chapter runs on ``cache`` (an empty folder; default: a temporary one)."""
    from pgm_lab import lecture
    from pgm_lab.config import device

    if cache is not None and cache.exists() and any(cache.iterdir()):
        raise SystemExit(f"--cache {cache} is not empty: the cold run needs an empty cache")
    with tempfile.TemporaryDirectory(prefix="pgm-lab-timings-") as tmp:
        os.environ["PGM_LAB_CACHE"] = str(cache or tmp)
        cold = lecture.warm(chapters, profile, progress=True, whole=True)
        warm = lecture.warm(chapters, profile, progress=True, whole=True)
    if cold.errors or warm.errors:
        raise RuntimeError("cells failed: " + "; ".join(cold.errors + warm.errors))
    rows = [chapter_row(chapter, cold, warm) for chapter in lecture.resolve_chapters(chapters)]
    return {
        "profile": profile,
        "device": str(device()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_before": round(os.getloadavg()[0], 2),
        "date": datetime.date.today().isoformat(),
        "commit": _commit(),
        "chapters": rows,
    }


def _commit() -> str:
    """The measured code's commit (``git rev-parse --short HEAD``), or ``unknown``."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _seconds(report, chapter: str) -> dict[int, float]:
    return {i: s for (c, i), s in report.cell_seconds.items() if c == chapter}


def chapter_row(chapter: str, cold, warm) -> dict:
    """One chapter's numbers: totals, slowest cells, cells over budget, cache hits."""
    cold_s, warm_s = _seconds(cold, chapter), _seconds(warm, chapter)
    slowest = max(warm_s, key=warm_s.get, default=None)
    slowest_cold = max(cold_s, key=cold_s.get, default=None)
    training, warm_training = warm.slowest_training_cell(chapter) or (None, float("nan"))
    hits = [r.hit for r in warm.rows if r.chapter == chapter]
    return {
        "chapter": chapter,
        "cold_total_s": round(sum(cold_s.values()), 1),
        "warm_total_s": round(sum(warm_s.values()), 1),
        "slowest_cell_cold": slowest_cold,
        "slowest_cell_cold_s": round(cold_s.get(slowest_cold, float("nan")), 2),
        "slowest_cell_warm": slowest,
        "slowest_cell_warm_s": round(warm_s.get(slowest, float("nan")), 2),
        "slowest_training_cell": training,
        "cold_s": round(cold_s.get(training, float("nan")), 2),
        "warm_s": round(warm_training, 2),
        "cells_over_budget_cold": {i: round(s, 1) for i, s in cold_s.items() if s > BUDGET_S},
        "training_calls": len(hits),
        "cache_hits": sum(hits),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", default=list(TRAINING_CHAPTERS))
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--cache", type=Path, help="an empty folder to keep the trained models in")
    args = parser.parse_args(argv)
    result = measure(args.profile, args.chapters, args.cache)
    result["load_after"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    for row in result["chapters"]:
        print(row)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
