"""The pins cannot drift: pyproject.toml, constraints.txt and environment.yml agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = PIN.match(line)
        assert m, f"not an exact pin: {line!r}"
        out[norm(m.group(1))] = m.group(2)
    return out


def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def project_pins() -> dict[str, str]:
    p = project()
    return pins(p["dependencies"] + [d for extra in p["optional-dependencies"].values() for d in extra])


def test_every_direct_dependency_is_pinned_and_locked():
    locked = pins((ROOT / "constraints.txt").read_text().splitlines())
    for name, version in project_pins().items():
        assert locked.get(name) == version, (
            f"{name}: pyproject pins {version}, constraints.txt {locked.get(name)}"
        )
    assert locked["torch"] == "2.13.0", "torch must stay pinned to the release the book was tested with"


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    major_minor = tuple(int(x) for x in python.split("=")[1].split(".")[:2])
    assert major_minor >= (3, 11), "environment.yml's python must satisfy requires-python"
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pins(pip_section) == project_pins()
    assert "--constraint constraints.txt" in pip_section
    assert any(line.startswith("--editable .") for line in pip_section)


def test_console_script_declared():
    assert project()["scripts"]["pgm-lab"] == "pgm_lab.cli:main"
