"""Benchmark: `gitexp ui` in Debian's chromium (Playwright, headless) with 10,000 runs.

The repository is generated as bench/list_scale.py does (10,000 runs written through Store.write_run, with the
trailers `gitexp run` writes), plus 10 runs whose steps.jsonl holds a `loss` series of 100,000 points each.
Then, against a real `gitexp ui` subprocess:

  first rows, cold   navigation (performance.timeOrigin) to the first table rows in the DOM at an animation
                     frame (the frame that paints them), the server freshly started (its first /api/runs reads
                     every run);
  first rows, warm   the same in a fresh browser context, the server warm (median of --repeat);
  filter             Enter in the where box to the table showing the answer, a new expression each time (the
                     server caches answers per expression; median of --repeat);
  curves             10 runs x 100,000 points: from the hash change to #/curves to the chart holding the 10
                     traces drawn (Plotly already loaded by the table page, as it preloads it; median);
                     and once with Plotly not loaded yet and the series never read before (cold: the server
                     parses 10 x 100,000 JSON lines, unless its background reading of statistics got there
                     first); and once more from a restarted server in a fresh page (Plotly not loaded; the
                     series read back from .git/gitexp/ui-cache, as after any restart).

Floors measured in the same run: `git for-each-ref` reading the same run trailers (the data floor), the browser
painting a static 50-row HTML table from file:// (the browser floor). Figures are printed as seconds and as
ratios to those floors. Targets: first rows < 1.5 s, filter < 0.3 s, curves < 2 s (warm, and from a restarted server).

    python bench/ui.py [--runs 10000] [--repeat 5] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import ENV, IDENTITY, ensure_bytecode  # bench/ is the script's own directory
from list_scale import generate

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update"]
CURVE_RUNS = 10
CURVE_POINTS = 100_000
TARGETS = {"first_rows_cold": 1.5, "first_rows_warm": 1.5, "filter": 0.3, "curves": 2.0, "curves_restarted": 2.0}


def add_curve_runs(path: Path) -> list[str]:
    """CURVE_RUNS runs whose steps.jsonl holds a loss series of CURVE_POINTS points."""
    from gitexp import format as fmt
    from gitexp.model import RunSummary
    from gitexp.store import Store

    store = Store.discover(path)
    snap = store.snapshot()
    user = f"{IDENTITY['GIT_AUTHOR_NAME']} <{IDENTITY['GIT_AUTHOR_EMAIL']}>"
    rng = random.Random(7)
    names = []
    started = datetime.now(timezone.utc).replace(microsecond=0)
    for k in range(CURVE_RUNS):
        name = f"curve-{k:02d}"
        t0 = started.timestamp()
        lines = []
        value = 2.0
        for i in range(CURVE_POINTS):
            value = max(0.01, value * 0.99995 + rng.uniform(-0.01, 0.01))
            lines.append(f'{{"step":{i},"time":{t0 + i * 0.01:.3f},"values":{{"loss":{value:.6f}}}}}')
        steps = ("\n".join(lines) + "\n").encode()
        metrics = {"loss": round(value, 6)}
        summary = RunSummary(name=name, commit="", status="completed", exit_code=0,
                             started=started.isoformat(timespec="milliseconds"), duration=CURVE_POINTS * 0.01,
                             user=user, base=snap.base, base_branch="main", parent=None, tags=(),
                             params={"lr": 0.001 * (k + 1)}, metrics=metrics, note="")
        files: dict[str, Any] = {
            fmt.RUN_FILE: b"{}\n", fmt.PARAMS_FILE: fmt.to_json({"lr": 0.001 * (k + 1)}).encode(),
            fmt.METRICS_FILE: fmt.to_json(metrics).encode(), fmt.ENV_FILE: b"{}\n", fmt.STDOUT_FILE: b"",
            fmt.STDERR_FILE: b"", fmt.STEPS_FILE: steps,
        }
        message = fmt.build_message(f"{name}: completed (python train.py)", "", fmt.run_trailers(summary))
        store.write_run(name, snap, None, files, message, started, started + timedelta(seconds=CURVE_POINTS * 0.01))
        names.append(name)
    return names


def progress(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def start_server(repo: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "ui", "--port", "0"], cwd=repo, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout=120):
        proc.kill()
        raise RuntimeError("gitexp ui printed no URL")
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"gitexp ui did not start: {url!r}")
    return proc, url


FIRST_ROWS = """() => document.querySelector('#runs-table .tbody .tr') ? performance.now() / 1000 : null"""
# when the /api/runs answer had fully arrived (seconds since navigation): the rest is the page's own work
RUNS_ARRIVED = """() => { const e = performance.getEntriesByType('resource').filter(r => /\\/api\\/runs(\\?|$)/.test(r.name));
    return e.length ? e[0].responseEnd / 1000 : null; }"""


def first_rows(browser: Any, url: str) -> tuple[float, float]:
    """(seconds from navigation start to the animation frame that paints the first rows, of which waiting for
    /api/runs), in a fresh context."""
    # bypass_csp: the timing polls below run in the page (wait_for_function evaluates a string), which the
    # app's CSP forbids; tests/test_ui_browser.py checks the app under its real CSP.
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(url, wait_until="commit")
        painted = float(page.wait_for_function(FIRST_ROWS, polling="raf", timeout=300_000).json_value())
        return painted, float(page.evaluate(RUNS_ARRIVED) or 0.0)
    finally:
        context.close()


FILTER = """async ([expr]) => {
    const input = document.querySelector('#where');
    const count = document.querySelector('.count');
    const before = count.textContent;
    input.value = expr;
    const t0 = performance.now();
    input.form.requestSubmit();
    await new Promise((resolve, reject) => {
        const check = () => (count.textContent !== before ? resolve()
            : performance.now() - t0 > 120000 ? reject(new Error('no answer in 120 s')) : requestAnimationFrame(check));
        requestAnimationFrame(check);
    });
    const e = performance.getEntriesByType('resource').filter(r => r.name.includes('/api/runs?where='));
    const last = e[e.length - 1];
    return [(performance.now() - t0) / 1000, count.textContent, last ? (last.responseEnd - t0) / 1000 : null];
}"""


CURVES = """async ([n]) => {
    const t0 = performance.now();
    location.hash = '#/curves';
    await new Promise((resolve, reject) => {
        const check = () => {
            const c = document.querySelector('.chart[data-series="loss"]');
            const drawn = c && c.data && c.data.length === n && c.querySelectorAll('.scatterlayer .trace').length === n;
            if (drawn) return resolve();
            if (performance.now() - t0 > 120000) return reject(new Error('curves not drawn in 120 s: ' + document.querySelector('main').innerText.slice(0, 300)));
            requestAnimationFrame(check);
        };
        requestAnimationFrame(check);
    });
    const c = document.querySelector('.chart[data-series="loss"]');
    return [(performance.now() - t0) / 1000, c.data.map((t) => t.x.length)];
}"""


def curves(browser: Any, url: str, names: list[str], preload: bool) -> tuple[float, list[int]]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    context.add_init_script(f"localStorage.setItem('gitexp.selected', {json.dumps(json.dumps(names))})")
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_function(FIRST_ROWS, polling="raf", timeout=120_000)
        if preload:
            page.wait_for_function("() => !!window.Plotly", timeout=120_000)
        seconds, points = page.evaluate(CURVES, [len(names)])
        return float(seconds), points
    finally:
        context.close()


def browser_floor(browser: Any, tmp: Path) -> float:
    html = tmp / "floor.html"
    rows = "".join(f"<tr><td>run-{i:05d}</td><td>0.{i}</td></tr>" for i in range(50))
    html.write_text(f"<!doctype html><html><body><table>{rows}</table></body></html>")
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(html.as_uri(), wait_until="commit")
        return float(page.wait_for_function("() => document.querySelector('tr') ? performance.now() / 1000 : null",
                                            polling="raf").json_value())
    finally:
        context.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--repo", type=Path, help="reuse a repository a --keep run generated (skips generation)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    ensure_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="gitexp-bench-ui-"))
    repo = tmp / "repo"
    figures: dict[str, Any] = {"runs": args.runs + CURVE_RUNS, "load_before": os.getloadavg()}
    try:
        if args.repo:
            repo = args.repo
            names = [f"curve-{k:02d}" for k in range(CURVE_RUNS)]
        else:
            gen_s, _ = generate(repo, args.runs)
            names = add_curve_runs(repo)
            figures["generate_s"] = round(gen_s, 1)
        progress("generated")
        t0 = time.perf_counter()
        subprocess.run(["git", "for-each-ref", "refs/experiments/", "--format=%(objectname) %(contents:trailers)"],
                       cwd=repo, env=ENV, capture_output=True, check=True)
        floor_git = time.perf_counter() - t0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            floor_browser = statistics.median(browser_floor(browser, tmp) for _ in range(args.repeat))
            server, url = start_server(repo)
            try:
                figures["first_rows_cold"], figures["first_rows_cold_api"] = first_rows(browser, url)
                progress(f"first rows cold {figures['first_rows_cold']:.3f}")
                pairs = [first_rows(browser, url) for _ in range(args.repeat)]
                warm = [p[0] for p in pairs]
                figures["first_rows_warm"] = statistics.median(warm)
                figures["first_rows_warm_api"] = statistics.median(p[1] for p in pairs)
                figures["first_rows_warm_min"] = min(warm)
                progress(f"first rows warm {warm}")
                context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
                page = context.new_page()
                page.goto(url)
                page.wait_for_function(FIRST_ROWS, polling="raf", timeout=120_000)
                filters = []
                answers = []
                waits = []
                for k in range(args.repeat):
                    expr = f"metrics.acc > 0.{90 - k} and params.lr <= 0.01"
                    seconds, shown, waited = page.evaluate(FILTER, [expr])
                    filters.append(seconds)
                    answers.append(shown)
                    waits.append(waited or 0.0)
                figures["filter_api"] = statistics.median(waits)
                context.close()
                figures["filter"] = statistics.median(filters)
                figures["filter_max"] = max(filters)
                figures["filter_answers"] = answers
                progress(f"filter {filters}")
                figures["curves_cold"], _ = curves(browser, url, names, preload=False)
                progress(f"curves cold {figures['curves_cold']:.3f}")
                drawn = [curves(browser, url, names, preload=True) for _ in range(args.repeat)]
                figures["curves"] = statistics.median(d[0] for d in drawn)
                figures["curves_points_per_trace"] = drawn[0][1]
            finally:
                server.terminate()
                server.wait(timeout=30)
            server, url = start_server(repo)  # a restarted server: the series parsed before are on disk
            try:
                restarted = [curves(browser, url, names, preload=False) for _ in range(1)]
                figures["curves_restarted"] = restarted[0][0]
                progress(f"curves, restarted server {figures['curves_restarted']:.3f}")
            finally:
                server.terminate()
                server.wait(timeout=30)
                browser.close()
        figures["floor_git_for_each_ref"] = floor_git
        figures["floor_browser_static_table"] = floor_browser
        figures["load_after"] = os.getloadavg()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"gitexp ui, {figures['runs']} runs ({args.runs} + {CURVE_RUNS} with {CURVE_POINTS:,} points), "
          f"repeat {args.repeat}, load average before {figures['load_before']}, after {figures['load_after']}")
    print(f"floors: git for-each-ref {floor_git:.3f} s, browser paints a static table {floor_browser:.3f} s")
    api_part = {"first_rows_cold": "first_rows_cold_api", "first_rows_warm": "first_rows_warm_api", "filter": "filter_api"}
    for key, label, floor in [("first_rows_cold", "first rows, server fresh", floor_browser),
                              ("first_rows_warm", "first rows, server warm", floor_browser),
                              ("filter", "filter answer", floor_git),
                              ("curves_cold", "curves 10 x 100k, first read ever", None),
                              ("curves_restarted", "curves 10 x 100k, restarted server", None),
                              ("curves", "curves 10 x 100k", None)]:
        value = figures[key]
        target = TARGETS.get(key)
        verdict = "" if target is None else ("  PASS" if value < target else "  FAIL") + f" (target < {target} s)"
        ratio = f"  {value / floor:.1f}x floor" if floor else ""
        part = f"  (server answer arrived at {figures[api_part[key]]:.3f} s)" if key in api_part else ""
        print(f"  {label:38s} {value:7.3f} s{ratio}{verdict}{part}")
    print(f"  filter answers shown: {figures['filter_answers']}; points drawn per trace: {figures['curves_points_per_trace']}")
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
