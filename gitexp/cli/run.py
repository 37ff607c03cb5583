from __future__ import annotations

from dataclasses import replace
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
Several values make a sweep: `-S lr=0.1,0.01 -S batch=32,64` runs the 4
combinations (also `-S lr=[0.1,0.01]`); `--random N` draws N instead (lists
are choices; also uniform(a,b), loguniform(a,b), randint(a,b)). `--repeat N
--seed-param seed` runs each config N times with different recorded seeds.
Sweep runs go one after another in this workspace, or with `-j N` N at a time,
each in a temporary copy of the code; `--queue` only queues them (gitexp queue
start). Exit code: 0 if every run completed, else 1 (130 if interrupted).

\b
`--optuna N --metric NAME` lets Optuna's sampler choose N configs from the -S
space (uniform(a,b), loguniform(a,b), randint(a,b), lists; a single value is
fixed), one after another or `-j J` at a time, each a run of one sweep in a
temporary copy of the code, optimizing NAME in its configured direction.
Runs whose step series of NAME fall behind are pruned: recorded interrupted,
tagged `pruned`. `--sweep ID` continues a search. Exit code: 0 if a trial
completed with a value, else 1 (128+N when stopped by signal N).

\b
Params on the command line: `{name}` in COMMAND is replaced by the param's
value, from -S or a params file (`{{` and `}}` are literal braces; an
argument with a space in it, such as `python -c` code, is left as it is), and the
values are recorded as the run's params: `gitexp run -S lr=0.1,0.01 --
python main.py --lr {lr}`. -S of a key that no params file defines and no
`{key}` names is refused (a typo?); `-S +key=value` adds it to the params file.

\b
Examples:
  gitexp run -- python train.py
  gitexp run -S lr=0.1,0.01 -- python main.py --lr {lr} --epochs {epochs}
  gitexp run -n lr-small -m "halve the lr" -S lr=0.005 -- python train.py
  gitexp run -j 2 -S lr=0.1,0.01 --repeat 3 --seed-param seed -- python train.py
  gitexp run --optuna 20 -S lr='loguniform(1e-4,1e-1)' -S batch=32,64 --metric acc -- python train.py
""",
)
@click.option("-n", "--name", help="Name of the run (default: an automatic unique name).")
@click.option("-m", "--message", "note", default="", help="A note saying what this run tries.")
@click.option("-S", "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a param (dotted keys nest; value parsed as YAML), or give a {KEY} of COMMAND its value; +KEY=VALUE adds a key no params file defines. Repeatable.")
@click.option("-t", "--tag", "tags", multiple=True, help="Tag the run. Repeatable.")
@click.option("--parent", metavar="RUN", help="The run this one improves upon (default: the workspace's current run).")
@click.option("--no-parent", is_flag=True, help="Start a new root: no parent run.")
@click.option("-d", "--data", "data", multiple=True, metavar="PATH", help="An input file or directory: hashed and cached before the run. Repeatable; adds to 'data:' in .gitexp.yaml.")
@click.option("-o", "--output", "outputs", multiple=True, metavar="PATH", help="An output file or directory: hashed and cached after the run. Repeatable; adds to 'outputs:' in .gitexp.yaml.")
@click.option("--scalars", "scalars_default", is_flag=True, help="Capture scalars printed on stdout or stderr (lines like 'epoch 3 loss=0.41 acc=0.88', 'loss: 0.41', the progress bars and logs of common frameworks) as step metrics.")
@click.option("--scalars-regex", metavar="REGEX", help="Capture printed scalars with this regex: groups (?P<name>) and (?P<value>), or groups named after metrics; (?P<step>) gives the step.")
@click.option("--sample-interval", type=click.FloatRange(min=0), metavar="SECONDS", help="Seconds between hardware samples of the command's processes (default 2; 0: off).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, metavar="N", help="Run each config N times.")
@click.option("--seed-param", metavar="KEY", help="The param holding the seed: each repeat sets it to its own seed.")
@click.option("--seeds", metavar="S1,S2,...", help="The repeats' seeds (default: random ones, recorded).")
@click.option("--random", "random_count", type=click.IntRange(min=1), metavar="N", help="Draw N configs from the -S lists and ranges instead of the grid.")
@click.option("--random-seed", type=int, metavar="N", help="Seed of --random's draws (default: random, recorded), or of --optuna's sampler.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N", help="Run N at a time, each in a temporary copy of the code and inputs.")
@click.option("--gpus-per-run", type=click.IntRange(min=0), metavar="K", help="With -j: GPUs each parallel run gets in CUDA_VISIBLE_DEVICES (default 1 when GPUs are visible; 0: leave it). Each also gets its share of the cores in OMP_NUM_THREADS & co unless set.")
@click.option("--queue", "to_queue", is_flag=True, help="Only queue the run(s); `gitexp queue start` runs them.")
@click.option("--fail-fast", is_flag=True, help="Stop a sweep at its first failed run (default: run them all).")
@click.option("--optuna", "optuna_trials", type=click.IntRange(min=1), metavar="N", help="Let Optuna choose N configs from the -S space, optimizing --metric (needs gitexp[optuna]).")
@click.option("--metric", metavar="NAME", help="With --optuna: the metric to optimize, in its configured direction ('direction:' of .gitexp.yaml, else guessed from its name).")
@click.option("--sampler", metavar="NAME", help="With --optuna: tpe (default), random, cmaes, qmc or gp.")
@click.option("--pruner", metavar="NAME", help="With --optuna: stop runs whose step series of --metric fall behind: median (default), hyperband or none.")
@click.option("--prune-after", type=click.IntRange(min=0), metavar="K", help="With --optuna --pruner median: trials to complete before any is pruned (default 5).")
@click.option("--sweep", "sweep_id", metavar="ID", help="With --optuna: continue this sweep's search (its runs so far teach the sampler; new runs join it).")
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
    repeat: int,
    seed_param: str | None,
    seeds: str | None,
    random_count: int | None,
    random_seed: int | None,
    jobs: int | None,
    gpus_per_run: int | None,
    to_queue: bool,
    fail_fast: bool,
    optuna_trials: int | None,
    metric: str | None,
    sampler: str | None,
    pruner: str | None,
    prune_after: int | None,
    sweep_id: str | None,
    command: tuple[str, ...],
) -> int:
    from gitexp.cli.progress import TerminalProgress
    from gitexp.recorder import RunRequest, record_run
    from gitexp.sweep import plan

    if parent is not None and no_parent:
        raise click.UsageError("--parent and --no-parent cannot be used together")
    if to_queue and jobs is not None:
        raise click.UsageError("--queue and -j cannot be used together (queue, then: gitexp queue start -j N)")
    from gitexp.search import BadSearch

    search_options = {"--metric": metric, "--sampler": sampler, "--pruner": pruner, "--prune-after": prune_after, "--sweep": sweep_id}
    if optuna_trials is None:
        given = [option for option, v in search_options.items() if v is not None]
        if given:
            raise BadSearch(f"{given[0]} goes with --optuna N (a search); without it there is nothing to optimize")
    else:
        clash = {"--random": random_count is not None, "--repeat": repeat != 1, "--seed-param": seed_param is not None,
                 "--seeds": seeds is not None, "--queue": to_queue, "--fail-fast": fail_fast}
        for option, used in clash.items():
            if used:
                raise BadSearch(f"--optuna and {option} cannot be used together")
        if metric is None:
            raise BadSearch("--optuna needs --metric NAME: the metric to optimize (e.g. --metric acc)")
    try:
        seed_list = tuple(int(s) for s in seeds.split(",")) if seeds else ()
    except ValueError as exc:
        raise click.BadParameter("give integers, e.g. --seeds 1,2,3", param_hint="--seeds") from exc
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
    if optuna_trials is not None:
        assert metric is not None
        from gitexp.cli.batch import run_search
        from gitexp.search import Spec, parse_space

        spec = Spec(
            optuna_trials, metric, parse_space(overrides), sampler or "tpe", pruner or "median",
            5 if prune_after is None else prune_after, jobs or 1, random_seed, sweep_id, gpus_per_run,
        )
        return run_search(request, spec)
    sweep = plan(overrides, repeat, seed_param, seed_list, random_count, random_seed)
    if to_queue or jobs is not None or sweep.id is not None:
        from gitexp.cli.batch import run_batch

        return run_batch(request, sweep, jobs, to_queue, fail_fast, gpus_per_run)
    request = replace(request, overrides=sweep.runs[0].overrides)  # with the seed of --seed-param
    result = record_run(request, notify=warn, progress=TerminalProgress())
    run = result.run
    from gitexp.render import duration

    missing = ""
    if run.incomplete:
        missing = f"; incomplete, without its {', '.join(run.incomplete)} (gitexp show {run.name} says why)"
    warn(
        f"recorded {run.name} ({run.status}, exit code {run.exit_code}, {duration(run.duration)}) "
        f"as refs/experiments/{run.name} [{run.commit[:10]}]{missing}"
    )
    return result.exit_code
