import subprocess
import sys
from pathlib import Path

from pgm_lab import cli


def test_info_prints_profile_device_versions_cache(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for field in ("profile", "smoke", "device", "torch", "CUDA", str(tmp_path)):
        assert field in out


def test_info_reports_unknown_profile_cleanly(capsys, monkeypatch):
    monkeypatch.setenv("PGM_LAB_PROFILE", "nope")
    assert cli.main(["info"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'nope'" in err and "Traceback" not in err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "pgm-lab"
    result = subprocess.run([str(script), "info"], capture_output=True, text=True, check=True)
    assert "pgm_lab" in result.stdout


def test_lecture_commands_are_wired(capsys, monkeypatch, tmp_path):
    """warm, lab, slides-metadata and slides exist; info reports an empty cache as such."""
    parser = cli.build_parser()
    for argv in (["warm", "07", "--profile", "smoke"], ["lab", "--port", "8890"], ["slides-metadata", "x"]):
        assert parser.parse_args(argv).func.__name__.lstrip("_").replace("_", "-") == argv[0]
    assert parser.parse_args(["slides", "--out", "d", "a.ipynb"]).out == "d"
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    assert cli.main(["info"]) == 0
    assert "cached" in capsys.readouterr().out


def test_grading_without_the_grade_extra_says_what_to_install(capsys, monkeypatch, tmp_path):
    import importlib.util

    from pgm_lab.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nbval" else real(name, *a)
    )
    rc = main(["grade", "--key", "chapters/01_factorization.ipynb", "x.ipynb", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "nbval" in err and "pgm-lab[grade]" in err
    assert not any(tmp_path.iterdir())  # nothing graded, nothing written
