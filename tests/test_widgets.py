"""Lecture mode: every ipywidgets demo in pgm_lab reacts to every one of its controls.

A *lecture widget* is a public function of a ``pgm_lab`` module whose docstring starts with
"Lecture widget" and which returns an ipywidgets widget. For each one the test builds the
widget on small example data, then moves each control in turn (sliders to an end of their
range, menus to another option, toggles flipped, buttons clicked) and asserts that what a
lecturer sees changes: the figures the callback shows (``plt.show()`` or left open), the
text it prints, and the values of the widget's display parts (``Image``, ``HTML``,
``Label``, ``Output``). An exception in a callback fails the test.

Example data come from the registry ``pgm_lab.viz.LECTURE_WIDGETS`` when it exists
(``name -> zero-argument callable returning the widget``), else from ``EXAMPLES`` below;
a lecture widget found in neither fails ``test_every_lecture_widget_has_an_example``.

The notebooks must show a static figure instead in the HTML book: a code cell that calls
a lecture widget is tagged ``remove-cell`` and the next code cell ``remove-input``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import io
import json
import logging
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

ipywidgets = pytest.importorskip("ipywidgets")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import pgm_lab  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------
# Example data for the widgets that exist, used until pgm_lab.viz.LECTURE_WIDGETS does.


def _dsep_example():
    import networkx as nx

    from pgm_lab.independence import dseparation_explorer

    # the slide's d-separation example: a -> e <- f -> b, e -> c
    g = nx.DiGraph([("a", "e"), ("f", "e"), ("f", "b"), ("e", "c")])
    return dseparation_explorer(g, observed=["c"], x="a", y="b")


def _denoise_example():
    from pgm_lab.ising import denoise_explorer, flip_noise

    x = -np.ones((16, 16))
    x[4:12, 5:11] = 1
    y = flip_noise(x, 0.1, np.random.default_rng(0))
    return denoise_explorer(x, y)


def _latent_example():
    import torch

    from pgm_lab.models import VAE
    from pgm_lab.viz import latent_widget

    torch.manual_seed(0)  # an untrained decoder still maps different z to different images
    return latent_widget(VAE(image_shape=(1, 8, 8), latent_dim=2), n_sliders=2, scale=4)


EXAMPLES: dict[str, Callable[[], object]] = {
    "pgm_lab.independence.dseparation_explorer": _dsep_example,
    "pgm_lab.ising.denoise_explorer": _denoise_example,
    "pgm_lab.viz.latent_widget": _latent_example,
}


# ---------------------------------------------------------------------------------------
# Discovery


def _modules():
    for info in pkgutil.walk_packages(pgm_lab.__path__, prefix="pgm_lab."):
        yield importlib.import_module(info.name)


def lecture_widget_functions() -> dict[str, Callable]:
    """Public functions of pgm_lab whose docstring starts with 'Lecture widget'."""
    found = {}
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != module.__name__:
                continue
            if (inspect.getdoc(obj) or "").lower().startswith("lecture widget"):
                found[f"{module.__name__}.{name}"] = obj
    return found


def registry() -> dict[str, Callable[[], object]]:
    from pgm_lab import viz

    return {**EXAMPLES, **dict(getattr(viz, "LECTURE_WIDGETS", {}))}


# ---------------------------------------------------------------------------------------
# Driving a widget

OUTPUT_TYPES = (
    ipywidgets.Image,
    ipywidgets.HTML,
    ipywidgets.HTMLMath,
    ipywidgets.Label,
    ipywidgets.Output,
    ipywidgets.Valid,
    ipywidgets.IntProgress,
    ipywidgets.FloatProgress,
)


def descendants(widget) -> list:
    """The widget and everything reachable through ``children`` (boxes, interactive)."""
    out, stack, seen = [], [widget], set()
    while stack:
        w = stack.pop(0)
        if id(w) in seen:
            continue
        seen.add(id(w))
        out.append(w)
        stack.extend(getattr(w, "children", ()) or ())
    return out


def controls(widget) -> list:
    found = []
    for w in descendants(widget):
        if isinstance(w, OUTPUT_TYPES) or getattr(w, "disabled", False):
            continue
        if isinstance(w, ipywidgets.Button) or (isinstance(w, ipywidgets.ValueWidget) and w is not widget):
            found.append(w)
    return found


def move(control) -> str:
    """Change one control to another valid value (or click it); describe what was done."""
    if isinstance(control, ipywidgets.Button):
        control.click()
        return f"clicked {control.description!r}"
    if hasattr(control, "options") and hasattr(control, "index"):
        n = len(control.options)
        if n < 2:
            pytest.fail(f"{type(control).__name__} {control.description!r} has fewer than two options")
        if isinstance(control.index, tuple):  # multiple selection
            control.index = (0,) if control.index != (0,) else (n - 1,)
        else:
            control.index = (control.index + 1) % n if control.index is not None else 0
        return f"{control.description!r} -> {control.value!r}"
    if isinstance(control.value, bool):
        control.value = not control.value
        return f"{control.description!r} -> {control.value}"
    if isinstance(control, ipywidgets.FloatLogSlider):
        lo, hi = control.base**control.min, control.base**control.max
        control.value = hi if not np.isclose(control.value, hi) else lo
        return f"{control.description!r} -> {control.value}"
    if isinstance(control.value, tuple) and hasattr(control, "min"):  # range sliders
        lo, hi = control.min, control.max
        control.value = (lo, hi) if tuple(control.value) != (lo, hi) else (lo, lo + (hi - lo) / 2)
        return f"{control.description!r} -> {control.value}"
    if hasattr(control, "min") and hasattr(control, "max"):
        control.value = control.max if control.value != control.max else control.min
        return f"{control.description!r} -> {control.value}"
    pytest.fail(f"test_widgets.py does not know how to move a {type(control).__name__}: add it to move()")


class Screen:
    """Records what a lecturer would see: shown figures, printed text, display widgets."""

    def __init__(self, widget):
        self.widget = widget
        self.figures: list[str] = []
        self.stdout = io.StringIO()

    def _grab_figures(self, *args, **kwargs):
        for num in plt.get_fignums():
            fig = plt.figure(num)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=40)
            self.figures.append(hashlib.sha1(buf.getvalue()).hexdigest())
        plt.close("all")

    def snapshot(self) -> tuple:
        self._grab_figures()
        parts = []
        for w in descendants(self.widget):
            if isinstance(w, ipywidgets.Output):
                parts.append(json.dumps(w.outputs, sort_keys=True, default=str))
            elif isinstance(w, OUTPUT_TYPES):
                value = w.value
                parts.append(hashlib.sha1(value).hexdigest() if isinstance(value, bytes) else str(value))
        state = (tuple(self.figures), self.stdout.getvalue(), tuple(parts))
        self.figures = []
        self.stdout = io.StringIO()
        return state


def exercise(build: Callable[[], object], monkeypatch, caplog) -> list[str]:
    """Build a widget, move each control, return the controls that changed nothing."""
    caplog.set_level(logging.WARNING)
    plt.close("all")
    widget = build()
    assert isinstance(widget, ipywidgets.Widget), f"a lecture widget must return a widget, got {type(widget)}"
    screen = Screen(widget)
    monkeypatch.setattr(plt, "show", screen._grab_figures)
    ctrls = controls(widget)
    assert ctrls, "the widget has no controls"
    dead = []
    before = screen.snapshot()
    for control in ctrls:
        with contextlib.redirect_stdout(screen.stdout):
            what = move(control)
        after = screen.snapshot()
        if after == before:
            dead.append(what)
        before = after
    errors = [r.getMessage() for r in caplog.records if r.exc_info or "Exception" in r.getMessage()]
    assert not errors, f"a widget callback raised: {errors}"
    return dead


# ---------------------------------------------------------------------------------------
# Tests


def test_every_lecture_widget_has_an_example():
    missing = sorted(set(lecture_widget_functions()) - set(registry()))
    assert not missing, f"lecture widgets without example data (add them to LECTURE_WIDGETS): {missing}"


@pytest.mark.parametrize("name", sorted(registry()))
def test_every_control_changes_the_output(name, monkeypatch, caplog):
    dead = exercise(registry()[name], monkeypatch, caplog)
    assert not dead, f"{name}: moving these controls changed nothing on screen: {dead}"


def test_harness_detects_dead_and_live_controls(monkeypatch, caplog):
    """The check can fail: a slider wired to nothing is reported, a live one is not."""

    def build():
        def show(k, unused):
            _, ax = plt.subplots()
            ax.plot(np.arange(5) ** k)
            plt.show()

        return ipywidgets.interactive(
            show,
            k=ipywidgets.IntSlider(value=1, min=1, max=3),
            unused=ipywidgets.FloatSlider(0.5, min=0, max=1),
        )

    dead = exercise(build, monkeypatch, caplog)
    assert len(dead) == 1 and dead[0].startswith("'unused' ->"), dead  # only the unused slider


def test_harness_reports_callback_errors(monkeypatch, caplog):
    def build():
        def show(k):
            if k > 1:
                raise RuntimeError("boom")
            print(k)

        return ipywidgets.interactive(show, k=ipywidgets.IntSlider(value=1, min=1, max=3))

    with pytest.raises(AssertionError, match="boom"):
        exercise(build, monkeypatch, caplog)


def _code_cells(path: Path) -> list[dict]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [c for c in cells if c["cell_type"] == "code"]


@pytest.mark.parametrize(
    "chapter", sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem
)
def test_widget_cells_have_a_static_fallback(chapter):
    """In the book a widget cell is removed and the next code cell shows a static figure."""
    names = {n.rsplit(".", 1)[-1] for n in set(lecture_widget_functions()) | set(registry())}
    call = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\s*\(") if names else None
    cells = _code_cells(chapter)
    problems = []
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        if call is None or not call.search(source):
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if "remove-cell" not in tags:
            problems.append(
                f"code cell {i} calls {call.search(source).group(1)} but is not tagged remove-cell"
            )
        nxt = cells[i + 1] if i + 1 < len(cells) else None
        if nxt is None or "remove-input" not in nxt.get("metadata", {}).get("tags", []):
            problems.append(f"code cell {i} (a widget) is not followed by a remove-input static figure cell")
    assert not problems, f"{chapter.name}: " + "; ".join(problems)
