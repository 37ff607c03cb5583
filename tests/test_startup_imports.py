"""Start-up: each command imports what it uses, and not what other commands need.

Start-up is the floor of every small command (pygit2 and click alone are most of
`gitexp list`), so modules only some commands use are imported where used. The
modules a command imported are read from CPython's own import log
(PYTHONPROFILEIMPORTTIME), of the real CLI in a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GITEXP, Workspace

# Needed by some commands only: the YAML parser (a repository's .gitexp.yaml), the stat cache's sqlite,
# the data cache and its hashing, recording, restoring, the Python API and the run filter language.
RECORDING = {"gitexp.recorder", "gitexp.process", "gitexp.sampler", "gitexp.live", "gitexp.sweep", "gitexp.paramfiles"}
RESTORING = {"gitexp.restore", "gitexp.data.inventory"}
DATA = {"gitexp.data.cache", "gitexp.data.hashing", "gitexp.data.remote", "xxhash", "sqlite3"}
QUERYING = {"gitexp.api", "gitexp.filter"}
HEAVY = {"pandas", "numpy", "matplotlib", "tabulate", "psutil", "concurrent.futures"}


def imported(cwd: Path, *args: str) -> set[str]:
    """The modules `gitexp ARGS` imported (it must succeed)."""
    proc = subprocess.run([*GITEXP, *args], cwd=cwd, capture_output=True, text=True, errors="replace",
                          env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = {m.group(1).strip() for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \| (.+)$", proc.stderr, re.MULTILINE)}
    assert "gitexp.cli" in found, "the import log was read"
    return found


@pytest.fixture
def recorded(ws: Workspace) -> Workspace:
    ws.write(".gitexp.yaml", "outputs: [model.bin]\n")
    ws.write(".gitignore", "model.bin\n")
    ws.write("train.py", "open('model.bin', 'w').write('weights')\n")
    ws.commit_all("base")
    ws.run("-n", "r1", "--", sys.executable, "train.py")
    return ws


def test_version_and_help_import_neither_git_nor_any_command(recorded: Workspace) -> None:
    for args in (("--version",), ("--help",)):
        loaded = imported(recorded.root, *args)
        assert not loaded & {"pygit2", "gitexp.store", "yaml", *DATA, *QUERYING, *RECORDING, *RESTORING}, (args, loaded)


def test_list_and_show_import_no_data_cache_recording_restoring_or_yaml(recorded: Workspace) -> None:
    for args in (("list",), ("show", "r1")):
        loaded = imported(recorded.root, *args)
        assert "pygit2" in loaded  # the control: they read runs
        assert not loaded & {"yaml", "xxhash", "sqlite3", "gitexp.data.cache", *RECORDING, *RESTORING, *HEAVY}, (args, loaded)
        assert "ssl" not in loaded, "pygit2 is loaded without Python's ssl (see gitexp/store/binding.py)"


def test_get_imports_the_cache_but_not_its_sqlite_nor_the_remote_yaml_recording_or_query_language(recorded: Workspace, tmp_path: Path) -> None:
    for path in ("train.py", "model.bin"):
        loaded = imported(recorded.root, "get", "r1", path, "-o", str(tmp_path / path))
        assert "gitexp.data.cache" in loaded  # the control
        assert not loaded & {"yaml", "sqlite3", "gitexp.data.remote", "gitexp.render", *QUERYING, *RECORDING, *HEAVY}, (path, loaded)
    assert (tmp_path / "model.bin").read_text() == "weights"


def test_run_imports_no_query_language_restoring_or_remote(recorded: Workspace) -> None:
    loaded = imported(recorded.root, "run", "--", sys.executable, "-c", "pass")
    assert "gitexp.recorder" in loaded  # the control
    assert not loaded & {*QUERYING, *RESTORING, "gitexp.data.remote", *HEAVY}, loaded


def test_a_checkout_imports_neither_yaml_once_the_config_was_read_nor_a_thread_pool_for_a_few_files_nor_live_runs_when_none_runs(recorded: Workspace) -> None:
    recorded.write("model.bin", "other weights")
    assert recorded.gitexp("run", "-n", "r2", "--", "true").code == 0  # reads .gitexp.yaml once
    loaded = imported(recorded.root, "checkout", "r1")
    assert "gitexp.restore" in loaded  # the control
    assert (recorded.root / "model.bin").read_text() == "weights"
    assert not loaded & {"yaml", "concurrent.futures", "gitexp.recorder", "gitexp.live", "shlex", *QUERYING}, loaded


PYGIT2_WORKS = """
import ssl, sys, tempfile
import pygit2
repo = pygit2.init_repository(tempfile.mkdtemp())
assert repo.is_empty
ssl.create_default_context()  # the real ssl loads as usual afterwards
print(pygit2.settings.ssl_cert_file, pygit2.settings.ssl_cert_dir)
"""


def test_pygit2_loaded_without_ssl_works_and_the_real_ssl_loads_afterwards() -> None:
    script = "import sys\nfrom gitexp.store import binding\nbinding.load()\nassert 'ssl' not in sys.modules\n" + PYGIT2_WORKS
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "None", "libgit2 was given a certificate directory only"


def test_a_pygit2_that_wants_more_of_ssl_is_imported_the_ordinary_way() -> None:
    script = (
        "import sys, types\nfrom gitexp.store import binding\n"
        "for name in [n for n in sys.modules if n.split('.')[0] == 'pygit2']:\n    del sys.modules[name]\n"
        "class Deaf(types.ModuleType):  # a stand-in that keeps nothing: pygit2's 'from ssl import ...' fails\n"
        "    def __setattr__(self, name, value): pass\n"
        "binding.types = types.SimpleNamespace(ModuleType=Deaf)\n"
        "binding.load()\nassert 'ssl' in sys.modules\n" + PYGIT2_WORKS
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] != "None", "the ordinary import gave libgit2 the CA bundle"
