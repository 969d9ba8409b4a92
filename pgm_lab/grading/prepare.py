"""The notebook that is graded: a copy of the submission with the key's checks put back.

For every submission (the file itself is never written) :func:`prepare`

1. restores each public check (``answer-key`` cell: source, stored output, metadata) from
   the key, matching cells by id, then by identical source, then by order; an edited check
   is noted ("check cell edited"), a deleted one is put back after the cell that precedes
   it in the key;
2. inserts the key's hidden checks after the cell that precedes each of them in the key,
   each starting with a line that announces its cell id to :mod:`.hidden`;
3. clears every other output and any ``answer-key``/``hidden-check`` tag a student added.

:func:`prepare_key` builds the same notebook from the key itself, for the run that
produces the expected hidden values.
"""

from __future__ import annotations

import copy
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..notebooks import ANSWER_KEY_TAG, HIDDEN_CHECK_TAG, NotebookError, read_notebook, strip_outputs
from .key import Key, notebook_title

MAX_NOTEBOOK_BYTES = 100 * 2**20
BEGIN_LINE = "__import__('pgm_lab.grading.hidden', fromlist=['begin']).begin({check!r})\n"


@dataclass
class Prepared:
    """The notebook that is run for a submission, or why it is not run."""

    nb: object | None = None
    notes: list[str] = field(default_factory=list)
    cell_number: dict[str, int] = field(default_factory=dict)  # hidden-check id -> nbval's "Cell N"
    problem: str | None = None


def tags_of(cell) -> list[str]:
    meta = cell.get("metadata")
    found = meta.get("tags") if isinstance(meta, dict) else None
    return [t for t in found if isinstance(t, str)] if isinstance(found, list) else []


def norm_source(source) -> str:
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
            name = o.get("name", "stdout")
            streams[name] = streams.get(name, "") + ("".join(text) if isinstance(text, list) else text)
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


def _match_public(key: Key, cells) -> tuple[dict[int, int], int]:
    """Map public checks (by position in ``key.public_checks``) to submission cells.

    By id, then by identical source, then by order among the student's answer-key cells.
    Returns the map and how many were recognised by id or source.
    """
    checks = key.public_checks
    match: dict[int, int] = {}
    _match_by_id(checks, cells, match)
    _match_by_source(checks, cells, match)
    recognised = len(match)
    _match_by_order(checks, cells, match)
    return match, recognised


def _match_by_id(checks, cells, match: dict[int, int]) -> None:
    """First pass: the (first) submission cell that carries the check's cell id."""
    id_pos: dict[str, int] = {}
    for i, c in enumerate(cells):
        cid = c.get("id")
        if cid and cid not in id_pos:
            id_pos[cid] = i
    for k, pc in enumerate(checks):
        i = id_pos.get(pc.cell_id) if pc.cell_id else None
        if i is not None and i not in match.values():
            match[k] = i


def _match_by_source(checks, cells, match: dict[int, int]) -> None:
    """Second pass: the first free code cell whose source is the check's (whitespace aside)."""
    for k, pc in enumerate(checks):
        if k in match:
            continue
        want = norm_source(pc.source)
        same = (
            i
            for i in _free_code_cells(cells, range(len(cells)), match)
            if norm_source(cells[i].get("source", "")) == want
        )
        _claim(match, k, next(same, None))


def _match_by_order(checks, cells, match: dict[int, int]) -> None:
    """Last pass: an answer-key cell between the cells of the neighbouring matched checks."""
    for k in range(len(checks)):
        if k in match:
            continue
        lo = max((match[j] for j in range(k) if j in match), default=-1)
        hi = min((match[j] for j in range(k + 1, len(checks)) if j in match), default=len(cells))
        tagged = (
            i
            for i in _free_code_cells(cells, range(lo + 1, hi), match)
            if ANSWER_KEY_TAG in tags_of(cells[i])
        )
        _claim(match, k, next(tagged, None))


def _free_code_cells(cells, positions, match: dict[int, int]):
    """The code cells among ``positions`` that no check has claimed yet, in order."""
    used = set(match.values())
    return (i for i in positions if i not in used and cells[i].get("cell_type") == "code")


def _claim(match: dict[int, int], k: int, i: int | None) -> None:
    if i is not None:
        match[k] = i


def _read_submission(path: Path):
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, "not a notebook (no such file)"
    except OSError as exc:
        return None, f"not a notebook (cannot read it: {exc.strerror})"
    if size > MAX_NOTEBOOK_BYTES:
        return None, f"not a notebook (file of {size / 2**20:.0f} MB, over the 100 MB limit)"
    try:
        return read_notebook(path), None
    except NotebookError as exc:
        msg = str(exc).removeprefix(f"{path}: ")
        return None, msg if msg.startswith("not a notebook") else f"not a notebook ({msg})"


def _insert_after_key_neighbour(key: Key, cells: list, key_index: int, new_cell) -> None:
    """Insert ``new_cell`` after the cell matching the nearest earlier key cell (or at the end)."""
    key_cells = key.nb.cells
    for j in range(key_index - 1, -1, -1):
        kid = key_cells[j].get("id")
        hit = next((i for i, c in enumerate(cells) if kid and c.get("id") == kid), None)
        if hit is not None:
            cells.insert(hit + 1, new_cell)
            return
    cells.append(new_cell)


