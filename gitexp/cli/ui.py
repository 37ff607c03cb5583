from __future__ import annotations

import click


def ui_modules() -> None:
    """Check the `ui` extra is installed (a clear error naming the fix, not an ImportError)."""
    import importlib.util

    from gitexp.errors import GitexpError

    missing = [m for m in ("starlette", "uvicorn", "plotly") if importlib.util.find_spec(m) is None]
    if missing:
        raise GitexpError(f"gitexp ui needs {', '.join(missing)}: pip install 'gitexp[ui]'")


@click.command("ui")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="The port (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. Anything but loopback needs a token on every request (printed in the URL).")
@click.option("--open", "open_browser", is_flag=True, help="Open the URL in a web browser.")
@click.option("--token", metavar="T", help="The token (default: a random one). Always needed for tag and note edits.")
def command(port: int, host: str, open_browser: bool, token: str | None) -> None:
    """Serve the repository's runs as a local web app (runs table, curves, run pages, compare, tree, groups).

    Prints the URL; follows the repository live (new runs, running runs' metrics, curves and logs). Read-only
    except tag and note edits. Stop with Ctrl-C.
    """
    import sys

    ui_modules()
    from gitexp.store import Store
    from gitexp.ui.server import serve
    from gitexp.ui.views import Views

    if token is not None and (len(token) < 8 or not token.isascii() or not token.isprintable() or " " in token):
        raise click.BadParameter("give at least 8 printable ASCII characters, no spaces", param_hint="--token")
    views = Views(Store.discover(bare_ok=True))

    def announce(url: str) -> None:
        click.echo(url)
        sys.stdout.flush()
        click.echo(f"gitexp ui: serving the runs of {views.root} at {url} (Ctrl-C to stop)", err=True)

    try:
        serve(views, host, port, token, open_browser, announce)
    except KeyboardInterrupt:
        pass
