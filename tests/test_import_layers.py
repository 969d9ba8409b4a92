"""No import cycle anywhere in pgm_lab (issue 15): the module import graph is acyclic.

The graph is read from the source, not from ``sys.modules``: every ``import`` and
``from ... import`` in a module's AST counts, including the lazy ones inside functions,
because a lazy import only hides a cycle until the function runs. Importing
``pgm_lab.a.b`` runs ``pgm_lab/a/__init__.py`` first, so it counts as importing that
package too, except from inside the package: a module's own packages (and the top-level
``pgm_lab/__init__.py``) have already started running when it is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pgm_lab"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The absolute module named by a (possibly relative) ``from X import ...``."""
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(path: Path, root: Path, known: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports anywhere in its AST."""
    current = module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node, current, path.name == "__init__.py")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # from pkg import submodule
    out = set()
    for name in found:
        parts = name.split(".")
        # the module itself and the packages it runs on the way (not the top-level package)
        for k in range(2, len(parts) + 1):
            candidate = ".".join(parts[:k])
            if candidate in known and candidate != current and not current.startswith(candidate + "."):
                out.add(candidate)  # a module's own packages already ran before it: no edge
    return out


def import_graph(root: Path, package: str = PACKAGE) -> nx.DiGraph:
    files = sorted((root / package).rglob("*.py"))
    known = {module_name(p, root) for p in files}
    g = nx.DiGraph()
    g.add_nodes_from(known)
    for p in files:
        for target in imported_modules(p, root, known):
            g.add_edge(module_name(p, root), target)
    return g


def cycles(g: nx.DiGraph) -> list[list[str]]:
    return [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]


def test_pgm_lab_has_no_import_cycle():
    g = import_graph(ROOT)
    assert g.number_of_nodes() > 20 and g.number_of_edges() > 20  # the graph was really read
    assert g.has_edge("pgm_lab.bp", "pgm_lab.pgmpy_adapter")
    found = cycles(g)
    assert not found, "import cycles (each set imports itself through the others): " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_part_one_layers_run_one_way():
    """The adapter and the graph helpers sit below everything that reads models and graphs."""
    g = import_graph(ROOT)
    for low in ("pgm_lab.pgmpy_adapter", "pgm_lab.graphs"):
        assert not nx.descendants(g, low) & {
            "pgm_lab.bp",
            "pgm_lab.mrf",
            "pgm_lab.independence",
            "pgm_lab.numeric_independence",
            "pgm_lab.factorization",
        }
    assert "pgm_lab.independence" not in nx.descendants(g, "pgm_lab.numeric_independence")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    "files",
    [
        # a plain cycle at module level
        {"pkg/__init__.py": "", "pkg/a.py": "from .b import f\n", "pkg/b.py": "from .a import g\n"},
        # one side lazy, inside a function (the case issue 15 found)
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .b import f\n",
            "pkg/b.py": "def f():\n    from .a import g\n    return g\n",
        },
        # through a subpackage's __init__ and an absolute import
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from .m import x\n",
            "pkg/sub/m.py": "import pkg.c\nx = 1\n",
            "pkg/c.py": "from .sub.base import y\n",
            "pkg/sub/base.py": "y = 2\n",
        },
        # from . import module
        {"pkg/__init__.py": "", "pkg/a.py": "from . import b\n", "pkg/b.py": "from . import a\n"},
    ],
)
def test_a_planted_cycle_is_found(tmp_path, files):
    _write(tmp_path, files)
    assert cycles(import_graph(tmp_path, "pkg"))


def test_an_acyclic_package_passes(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import f\n",  # the top package importing its modules is fine
            "pkg/a.py": "from .b import g\nimport numpy\n",
            "pkg/b.py": "def g():\n    from .c import h\n    return h\n",
            "pkg/c.py": "import pkg\nh = 1\n",
        },
    )
    g = import_graph(tmp_path, "pkg")
    assert not cycles(g) and g.has_edge("pkg.b", "pkg.c")
