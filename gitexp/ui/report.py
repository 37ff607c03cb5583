"""`gitexp report`: the UI's views of some runs in ONE self-contained HTML file, or a Markdown table.

The HTML is the front end's index.html with app.css, plotly.min.js (from the installed plotly package) and
app.js inlined, and the data of the selected runs embedded as `<script type="application/json"
id="gitexp-data">`: the very payloads `gitexp ui` serves (views.py), so the report shows what the UI shows,
from file:// with no network. The JSON has `<`, `>`, `&` and U+2028/9 \\u-escaped, so no value of a run can end
the element; a Content-Security-Policy <meta> allows only the inlined scripts (by their sha256) and no
connection anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from typing import Any

from gitexp.errors import GitexpError
from gitexp.model import RunSummary
from gitexp.ui.views import BadRequest, Views, to_json_bytes

SERIES_POINTS = 2000
_SCRIPT = re.compile(r'<script\b([^>]*?)\s+src="/?static/([A-Za-z0-9_.-]+\.js)"([^>]*)>\s*</script>', re.IGNORECASE)
_STYLE = re.compile(r'<link\b[^>]*?href="/?static/app\.css"[^>]*>', re.IGNORECASE)
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


class FrontEndMissing(GitexpError):
    def __init__(self, what: str) -> None:
        super().__init__(f"cannot build the report: {what} (reinstall gitexp with the ui extra: pip install 'gitexp[ui]')")


def selected(views: Views, specs: list[str], where: str | None) -> list[RunSummary]:
    """The runs named (in that order), else those matching where, else every run (newest first)."""
    if specs:
        if where:
            raise GitexpError("give runs or --where, not both")
        found = [views.resolve(s) for s in specs]
        return list({r.name: r for r in found}.values())
    try:
        _, runs, _ = views.select(where, None)
    except BadRequest as exc:
        raise GitexpError(exc.message) from None
    return runs


def data(views: Views, runs: list[RunSummary], where: str | None) -> dict[str, Any]:
    """What the report embeds: the UI's payloads for these runs (contract: docs/ui.md, "Report")."""
    names = [r.name for r in runs]
    table = views.runs_payload(None, None, wait=True)
    by_name = {row["name"]: row for row in table["runs"]}
    table["runs"] = [by_name[n] for n in names if n in by_name]
    detail = {n: views.detail(n) for n in names}
    series = {n: views.series(n, None, "step", SERIES_POINTS) for n in names}
    grouped = views.groups(None, "config", None, names) if any(r.sweep for r in runs) else None
    return {
        "report": True,
        "where": where,
        "runs": table,
        "detail": detail,
        "series": series,
        "compare": views.compare(names) if names else None,
        "tree": views.tree(None, names),
        "groups": grouped,
    }


def _script_text(js: str) -> str:
    """JavaScript made safe inside an HTML <script> element (`</script` and `<!--` cannot occur in it)."""
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)
    return js.replace("<!--", "<\\!--")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def html(views: Views, payload: dict[str, Any]) -> str:
    """The self-contained report page."""
    from gitexp.ui.server import static_path

    index_path = static_path("index.html")
    if index_path is None:
        raise FrontEndMissing("the front end's index.html is missing")
    page = index_path.read_text(encoding="utf-8")
    hashes: list[str] = []

    def inline_script(m: re.Match[str]) -> str:
        path = static_path(m.group(2))
        if path is None:
            raise FrontEndMissing(f"the front end's {m.group(2)} is missing")
        body = _script_text(path.read_text(encoding="utf-8"))
        hashes.append(_sha256(body))
        return f"<script{m.group(1)}{m.group(3)}>{body}</script>"

    def inline_style(m: re.Match[str]) -> str:
        path = static_path("app.css")
        if path is None:
            raise FrontEndMissing("the front end's app.css is missing")
        css = re.sub(r"</(style)", r"<\\/\1", path.read_text(encoding="utf-8"), flags=re.IGNORECASE)
        return f"<style>{css}</style>"

    if "/static/plotly.min.js" not in page:  # the served page loads Plotly on demand; the report needs it inline
        page = page.replace('<script src="/static/app.js"></script>',
                            '<script src="/static/plotly.min.js"></script>\n<script src="/static/app.js"></script>', 1)
    page = _SCRIPT.sub(lambda m: inline_script(m), page)
    page = _STYLE.sub(lambda m: inline_style(m), page)
    if re.search(r'(src|href)="/?static/', page):
        raise FrontEndMissing("index.html refers to a static file the report cannot inline")
    csp = ("default-src 'none'; script-src " + " ".join(hashes) + "; style-src 'unsafe-inline'; "
           "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
           "object-src 'none'")
    head = (f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f'<script type="application/json" id="gitexp-data">{to_json_bytes(payload).decode("ascii")}</script>')
    found = _HEAD.search(page)
    if found is None:
        raise FrontEndMissing("index.html has no <head>")
    return page[: found.end()] + head + page[found.end():]


# -- markdown ----------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()#+!|~-])")


def md(text: Any) -> str:
    """A value as inert Markdown table text: HTML-escaped, Markdown punctuation backslash-escaped, one line."""
    s = str(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", " ", s)
    return _MD_SPECIAL.sub(r"\\\1", s)


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else md(v)
    if isinstance(v, (int, float)):
        return f"{v:.4g}"
    return md(v)


def markdown(views: Views, runs: list[RunSummary]) -> str:
    """The runs as a Markdown table (params that differ, then metrics, each with its change against the first
    run: improvements marked by the metric's direction), for a pull-request comment."""
    from gitexp.compare import number
    from gitexp.config import higher_is_better

    if not runs:
        return "No runs.\n"
    config = views.config()
    params = sorted({k for r in runs for k in r.params})
    params = [k for k in params if len({repr(r.params.get(k)) for r in runs}) > 1] if len(runs) > 1 else params
    metrics = sorted({k for r in runs for k in r.metrics})
    header = ["run", "status"] + [f"params.{k}" for k in params] + [f"metrics.{k}" for k in metrics]
    lines = ["| " + " | ".join(md(h) for h in header) + " |", "|" + "---|" * len(header)]
    first = runs[0]
    for i, r in enumerate(runs):
        cells = [md(r.name), md(r.status)] + [_num(r.params.get(k)) for k in params]
        for k in metrics:
            v = r.metrics.get(k)
            cell = _num(v)
            a, b = number(first.metrics.get(k)), number(v)
            if i and a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
                delta = b - a
                mark = "" if delta == 0 else (" ✅" if (delta > 0) == higher_is_better(config, k) else " ❌")
                cell += f" ({delta:+.4g}{mark})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    note = f"\nDeltas against {md(first.name)} (✅ better, ❌ worse, by each metric's direction)."
    return "\n".join(lines) + "\n" + (note + "\n" if len(runs) > 1 else "")
