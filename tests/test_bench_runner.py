import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)


def test_ratio_direction():
    assert run.ratio({"ours": 1.0, "peer": 4.0}) == 4.0  # time: peer/ours
    assert run.ratio({"ours": 100.0, "peer": 25.0, "higher_is_better": True}) == 4.0


def test_table_has_every_column():
    table = run.format_table(
        [{"bench": "b", "what": "w", "ours": 0.5, "peer": 1.0, "unit": "s", "goal": "g"}]
    )
    header, _rule, row = table.splitlines()
    assert header.split() == ["benchmark", "what", "ours", "peer", "unit", "ratio", "goal"]
    assert "2x" in row and row.split()[0] == "b"


def test_every_benchmark_script_defines_bench():
    for path in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        assert callable(getattr(run.load(path), "bench", None)), path.name


def test_unknown_benchmark_name_is_an_error(capsys):
    with pytest.raises(SystemExit):
        run.main(["no_such_benchmark"])
    assert "unknown benchmarks" in capsys.readouterr().err


def test_factorization_bench_smoke():
    rows = run.main(["factorization", "--profile", "smoke"])
    assert rows == 0


def test_defaults_bench_covers_every_unconditional_class_once():
    cases = run.load(ROOT / "benchmarks" / "bench_defaults.py").cases("smoke")
    built = [type(build()).__name__ for _name, build, *_ in cases]
    assert built == ["PixelCNN", "PixelRNN", "VAE", "DDPM", "GAN"]
    for _name, _build, _data, recipe, score, _unit in cases:
        assert callable(score) and isinstance(recipe, dict) and recipe  # the peer differs from defaults
