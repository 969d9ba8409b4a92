"""First process inside the sandbox: set limits, become the unprivileged user, start the kernel.

Run by bubblewrap as ``python -I -S _jail.py CONFIG_JSON -- KERNEL_ARGV...`` (no site, no
imports beyond the standard library, so it is quick). CONFIG_JSON gives the rlimits, the
uid to switch to (only when the grader runs as root: the kernel must not run as root,
which ignores RLIMIT_NPROC), the scratch folder and the environment to set. See
:mod:`pgm_lab.grading.sandbox`.
"""

import json
import os
import resource
import shutil
import sys


def main(argv):
    sep = argv.index("--")
    cfg = json.loads(argv[1])
    kernel = argv[sep + 1 :]
    scratch = cfg["scratch"]
    for sub in ("home", "mpl", "ipython", "cache", "tmp"):
        os.makedirs(os.path.join(scratch, sub), exist_ok=True)
    seed = cfg.get("mpl_seed")
    if seed and os.path.isdir(seed):
        for name in os.listdir(seed):
            if name.endswith(".json"):
                shutil.copyfile(os.path.join(seed, name), os.path.join(scratch, "mpl", name))
    uid = cfg.get("uid")
    if uid is not None:
        for root, dirs, files in os.walk(scratch):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, uid, uid)
    for name, value in cfg["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.environ.update(cfg["env"])
    # ipykernel exits when its parent pid changes; in a PID namespace the pid it was given
    # is not its parent's. bwrap's --die-with-parent does that job instead.
    os.environ.pop("JPY_PARENT_PID", None)
    os.chdir(scratch)
    os.execv(kernel[0], kernel)


if __name__ == "__main__":
    main(sys.argv)
