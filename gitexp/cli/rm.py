from __future__ import annotations

import sys

import click


@click.command("rm")
@click.argument("runs", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--remote", metavar="NAME", help="Also delete them on git remote NAME (git push NAME :refs/experiments/RUN).")
def command(runs: tuple[str, ...], yes: bool, remote: str | None) -> int:
    """Delete the refs of RUNS (names, id prefixes or 'latest'); 'gitexp gc' then frees their data.

    \b
    With --remote, each run is deleted on the remote first, then here; a run
    already deleted here can be named to delete it there. A run the remote has
    under another commit (someone else's run of that name) is deleted nowhere.
    Without --remote, if a remote that plain `git fetch` takes runs from (gitexp
    init) still has a deleted run, the next fetch brings it back: rm says so.
    """
    from gitexp import query, share
    from gitexp.cli import warn
    from gitexp.errors import GitexpError, RunNotFound
    from gitexp.names import validate
    from gitexp.render import inert
    from gitexp.store import Store

    store = Store.discover()
    if remote is not None and remote not in store.remote_names():
        raise GitexpError(f"no git remote named {remote!r} (see: git remote -v)")
    found = {}
    only_there = []  # with --remote: names no longer here, to delete there
    for spec in runs:
        try:
            run = query.settled(query.resolve(store, spec))
            found[run.name] = run
        except RunNotFound:
            if remote is None:
                raise
            only_there.append(validate(spec))
    names = inert(", ".join([*found, *only_there]))
    where = f" here and on {remote}" if remote else ""
    if not yes:
        if not sys.stdin.isatty():
            raise GitexpError(f"refusing to delete {names}{where} without confirmation (add -y)")
        click.confirm(f"Delete {len(found) + len(only_there)} run(s){where}: {names}?", abort=True, err=True)
    failed = False
    if remote is not None:
        there = share.remote_runs(store, remote)
        doomed = {}
        for name in only_there:
            if name in there:
                doomed[name] = there[name]
            else:
                warn(f"{remote} has no run {name}; nothing deleted")
                failed = True
        for name, run in list(found.items()):
            if there.get(name, run.commit) != run.commit:
                warn(f"{remote}'s {name} is another run (commit {there[name][:10]}); deleted neither there nor here"
                     f" (rename yours with gitexp rename to keep both apart)")
                del found[name]
                failed = True
            elif name in there:
                doomed[name] = run.commit
        report = share.delete_remote(store, remote, doomed)
        for line in report.rejected:
            warn(f"not deleted on {remote}: {line}")
            name = line.partition(":")[0].removeprefix("refs/experiments/")
            found.pop(name, None)
            doomed.pop(name, None)
            failed = True
        for name in doomed:
            click.echo(f"deleted {inert(name)} on {inert(remote)}")
    for run in found.values():
        if store.delete_run(run.name, run.commit) or (remote is not None and store.run_commit(run.name) is None):
            click.echo(f"deleted {inert(run.name)} ({run.commit[:10]})")
        else:
            warn(f"{run.name} changed meanwhile; not deleted")
            failed = True
    if remote is None:
        for line in share.coming_back(store, list(found)):
            warn(line)
    return 1 if failed else 0
