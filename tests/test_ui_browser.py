"""`gitexp ui` and `gitexp report` in a real browser: Debian's chromium driven by Playwright (nothing downloaded),
against a live `gitexp ui` subprocess over a repository whose runs were made by `gitexp run` (see uirepo.py).

Every page a test opens fails the test if a JavaScript dialog opens (the hostile run's text must run nothing).
Screenshots of each view go to $GITEXP_TEST_ARTIFACTS (default: the test's tmp_path).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

import uirepo
from conftest import GITEXP

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update"]
TIMEOUT_MS = 120_000  # generous: CI runs this beside a CPU hog on every core

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
    pytest.mark.xdist_group("ui-browser"),
]


@dataclass
class Site:
    root: Path
    env: dict[str, str]
    url: str
    live: subprocess.Popen[bytes] | None


def start_server(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`gitexp ui --port 0` in root; returns it and the URL it printed (waited for, never assumed)."""
    proc = subprocess.Popen([*GITEXP, "ui", "--port", "0"], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout=120):
        proc.kill()
        raise AssertionError("gitexp ui printed no URL within 120 s")
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"gitexp ui did not start: {url!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("ui")
    env = uirepo.environment(base / "home")
    root = base / "repo"
    uirepo.build(root, env)
    live = uirepo.start_live(root, env)
    try:
        server, url = start_server(root, env)
        try:
            yield Site(root, env, url, live)
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        uirepo.stop_live(root, live)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("GITEXP_TEST_ARTIFACTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


@dataclass
class Browsing:
    page: Any
    dialogs: list[str]
    errors: list[str]
    artifacts: Path

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.artifacts / f"ui-{name}.png"), full_page=True)

    def wait(self, expression: str, arg: Any = None) -> Any:
        """Poll a JavaScript condition until it is truthy and return its value. Evaluated through the DevTools
        protocol (page.evaluate), not wait_for_function, whose in-page polling evaluates a string: the app's
        Content-Security-Policy forbids that, as it should."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while True:
            value = self.page.evaluate(expression, arg)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {expression}")
            self.page.wait_for_timeout(50)  # a polling interval, not a wait for the condition

    def no_injection(self) -> None:
        injected = self.page.evaluate(
            "[...document.querySelectorAll('img')].filter(i => /\\/x$/.test(i.src) || i.getAttribute('src') === 'x').length"
        )
        assert injected == 0
        assert self.dialogs == []


def csp_violation(msg: Any, errors: list[str]) -> None:
    """A script or eval the Content-Security-Policy refused is an error of the app: it ships no inline script
    and needs no eval (Chromium reports each refusal on the console)."""
    if msg.type == "error" and "Content Security Policy" in msg.text:
        errors.append(msg.text)


@pytest.fixture
def ui(browser: Any, artifacts: Path) -> Iterator[Browsing]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: csp_violation(msg, errors))
    browsing = Browsing(page, dialogs, errors, artifacts)
    yield browsing
    context.close()
    assert dialogs == [], f"a dialog opened: {dialogs}"
    assert errors == [], f"uncaught errors in the page: {errors}"


def table_names(ui: Browsing) -> list[str]:
    return ui.page.eval_on_selector_all(  # type: ignore[no-any-return]
        "#runs-table .tbody .tr", "rows => rows.sort((a, b) => a.offsetTop - b.offsetTop).map(r => r.dataset.run)")


def wait_rows(ui: Browsing, names: list[str]) -> None:
    ui.wait("""names => {
        const rows = [...document.querySelectorAll('#runs-table .tbody .tr')].sort((a, b) => a.offsetTop - b.offsetTop);
        return JSON.stringify(rows.map(r => r.dataset.run)) === JSON.stringify(names);
    }""", names)


def loss(lr: float) -> list[float]:
    return [round(1.0 / (i + 1) + lr, 6) for i in range(uirepo.SERIES_STEPS)]


# --------------------------------------------------------------------------------------------- the table


def test_the_table_lists_sorts_and_filters_the_runs(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url)
    ui.wait("document.querySelectorAll('#runs-table .tbody .tr').length === 5")
    assert set(table_names(ui)) == {"base", "child", "wide", "xss", "live"}
    ui.wait("document.querySelector('.tr[data-run=live] .status').textContent === 'running'")
    ui.shot("table")
    ui.page.click('#runs-table .th[data-column="m:acc"]')  # numbers sort high first, a run without acc last
    wait_rows(ui, ["wide", "xss", "base", "child", "live"])
    ui.page.click('#runs-table .th[data-column="m:acc"]')
    wait_rows(ui, ["child", "base", "xss", "wide", "live"])
    ui.page.click('#runs-table .th[data-column="name"]')
    wait_rows(ui, ["base", "child", "live", "wide", "xss"])
    ui.page.fill("#where", "metrics.acc >= 0.6 and params.depth = 2")  # the CLI's language, answered by the server
    ui.page.press("#where", "Enter")
    wait_rows(ui, ["base", "xss"])
    assert ui.page.text_content(".count") == "2 runs"
    assert "where=metrics.acc" in (ui.page.get_attribute("#export-csv", "href") or "")
    ui.page.check("#only-differs")  # depth is 2 in both: its column goes, lr stays
    ui.wait("!document.querySelector('.th[data-column=\"p:depth\"]') && !!document.querySelector('.th[data-column=\"p:lr\"]')")
    ui.page.uncheck("#only-differs")
    ui.page.click("#columns-button")  # the column chooser: hide lr, show loss.min
    ui.page.uncheck('#column-chooser input[data-column="p:lr"]')
    ui.page.check('#column-chooser input[data-column="s:loss:min"]')
    ui.wait("!document.querySelector('.th[data-column=\"p:lr\"]') && !!document.querySelector('.th[data-column=\"s:loss:min\"]')")
    cell = ui.page.eval_on_selector(".tr[data-run=base]", "(row) => [...row.children].map(c => c.textContent)")
    assert "0.15" in cell  # base's loss.min: its last point, 1/20 + 0.1
    ui.shot("table-filtered")
    ui.no_injection()


def test_a_bad_filter_shows_the_error_at_its_column(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url)
    ui.wait("document.querySelectorAll('#runs-table .tbody .tr').length === 5")
    ui.page.fill("#where", "metrics.acc >> 1")
    ui.page.press("#where", "Enter")
    ui.wait("!!document.querySelector('#where-error .error-message')")
    message = ui.page.text_content("#where-error .error-message") or ""
    assert "column 14" in message
    caret = (ui.page.text_content("#where-error .where-caret") or "").split("\n")
    assert caret[0] == "metrics.acc >> 1" and caret[1] == " " * 13 + "^"  # under the second '>'
    assert len(table_names(ui)) == 5  # the table keeps what it showed, still sortable
    ui.page.click('#runs-table .th[data-column="name"]')
    wait_rows(ui, ["base", "child", "live", "wide", "xss"])
    ui.shot("filter-error")


# --------------------------------------------------------------------------------------------- charts


def test_the_curves_show_the_recorded_values_of_the_selected_runs(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url)
    ui.wait("document.querySelectorAll('#runs-table .tbody .tr').length === 5")
    ui.page.check(".tr[data-run=base] input[type=checkbox]")
    ui.page.check(".tr[data-run=child] input[type=checkbox]")
    ui.page.click("text=Curves of selected")
    traces = ui.wait("""() => {
        const c = document.querySelector('.chart[data-series="loss"]');
        if (!c || !c.data || c.data.length !== 2) return null;
        return c.data.map(t => ({run: t.meta.run, x: Array.from(t.x), y: Array.from(t.y)}));
    }""")
    got = {t["run"]: t for t in traces}
    assert set(got) == {"base", "child"}
    assert got["base"]["x"] == list(range(uirepo.SERIES_STEPS)) and got["base"]["y"] == loss(0.1)
    assert got["child"]["y"] == loss(0.05)
    layout = ui.page.evaluate("document.querySelector('.chart[data-series=\"loss\"]').layout.hovermode")
    assert layout == "x unified"
    ui.shot("curves")
    ui.page.select_option("#curve-x", "relative")  # x as seconds since the run's first point
    ui.wait("""() => { const c = document.querySelector('.chart[data-series="loss"]');
        return c && c.data.length === 2 && c.data[0].x[0] === 0 && c.layout.xaxis.title.text === 'seconds since start'; }""")
    ui.page.select_option("#curve-x", "step")
    ui.page.check("#curve-log")
    ui.wait("document.querySelector('.chart[data-series=\"loss\"]').layout.yaxis.type === 'log'")
    ui.page.uncheck("#curve-log")
    # zoom: the window is asked again of the server and its points come back exact
    ui.page.evaluate("Plotly.relayout(document.querySelector('.chart[data-series=\"loss\"]'), {'xaxis.range': [2, 5]})")
    ui.wait("""() => { const c = document.querySelector('.chart[data-series="loss"]');
        return c.getAttribute('data-exact') === 'true' && c.data.length === 2 && c.data[0].x.every(x => x >= 1 && x <= 6); }""")


def test_parallel_coordinates_draw_every_run_brush_and_switch_log_axes(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url + "#/parallel")
    ui.wait("document.querySelectorAll('svg.parcoords path.line').length === 5")
    assert ui.page.eval_on_selector_all("svg.parcoords g.axis", "gs => gs.map(g => g.dataset.axis)")[:2] == ["p:depth", "p:lr"]
    box = ui.page.locator('g.axis[data-axis="m:acc"] rect.brush-area').bounding_box()
    assert box is not None
    x = box["x"] + box["width"] / 2
    ui.page.mouse.move(x, box["y"] + 1)
    ui.page.mouse.down()
    ui.page.mouse.move(x, box["y"] + box["height"] * 0.5, steps=5)
    ui.page.mouse.up()  # acc in the top half of its axis (0.55 to 0.80): 0.70 and 0.80
    ui.wait("document.querySelector('#parallel-info').textContent.startsWith('2 of 5')")
    active = ui.page.eval_on_selector_all("svg.parcoords path.line:not(.dim)", "ps => ps.map(p => p.dataset.run).sort()")
    assert active == ["wide", "xss"]
    ui.shot("parallel")
    ui.page.click('g.axis[data-axis="p:lr"] text.axis-title')
    ui.wait("document.querySelector('g.axis[data-axis=\"p:lr\"] text.axis-title').textContent === 'lr (log)'")
    ui.page.click("text=Select brushed runs")
    assert ui.page.text_content("#selection-info") == "2 selected"


def test_the_scatter_and_groups_pages_draw(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url + "#/scatter")
    ui.page.wait_for_selector("#scatter-x option[value='p:lr']", state="attached")
    ui.page.select_option("#scatter-x", "p:lr")
    ui.page.select_option("#scatter-y", "m:acc")
    pairs = ui.wait("""() => { const c = document.querySelector('#scatter');
        if (!c.data || c.layout.xaxis.title.text !== 'params.lr' || c.layout.yaxis.title.text !== 'metrics.acc') return null;
        return c.data[0].customdata.map((n, i) => [n, c.data[0].x[i], c.data[0].y[i]]); }""")
    assert sorted(pairs) == [["base", 0.1, 0.6], ["child", 0.05, 0.55], ["wide", 0.3, 0.8], ["xss", 0.2, 0.7]]
    ui.shot("scatter")
    ui.page.goto(site.url + "#/groups")
    ui.page.wait_for_selector("#groups-metric option[value='acc']", state="attached")
    ui.page.select_option("#groups-metric", "acc")
    ui.wait("!!document.querySelector('#groups table.groups-table, #groups p')")
    ui.shot("groups")
    ui.no_injection()


# --------------------------------------------------------------------------------------------- run, compare, tree


def test_a_run_page_shows_its_logs_diff_image_and_files(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url + "#/run/child")
    ui.wait("[...document.querySelectorAll('#logs .logline .text')].some(l => l.textContent === 'training with lr 0.05')")
    assert ui.page.eval_on_selector_all("#logs .logline.err .text", "ls => ls.map(l => l.textContent)") == ["a warning"]
    assert all(t for t in ui.page.eval_on_selector_all("#logs .logline .t", "ts => ts.map(t => t.textContent)"))
    ui.wait("[...document.querySelectorAll('#diff .line.add')].some(l => l.textContent === '+# a better idea\\n')")
    assert ui.page.get_attribute("button.tab.active", "data-against") == "parent"
    assert ui.page.eval_on_selector_all("#diff .line.del", "ls => ls.map(l => l.textContent)") == ["-lr: 0.1\n"]
    ui.wait("[...document.querySelectorAll('.images img')].some(i => i.complete && i.naturalWidth === 16)")
    href = ui.page.get_attribute('#files tr[data-path="plot.png"] a', "href")
    assert href and "download=1" in href
    fetched = ui.page.evaluate("""async (href) => { const r = await fetch(href);
        return [r.status, Array.from(new Uint8Array(await r.arrayBuffer()))]; }""", href)
    assert fetched == [200, list(uirepo.png())]
    ui.wait("!!document.querySelector('#run-curves .chart[data-series=\"loss\"]') && document.querySelector('#run-curves .chart[data-series=\"loss\"]').data")
    ui.shot("run-page")
    ui.page.click("button.tab[data-against=base]")
    ui.wait("[...document.querySelectorAll('#diff .line.add')].some(l => l.textContent === '+lr: 0.05\\n')")


def test_the_compare_page_marks_the_best_and_diffs_two_runs(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url + "#/compare?runs=base,child,wide")
    ui.page.wait_for_selector("#compare-table")
    best = ui.page.eval_on_selector_all("#compare-table td.best", "tds => tds.map(td => td.textContent)")
    assert sorted(t.split("★")[0] for t in best) == ["0.1 ", "0.8 "]  # loss is lowest-best, acc highest-best
    assert ui.page.eval_on_selector_all("#compare-table tr.differs th", "ths => ths.map(t => t.textContent)") == ["depth", "lr"]
    assert "+# a better idea\n" in ui.page.eval_on_selector_all("pre.diff .line.add", "ls => ls.map(l => l.textContent)")
    ui.shot("compare")
    ui.page.select_option("#diff-b", "wide")  # another pair: base -> wide changes depth and lr
    ui.wait("[...document.querySelectorAll('pre.diff .line.add')].some(l => l.textContent === '+depth: 4\\n')")


def test_the_tree_links_parent_to_child(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url + "#/tree")
    ui.page.wait_for_selector('path.edge[data-parent="base"][data-child="child"]', state="attached")
    assert ui.page.locator("path.edge").count() == 1  # wide, xss and live are roots (--no-parent)
    assert ui.page.locator("a.node").count() == 5
    ui.shot("tree")
    ui.page.click('a.node[data-run="child"]')
    ui.wait("location.hash === '#/run/child'")


def test_tags_and_notes_edited_on_the_run_page_reach_the_repository(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url + "#/run/wide")
    ui.page.wait_for_selector("#tag-input")
    ui.page.fill("#tag-input", "candidate")
    ui.page.press("#tag-input", "Enter")
    ui.wait("[...document.querySelectorAll('#tags .tag')].some(t => t.firstChild.textContent === 'candidate')")
    ui.page.fill("#note-input", "try more epochs")
    ui.page.click("text=Save note")
    ui.wait("document.querySelector('.note-edit .muted').textContent === 'saved'")
    shown = json.loads(uirepo.gx(site.root, site.env, "list", "--json", "--where", "name = wide"))[0]
    assert "candidate" in shown["tags"] and shown["note"] == "try more epochs"
    ui.page.click("#tags .tag button.x")
    ui.wait("![...document.querySelectorAll('#tags .tag')].some(t => t.firstChild.textContent === 'candidate')")


# --------------------------------------------------------------------------------------------- live


def test_a_running_runs_new_points_and_logs_appear_without_a_reload(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url + "#/run/live")
    first = ui.wait("""() => { const c = document.querySelector('#run-curves .chart[data-series="loss"]');
        return c && c.data && c.data.length === 1 ? c.data[0].x.length : null; }""")
    lines = ui.wait("document.querySelectorAll('#logs .logline').length || null")
    ui.page.evaluate("""window.__sameDocument = true;
        document.querySelector('#run-curves .chart[data-series="loss"]').__same = true;
        document.querySelector('#logs').__same = true""")
    ui.wait("""([n, l]) => { const c = document.querySelector('#run-curves .chart[data-series="loss"]');
        return c && c.data && c.data[0].x.length >= n + 5 && document.querySelectorAll('#logs .logline').length >= l + 5; }""", [first, lines])
    assert ui.page.evaluate("window.__sameDocument") is True  # no reload, and updated in place:
    assert ui.page.evaluate("""document.querySelector('#run-curves .chart[data-series="loss"]').__same === true
        && document.querySelector('#logs').__same === true""")
    steps = ui.page.evaluate("Array.from(document.querySelector('#run-curves .chart[data-series=\"loss\"]').data[0].x)")
    assert steps == list(range(len(steps)))  # every point, in order, none twice
    ui.shot("live-run")


# --------------------------------------------------------------------------------------------- security


def test_hostile_run_text_runs_nothing_anywhere(site: Site, ui: Browsing) -> None:
    hostile = uirepo.HOSTILE
    ui.page.goto(site.url)
    ui.wait("!!document.querySelector('.tr[data-run=xss]')")
    tags = ui.page.eval_on_selector_all(".tr[data-run=xss] .tag", "ts => ts.map(t => t.textContent)")
    note = ui.page.eval_on_selector_all(".tr[data-run=xss] .td", "ts => ts.map(t => t.textContent)")
    assert hostile in note  # shown as text
    ui.no_injection()
    ui.page.goto(site.url + "#/run/xss")
    ui.wait("h => [...document.querySelectorAll('#logs .logline .text')].some(l => l.textContent === h)", hostile)
    ui.wait("h => document.querySelector('#note-input') && document.querySelector('#note-input').value === h", hostile)
    ui.wait("!!document.querySelector('#run-curves .chart[data-series=\"loss\"]')")
    ui.no_injection()
    ui.shot("hostile-run")
    ui.page.goto(site.url + "#/curves")
    ui.wait("document.querySelectorAll('.chart').length >= 2 && [...document.querySelectorAll('.chart')].every(c => c.data)")
    titles = ui.page.eval_on_selector_all(".chart .gtitle", "ts => ts.map(t => t.textContent)")
    assert hostile in titles  # the series name is the title, as text
    ui.page.hover(".chart[data-series=loss] .nsewdrag")  # the unified hover label lists every run by name
    ui.no_injection()
    for view in ("#/parallel", "#/tree", "#/compare?runs=xss,base", "#/scatter", "#/groups"):
        ui.page.goto(site.url + view)
        ui.page.wait_for_load_state()
        ui.wait("document.querySelector('main').textContent.length > 40")
        ui.no_injection()
    assert tags in ([hostile, "ok"], ["ok"])  # shown as text if the reader keeps it at all


def test_a_request_for_a_path_outside_the_runs_is_refused(site: Site, ui: Browsing) -> None:
    ui.page.goto(site.url)
    ui.wait("!!document.querySelector('.tr[data-run=base]')")
    statuses = ui.page.evaluate("""async () => {
        const paths = ['/api/runs/base/file?path=../../../../../etc/passwd', '/api/runs/base/file?path=/etc/passwd',
                       '/api/runs/base/file?path=.git/config', '/api/runs/base/file?path=..%2F..%2Fparams.yaml',
                       '/static/..%2F..%2F..%2Fapi.py', '/static/views.py', '/api/runs/..%2F..%2Fetc/file?path=passwd',
                       '/api/runs/base/file?path=plot.png'];
        const out = [];
        for (const p of paths) out.push((await fetch(p)).status);
        return out;
    }""")
    assert statuses[:-1] == [404] * 7 and statuses[-1] == 200


# --------------------------------------------------------------------------------------------- report


def test_the_report_opens_from_a_file_with_the_network_off_and_shows_the_same(site: Site, browser: Any,
                                                                                artifacts: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    made = subprocess.run([*GITEXP, "report", "base", "child", "wide", "xss", "-o", str(out)], cwd=site.root,
                          env=site.env, capture_output=True, text=True, timeout=300, check=False)
    assert made.returncode == 0, made.stderr
    context = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
    context.set_offline(True)
    asked: list[str] = []

    def refuse(route: Any) -> None:
        asked.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith("file:"), refuse)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: csp_violation(msg, errors))
    ui = Browsing(page, dialogs, errors, artifacts)
    try:
        page.goto(out.as_uri())
        ui.wait("document.querySelectorAll('#runs-table .tbody .tr').length === 4")
        assert set(table_names(ui)) == {"base", "child", "wide", "xss"}
        ui.shot("report-table")
        page.fill("#where", "metrics.acc >= 0.6")  # a report filters a simple subset in the page
        page.press("#where", "Enter")
        ui.wait("document.querySelectorAll('#runs-table .tbody .tr').length === 3")
        page.click("text=Clear")
        ui.wait("document.querySelectorAll('#runs-table .tbody .tr').length === 4")
        page.goto(out.as_uri() + "#/curves")
        traces = ui.wait("""() => { const c = document.querySelector('.chart[data-series="loss"]');
            return c && c.data && c.data.length === 4 ? c.data.map(t => [t.meta.run, Array.from(t.y)]) : null; }""")
        assert dict(map(tuple, traces))["base"] == loss(0.1)
        ui.shot("report-curves")
        page.goto(out.as_uri() + "#/parallel")
        ui.wait("document.querySelectorAll('svg.parcoords path.line').length === 4")
        ui.shot("report-parallel")
        page.goto(out.as_uri() + "#/compare")
        page.wait_for_selector("#compare-table")
        ui.shot("report-compare")
        ui.no_injection()
        assert errors == [] and asked == []
    finally:
        context.close()


# --------------------------------------------------------------------------------------------- many runs


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """1,000 runs written as bench/list_scale.py writes them (through the storage layer, with gitexp's trailers)."""
    base = tmp_path_factory.mktemp("many")
    env = uirepo.environment(base / "home")
    root = base / "repo"
    bench = Path(__file__).resolve().parents[1] / "bench"
    code = f"import sys; sys.path.insert(0, {str(bench)!r}); from pathlib import Path; from list_scale import generate; " \
           f"generate(Path({str(root)!r}), 1000)"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600, capture_output=True)
    server, url = start_server(root, env)
    try:
        yield Site(root, env, url, None)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_thousand_runs_keep_only_the_visible_rows_in_the_page(many: Site, ui: Browsing) -> None:
    ui.page.goto(many.url)
    ui.wait("document.querySelector('.count') && document.querySelector('.count').textContent === '1000 runs'")
    rows = "document.querySelectorAll('#runs-table .tbody .tr').length"
    assert 0 < ui.page.evaluate(rows) < 80
    ui.page.evaluate("document.querySelector('#runs-table').scrollTop = 1e9")  # to the end: the oldest run
    ui.wait("!!document.querySelector('.tr[data-run=\"run-00000\"]')")
    assert 0 < ui.page.evaluate(rows) < 80
    ui.shot("table-1000-bottom")
    where = "metrics.acc > 0.9 and params.lr <= 0.01"
    expected = len(json.loads(uirepo.gx(many.root, many.env, "list", "--json", "--where", where)))
    ui.page.fill("#where", where)
    ui.page.press("#where", "Enter")
    ui.wait(f"document.querySelector('.count').textContent === '{expected} runs'")
    ui.wait(f"{rows} > 0")
    assert ui.page.evaluate(rows) < 80
