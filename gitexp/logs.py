"""A run's output played back in the order it arrived, with each line's time; followed live while it runs.

stdout.log and stderr.log hold the bytes exactly as the command wrote them;
logtimes.tsv says when each piece arrived: `<unix time> <stdout|stderr> <end offset>`
per read. A run recorded before logtimes.tsv existed plays stdout, then stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from gitexp import format as fmt

Piece = tuple[float | None, str, bytes]  # (arrival time, stream, bytes)
POLL_SECONDS = 0.25


def pieces(stdout: bytes, stderr: bytes, times: bytes) -> Iterator[Piece]:
    """The output in arrival order; what the times do not cover comes last."""
    data = {"stdout": stdout, "stderr": stderr}
    done = {"stdout": 0, "stderr": 0}
    for line in times.splitlines():
        parsed = _entry(line)
        if parsed is None or parsed[1] not in data:
            continue
        when, stream, end = parsed
        if end > done[stream]:
            yield when, stream, data[stream][done[stream] : end]
            done[stream] = end
    for stream in ("stdout", "stderr"):
        if done[stream] < len(data[stream]):
            yield None, stream, data[stream][done[stream] :]


def _entry(line: bytes) -> tuple[float, str, int] | None:
    parts = line.split()
    if len(parts) != 3:
        return None
    try:
        when, stream, end = float(parts[0]), parts[1].decode(), int(parts[2])
    except (ValueError, UnicodeDecodeError):
        return None
    return (when, stream, end) if 0 <= when < 1e11 else None  # (a time a clock can show; NaN is not)


@dataclass
class Printer:
    """Writes pieces to out: as they are, or with each line prefixed by its time (and stream)."""

    out: Callable[[bytes], None]
    timestamps: bool = False
    streams: tuple[str, ...] = ("stdout", "stderr")
    _at_line_start: dict[str, bool] | None = None

    def write(self, piece: Piece) -> None:
        when, stream, data = piece
        if stream not in self.streams or not data:
            return
        if not self.timestamps:
            self.out(data)
            return
        starts = self._at_line_start or {"stdout": True, "stderr": True}
        self._at_line_start = starts
        stamp = _stamp(when, stream)
        lines = data.split(b"\n")
        chunks = []
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            if last and not line:
                break
            prefix = stamp if starts[stream] else b""
            chunks.append(prefix + line + (b"" if last else b"\n"))
            starts[stream] = not last
        self.out(b"".join(chunks))


def _stamp(when: float | None, stream: str) -> bytes:
    text = datetime.fromtimestamp(when).astimezone().isoformat(timespec="milliseconds") if when else " " * 29
    mark = "E" if stream == "stderr" else " "
    return f"{text} {mark} ".encode()


def follow(scratch: Path, printer: Printer, still_running: Callable[[], bool]) -> bool:
    """Print a run's output from its scratch dir as it grows, until it ends; False if the dir is already gone."""
    try:
        handles: dict[str, BinaryIO] = {
            "stdout": open(scratch / fmt.STDOUT_FILE, "rb"),  # noqa: SIM115 - kept open: the dir goes at the end
            "stderr": open(scratch / fmt.STDERR_FILE, "rb"),  # noqa: SIM115
        }
        times = open(scratch / fmt.LOG_TIMES_FILE, "rb")  # noqa: SIM115
    except OSError:
        return False
    done = {"stdout": 0, "stderr": 0}
    pending = b""
    try:
        while True:
            running = still_running()  # asked before reading, so nothing written before the end is missed
            pending += times.read()
            complete, _, pending = pending.rpartition(b"\n")
            for line in complete.splitlines():
                parsed = _entry(line)
                if parsed is None or parsed[1] not in handles:
                    continue
                when, stream, end = parsed
                if end > done[stream]:
                    printer.write((when, stream, handles[stream].read(end - done[stream])))
                    done[stream] = end
            if not running:
                for stream, handle in handles.items():
                    printer.write((None, stream, handle.read()))
                return True
            time.sleep(POLL_SECONDS)
    finally:
        for handle in (*handles.values(), times):
            handle.close()
