"""Workers of the remote queue started by a cluster's own engine (Ray, Dask, Slurm): gitexp schedules nothing.

A launcher only starts N copies of one shell-level recipe on the engine's nodes:

    git clone URL <fresh temporary directory>  &&  cd there  &&  gitexp queue work --remote origin ...

`gitexp queue work` does the rest: it claims queued runs on the git
remote exactly once, runs them and pushes their results. The engine only decides where each
worker runs; the remote is the only meeting point, and credentials are the node's own git
(SSH keys, credential helpers; never a prompt: GIT_TERMINAL_PROMPT=0).

Engines are imported only when used, so `import gitexp` never pays for them.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError

ENGINES = {"ray": ("ray", "ray"), "dask": ("distributed", "dask")}  # engine -> (module to import, pip extra)
TAIL_BYTES = 4000  # the end of a worker's stderr kept in its report
STOP_GRACE = 60.0  # seconds a worker stopped with SIGTERM has to record its run as interrupted and push it


class LaunchError(GitexpError):
    """An engine is missing or unreachable, or a remote cannot be named to a worker."""


@dataclass(frozen=True)
class WorkerOptions:
    """The options every launched worker gets (`gitexp queue work --help` says what each means)."""

    idle_exit: float = 0
    lease: float | None = None
    retry_crashed: int | None = None
    data_remote: str | None = None
    data_url: str | None = None  # carried to each worker's clone as its own data remote (with_data_remote)

    def setup(self) -> list[list[str]]:
        """`gitexp` commands a worker's fresh clone runs first: the data remote this clone trusts, as the
        clone's own (a worker's clone trusts no data remote of .gitexp.yaml: anyone who pushes can change it)."""
        if self.data_remote is None or self.data_url is None:
            return []
        return [["remote", "add", "--local", self.data_remote, self.data_url]]

    def argv(self, remote: str = "origin") -> list[str]:
        """`gitexp queue work` arguments, without the program."""
        args = ["queue", "work", "--remote", remote, "--idle-exit", _number(self.idle_exit)]
        if self.lease is not None:
            args += ["--lease", _number(self.lease)]
        if self.retry_crashed is not None:
            args += ["--retry-crashed", str(self.retry_crashed)]
        if self.data_remote is not None:
            args += ["--data-remote", self.data_remote]
        return args


@dataclass
class WorkerReport:
    """What one launched worker did: where it ran, its exit code, its own --json summary."""

    index: int
    host: str = ""
    exit_code: int | None = None  # None: gitexp never ran (the clone failed, the task died)
    summary: Any = None  # the worker's `--json` output, parsed; None when it printed none
    error: str = ""  # why it failed: the clone's or the worker's last stderr line, or the engine's error
    stderr_tail: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_data_remote(options: WorkerOptions, remote: str, cwd: Path | None = None) -> WorkerOptions:
    """options with the data remote the workers send outputs to: the one `gitexp push remote` would use here,
    which this clone must trust (gitexp remote trust NAME); unchanged outside a repository, or with none."""
    from gitexp import trust
    from gitexp.errors import BareRepository, NotARepository
    from gitexp.share import data_remote_name, data_remotes
    from gitexp.store import Store

    try:
        store = Store.discover(cwd or ".")
    except (NotARepository, BareRepository):
        if options.data_remote is not None:
            raise LaunchError(
                f"--data-remote {options.data_remote}: run this in a clone that has it (see: gitexp remote list)"
            ) from None
        return options
    remotes = data_remotes(store)
    name = data_remote_name(remotes, options.data_remote, remote)
    if name is None:
        return options
    trust.require_remote(store, name, remotes[name])
    return replace(options, data_remote=name, data_url=trust.destination(remotes[name], store.root))


def remote_url(remote: str, cwd: Path | None = None) -> str:
    """The URL a worker on another node clones: a git remote's name resolved here, else remote itself
    (a URL, host:path, or a path: made absolute, since the worker does not start in this directory)."""
    where = cwd or Path.cwd()
    proc = subprocess.run(
        ["git", "remote", "get-url", "--", remote], cwd=where, capture_output=True, text=True, errors="replace", check=False
    )
    if proc.returncode == 0 and proc.stdout.strip():
        return _absolute(proc.stdout.strip(), where)
    if _is_url(remote) or (where / remote).exists():
        return _absolute(remote, where)
    raise LaunchError(
        f"no git remote named {remote!r} here (add it with: git remote add {remote} URL, or give --remote URL)"
    )


def shown_url(url: str) -> str:
    """url as printed: a password or token in it (https://user:TOKEN@host/...) replaced by ***."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", url)


def _is_url(text: str) -> bool:
    return "://" in text or re.match(r"^[^/]+:", text) is not None  # scheme://... or scp-like host:path


def _absolute(url: str, where: Path) -> str:
    if _is_url(url):
        return url
    return str((where / url).resolve())


def work_in_clone(url: str, argv: list[str], index: int, setup: list[list[str]] | None = None) -> dict[str, Any]:
    """Runs on the engine's node: clone url into a fresh temporary directory, run `gitexp <argv>` there.

    Returns a WorkerReport as a plain dict (engines ship it back pickled). The directory is
    removed at the end whatever happened. The node's own Python runs gitexp, so it must be
    installed there (as the engine's own code is).
    """
    report = WorkerReport(index, host=socket.gethostname())
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    top = tempfile.mkdtemp(prefix=f"gitexp-work-{index}-")
    try:
        clone = Path(top) / "repo"
        with open(Path(top) / "clone.err", "w+b") as err:
            proc = subprocess.run(
                ["git", "clone", "--quiet", url, str(clone)], stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env, check=False
            )
            if proc.returncode != 0:
                report.stderr_tail = _tail(err)
                report.error = f"git clone {shown_url(url)} failed: {_last_line(report.stderr_tail)}"
                return report.to_dict()
        python = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else [])]  # -P: not the clone's gitexp/
        for command in setup or []:
            with open(Path(top) / "setup.err", "w+b") as err:
                proc = subprocess.run([*python, "-m", "gitexp", *command], cwd=clone, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=err, env=env, check=False)
                if proc.returncode != 0:
                    report.stderr_tail = _tail(err)
                    report.error = f"gitexp {' '.join(command[:2])} failed: {_last_line(report.stderr_tail)}"
                    return report.to_dict()
        with open(Path(top) / "work.out", "w+b") as out, open(Path(top) / "work.err", "w+b") as err:
            report.exit_code = _run_worker([*python, "-m", "gitexp", *argv, "--json"], clone, out, err, env)
            report.stderr_tail = _tail(err)
            out.seek(0)
            report.summary = _parse_summary(out.read())
        if report.exit_code != 0:
            report.error = _last_line(report.stderr_tail) or f"gitexp queue work exited {report.exit_code}"
        return report.to_dict()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _run_worker(args: list[str], cwd: Path, out: Any, err: Any, env: dict[str, str]) -> int:
    """Run the worker; if this task is interrupted (Ray's cancel raises KeyboardInterrupt in it), stop the worker
    as scancel or Kubernetes would: SIGTERM, so that it records its run in progress as interrupted and ends."""
    proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
    try:
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def _tail(f: Any) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - TAIL_BYTES))
    return str(f.read().decode("utf-8", "replace"))


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _parse_summary(raw: bytes) -> Any:
    from gitexp.safeload import json_loads

    if not raw.strip():
        return None
    try:
        return json_loads(raw, "the worker's --json output")
    except GitexpError:
        return None


