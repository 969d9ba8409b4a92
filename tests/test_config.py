import random

import numpy as np
import pytest
import torch

import pgm_lab as pl


def test_profile_from_environment(monkeypatch):
    for name in ("smoke", "quick", "full"):
        monkeypatch.setenv("PGM_LAB_PROFILE", name)
        assert pl.profile().name == name
    monkeypatch.setenv("PGM_LAB_PROFILE", "QUICK")
    assert pl.profile().name == "quick"


def test_profile_default_depends_on_cuda(monkeypatch):
    monkeypatch.delenv("PGM_LAB_PROFILE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pl.profile().name == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pl.profile().name == "full"


def test_unknown_profile_lists_valid_ones(monkeypatch):
    monkeypatch.setenv("PGM_LAB_PROFILE", "turbo")
    with pytest.raises(ValueError, match=r"unknown profile 'turbo'.*smoke, quick, full"):
        pl.profile()
    with pytest.raises(ValueError, match="smoke, quick, full"):
        pl.Profile("fast")


def test_pick_selects_by_profile(monkeypatch):
    assert pl.pick(1, 2, 3) == 1  # conftest sets smoke
    monkeypatch.setenv("PGM_LAB_PROFILE", "full")
    assert pl.pick(1, 2, 3) == 3
    assert pl.profile("quick").pick(smoke="a", quick="b", full="c") == "b"


def test_setup_seeds_python_numpy_torch(capsys):
    info = pl.setup(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    pl.setup(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    assert info.seed == 7 and info.profile.name == "smoke" and info.device.type == "cpu"
    out = capsys.readouterr().out
    assert "profile=smoke" in out and "seed=7" in out


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_setup_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        pl.setup(seed)


def test_device_override(monkeypatch):
    monkeypatch.setenv("PGM_LAB_DEVICE", "cpu")
    assert pl.device().type == "cpu"
    monkeypatch.setenv("PGM_LAB_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        pl.device()
    monkeypatch.setenv("PGM_LAB_DEVICE", "warp-drive")
    with pytest.raises(ValueError, match="not a torch device"):
        pl.device()


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path / "c"))
    assert pl.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("PGM_LAB_CACHE")
    assert pl.cache_dir(create=False).name == "pgm_lab"


def test_lazy_submodules_and_unknown_attribute():
    assert pl.factorization.markov_chain_parameters(2, 3) == 5
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        pl.nonexistent  # noqa: B018
