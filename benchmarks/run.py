"""Run every ``benchmarks/bench_*.py`` and print one table: what, ours, peer, ratio, goal.

Each script defines ``bench(profile: str) -> list[dict]`` with rows
``{"what", "ours", "peer", "unit", "goal"}`` measured in the same run (optionally
``"higher_is_better": True`` for throughputs, ``"peer_name"``, ``"note"``). The ratio
is peer/ours for costs (times, errors) and ours/peer for throughputs: above 1 means
pgm_lab is ahead. ``python benchmarks/run.py [NAME ...] [--profile P] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def ratio(row: dict) -> float:
    ours, peer = float(row["ours"]), float(row["peer"])
    if row.get("higher_is_better"):
        return ours / peer if peer else math.inf
    return peer / ours if ours else math.inf


def _fmt(x) -> str:
    if isinstance(x, str):
        return x
    x = float(x)
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.3e}"


def format_table(rows: list[dict]) -> str:
    header = ("benchmark", "what", "ours", "peer", "unit", "ratio", "goal")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.get("bench", ""),
                r["what"] + (f" [vs {r['peer_name']}]" if r.get("peer_name") else ""),
                _fmt(r["ours"]),
                _fmt(r["peer"]),
                r.get("unit", ""),
                f"{ratio(r):.3g}x",
                r.get("goal", ""),
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths)))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="bench_NAME scripts to run (default: all)")
    parser.add_argument("--profile", default=None, help="smoke, quick or full (default: $PGM_LAB_PROFILE)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    import pgm_lab

    profile = pgm_lab.profile(args.profile).name
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        wanted = {n.removeprefix("bench_").removesuffix(".py") for n in args.names}
        unknown = wanted - {p.stem.removeprefix("bench_") for p in scripts}
        if unknown:
            parser.error(f"unknown benchmarks {sorted(unknown)}; have {[p.stem for p in scripts]}")
        scripts = [p for p in scripts if p.stem.removeprefix("bench_") in wanted]
    rows, failed = [], []
    for path in scripts:
        start = time.perf_counter()
        print(f"running {path.name} ({profile}) ...", file=sys.stderr, flush=True)
        try:
            for row in load(path).bench(profile):
                rows.append({"bench": path.stem.removeprefix("bench_"), **row})
        except Exception:
            failed.append(path.name)
            traceback.print_exc()
        print(f"  {path.name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    print(f"\npgm-lab benchmarks, profile {profile}\n")
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