@dataclass(frozen=True)
class Tasks:
    """How many workers to start, and what each reserves on its node (the engine places them)."""

    jobs: int = 1
    cpus: int = 1  # Ray: num_cpus (Ray also sets OMP_NUM_THREADS to it)
    gpus: int = 0  # Ray: num_gpus (Ray sets CUDA_VISIBLE_DEVICES; with 0, to none); Dask: resources={"GPU": gpus}


def launch(
    engine: str,
    address: str,
    url: str,
    options: WorkerOptions,
    tasks: Tasks,
    on_report: Callable[[WorkerReport], None] = lambda r: None,
) -> list[WorkerReport]:
    """Submit tasks.jobs tasks to the engine at address, each a worker in its own clone of url; wait for all.

    on_report is called as each worker ends. Returns the reports ordered by task index.
    """
    run = {"ray": _launch_ray, "dask": _launch_dask}[engine]
    try:
        reports = run(address, url, options, tasks, on_report)
    except LaunchError:
        raise
    except Exception as exc:  # noqa: BLE001 -- the engine failed while waiting: the cluster went away
        raise LaunchError(
            f"lost the {engine} cluster at {address!r} while waiting for the workers: "
            f"{_last_line(str(exc)) or type(exc).__name__} (workers that still run go on until the queue is empty; "
            "see: gitexp queue status --remote R)"
        ) from None
    return sorted(reports, key=lambda r: r.index)


def engine_module(engine: str) -> Any:
    """The engine's Python module (ray, distributed), or a LaunchError naming the extra to install."""
    import importlib

    module, extra = ENGINES[engine]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == module:
            raise LaunchError(f"{engine} is not installed (install it with: pip install 'gitexp[{extra}]')") from None
        raise LaunchError(f"{engine} failed to import: {exc} (reinstall it with: pip install 'gitexp[{extra}]')") from None


def _from_task(index: int, result: Any, failure: BaseException | None) -> WorkerReport:
    if failure is None and isinstance(result, dict):
        known = {k: v for k, v in result.items() if k in WorkerReport.__dataclass_fields__}
        return WorkerReport(**known)
    reason = f"{type(failure).__name__}: {failure}" if failure is not None else f"unexpected task result {result!r}"
    return WorkerReport(index, error=f"the task failed: {_last_line(reason)}")


def _gather(ended: Iterable[tuple[int, Callable[[], Any]]], on_report: Callable[[WorkerReport], None]) -> list[WorkerReport]:
    """The reports of the tasks as they end (task index, its result getter): whatever a task raised is its report."""
    reports = []
    for index, result in ended:
        try:
            report = _from_task(index, result(), None)
        except Exception as exc:  # noqa: BLE001 -- whatever killed the task is that worker's report
            report = _from_task(index, None, exc)
        on_report(report)
        reports.append(report)
    return reports


