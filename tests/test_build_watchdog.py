"""The watchdog that keeps a hung book build from stalling CI (tests/conftest.py)."""

from __future__ import annotations

import os
import sys
import time

from conftest import HUNG, _run_with_watchdog


def test_watchdog_kills_a_hung_process_group_and_reports_it():
    # the child starts a grandchild (as jupyter-book starts kernels) and both sleep
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    start = time.perf_counter()
    rc, out = _run_with_watchdog([sys.executable, "-c", code], dict(os.environ), timeout=1.0)
    assert rc == HUNG and "retrying once" in out
    assert time.perf_counter() - start < 30


def test_watchdog_passes_exit_code_and_output_through():
    rc, out = _run_with_watchdog(
        [sys.executable, "-c", "print('built'); raise SystemExit(3)"], dict(os.environ), 30
    )
    assert rc == 3 and "built" in out
