"""What the machine and interpreter looked like: versions, hardware, a few safe variables.

Environment variables are NOT recorded wholesale (they hold secrets): only the
names in ENV_ALLOWLIST.
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitexp.model import Snapshot
    from gitexp.store import Store

ENV_ALLOWLIST = (
    "CUDA_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "PYTHONHASHSEED",
    "TF_DETERMINISTIC_OPS",
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
)
_PYTHON_NAME = re.compile(r"python(\d+(\.\d+)*)?(\.exe)?")
_PROBE = "import json, platform, sys; print(json.dumps([sys.version.split()[0], platform.python_implementation(), sys.path]))"


def capture(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """The environment record of a run of argv (see docs/format.md, env.json)."""
    return {
        "python": _python(argv, env),
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "memory_bytes": _memory_bytes(),
        "gpus": _gpus(env),
        "env": {k: env[k] for k in ENV_ALLOWLIST if k in env},
    }


def git_record(store: Store, snap: Snapshot, workspace: bool = True) -> dict[str, Any]:
    """The `git` section of env.json: base commit, branch, dirty; submodules and Git LFS when there are any.

    `dirty` is true when the code differs from the base commit, and also when a submodule has
    uncommitted changes inside (its recorded commit cannot show them). workspace: snap was taken
    from this work tree now (so its submodules can be inspected).
    """
    record: dict[str, Any] = {"base": snap.base, "branch": snap.base_branch, "dirty": snap.dirty}
    submodules = store.submodule_states(snap.tree, snap.base) if workspace else []
    if submodules:
        record["submodules"] = submodules
        record["dirty"] = snap.dirty or any(s["modified"] or s["moved"] for s in submodules)
    lfs = store.lfs_pointers(snap.tree)
    if lfs is not None:
        pointers, missing = lfs
        record["lfs"] = {"installed": shutil.which("git-lfs") is not None, "pointers": pointers, "objects_missing": missing}
    return record


def _python(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """The interpreter the command runs, when it is one; else the one running gitexp."""
    exe = sys.executable
    source = "gitexp"
    if _PYTHON_NAME.fullmatch(os.path.basename(argv[0])):
        found = shutil.which(argv[0], path=env.get("PATH"))
        if found:
            exe, source = found, "command"
    if os.path.realpath(exe) == os.path.realpath(sys.executable):
        version, impl, paths = sys.version.split()[0], platform.python_implementation(), sys.path
    else:
        try:
            out = subprocess.run([exe, "-c", _PROBE], capture_output=True, timeout=30, env=env, check=True).stdout
            version, impl, paths = json.loads(out)
        except (OSError, subprocess.SubprocessError, ValueError):
            return {"executable": exe, "source": source, "version": None, "packages": {}}
    return {
        "executable": exe,
        "source": source,
        "version": version,
        "implementation": impl,
        "packages": installed_packages(paths),
    }


def installed_packages(paths: list[str]) -> dict[str, str]:
    """{normalized name: version} from the *.dist-info / *.egg-info names on sys.path (first wins)."""
    found: dict[str, str] = {}
    for entry in paths:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for fname in names:
            if fname.endswith(".dist-info"):
                stem = fname[: -len(".dist-info")]
            elif fname.endswith(".egg-info"):
                stem = fname[: -len(".egg-info")]
            else:
                continue
            name, _, rest = stem.partition("-")
            version = rest.split("-", 1)[0]
            key = re.sub(r"[-_.]+", "-", name).lower()
            if version and key not in found:
                found[key] = version
    return dict(sorted(found.items()))


def login() -> str:
    """The operating-system user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def hostname() -> str:
    return os.uname().nodename if hasattr(os, "uname") else platform.node()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gpus(env: dict[str, str]) -> list[dict[str, str]]:
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        return []
    query = "--query-gpu=name,memory.total,driver_version"
    try:
        out = subprocess.run([smi, query, "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3:
            gpus.append({"name": fields[0], "memory": fields[1], "driver": fields[2]})
    return gpus
