"""Lecture mode, measured: each chapter's slowest training cell with a cold and a warm cache.

``python benchmarks/lecture_timings.py [--profile quick] [CHAPTER ...]`` runs
``pgm_lab.lecture.warm`` twice on an empty checkpoint cache (a temporary folder): the first
run trains every model the chapters train, the second runs the same cells as a lecturer
would after ``pgm-lab warm``. It writes ``book/data/lecture_timings.json``, which the status
page shows (profile, device, machine load, and per chapter the slowest training cell's
seconds in both runs).
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


def measure(profile: str, chapters) -> dict:
    from pgm_lab import lecture
    from pgm_lab.config import device

    with tempfile.TemporaryDirectory(prefix="pgm-lab-timings-") as cache:
        os.environ["PGM_LAB_CACHE"] = cache
        cold = lecture.warm(chapters, profile, progress=False)
        warm = lecture.warm(chapters, profile, progress=False)
    if cold.errors or warm.errors:
        raise RuntimeError("cells failed: " + "; ".join(cold.errors + warm.errors))
    rows = []
    for chapter in chapters:
        cell, warm_s = warm.slowest_training_cell(chapter) or (None, float("nan"))
        hits = [r.hit for r in warm.rows if r.chapter == chapter]
        rows.append(
            {
                "chapter": chapter,
                "slowest_training_cell": cell,
                "cold_s": round(cold.cell_seconds.get((chapter, cell), float("nan")), 2),
                "warm_s": round(warm_s, 2),
                "training_calls": len(hits),
                "cache_hits": sum(hits),
            }
        )
    return {
        "profile": profile,
        "device": str(device()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_before": round(os.getloadavg()[0], 2),
        "date": datetime.date.today().isoformat(),
        "chapters": rows,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", default=list(TRAINING_CHAPTERS))
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = measure(args.profile, args.chapters)
    result["load_after"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    for row in result["chapters"]:
        print(row)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
