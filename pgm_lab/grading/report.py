"""The gradebook: ``gradebook.csv``, ``gradebook.html`` and the summary table.

Columns: ``student`` (file name without ``.ipynb``), one column per exercise (``ex1`` … in
the order of the key's answer-key cells, points earned), ``total``, ``max``, ``notes`` (why
points were lost). See the instructor guide (book/instructor_guide.md).
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import os
from dataclasses import dataclass, field
from pathlib import Path


def fmt_points(x: float) -> str:
    """``2`` for whole numbers, ``1.5`` otherwise."""
    return f"{x:g}"


@dataclass
class Gradebook:
    key: object  # grade.Key
    rows: list  # list[grade.Row]
    options: dict = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return ["student", *(ex.name for ex in self.key.exercises), "total", "max", "notes"]

    def records(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            out.append(
                [
                    r.student,
                    *(fmt_points(r.points[ex.name]) for ex in self.key.exercises),
                    fmt_points(r.total),
                    fmt_points(r.max),
                    r.notes_text,
                ]
            )
        return out

    def write_csv(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(self.columns)
            writer.writerows(self.records())
        return path

    def table(self, *, notes_width: int = 70) -> str:
        """The gradebook as aligned text (notes shortened to ``notes_width`` characters)."""
        lines = [self.columns]
        for rec in self.records():
            notes = rec[-1]
            if len(notes) > notes_width:
                notes = notes[: notes_width - 1] + "…"
            lines.append([*rec[:-1], notes])
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.columns))]
        text = []
        for k, line in enumerate(lines):
            text.append("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
            if k == 0:
                text.append("  ".join("-" * w for w in widths))
        n = len(self.rows)
        full = sum(1 for r in self.rows if r.total == r.max)
        mean = sum(r.total for r in self.rows) / n if n else 0.0
        text.append("")
        text.append(
            f"{n} submission{'s' if n != 1 else ''} of {self.key.chapter}: mean {mean:.2f} / "
            f"{fmt_points(self.key.max_points)}, full marks {full}; "
            f"{self.options.get('seconds', 0):g} s with {self.options.get('jobs', 1)} job(s)"
        )
        return "\n".join(text)

    def write_html(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        esc = html.escape
        exs = self.key.exercises
        head = ["<th>student</th>"]
        for ex in exs:
            head.append(
                f'<th title="{esc(ex.summary)}">{esc(ex.name)}<br><small>{fmt_points(ex.points)} pt</small></th>'
            )
        head += ["<th>total</th>", "<th>max</th>", "<th>notes</th>"]
        body = []
        for r in self.rows:
            cells = [f"<td>{esc(r.student)}</td>"]
            for ex in exs:
                got = r.points[ex.name]
                cls = "full" if got >= ex.points else ("part" if got > 0 else "zero")
                cells.append(f'<td class="num {cls}">{fmt_points(got)}</td>')
            cls = "full" if r.total >= r.max else ("part" if r.total > 0 else "zero")
            cells.append(f'<td class="num {cls}"><b>{fmt_points(r.total)}</b></td>')
            cells.append(f'<td class="num">{fmt_points(r.max)}</td>')
            notes = "<br>".join(esc(n) for n in r.notes)
            cells.append(f'<td class="notes">{notes}</td>')
            body.append("<tr>" + "".join(cells) + "</tr>")
        n = len(self.rows)
        means = []
        for ex in exs:
            m = sum(r.points[ex.name] for r in self.rows) / n if n else 0.0
            means.append(f'<td class="num">{m:.2f}</td>')
        mean_total = sum(r.total for r in self.rows) / n if n else 0.0
        foot = (
            "<tr><td><i>mean</i></td>"
            + "".join(means)
            + f'<td class="num">{mean_total:.2f}</td><td class="num">{fmt_points(self.key.max_points)}</td><td></td></tr>'
        )
        opts = ", ".join(f"{esc(str(k))}={esc(str(v))}" for k, v in self.options.items())
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        title = esc(self.key.title or self.key.chapter)
        page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Gradebook: {esc(self.key.chapter)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.6em; vertical-align: top; }}
th {{ background: #eee; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.full {{ background: #d9f2d9; }} td.part {{ background: #fff2cc; }} td.zero {{ background: #f8d7d7; }}
td.notes {{ font-size: 0.9em; max-width: 40em; }}
tfoot td {{ background: #f6f6f6; }}
</style></head><body>
<h1>Gradebook: {esc(self.key.chapter)}</h1>
<p>{title} — key <code>{esc(str(self.key.path))}</code>, {n} submissions, graded {stamp} ({opts}).
Hover over an exercise for its check.</p>
<table>
<thead><tr>{"".join(head)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
<tfoot>{foot}</tfoot>
</table>
</body></html>
"""
        path.write_text(page, encoding="utf-8")
        return path

    def write(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        return self.write_csv(out_dir / "gradebook.csv"), self.write_html(out_dir / "gradebook.html")
