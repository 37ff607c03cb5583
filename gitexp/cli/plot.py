from __future__ import annotations

from pathlib import Path

import click

from gitexp.series import X_AXES


@click.command("plot")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("-m", "--metric", required=True, help="The per-step value to plot (e.g. loss, or rss_mb from system.jsonl).")
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The image to write; its suffix picks the format (.png, .svg, .pdf). [default: METRIC.png]",
)
@click.option("--x", "x", type=click.Choice(X_AXES), default="step", show_default=True, help="The x axis.")
def plot(runs: tuple[str, ...], metric: str, out: Path | None, x: str) -> None:
    """Plot METRIC over the steps of each RUN, one line per run (needs matplotlib).

    RUN is a name, a commit id prefix, or 'latest'. Runs that did not log METRIC are skipped with a warning.
    """
    from gitexp import format as fmt
    from gitexp import query, series
    from gitexp.cli import warn
    from gitexp.store import Store

    store = Store.discover(bare_ok=True)
    series_by_run: dict[str, dict[str, list[series.Point]]] = {}
    for spec in runs:
        run = query.resolve(store, spec)
        files = (store.read_record(run.commit, name) or b"" for name in (fmt.STEPS_FILE, fmt.SYSTEM_FILE))
        series_by_run[run.name] = series.merge(*(series.parse(data) for data in files))
    curves, missing = series.select(series_by_run, metric)
    for name in missing:
        warn(f"{name} has no per-step metric {metric!r}: skipped")
    target = out or Path(metric.replace("/", "_").replace("\\", "_") + ".png")
    series.plot(curves, metric, target, x)
    click.echo(f"wrote {target} ({len(curves)} run{'s' if len(curves) != 1 else ''})")