def _restore_public(key: Key, cells: list, prep: Prepared) -> set[int]:
    """Put the key's public checks back; returns the ``id()`` of each restored cell."""
    match, _ = _match_public(key, cells)
    key_cells = key.nb.cells
    edited, missing, restored = set(), set(), set()
    for k, pc in enumerate(key.public_checks):
        kcell = copy.deepcopy(key_cells[pc.key_index])
        if k in match:
            old = cells[match[k]]
            if norm_source(old.get("source", "")) != norm_source(pc.source) or set(tags_of(old)) != set(
                tags_of(kcell)
            ):
                edited.add(pc.exercise)
            cells[match[k]] = kcell
            restored.add(id(kcell))
        else:
            missing.add(pc.exercise)
    for k, pc in enumerate(key.public_checks):
        if k not in match:
            kcell = copy.deepcopy(key_cells[pc.key_index])
            _insert_after_key_neighbour(key, cells, pc.key_index, kcell)
            restored.add(id(kcell))
    if edited:
        prep.notes.append(f"check cell edited: {', '.join(sorted(edited))} (restored from the key)")
    if missing:
        prep.notes.append(f"check cell missing: {', '.join(sorted(missing))} (restored from the key)")
    return restored


def _insert_hidden(key: Key, cells: list) -> set[int]:
    """Put the key's hidden checks in; returns the ``id()`` of each inserted cell."""
    inserted = set()
    for check in key.hidden_checks:
        kcell = copy.deepcopy(key.nb.cells[check.key_index])
        kcell.source = BEGIN_LINE.format(check=check.cell_id) + kcell.source
        kcell.outputs, kcell.execution_count = [], None
        _insert_after_key_neighbour(key, cells, check.key_index, kcell)
        inserted.add(id(kcell))
    return inserted


def _order_notes(key: Key, cells: list, prep: Prepared) -> None:
    key_cells = key.nb.cells
    key_ids = [c.get("id") for c in key_cells if c.get("id")]
    sub_pos: dict[str, int] = {}
    for i, c in enumerate(cells):
        if c.get("id") and c.get("id") not in sub_pos:
            sub_pos[c.get("id")] = i
    seq = [sub_pos[k] for k in key_ids if k in sub_pos]
    if any(b < a for a, b in itertools.pairwise(seq)):
        prep.notes.append("cells reordered")
    key_code_ids = [
        c.get("id")
        for c in key_cells
        if c.get("id") and c.get("cell_type") == "code" and HIDDEN_CHECK_TAG not in tags_of(c)
    ]
    gone = [k for k in key_code_ids if k not in sub_pos]
    if gone and len(gone) <= len(key_code_ids) // 2:
        prep.notes.append(f"{len(gone)} code cell{'s' if len(gone) > 1 else ''} of the chapter missing")


def _finish(cells: list, hidden_ids: set[int], keep: set[int], prep: Prepared) -> None:
    """Unique ids, nbval cell numbers of the hidden checks, student outputs and check tags cleared."""
    seen_ids: set[str] = set()
    code_number = 0
    for i, cell in enumerate(cells):
        cid = cell.get("id")
        if not cid or cid in seen_ids:
            cell["id"] = f"pgm-lab-{i}"
        seen_ids.add(cell["id"])
        if id(cell) in hidden_ids:
            prep.cell_number[cell["id"]] = code_number
        elif cell.get("cell_type") == "code" and id(cell) not in keep:
            cell["outputs"] = []
            cell["execution_count"] = None
            if not isinstance(cell.get("metadata"), dict):
                cell["metadata"] = {}
            student_tags = [t for t in tags_of(cell) if t not in (ANSWER_KEY_TAG, HIDDEN_CHECK_TAG)]
            if student_tags != tags_of(cell):
                cell["metadata"]["tags"] = student_tags
        if cell.get("cell_type") == "code":
            code_number += 1


def prepare(key: Key, path: str | os.PathLike) -> Prepared:
    """Read a submission and build the notebook to grade (checks restored, hidden checks in)."""
    path = Path(path)
    sub, problem = _read_submission(path)
    if problem:
        return Prepared(problem=problem)
    cells = [
        c for c in sub.cells if isinstance(c, dict) and c.get("cell_type") in ("code", "markdown", "raw")
    ]
    _, recognised = _match_public(key, cells)
    if recognised == 0:
        chapter = (sub.metadata.get("pgm_lab") or {}).get("chapter")
        title = notebook_title(sub)
        if chapter and chapter != key.chapter:
            return Prepared(problem=f"wrong chapter ({chapter}, expected {key.chapter})")
        if title and key.title and title != key.title:
            return Prepared(problem=f"wrong chapter ({title!r}, expected {key.title!r})")
    prep, restore = Prepared(), Prepared()
    public_ids = _restore_public(key, cells, restore)
    hidden_ids = _insert_hidden(key, cells)
    _order_notes(key, cells, prep)
    prep.notes += restore.notes
    _finish(cells, hidden_ids, public_ids, prep)
    sub.cells = cells
    sub.nbformat, sub.nbformat_minor = 4, max(5, int(sub.get("nbformat_minor", 5)))
    sub.metadata.pop("widgets", None)
    prep.nb = sub
    return prep


def prepare_key(key: Key) -> Prepared:
    """The key as it is run to produce the expected hidden values."""
    nb = strip_outputs(key.nb, keep_answer_keys=True)
    cells = [c for c in nb.cells if HIDDEN_CHECK_TAG not in tags_of(c)]
    prep = Prepared()
    keep = {id(c) for c in cells if ANSWER_KEY_TAG in tags_of(c)}
    hidden_ids = _insert_hidden(key, cells)
    _finish(cells, hidden_ids, keep, prep)
    nb.cells = cells
    prep.nb = nb
    return prep
