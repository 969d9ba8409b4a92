"""The kernel of a submission runs in a bubblewrap (``bwrap``) sandbox.

nbval starts kernels through a kernelspec; ``pgm-lab grade`` writes one per run whose argv
is ``python -m pgm_lab.grading.sandbox CONFIG {connection_file}``. That launcher (host side)
execs ``bwrap`` with:

- a new mount namespace holding only the read-only system (``/usr``, ``/etc`` …), Python,
  the virtual environment and the ``pgm_lab`` package folder: no ``chapters/``, no key, no
  prepared notebook, no other submission, no output folder, no home of the grader;
- a size-limited tmpfs as the scratch folder (``/home/student``, the kernel's cwd and
  ``HOME``) and as ``/tmp``; the only host folder it can write is its own runtime folder
  (the connection file, the kernel's Unix sockets and the hidden-check records);
- new network, PID, IPC and UTS namespaces: no network at all, the host's loopback
  included, so the kernel talks to nbval over IPC (Unix sockets), which
  :class:`IPCProvisioner` selects;
- inside, :mod:`._jail` sets RLIMIT_AS/CPU/FSIZE/NPROC/CORE, switches to an unprivileged
  uid when the grader is root (root ignores RLIMIT_NPROC) and execs the kernel.

The kernelspec asks for ``interrupt_mode: message`` (a SIGINT to the process group would
kill bwrap's monitor and so the kernel). When the grader dies, ``--die-with-parent`` takes
the sandbox with it. See the instructor guide's threat table.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jupyter_client.provisioning import LocalProvisioner

KERNEL_NAME = "pgm-lab-sandbox"
PROVISIONER_NAME = "pgm-lab-ipc"
SCRATCH = "/home/student"
UID_BASE = 61000  # as root, concurrent sandboxes run as 61000, 61001, …
LAUNCH = "import sys; from pgm_lab.grading.sandbox import main; main(sys.argv[1:])"
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
INSTALL_HINT = (
    "no sandbox for the student kernels: install bubblewrap (Debian/Ubuntu: "
    "`sudo apt-get install bubblewrap`; Fedora: `sudo dnf install bubblewrap`), or pass "
    "--no-sandbox to grade without one (every gradebook row then says so)"
)


class SandboxError(RuntimeError):
    """The sandbox cannot be started here."""


@dataclass(frozen=True)
class Limits:
    """Per-kernel limits: address space, CPU seconds, processes/threads, file and scratch size."""

    memory_mb: int = 4096
    cpu_s: int = 1800
    nproc: int = 256
    file_mb: int = 256
    scratch_mb: int = 512

    def rlimits(self) -> dict[str, int]:
        out = {
            "RLIMIT_CPU": int(self.cpu_s),
            "RLIMIT_NPROC": int(self.nproc),
            "RLIMIT_FSIZE": int(self.file_mb) * 2**20,
            "RLIMIT_CORE": 0,
        }
        if self.memory_mb:
            out["RLIMIT_AS"] = int(self.memory_mb) * 2**20
        return out


@dataclass
class SandboxConfig:
    """Everything the launcher needs for one kernel (written as JSON beside the kernelspec)."""

    runtime: str
    read_only: list[str]
    limits: Limits
    uid: int | None = None
    mpl_seed: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        data = asdict(self)
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> SandboxConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["limits"] = Limits(**data["limits"])
        return cls(**data)


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def read_only_paths() -> list[str]:
    """System folders, Python's installation, the virtual environment and ``pgm_lab`` itself."""
    import pgm_lab

    paths = [p for p in SYSTEM_DIRS if os.path.lexists(p)]
    for p in (sys.base_prefix, sys.prefix, str(Path(pgm_lab.__file__).resolve().parent)):
        p = str(Path(p).resolve())
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in paths):
            paths.append(p)
    return paths


