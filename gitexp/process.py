"""Run the user's command: stream its output live, keep a copy, handle signals.

When our stdout/stderr is a terminal the child gets a pseudo-terminal for it,
so colours and progress bars behave exactly as without gitexp.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import BinaryIO, Protocol

from gitexp.errors import CommandNotExecutable, CommandNotFound
from gitexp.signals import STOP_SIGNALS

LINGER_SECONDS = 2.0  # how long to keep reading output held open by a background grandchild
ESCALATION = (  # after an interrupt: (seconds since it, signal sent to the command if still alive)
    (1.0, signal.SIGINT),
    (11.0, signal.SIGTERM),
    (16.0, signal.SIGKILL),
)


class OutputSink(Protocol):
    """Also fed the command's stdout and stderr as they arrive (scalar capture); stream says which."""

    def feed(self, data: bytes, when: float, stream: str) -> None: ...

    def close(self, when: float) -> None: ...


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    interrupted: bool
    usage: resource.struct_rusage | None = None  # the command's and its reaped descendants' CPU and peak memory
    lost: tuple[tuple[str, str], ...] = ()  # (log file, why) for each log that could not be written in full


def execute(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    stdout_log: Path,
    stderr_log: Path,
    times_log: Path | None = None,
    on_start: Callable[[int], None] | None = None,
    output_sink: OutputSink | None = None,
) -> Outcome:
    """Run argv to completion; return its exit code (128+N when killed by signal N).

    times_log gets a line `<unix time> <stdout|stderr> <end offset>` per piece of
    output read, so every line of the logs has the time it arrived; on_start is
    called with the command's pid once it runs.
    """
    check_command(argv[0], cwd, env)
    out_r, out_w = _channel(sys.stdout)
    err_r, err_w = _channel(sys.stderr)
    guard = _SignalGuard()  # before the command starts: a signal from then on is the command's to take
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out_w, stderr=err_w)
    except OSError as exc:
        _close(out_r, out_w, err_r, err_w)
        guard.restore(started=False)
        if isinstance(exc, FileNotFoundError):
            raise CommandNotFound(argv[0]) from exc
        if isinstance(exc, PermissionError):
            raise CommandNotExecutable(argv[0], "permission denied") from exc
        raise CommandNotExecutable(argv[0], exc.strerror or str(exc)) from exc
    guard.attach(proc)
    _close(out_w, err_w)
    pump = _Pump(
        [(out_r, _fileno(sys.stdout), stdout_log, "stdout"), (err_r, _fileno(sys.stderr), stderr_log, "stderr")],
        times_log,
        {out_r: output_sink, err_r: output_sink} if output_sink is not None else {},
    )
    pump.start()
    try:
        if on_start is not None:
            on_start(proc.pid)
        returncode, usage = _wait(proc)
    finally:
        guard.restore()
        pump.finish()
    exit_code = 128 - returncode if returncode < 0 else returncode
    return Outcome(exit_code=exit_code, interrupted=guard.interrupted, usage=usage, lost=tuple(pump.lost.items()))


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, resource.struct_rusage | None]:
    """Reap the command with wait4, which also gives its resource usage (that of its whole reaped tree)."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # reaped by a concurrent poll() of the signal guard
        return proc.wait(), None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


def check_command(program: str, cwd: Path, env: dict[str, str]) -> None:
    """Raise CommandNotFound unless program can be found as the command would be."""
    if os.sep in program:
        path = Path(cwd, program)
        if not path.exists():
            raise CommandNotFound(program)
        if path.is_dir() or not os.access(path, os.X_OK):
            raise CommandNotExecutable(program, "it is a directory" if path.is_dir() else "it is not executable")
        return
    if shutil.which(program, path=env.get("PATH")) is None:
        raise CommandNotFound(program)


def _channel(stream: object) -> tuple[int, int]:
    """(read end for us, write end for the child): a pty when we write to a terminal."""
    fd = _fileno(stream)
    if fd is not None and os.isatty(fd):
        import pty

        master, slave = pty.openpty()
        try:
            import fcntl
            import termios

            attrs = termios.tcgetattr(fd)
            attrs[1] &= ~termios.ONLCR  # keep the child's \n as is; our own terminal adds the \r
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            pass  # a terminal that will not tell its settings: the pty's defaults will do
        return master, slave
    return os.pipe()


def _fileno(stream: object) -> int | None:
    try:
        return stream.fileno()  # type: ignore[attr-defined, no-any-return]
    except (AttributeError, OSError, ValueError):
        return None


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class _Pump:
    """Copies the child's output to our terminal and to log files, in one thread."""

    def __init__(
        self, channels: list[tuple[int, int | None, Path, str]], times_log: Path | None, sinks: dict[int, OutputSink]
    ) -> None:
        self.lost: dict[str, str] = {}  # log file name -> why it stops short (a full disk): the output goes on
        self._wake_r, self._wake_w = os.pipe()
        self._channels = channels
        self._times_log = times_log
        self._sinks = sinks
        self._thread = threading.Thread(target=self._run, name="gitexp-output", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join()
        _close(self._wake_r, self._wake_w)

    def _run(self) -> None:
        # Unbuffered: if gitexp itself is killed, the logs hold everything read so far.
        # Whatever fails here (a full disk, our own output closed), the command's output keeps being read:
        # a thread that stopped reading would kill the command with SIGPIPE or block it on a full pipe.
        logs = {src: self._open(log) for src, _, log, _ in self._channels}
        dests = {src: dst for src, dst, _, _ in self._channels}
        labels = {src: label for src, _, _, label in self._channels}
        offsets = dict.fromkeys(dests, 0)
        times = self._open(self._times_log) if self._times_log is not None else None
        open_fds = set(dests)
        deadline: float | None = None
        try:
            while open_fds:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([*open_fds, self._wake_r], [], [], timeout)
                if not ready:
                    break  # lingering grandchildren: stop reading, the command is done
                for fd in ready:
                    if fd == self._wake_r:
                        os.read(fd, 16)
                        deadline = time.monotonic() + LINGER_SECONDS
                        continue
                    data = _read(fd)
                    if not data:
                        open_fds.discard(fd)
                        continue
                    now = time.time()
                    offsets[fd] += len(data)
                    logs[fd] = self._write(
                        logs[fd], data, f"{labels[fd]}.log",
                        f"after {offsets[fd] - len(data)} bytes; the rest was passed on to gitexp's output only",
                    )
                    if times is not None:
                        line = f"{now:.3f} {labels[fd]} {offsets[fd]}\n".encode()
                        times = self._write(times, line, "logtimes.tsv", "the later output has no arrival times")
                    sink = self._sinks.get(fd)
                    if sink is not None:
                        try:
                            sink.feed(data, now, labels[fd])
                        except (OSError, ValueError) as exc:
                            self._sinks.clear()  # capture is a bonus: it never stops the logs
                            self.lost.setdefault("scalars", f"{_why(exc)}; later scalars were not captured")
                    dst = dests[fd]
                    if dst is not None and not _write_all(dst, data):
                        dests[fd] = None  # our output was closed (e.g. piped to head): keep logging
        finally:
            for fd, log in logs.items():
                _close_file(log)
                _close(fd)
            for sink in {id(sink): sink for sink in self._sinks.values()}.values():
                with contextlib.suppress(OSError, ValueError):
                    sink.close(time.time())
            _close_file(times)

    def _open(self, path: Path) -> BinaryIO | None:
        try:
            return open(path, "wb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            self.lost.setdefault(path.name, _why(exc))
            return None

    def _write(self, log: BinaryIO | None, data: bytes, name: str, then: str) -> BinaryIO | None:
        """data appended to log; a log that cannot take it is closed (None from then on) and its loss noted."""
        if log is None:
            return None
        try:
            view = memoryview(data)
            while view:  # an unbuffered write may take only part of it (a disk nearly full)
                written = log.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            return log
        except OSError as exc:
            self.lost.setdefault(name, f"{_why(exc)} {then}")
            _close_file(log)
            return None


def _why(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__


def _close_file(f: BinaryIO | None) -> None:
    if f is not None:
        with contextlib.suppress(OSError):
            f.close()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO on a pty: the child side closed; any other error ends the stream too
        return b""


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        return False
    return True


class _SignalGuard:
    """While the command runs: Ctrl-C and SIGTERM stop it (gently, then firmly), never us."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self.interrupted = False
        self._early: list[int] = []  # signals that came while the command was being started
        self._count = 0
        self._timers: list[threading.Timer] = []
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        """The command runs: the signals that came while it started are handled now, as if they came now."""
        self._proc = proc
        early, self._early = self._early, []
        for signum in early:
            self._handle(signum, None)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._proc is None:
            self._early.append(signum)
            return
        self.interrupted = True
        self._count += 1
        if signum != signal.SIGINT:
            # SIGTERM/SIGHUP come to us alone (a scheduler, a closed terminal): pass it on.
            self._send(signal.SIGTERM)
            self._schedule([(10.0, signal.SIGKILL)])
        elif self._count == 1:
            # A terminal's Ctrl-C reaches the command too; give it a moment to stop by itself.
            self._schedule(list(ESCALATION))
        else:
            self._send(signal.SIGTERM if self._count == 2 else signal.SIGKILL)

    def _schedule(self, steps: list[tuple[float, int]]) -> None:
        for delay, sig in steps:
            timer = threading.Timer(delay, self._send, args=(sig,))
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def _send(self, sig: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def restore(self, started: bool = True) -> None:
        """Put the previous handlers back; a signal that came while a command failed to start is raised again."""
        for timer in self._timers:
            timer.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if not started and self._early:
            signal.raise_signal(self._early[0])
