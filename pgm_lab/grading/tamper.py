"""Kernel side: what a submission changed in its kernel that a notebook should not change.

:func:`findings` runs at the start of every hidden check (see :mod:`.hidden`) and lists
code *defined in the notebook* that has been put where the grader's machinery runs:
IPython input or AST transformers, event callbacks, ``sys.settrace``/``sys.setprofile``
hooks, replaced ``builtins``, ``sys.stdout``/``sys.stderr``/display hooks, and functions of
``pgm_lab``, numpy, torch, networkx or pgmpy replaced by notebook functions. The grader
writes them to the gradebook as "tampering: …". Detection is best effort (a determined
student can hide from it); hidden checks are what make such tricks worthless.
"""

from __future__ import annotations

import builtins
import sys

WATCHED_PACKAGES = ("pgm_lab", "numpy", "torch", "networkx", "pgmpy", "json", "math")
_NOTEBOOK_FILE_MARKS = ("<ipython-input", "/ipykernel_")


def is_notebook_code(obj) -> bool:
    """Whether ``obj`` (a function, method, class or instance) was defined by notebook code."""
    target = getattr(obj, "__func__", obj)
    code = getattr(target, "__code__", None)
    if code is not None:
        name = str(getattr(code, "co_filename", ""))
        return (
            any(m in name for m in _NOTEBOOK_FILE_MARKS) or getattr(target, "__module__", None) == "__main__"
        )
    cls = obj if isinstance(obj, type) else type(obj)
    return getattr(cls, "__module__", "") == "__main__"


def _ipython_findings() -> list[str]:
    try:
        ip = get_ipython()
    except NameError:
        return []
    out = []
    for attr in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
        hooks = getattr(ip, attr, []) or []
        if any(is_notebook_code(h) for h in hooks):
            out.append(f"IPython {attr.replace('_', ' ')} added")
    callbacks = getattr(getattr(ip, "events", None), "callbacks", {}) or {}
    for event, funcs in callbacks.items():
        if any(is_notebook_code(f) for f in funcs):
            out.append(f"IPython event hook on {event}")
    if is_notebook_code(getattr(ip, "run_cell", None)) or is_notebook_code(
        getattr(ip, "run_cell_async", None)
    ):
        out.append("IPython run_cell replaced")
    return out


def _stream_findings() -> list[str]:
    out = []
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        mod = type(stream).__module__
        if not mod.startswith(("ipykernel", "IPython", "_io", "io")) or is_notebook_code(stream):
            out.append(f"sys.{name} replaced")
        elif is_notebook_code(getattr(stream, "write", None)):
            out.append(f"sys.{name}.write replaced")
    for name in ("displayhook", "excepthook"):
        if is_notebook_code(getattr(sys, name, None)):
            out.append(f"sys.{name} replaced")
    if sys.gettrace() is not None and is_notebook_code(sys.gettrace()):
        out.append("sys.settrace hook")
    if sys.getprofile() is not None and is_notebook_code(sys.getprofile()):
        out.append("sys.setprofile hook")
    return out


def _module_findings() -> list[str]:
    out = []
    for name, value in vars(builtins).items():
        if is_notebook_code(value):
            out.append(f"builtins.{name} replaced")
    for modname, module in list(sys.modules.items()):
        if module is None or not modname.startswith(WATCHED_PACKAGES):
            continue
        if modname.split(".")[0] not in WATCHED_PACKAGES:
            continue
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        for attr, value in items:
            if callable(value) and is_notebook_code(value):
                out.append(f"{modname}.{attr} replaced")
    return out


def findings(limit: int = 8) -> list[str]:
    """Short descriptions of the tampering seen in this kernel (at most ``limit``)."""
    found: list[str] = []
    for probe in (_ipython_findings, _stream_findings, _module_findings):
        try:
            found += probe()
        except Exception as exc:  # a probe must never break a check
            found.append(f"could not inspect the kernel ({type(exc).__name__})")
    return sorted(set(found))[:limit]
