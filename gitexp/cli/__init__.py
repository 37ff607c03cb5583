"""The command line: a thin layer that parses, calls one core function, renders.

Commands are imported only when invoked, so `gitexp run` never pays for the
imports of `gitexp list`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from gitexp import __version__
from gitexp.errors import GitexpError

COMMANDS = {
    "run": ("gitexp.cli.run", "Run a command and record it as an experiment."),
    "list": ("gitexp.cli.list_runs", "List runs: name, when, status, duration, params, metrics."),
    "show": ("gitexp.cli.show", "Show everything recorded about one run."),
    "logs": ("gitexp.cli.logs", "Print a run's output, with times; follow a run in progress."),
    "plot": ("gitexp.cli.plot:plot", "Plot a per-step metric of several runs as an image."),
    "diff": ("gitexp.cli.diff", "What changed between two runs."),
    "compare": ("gitexp.cli.compare_runs", "Params and metrics of several runs side by side."),
    "tree": ("gitexp.cli.tree", "The evolution tree of runs."),
    "ui": ("gitexp.cli.ui", "Serve the runs as a local web app: table, curves, run pages, compare, tree."),
    "report": ("gitexp.cli.report", "Write one self-contained HTML file (or Markdown) of runs to share."),
    "queue": ("gitexp.cli.queue", "Start, see or cancel queued runs."),
    "tag": ("gitexp.cli.tag", "Add, remove or print a run's tags."),
    "note": ("gitexp.cli.note", "Set or print a run's note."),
    "checkout": ("gitexp.cli.checkout", "Restore a run's workspace: code, params, data, outputs."),
    "get": ("gitexp.cli.get", "Write a file or directory of a run elsewhere, the workspace untouched."),
    "alias": ("gitexp.cli.alias", "Point a unique alias (production, ...) at a run; list or remove aliases."),
    "branch": ("gitexp.cli.branch", "Create a git branch holding a run's code."),
    "reproduce": ("gitexp.cli.reproduce", "Re-run a run in isolation and compare its metrics."),
    "init": ("gitexp.cli.init", "Make plain git push/fetch carry runs and notes."),
    "remote": ("gitexp.cli.remote", "Add, trust or list data remotes."),
    "trust": ("gitexp.cli.trust", "Allow reading a place outside the repository (a mounted dataset)."),
    "push": ("gitexp.cli.transfer:push", "Push runs to a git remote and their data to a data remote."),
    "pull": ("gitexp.cli.transfer:pull", "Fetch runs from a git remote and their data from a data remote."),
    "which": ("gitexp.cli.which", "Which runs used or produced a file, directory or digest?"),
    "rename": ("gitexp.cli.rename", "Give a run another name."),
    "rm": ("gitexp.cli.rm", "Delete runs."),
    "gc": ("gitexp.cli.gc", "Free cache objects that no run refers to."),
    "fsck": ("gitexp.cli.fsck", "Verify the data cache."),
    "demo": ("gitexp.cli.demo", "Try gitexp on a built-in example in a throw-away repo."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, _, attr = COMMANDS[cmd_name][0].partition(":")
        return getattr(importlib.import_module(module_name), attr or "command")  # type: ignore[no-any-return]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitexp")
def cli() -> None:
    """gitexp: every training run recorded as a git commit on refs/experiments/*."""


def warn(message: str) -> None:
    """One line on stderr; whatever of a run it names is made inert (render.inert). A stderr that is gone
    (piped to head, a dead log collector) changes nothing else."""
    from gitexp.render import inert

    try:
        click.echo(f"gitexp: {inert(message)}", err=True)
    except OSError:
        silence(sys.stderr)


def silence(stream: Any) -> None:
    """Send what is still written to stream to /dev/null (its reader is gone), so no later write or flush fails."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


F = TypeVar("F", bound=Callable[..., Any])


def color_option(f: F) -> F:
    """--color auto|always|never; auto means: on a terminal, unless NO_COLOR is set."""
    return click.option(
        "--color",
        type=click.Choice(["auto", "always", "never"]),
        default="auto",
        show_default=True,
        help="Colour improvements green and regressions red.",
    )(f)


def use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def output_width() -> int | None:
    """How wide a table on stdout may be: COLUMNS when set (a positive number), else the terminal's
    width when stdout is one, else None: no limit (a pipe or a file gets every column)."""
    given = os.environ.get("COLUMNS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    try:
        if not sys.stdout.isatty():
            return None
        columns = os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None
    return columns if columns > 0 else None  # (a terminal that does not say its size: no limit)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `gitexp` and `git-exp`: turns gitexp's errors into one line and an exit code."""
    try:
        result: Any = cli.main(args=argv, prog_name="gitexp", standalone_mode=False)
    except GitexpError as exc:
        from gitexp.render import inert

        _say(f"gitexp: error: {inert(exc.message)}")
        return exc.exit_code
    except click.exceptions.Abort:
        _say("gitexp: aborted")
        # Ctrl-C can land inside a library's constructor (pygit2's Index), whose destructor then fails on
        # the half-made object as the process ends: nothing to tell the user beyond "aborted".
        sys.unraisablehook = lambda _: None
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        _say("gitexp: interrupted")
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except OSError as exc:  # the file system said no: say what and where, in one line
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(
            f"gitexp: error: {exc.strerror or exc}{where} (check permissions and free space; nothing was recorded"
            " unless a line above said so)",
            err=True,
        )
        return 1
    except Exception as exc:
        if os.environ.get("GITEXP_DEBUG"):
            raise
        click.echo(
            f"gitexp: internal error: {type(exc).__name__}: {exc} "
            "(please report it; set GITEXP_DEBUG=1 to see the traceback)",
            err=True,
        )
        return 3
    return result if isinstance(result, int) else 0


def run_main() -> None:
    code = main()
    # What is left is freed by the exit itself. Without this, the interpreter's last collection walks every
    # object start-up made (pygit2's enums, click's types): measured, 15% of the CPU time of `gitexp get`.
    import gc

    gc.freeze()
    sys.exit(code)


def _say(text: str) -> None:
    try:
        click.echo(text, err=True)
    except OSError:
        silence(sys.stderr)
