from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("runs", nargs=-1, metavar="[RUN...]")
@click.option("-w", "--where", "where", metavar="EXPR", help="The runs matching EXPR (same language as gitexp list --where).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="The file to write (html: required; markdown: default stdout).")
@click.option("--format", "output_format", type=click.Choice(["html", "markdown"]), default="html", show_default=True,
              help="html: one self-contained page (table, curves, parallel coordinates, compare, tree); "
                   "markdown: the table with metric deltas against the first run, for a PR comment.")
def command(runs: tuple[str, ...], where: str | None, out: Path | None, output_format: str) -> None:
    """Write the runs (RUN..., or those matching --where, default all) as one HTML file that opens from
    file:// with no network, or as Markdown."""
    from gitexp.store import Store
    from gitexp.ui import report
    from gitexp.ui.views import Views
    from gitexp.workspace import atomic_write

    if output_format == "html":
        if out is None:
            raise click.UsageError("give the file to write: -o report.html")
        from gitexp.cli.ui import ui_modules

        ui_modules()
    views = Views(Store.discover(bare_ok=True))
    found = report.selected(views, list(runs), where)
    if output_format == "markdown":
        text = report.markdown(views, found)
        if out is None:
            click.echo(text, nl=False)
            return
        atomic_write(out, text.encode())
    else:
        assert out is not None
        atomic_write(out, report.html(views, report.data(views, found, where)).encode())
    click.echo(f"wrote {out} ({len(found)} run{'s' if len(found) != 1 else ''})", err=True)
