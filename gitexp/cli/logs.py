from __future__ import annotations

import sys

import click

from gitexp.cli import warn
from gitexp.render import inert_bytes


@click.command("logs")
@click.argument("run", default="latest")
@click.option("-f", "--follow", is_flag=True, help="Keep printing a run in progress as it writes, until it ends.")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix each line with the time it was written (E marks stderr).")
@click.option("--stdout", "only", flag_value="stdout", help="Only stdout.")
@click.option("--stderr", "only", flag_value="stderr", help="Only stderr.")
@click.option("--raw", is_flag=True, help="On a terminal too, print the bytes exactly as recorded (control characters and escape sequences included).")
def command(run: str, follow: bool, timestamps: bool, only: str | None, raw: bool) -> None:
    """Print RUN's output (stdout and stderr, in the order written); --follow a run in progress.

    On a terminal, control characters are shown escaped (\\x1b) unless --raw: a run fetched from
    someone else must not be able to retitle or clear your terminal. Piped or redirected, the
    output is the bytes as recorded."""
    from pathlib import Path

    from gitexp import format as fmt
    from gitexp import live, logs, query
    from gitexp.store import Store

    store = Store.discover(bare_ok=True)
    found = query.resolve(store, run)
    out = sys.stdout.buffer

    escape = not raw and sys.stdout.isatty()

    def write(data: bytes) -> None:
        out.write(inert_bytes(data) if escape else data)
        out.flush()

    printer = logs.Printer(write, timestamps, (only,) if only else ("stdout", "stderr"))
    common = store.git_common_dir()
    state = live.read(common, found.name) if found.status in ("running", "crashed") else None
    if state is not None and state.commit == found.commit:
        scratch = Path(state.scratch)
        if follow:

            def still_running() -> bool:
                now = live.read(common, found.name)
                return now is not None and now.commit == found.commit and live.alive(now)

            if logs.follow(scratch, printer, still_running):
                ended = query.resolve(store, found.name)
                code = f" (exit code {ended.exit_code})" if ended.exit_code is not None else ""
                warn(f"run {ended.name} ended: {ended.status}{code}")
                return
        else:
            try:
                source = [(scratch / f).read_bytes() for f in (fmt.STDOUT_FILE, fmt.STDERR_FILE, fmt.LOG_TIMES_FILE)]
            except OSError:
                source = []
            if source:
                for piece in logs.pieces(*source):
                    printer.write(piece)
                return
        found = query.resolve(store, found.name)  # it ended meanwhile: its record has everything
    stdout, stderr, times = (store.read_record(found.commit, f) for f in (fmt.STDOUT_FILE, fmt.STDERR_FILE, fmt.LOG_TIMES_FILE))
    if stdout is None and stderr is None:
        why = {"queued": "it has not run yet", "saved": "it is a saved workspace, not a command"}.get(
            found.status, "it was recorded by gitexp.start(), whose output went to your terminal or notebook"
        )
        warn(f"run {found.name} has no output recorded: {why}")
        return
    for piece in logs.pieces(stdout or b"", stderr or b"", times or b""):
        printer.write(piece)