def bwrap_argv(cfg: SandboxConfig, kernel_argv: list[str]) -> list[str]:
    """The ``bwrap`` command line that runs ``kernel_argv`` (through :mod:`._jail`)."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxError(INSTALL_HINT)
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid"]
    argv += ["--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if os.getuid() == 0:
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        argv += ["--cap-add", "CAP_CHOWN"]
    else:
        argv += ["--unshare-user"]
    size = str(cfg.limits.scratch_mb * 2**20)
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/tmp"]
    argv += _parent_dirs([*cfg.read_only, cfg.runtime, SCRATCH, *([cfg.mpl_seed] if cfg.mpl_seed else [])])
    for p in cfg.read_only:
        if os.path.islink(p) and p in SYSTEM_DIRS:
            argv += ["--symlink", os.readlink(p), p]
        else:
            argv += ["--ro-bind", p, p]
    argv += ["--size", size, "--tmpfs", SCRATCH]
    if cfg.mpl_seed:
        argv += ["--ro-bind", cfg.mpl_seed, cfg.mpl_seed]
    argv += ["--bind", cfg.runtime, cfg.runtime, "--chmod", "1777", "/tmp", "--chdir", SCRATCH]
    jail = {
        "scratch": SCRATCH,
        "uid": cfg.uid,
        "rlimits": cfg.limits.rlimits(),
        "mpl_seed": cfg.mpl_seed,
        "env": {
            "HOME": f"{SCRATCH}/home",
            "TMPDIR": "/tmp",
            "MPLCONFIGDIR": f"{SCRATCH}/mpl",
            "IPYTHONDIR": f"{SCRATCH}/ipython",
            "XDG_CACHE_HOME": f"{SCRATCH}/cache",
            "PGM_LAB_CACHE": f"{SCRATCH}/cache/pgm_lab",
            **cfg.env,
        },
    }
    jail_py = str(Path(__file__).with_name("_jail.py"))
    return [*argv, "--", sys.executable, "-I", "-S", jail_py, json.dumps(jail), "--", *kernel_argv]


def _parent_dirs(paths) -> list[str]:
    """``--dir`` options (mode 0755) for the folders above each mount point.

    bwrap would create them with mode 0700, which the unprivileged kernel cannot cross.
    """
    parents = sorted({str(a) for p in paths for a in Path(p).parents if str(a) not in ("/", "/tmp")})
    out: list[str] = []
    for d in sorted(parents, key=lambda d: d.count("/")):
        out += ["--perms", "0755", "--dir", d]
    return out


def write_kernelspec(folder: Path, config_path: Path) -> str:
    """A kernelspec named :data:`KERNEL_NAME` under ``folder/kernels`` that starts the sandbox."""
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-c", LAUNCH, str(config_path), "{connection_file}"],
        "display_name": "pgm-lab sandbox",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"kernel_provisioner": {"provisioner_name": PROVISIONER_NAME}},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return KERNEL_NAME


def short_runtime_root() -> Path:
    """A short folder for Unix sockets (their paths must stay under about 100 characters)."""
    return Path(tempfile.mkdtemp(prefix="pgl-", dir="/tmp" if os.path.isdir("/tmp") else None))


def prepare_owner(cfg: SandboxConfig) -> None:
    """As root: hand the runtime folder and its files to the sandbox's uid."""
    if cfg.uid is None:
        return
    for root, dirs, files in os.walk(cfg.runtime):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, cfg.uid, cfg.uid)


class IPCProvisioner(LocalProvisioner):
    """The local provisioner with IPC transport: the sandbox has no network, not even loopback."""

    async def pre_launch(self, **kwargs):
        from jupyter_core.paths import jupyter_runtime_dir

        km = self.parent
        if km is not None:
            runtime = Path(jupyter_runtime_dir())
            km.transport = "ipc"
            km.cache_ports = False
            km.ip = str(runtime / "k")
            km.connection_file = str(runtime / "kernel.json")  # inside the sandbox's view
        return await super().pre_launch(**kwargs)


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """``None`` when a sandbox starts here, else why not (checked once per process)."""
    if bwrap_path() is None:
        return INSTALL_HINT
    with tempfile.TemporaryDirectory(prefix="pgl-probe-") as tmp:
        os.chmod(tmp, 0o755)
        cfg = SandboxConfig(tmp, read_only_paths(), Limits(), uid=UID_BASE if os.getuid() == 0 else None)
        prepare_owner(cfg)
        probe = [sys.executable, "-c", "import pgm_lab, socket; print('ok')"]
        try:
            out = subprocess.run(bwrap_argv(cfg, probe), capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start a sandbox ({exc}); {INSTALL_HINT}"
        if out.returncode != 0 or out.stdout.strip() != "ok":
            why = (out.stderr.strip().splitlines() or ["no message"])[-1]
            return f"bubblewrap could not start a sandbox ({why}); fix that, or pass --no-sandbox"
    return None


def main(argv: list[str] | None = None) -> None:
    """Kernel launcher: ``python -m pgm_lab.grading.sandbox CONFIG CONNECTION_FILE``."""
    argv = sys.argv[1:] if argv is None else argv
    cfg = SandboxConfig.load(argv[0])
    connection_file = argv[1]
    prepare_owner(cfg)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file]
    cmd = bwrap_argv(cfg, kernel)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