def _launch_ray(
    address: str, url: str, options: WorkerOptions, tasks: Tasks, on_report: Callable[[WorkerReport], None]
) -> list[WorkerReport]:
    ray = engine_module("ray")
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "local":  # a new Ray on this machine, stopped at the end (to try things out)
        quiet["include_dashboard"] = False
    try:
        ray.init(address=address, **quiet)
    except Exception as exc:  # noqa: BLE001 -- the engine's own errors: ConnectionError, ValueError, RuntimeError ...
        raise LaunchError(
            f"cannot reach the Ray cluster at {address!r}: {_last_line(str(exc)) or type(exc).__name__} "
            "(start one with: ray start --head, or give --ray auto on one of its nodes)"
        ) from None
    try:
        task = ray.remote(num_cpus=tasks.cpus, num_gpus=tasks.gpus, max_retries=0)(work_in_clone)
        refs = {task.remote(url, options.argv(), i, options.setup()): i for i in range(tasks.jobs)}

        def ended() -> Iterator[tuple[int, Callable[[], Any]]]:
            pending = list(refs)
            try:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    yield from ((refs[ref], lambda ref=ref: ray.get(ref)) for ref in done)
            except KeyboardInterrupt:  # Ctrl-C: cancel the tasks (a task that gets the cancel stops its worker
                for ref in pending:  # with SIGTERM; one Ray ends first leaves its run to the lease)
                    ray.cancel(ref)
                raise

        return _gather(ended(), on_report)
    finally:
        ray.shutdown()


def _launch_dask(
    address: str, url: str, options: WorkerOptions, tasks: Tasks, on_report: Callable[[WorkerReport], None]
) -> list[WorkerReport]:
    distributed = engine_module("dask")
    try:
        client = distributed.Client(address)
    except Exception as exc:  # noqa: BLE001 -- OSError, TimeoutError, ValueError from the address ...
        raise LaunchError(
            f"cannot reach the Dask scheduler at {address!r}: {_last_line(str(exc)) or type(exc).__name__} "
            "(start one with: dask scheduler, and workers with: dask worker ADDRESS --nthreads 1)"
        ) from None
    try:
        batch = uuid.uuid4().hex[:8]
        resources = {"GPU": tasks.gpus} if tasks.gpus else None
        futures = {
            client.submit(work_in_clone, url, options.argv(), i, options.setup(), pure=False, key=f"gitexp-work-{batch}-{i}", resources=resources): i
            for i in range(tasks.jobs)
        }
        return _gather(((futures[f], f.result) for f in distributed.as_completed(list(futures))), on_report)
    finally:
        client.close()


def slurm_script(
    url: str,
    options: WorkerOptions,
    array: int | None = None,
    gpus: int | None = None,
    cpus: int | None = None,
    time: str | None = None,
    partition: str | None = None,
    job_name: str = "gitexp-work",
) -> str:
    """A ready sbatch script: each array task clones url into its own directory and runs one worker."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}"]
    if array is not None:
        lines.append(f"#SBATCH --array=1-{array}")
    if cpus is not None:
        lines.append(f"#SBATCH --cpus-per-task={cpus}")
    if gpus:
        lines.append(f"#SBATCH --gpus={gpus}")
    if time is not None:
        lines.append(f"#SBATCH --time={time}")
    if partition is not None:
        lines.append(f"#SBATCH --partition={partition}")
    lines.append(f"#SBATCH --output={job_name}-%A_%a.out" if array is not None else f"#SBATCH --output={job_name}-%j.out")
    worker = shlex.join(["gitexp", *options.argv()])
    lines += [
        "",
        "# Generated by: gitexp queue slurm-script. Submit with: sbatch THIS_FILE",
        "# Each task is one worker in its own fresh clone of the remote; the workers meet only on the remote,",
        "# which hands each queued run to exactly one of them. gitexp must be on PATH on the nodes (activate",
        "# its environment here if needed); git uses the nodes' own credentials (SSH keys, credential helpers).",
        "set -euo pipefail",
        f"remote={shlex.quote(url)}",
        'work=$(mktemp -d "${TMPDIR:-/tmp}/gitexp-work-${SLURM_JOB_ID:-$$}.XXXXXX")',
        "trap 'rm -rf \"$work\"' EXIT",
        "export GIT_TERMINAL_PROMPT=0  # a missing credential fails the clone instead of waiting for a password",
        'git clone --quiet "$remote" "$work/repo"',
        'cd "$work/repo"',
        *(shlex.join(["gitexp", *command]) + "  # the data remote the submitting clone trusts" for command in options.setup()),
        worker,
        "",
    ]
    return "\n".join(lines)


def sbatch_value_ok(text: str) -> bool:
    """Whether text can stand on an #SBATCH line as it is (no space, quote, newline or shell character)."""
    return re.fullmatch(r"[A-Za-z0-9,.:_+-]+", text) is not None


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
