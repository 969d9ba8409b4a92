"""Lecture mode (issue 17): the warm registry, ``pgm-lab warm`` and ``info``, ``make lab``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pgm_lab import cli, lecture

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"


def _calls(stem: str) -> set[str]:
    import nbformat

    nb = nbformat.read(CHAPTERS / f"{stem}.ipynb", as_version=4)
    return set().union(*(lecture.recipes_called(c.source) for c in nb.cells if c.cell_type == "code"))


def test_recipes_called_finds_our_training_calls_only():
    src = "\n".join(
        [
            "h = pl.train.fit(model, data, **vae.TRAINING)",
            "clf = LogisticRegression().fit(x, y)",  # scikit-learn: not ours
            'm, h = cd.train("cvae")',
            "probe = copy.deepcopy(cgan).train()",  # nn.Module.train(): not ours
            "s = pl.metrics.score_samples(x)",
            "h2 = fit(m, d)",
        ]
    )
    assert lecture.recipes_called(src) == {"fit", "train", "score_samples"}
    assert lecture.recipes_called("gm = GaussianMixture(3).fit(x)\nmodel.train()") == set()


def test_registry_lists_exactly_the_chapters_that_train_and_their_recipes():
    for path in sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb")):
        cid, calls = path.name[:2], _calls(path.stem)
        if cid in lecture.REGISTRY:
            stem, recipes = lecture.REGISTRY[cid]
            assert stem == path.stem
            assert calls == set(recipes), f"chapter {cid} calls {sorted(calls)}, registry says {recipes}"
        else:
            assert not calls, f"chapter {cid} trains ({sorted(calls)}) but is not in lecture.REGISTRY"
    assert set(lecture.RECIPES) >= {r for _, rs in lecture.REGISTRY.values() for r in rs}


def test_plan_runs_every_code_cell_up_to_the_last_training_cell():
    import nbformat

    p = lecture.plan("07")
    nb = nbformat.read(p.path, as_version=4)
    assert p.training and p.cells[-1] == max(p.training)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert p.cells == [i for i in code if i <= max(p.training)]  # as "Run All" would, nothing skipped
    whole = lecture.plan("07", whole=True)
    assert whole.cells == code and whole.training == p.training
    assert len(whole.cells) > len(p.cells)  # chapter 07 has cells after its last training cell


def test_resolve_chapters_and_its_errors():
    assert lecture.resolve_chapters(["7", "08_diffusion_models", "07"]) == ["07", "08"]
    assert lecture.resolve_chapters([]) == ["06", "07", "08", "09", "10"]
    for bad in ("03", "99", "nope", "07_diffusion_models"):
        with pytest.raises(ValueError, match=r"unknown chapter .*06 \(06_autoregressive_models\).*10"):
            lecture.resolve_chapters([bad])


def test_warm_rejects_bad_input_before_running_anything(capsys):
    assert cli.main(["warm", "3"]) == 2
    err = capsys.readouterr().err
    assert "unknown chapter '3'" in err and "07 (07_variational_autoencoders)" in err
    assert cli.main(["warm", "--profile", "huge", "07"]) == 2
    assert "unknown profile 'huge': valid profiles are smoke, quick, full" in capsys.readouterr().err


def test_warm_says_when_the_cache_is_not_writable(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("PGM_LAB_CACHE", str(blocker / "cache"))
    assert cli.main(["warm", "07"]) == 2
    err = capsys.readouterr().err
    assert f"{blocker / 'cache'} is not writable" in err and "PGM_LAB_CACHE" in err
    assert "still runs" in err


def test_info_lists_the_cache_per_profile(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    assert lecture.describe_cache() == ["(empty: `pgm-lab warm` fills it before a lecture)"]
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    for name, size in [
        ("VAE-smoke-0123abcd.pt", 1000),
        ("VAE-smoke-4567abcd.pt", 2000),
        ("GAN-quick-89abcdef.pt", 3 * 2**20),
        ("VAE-00aa11bb.pt", 10),  # cache format 1: no profile in the name
    ]:
        (ck / name).write_bytes(b"x" * size)
    listing = lecture.cached_models()
    assert listing == {
        "smoke": [("VAE", 1000), ("VAE", 2000)],
        "quick": [("GAN", 3 * 2**20)],
        "older format": [("VAE-00aa11bb", 10)],
    }
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "smoke: 2 checkpoints, 0.0 MiB (VAE x2)" in out and "quick: 1 checkpoints, 3.0 MiB (GAN)" in out


def test_format_table():
    rows = [
        lecture.Row("07", 16, "VAE", "smoke", 0.0512, True),
        lecture.Row("07", 3, "AE", "smoke", 6.6, False),
    ]
    lines = lecture.format_table(rows).splitlines()
    assert lines[0].split() == ["chapter", "cell", "model", "profile", "seconds", "cache", "hit"]
    assert lines[2].split() == ["07", "16", "VAE", "smoke", "0.05", "yes"]
    assert lines[3].split() == ["07", "3", "AE", "smoke", "6.60", "no"]


@pytest.mark.slow
def test_warm_then_every_training_call_is_a_cache_hit_under_a_second(tmp_path, monkeypatch):
    """Warm chapter 09 (smoke) into an empty cache, then warm again: the second run's training
    calls all load from the cache, each in under a second, and `info` lists them."""
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path / "cache"))
    first = lecture.warm(["09"], "smoke", progress=False)
    assert not first.errors, first.errors
    assert first.rows and not all(r.hit for r in first.rows)
    models = [(r.cell, r.model) for r in first.rows]
    assert {m for _, m in models} >= {"GAN"}
    second = lecture.warm(["09"], "smoke", progress=False)
    assert not second.errors, second.errors
    assert [(r.cell, r.model) for r in second.rows] == models  # the same calls, in the same cells
    slow = [(r.cell, r.model, round(r.seconds, 2)) for r in second.rows if not (r.hit and r.seconds < 1.0)]
    assert not slow, f"training calls that did not load from the cache in < 1 s: {slow}"
    assert {r.profile for r in second.rows if r.model == "GAN"} == {"smoke"}
    assert "GAN" in " ".join(lecture.describe_cache())


# -- make lab -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_command_adds_allow_root_only_as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    cmd = lecture.lab_command(8899)
    assert "--allow-root" in cmd and "--ServerApp.port=8899" in cmd and "--ServerApp.port_retries=0" in cmd
    assert f"--ServerApp.root_dir={CHAPTERS}" in cmd
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--allow-root" not in lecture.lab_command(8899)


def test_lab_refuses_a_busy_port_naming_it(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert cli.main(["lab", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is busy" in err and f"make lab PORT={port + 2}" in err


def _start_lab(port: int, env: dict, user: str | None = None) -> subprocess.Popen:
    cmd = [str(Path(sys.executable).with_name("pgm-lab")), "lab", "--port", str(port)]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )


def _fetch_lab(proc: subprocess.Popen, port: int, timeout: float = 120.0) -> tuple[str, int, str]:
    """Read the printed URL, then poll it until JupyterLab answers; returns (url, status, page)."""
    url = None
    printed = []
    while url is None:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"pgm-lab lab exited without a URL:\n{''.join(printed)}")
        printed.append(line)
        if "/lab?token=" in line:
            url = line.strip()
    assert url.startswith(f"http://127.0.0.1:{port}/lab?token=")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return url, r.status, r.read().decode("utf-8", "replace")
        except (urllib.error.URLError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"JupyterLab did not answer {url} within {timeout:.0f} s: {exc}"
                ) from None
            time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _lab_env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    return env


@pytest.mark.slow
def test_lab_starts_prints_its_url_and_serves_chapters(tmp_path):
    """As the current user (root here: then --allow-root is added): the printed URL answers
    200 with the token, the file browser's root is chapters/, and a bad token is refused."""
    port = _free_port()
    proc = _start_lab(port, _lab_env(tmp_path))
    try:
        url, status, page = _fetch_lab(proc, port)
        assert status == 200 and "JupyterLab" in page
        token = url.split("token=", 1)[1]
        api = f"http://127.0.0.1:{port}/api/contents?token={token}"
        with urllib.request.urlopen(api, timeout=10) as r:
            names = {item["name"] for item in json.load(r)["content"]}
        assert {p.name for p in CHAPTERS.glob("*.ipynb")} <= names
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token=wrong", timeout=10)
        assert bad.value.code == 403
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/lab/api/extensions?token={token}", timeout=10
        ) as r:
            assert "jupyterlab-rise" in r.read().decode()  # the live slideshow is installed
    finally:
        _stop(proc)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to switch user")
def test_lab_runs_as_a_normal_user():
    """Root switches to the unprivileged `nobody`: no --allow-root, and the lab still serves."""
    import tempfile

    script = Path(sys.executable).with_name("pgm-lab")
    probe = ["runuser", "-u", "nobody", "--", str(script), "--help"]
    if subprocess.run(probe, capture_output=True).returncode:
        pytest.skip(f"`nobody` cannot run {script} (its Python lies in a folder private to root)")
    home = Path(tempfile.mkdtemp(prefix="pgm-lab-nobody-"))  # pytest's tmp_path is root's alone
    shutil.chown(home, "nobody")
    port = _free_port()
    proc = _start_lab(port, _lab_env(home), user="nobody")
    try:
        _, status, _ = _fetch_lab(proc, port)
        assert status == 200
    finally:
        _stop(proc)
        shutil.rmtree(home, ignore_errors=True)
