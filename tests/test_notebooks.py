"""Notebook hygiene: valid JSON, python3 kernel, outputs only in answer-key cells, title cell
first, pgm_lab imported and set up, exercises well formed, and every ``pgm_lab`` name a
notebook uses exists in the package (the helper-drift bug)."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

from pgm_lab import notebooks as nbt

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
IDS = [p.stem for p in CHAPTERS]


def load(path):
    return nbformat.read(str(path), as_version=4)


def code_of(nb) -> str:
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            lines += [ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def test_ten_chapters_at_most_and_named_in_order():
    assert CHAPTERS, "no chapters found"
    numbers = [int(p.stem[:2]) for p in CHAPTERS]
    assert numbers == sorted(set(numbers)) and all(1 <= n <= 10 for n in numbers)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_valid_json_and_kernel(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["nbformat"] == 4
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))
    # editor round-trips (jupytext) must not leave their metadata behind
    assert "jupytext" not in raw["metadata"]
    noisy = [i for i, c in enumerate(raw["cells"]) if "lines_to_next_cell" in c["metadata"]]
    assert not noisy, f"cells {noisy} carry jupytext's lines_to_next_cell metadata"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_outputs_only_in_answer_keys(path):
    for i, cell in enumerate(load(path).cells):
        if cell.cell_type != "code":
            continue
        if nbt.is_answer_key(cell):
            assert cell.outputs, f"cell {i}: answer-key cell without a stored expected output"
            assert cell.execution_count, f"cell {i}: answer-key cell needs an execution_count for nbval"
        else:
            assert not cell.outputs, f"cell {i}: stored output in a cell not tagged answer-key"
            assert cell.execution_count is None, f"cell {i}: stored execution count"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_title_first_and_setup(path):
    nb = load(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "the first cell must be the title"
    title = first.source.splitlines()[0]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in title), f"title must pair English and Chinese: {title}"
    code = code_of(nb)
    assert "import pgm_lab as pl" in code and "pl.setup(" in code


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_same_headings_and_lines_that_fit_the_page(path):
    """Every chapter has one "## Exercises (练习)" and one "## Summary (小结)" heading, no
    hand-made numbers in headings (the book numbers them), and code lines of at most 80
    characters (longer ones are cut off in the HTML)."""
    nb = load(path)
    headings = [
        line
        for c in nb.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("#")
    ]
    for heading in ("## Exercises (练习)", "## Summary (小结)"):
        assert headings.count(heading) == 1, f"expected one {heading!r}"
    numbered = [h for h in headings if h.lstrip("#").strip()[:1].isdigit()]
    assert not numbered, f"numbered by hand: {numbered}"
    long = [
        line
        for c in nb.cells
        if c.cell_type == "code"
        for line in c.source.splitlines()
        if len(line) > MAX_CODE_LINE
    ]
    assert not long, f"{len(long)} code lines longer than {MAX_CODE_LINE} characters, e.g. {long[0]!r}"


MAX_CODE_LINE = 80


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_exercises_are_well_formed(path):
    cells = load(path).cells
    keys = [i for i, c in enumerate(cells) if nbt.is_answer_key(c)]
    assert len(keys) >= 3, "every chapter has at least three graded exercises"
    for i in keys:
        assert cells[i].source.lstrip().startswith(nbt.CHECK_MARKER), (
            f"cell {i} must start with {nbt.CHECK_MARKER}"
        )
        before = [c for c in cells[:i] if c.cell_type == "code"]
        assert before and nbt.is_exercise(before[-1]), f"answer-key cell {i} must follow an exercise cell"
        src = before[-1].source
        assert nbt.SOLUTION_BEGIN in src and nbt.SOLUTION_END in src
        assert src.index(nbt.SOLUTION_BEGIN) < src.index(nbt.SOLUTION_END)
        assert "points" not in cells[i].metadata, f"public check {i} earns no points: drop its 'points'"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_every_exercise_has_hidden_checks(path):
    """Points come from hidden checks (tag hidden-check): one or more after every exercise,
    removed from the book (remove-cell), stored without outputs, drawing inputs from
    ``hidden.rng``/``hidden.torch_generator`` and emitting with ``hidden.check``/``hidden.emit``."""
    cells = load(path).cells
    exercises = [i for i, c in enumerate(cells) if nbt.is_exercise(c)]
    for k, i in enumerate(exercises):
        end = exercises[k + 1] if k + 1 < len(exercises) else len(cells)
        hidden = [c for c in cells[i:end] if nbt.is_hidden_check(c)]
        assert hidden, f"exercise cell {i} has no hidden check"
        assert sum(float(c.metadata.get("points", 1)) for c in hidden) > 0
        for c in hidden:
            assert "remove-cell" in c.metadata.get("tags", []), (
                f"hidden check {c.id} must be tagged remove-cell"
            )
            assert not c.get("outputs") and c.get("execution_count") is None
            assert "hidden.rng(" in c.source or "hidden.torch_generator(" in c.source, c.id
            assert "hidden.check(" in c.source or "hidden.emit(" in c.source, c.id


def _attribute_chains(tree: ast.AST):
    """Yield dotted names rooted at ``pl`` (e.g. ``pl.factorization.joint_table``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = []
            cur = node
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id == "pl":
                yield ".".join(reversed(parts))


def _missing_imports(tree: ast.AST) -> list[str]:
    """Names in ``from pgm_lab... import name`` that are neither attributes nor submodules;
    ``import pgm_lab...`` statements must import."""
    missing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pgm_lab":
            module = importlib.import_module(node.module)
            missing += [
                f"{node.module}.{a.name}" for a in node.names if not _importable(module, node.module, a.name)
            ]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pgm_lab"):
                    importlib.import_module(a.name)
    return missing


def _importable(module: ModuleType, module_name: str, name: str) -> bool:
    """``from module_name import name`` works: an attribute, or a submodule (`from pgm_lab import shapes`)."""
    if hasattr(module, name):
        return True
    try:
        importlib.import_module(f"{module_name}.{name}")
    except ModuleNotFoundError:
        return False
    return True


def _missing_chain(chain: str) -> bool:
    """``pl.<chain>`` names something missing along its modules (``pl.ising.icm``)."""
    obj = importlib.import_module("pgm_lab")
    for part in chain.split("."):
        if not isinstance(obj, ModuleType):
            return False  # deeper names are attributes of objects, checked when the notebook runs
        if not hasattr(obj, part):
            return True
        obj = getattr(obj, part)
    return False


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_every_pgm_lab_name_exists(path):
    tree = ast.parse(code_of(load(path)))
    missing = _missing_imports(tree)
    missing += ["pl." + chain for chain in set(_attribute_chains(tree)) if _missing_chain(chain)]
    assert not missing, f"names used by the notebook but missing from pgm_lab: {sorted(set(missing))}"


def test_notebook_tools_roundtrip(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# T (题)"),
        nbformat.v4.new_code_cell("x = 1\nprint(x)"),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(x + 1)", metadata={"tags": ["answer-key"]}),
    ]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, str(path))
    assert nbt.refresh_answer_keys(path) == 1
    out = load(path)
    assert out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert out.cells[2].outputs[0]["text"] == "2\n" and out.cells[2].execution_count
    assert out.metadata["kernelspec"]["name"] == "python3"
    stripped = nbt.strip_outputs(out, keep_answer_keys=False)
    assert stripped.cells[2].outputs == []


def test_read_notebook_errors(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(nbt.NotebookError, match="invalid JSON"):
        nbt.read_notebook(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(nbt.NotebookError, match="no list of cells"):
        nbt.read_notebook(bad)
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(nbt.NotebookError, match="UTF-8"):
        nbt.read_notebook(bad)
    with pytest.raises(nbt.NotebookError, match="no such file"):
        nbt.read_notebook(tmp_path / "missing.ipynb")


def test_answer_key_without_marker_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(1)", metadata={"tags": ["answer-key"]})]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(nbt.NotebookError, match="must start with # NBVAL_CHECK_OUTPUT"):
        nbt.refresh_answer_keys(path)
