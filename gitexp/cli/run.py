from __future__ import annotations

from pathlib import Path

import click

from gitexp.cli import warn


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    help="""Run COMMAND and record it as a run on refs/experiments/NAME.

\b
The run's commit holds the code as `git add -A` would stage it, the
effective params, the final metrics, the environment and the output.
gitexp exits with COMMAND's exit code.

\b
Examples:
  gitexp run -- python train.py
  gitexp run -n lr-small -m "halve the lr" -S lr=0.005 -- python train.py
""",
)
@click.option("-n", "--name", help="Name of the run (default: an automatic unique name).")
@click.option("-m", "--message", "note", default="", help="A note saying what this run tries.")
@click.option("-S", "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a param (dotted keys nest; value parsed as YAML). Repeatable.")
@click.option("-t", "--tag", "tags", multiple=True, help="Tag the run. Repeatable.")
@click.option("--parent", metavar="RUN", help="The run this one improves upon (default: the workspace's current run).")
@click.option("--no-parent", is_flag=True, help="Start a new root: no parent run.")
@click.option("-d", "--data", "data", multiple=True, metavar="PATH", help="An input file or directory: hashed and cached before the run. Repeatable; adds to 'data:' in .gitexp.yaml.")
@click.option("-o", "--output", "outputs", multiple=True, metavar="PATH", help="An output file or directory: hashed and cached after the run. Repeatable; adds to 'outputs:' in .gitexp.yaml.")
@click.option("--scalars", "scalars_default", is_flag=True, help="Capture scalars printed on stdout (lines like 'epoch 3 loss=0.41 acc=0.88' or 'loss: 0.41') as step metrics.")
@click.option("--scalars-regex", metavar="REGEX", help="Capture stdout scalars with this regex: groups (?P<name>) and (?P<value>), or groups named after metrics; (?P<step>) gives the step.")
@click.option("--sample-interval", type=click.FloatRange(min=0), metavar="SECONDS", help="Seconds between hardware samples of the command's processes (default 2; 0: off).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def command(
    name: str | None,
    note: str,
    overrides: tuple[str, ...],
    tags: tuple[str, ...],
    parent: str | None,
    no_parent: bool,
    data: tuple[str, ...],
    outputs: tuple[str, ...],
    scalars_default: bool,
    scalars_regex: str | None,
    sample_interval: float | None,
    command: tuple[str, ...],
) -> int:
    from gitexp.cli.progress import TerminalProgress
    from gitexp.recorder import RunRequest, record_run

    if parent is not None and no_parent:
        raise click.UsageError("--parent and --no-parent cannot be used together")
    request = RunRequest(
        command=list(command),
        cwd=Path.cwd(),
        name=name,
        note=note,
        overrides=overrides,
        parent=parent,
        no_parent=no_parent,
        tags=tags,
        data=data,
        outputs=outputs,
        scalars=scalars_regex or ("default" if scalars_default else None),
        sample_interval=sample_interval,
    )
    result = record_run(request, notify=warn, progress=TerminalProgress())
    run = result.run
    from gitexp.render import duration

    warn(
        f"recorded {run.name} ({run.status}, exit code {run.exit_code}, {duration(run.duration)}) "
        f"as refs/experiments/{run.name} [{run.commit[:10]}]"
    )
    return result.exit_code
