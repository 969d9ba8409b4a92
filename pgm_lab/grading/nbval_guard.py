"""pytest plugin loaded by ``pgm-lab grade`` next to nbval: notice a dead kernel at once.

nbval waits for a cell's reply for the whole cell timeout even when the kernel process has
already exited (``os._exit``, a segfault, the kernel killed for memory), then reports a
time-out. This plugin makes nbval's wait poll the kernel every 0.2 s and fail the cell with
``kernel died (exit code N)`` / ``kernel died (killed by signal N)`` as soon as the process
is gone; the following cells then fail with nbval's "Kernel dead on test start". Loaded
with ``-p pgm_lab.grading.nbval_guard``; a no-op when nbval's internals differ.
"""

from __future__ import annotations

import signal
import time
from queue import Empty

POLL_S = 0.2
KERNEL_DIED = "kernel died"


class KernelDied(RuntimeError):
    """The kernel process exited while a cell was running."""


def describe_exit(kernel) -> str:
    """``kernel died (exit code 3)`` or ``kernel died (killed by signal 9, SIGKILL)``."""
    code = None
    try:
        code = kernel.km.provisioner.process.returncode
    except AttributeError:
        pass
    if code is None:
        return KERNEL_DIED
    if code > 128 and code - 128 in {s.value for s in signal.Signals}:
        code = -(code - 128)  # the sandbox reports a kernel killed by signal N as 128 + N
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"{KERNEL_DIED} (killed by signal {-code}, {name})"
    return f"{KERNEL_DIED} (exit code {code})"


def _await_reply(self, msg_id, timeout=None):
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    while True:
        wait = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
        try:
            msg = self.get_message(stream="shell", timeout=wait)
        except Empty:
            if not self.is_alive():
                raise KernelDied(describe_exit(self)) from None
            if deadline is not None and time.monotonic() >= deadline:
                raise
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            if msg["content"]["status"] == "aborted":
                raise RuntimeError("Kernel aborted execution request")
            return


def pytest_configure(config):
    try:
        from nbval.kernel import RunningKernel
    except ImportError:  # pragma: no cover - nbval is a dependency
        return
    if hasattr(RunningKernel, "await_reply") and hasattr(RunningKernel, "get_message"):
        RunningKernel.await_reply = _await_reply
