"""`gitexp ui`: the real server (a `gitexp ui` subprocess on a free port) over runs made by `gitexp run`.

Every request goes over HTTP to 127.0.0.1 with httpx; the answers are checked against what the CLI says
for the same repository (the UI must read through the same path: same filter errors, same groups, same tags).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import git, GITEXP, gitexp, isolate, wait_for, Workspace

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.ui.views import downsample

PY = sys.executable
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><script>alert(1)</script></svg>'
HOSTILE = "<img src=x onerror=alert(1)>"
TRAIN = """import gitexp, math
p = gitexp.params()
for i in range(200):
    gitexp.log({"loss": (1.0 + p["seed"] / 10) / (i + 1) * (1 + p["lr"]), "acc": i / 200}, step=i)
gitexp.summary({"acc": 0.8 + p["lr"] + p["seed"] / 1000})
"""
LONG = """import gitexp, sys
print("first line"); print("oops", file=sys.stderr)
for i in range(5000):
    gitexp.log({"wave": 1000.0 if i == 3333 else (-1000.0 if i == 1234 else float(i % 7))}, step=i)
open("out.png", "wb").write(bytes.fromhex(PNG_HEX))
open("pic.svg", "w").write(SVG_TEXT)
open("notes.txt", "w").write("plain text")
for f in ("out.png", "pic.svg", "notes.txt"):
    gitexp.log_artifact(f)
gitexp.summary({"acc": 0.5})
""".replace("PNG_HEX", repr(PNG.hex())).replace("SVG_TEXT", repr(SVG))
SLOW = """import gitexp, os, sys, time
i = 0
while not os.path.exists(sys.argv[1]):
    gitexp.log({"loss": 1.0 / (i + 1)}, step=i)
    print(f"step {i}", flush=True)
    i += 1
    time.sleep(0.2)
"""


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.url.split("?")[0], trust_env=False, timeout=60, **kw)  # type: ignore[arg-type]


@contextlib.contextmanager
def serving(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`gitexp ui --port 0 ARGS` in cwd; yields once it printed its URL; stopped at the end."""
    proc = subprocess.Popen([*GITEXP, "ui", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline().strip() if ready else ""
        assert line.startswith("http://"), f"no URL printed: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        yield Server(line, proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)




@dataclass
class Lab:
    root: Path
    env: dict[str, str]
    server: Server
    client: httpx.Client
    sweep: list[str]

    def gitexp(self, *args: str) -> object:
        return gitexp(self.root, *args, env=self.env)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A repository with a 2x3 sweep (lr x seed), a run with 5,000 points, images and logs, and a child run
    with a code change; and a `gitexp ui` serving it."""
    home = tmp_path_factory.mktemp("uihome")
    mp = pytest.MonkeyPatch()
    isolate(home, mp)
    root = tmp_path_factory.mktemp("lab") / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    ws = Workspace(root)
    ws.write("params.yaml", "lr: 0.1\nseed: 0\n")
    ws.write("train.py", TRAIN)
    ws.write("long.py", LONG)
    ws.write(".gitignore", "*.png\n*.svg\nnotes.txt\n")
    ws.commit_all()
    ws.run("-S", "lr=0.1,0.2", "--repeat", "3", "--seeds", "1,2,3", "--seed-param", "seed", "--", PY, "train.py")
    ws.run("-n", "long", "--", PY, "long.py")
    ws.write("long.py", LONG.replace("first line", "changed line"))
    ws.commit_all("change")
    ws.write("long.py", LONG.replace("first line", "child line"))
    ws.run("-n", "child", "--", PY, "long.py")
    listed = ws.gitexp("list", "--json").json()
    sweep = [r["name"] for r in listed if r["sweep"]]  # type: ignore[index, union-attr]
    assert len(sweep) == 6
    try:
        with serving(root) as server, server.client() as client:
            yield Lab(root, dict(os.environ), server, client, sweep)
    finally:
        mp.undo()


def get(lab: Lab, path: str, **params: object) -> object:
    response = lab.client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


# -- the runs table --------------------------------------------------------------------


def test_runs_payload_lists_every_run_with_params_metrics_stats_and_command(lab: Lab) -> None:
    payload = get(lab, "/api/runs")
    assert isinstance(payload, dict)
    runs = {r["name"]: r for r in payload["runs"]}
    cli = {r["name"]: r for r in lab.gitexp("list", "--json").json()}  # type: ignore[attr-defined]
    assert set(runs) == set(cli) and [r["name"] for r in payload["runs"]] == [r["name"] for r in lab.gitexp("list", "--json").json()]  # type: ignore[attr-defined]
    assert payload["params"] == ["lr", "seed"] and "acc" in payload["metrics"]
    assert payload["directions"]["loss"] == "min" and payload["directions"]["acc"] == "max"
    assert {"loss", "wave"} <= set(payload["series"])
    one = runs[lab.sweep[0]]
    assert one["params"] == cli[lab.sweep[0]]["params"] and one["metrics"] == cli[lab.sweep[0]]["metrics"]
    assert one["command"] == f"{PY} train.py" and one["sweep"] and one["status"] == "completed"
    loss = one["stats"]["loss"]
    assert loss["min"] == loss["last"] == loss["best"] < loss["max"]  # loss falls: best is the lowest
    assert runs["long"]["stats"]["wave"] == {"last": 4999 % 7, "min": -1000.0, "max": 1000.0, "best": 1000.0}
    assert runs["child"]["parent"] == "long"
    assert payload["version"] == get(lab, "/api/version")["version"]  # type: ignore[index]


def test_where_filters_like_the_cli_and_an_error_names_the_column(lab: Lab) -> None:
    payload = get(lab, "/api/runs", where="params.lr = 0.2 and status = completed")
    assert sorted(r["name"] for r in payload["runs"]) == sorted(  # type: ignore[index]
        r["name"] for r in lab.gitexp("list", "--where", "params.lr = 0.2", "--json").json())  # type: ignore[attr-defined]
    bad = "params.lr >> 1"
    response = lab.client.get("/api/runs", params={"where": bad})
    cli = lab.gitexp("list", "--where", bad)
    assert response.status_code == 400
    error = response.json()
    assert error["column"] == 12 and f"column {error['column']}" in cli.err  # type: ignore[attr-defined]
    assert error["error"] in cli.err  # type: ignore[attr-defined]
    assert lab.client.get("/api/runs", params={"sort": "nosuchfield"}).status_code == 400


def test_sort_orders_by_any_column_descending_with_a_minus(lab: Lab) -> None:
    payload = get(lab, "/api/runs", where="sweep != null", sort="-metrics.acc")
    accs = [r["metrics"]["acc"] for r in payload["runs"]]  # type: ignore[index]
    assert accs == sorted(accs, reverse=True) and len(accs) == 6


def test_csv_export_has_a_row_per_run_and_a_column_per_param_and_metric(lab: Lab) -> None:
    response = lab.client.get("/api/export.csv", params={"where": "params.lr = 0.1 and sweep != null"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 3 and {"name", "params.lr", "params.seed", "metrics.acc"} <= set(rows[0])
    assert {r["params.lr"] for r in rows} == {"0.1"}


# -- one run ---------------------------------------------------------------------------


def test_run_detail_has_what_show_shows_and_lists_files_with_images(lab: Lab) -> None:
    detail = get(lab, "/api/runs/long")
    shown = lab.gitexp("show", "long", "--json").json()  # type: ignore[attr-defined]
    assert isinstance(detail, dict)
    assert detail["commit"] == shown["commit"] and detail["env"] == shown["env"] and detail["base"] == shown["base"]
    assert detail["meta"]["command"] == shown["meta"]["command"] and detail["command"] == f"{PY} long.py"
    files = {f["path"]: f for f in detail["files"]}
    assert files["long.py"]["kind"] == "code" and files["long.py"]["size"] == len(LONG.encode())
    assert files["out.png"]["image"] and files["out.png"]["kind"] == "output" and files["out.png"]["size"] == len(PNG)
    assert not files["notes.txt"]["image"]
    assert any(p["path"] == "out.png" for p in detail["data"])
    assert lab.client.get("/api/runs/nosuchrun").status_code == 404


def test_series_are_downsampled_keeping_extremes_and_exact_when_zoomed(lab: Lab) -> None:
    full = get(lab, "/api/runs/long/series", names="wave", points=100)["series"]["wave"]  # type: ignore[index]
    assert not full["exact"] and len(full["x"]) <= 100 and len(full["x"]) == len(full["y"])
    assert 1000.0 in full["y"] and -1000.0 in full["y"]
    assert full["x"][full["y"].index(1000.0)] == 3333 and full["x"][full["y"].index(-1000.0)] == 1234
    zoom = get(lab, "/api/runs/long/series", names="wave", points=100, xmin=3300, xmax=3350)["series"]["wave"]  # type: ignore[index]
    assert zoom["exact"] and zoom["x"] == list(range(3300, 3351))
    assert zoom["y"] == [1000.0 if i == 3333 else float(i % 7) for i in range(3300, 3351)]
    timed = get(lab, "/api/runs/long/series", names="wave", x="relative", points=5000)["series"]["wave"]  # type: ignore[index]
    assert timed["exact"] and timed["x"][0] == 0 and len(timed["x"]) == 5000
    assert lab.client.get("/api/runs/long/series", params={"x": "bogus"}).status_code == 400


def test_logs_come_with_times_and_streams_and_page_by_offset(lab: Lab) -> None:
    logs = get(lab, "/api/runs/long/logs")
    assert isinstance(logs, dict)
    assert {(line["stream"], line["text"]) for line in logs["lines"]} == {("out", "first line"), ("err", "oops")}
    assert all(isinstance(line["t"], float) for line in logs["lines"]) and not logs["running"]
    assert logs["offset"] == len("first line\noops\n")
    rest = get(lab, "/api/runs/long/logs", offset=logs["offset"])
    assert rest["text"] == "" and rest["lines"] == [] and rest["offset"] == logs["offset"]  # type: ignore[index]


def test_code_diff_against_the_base_commit_and_against_the_parent_run(lab: Lab) -> None:
    base = get(lab, "/api/runs/child/diff", against="base")
    assert isinstance(base, dict)
    assert "-open(\"out.png\"" not in base["diff"] and '-print("changed line")' in base["diff"] and '+print("child line")' in base["diff"]
    parent = get(lab, "/api/runs/child/diff", against="parent")
    assert parent["other"] == "long" and '-print("first line")' in parent["diff"]  # type: ignore[index]
    assert parent["diff"] == lab.gitexp("diff", "--code", "long", "child").out  # type: ignore[attr-defined, index]
    assert lab.client.get("/api/runs/long/diff", params={"against": "parent"}).status_code in (200, 404)
    assert lab.client.get("/api/runs/child/diff", params={"against": "elsewhere"}).status_code == 400


def test_files_are_served_by_run_and_path_images_inline_svg_sandboxed(lab: Lab) -> None:
    png = lab.client.get("/api/runs/long/file", params={"path": "out.png"})
    assert png.status_code == 200 and png.content == PNG and png.headers["content-type"] == "image/png"
    assert "attachment" not in png.headers.get("content-disposition", "")
    svg = lab.client.get("/api/runs/long/file", params={"path": "pic.svg"})
    assert svg.headers["content-type"] == "image/svg+xml" and svg.headers["content-security-policy"].startswith("sandbox")
    assert svg.headers["x-content-type-options"] == "nosniff"
    text = lab.client.get("/api/runs/long/file", params={"path": "notes.txt"})
    assert text.content == b"plain text" and text.headers["content-type"] == "application/octet-stream"
    assert text.headers["content-disposition"].startswith("attachment")
    download = lab.client.get("/api/runs/long/file", params={"path": "out.png", "download": "1"})
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''out.png"
    code = lab.client.get("/api/runs/long/file", params={"path": "long.py"})
    assert code.content == LONG.encode()


@pytest.mark.parametrize("path", ["../params.yaml", "/etc/passwd", ".git/config", "nosuch.txt", "", "a/../../x",
                                  ".gitexp/run.json", "%2e%2e/params.yaml"])
def test_paths_outside_the_run_are_refused(lab: Lab, path: str) -> None:
    (lab.root / "nosuch.txt").write_text("in the work tree, not in the run")
    response = lab.client.get("/api/runs/long/file", params={"path": path})
    assert response.status_code == 404 and "error" in response.json()
    assert lab.client.get(f"/static/{path or 'x'}").status_code == 404


def test_compare_marks_the_best_and_gives_deltas_against_the_first(lab: Lab) -> None:
    a, b = sorted(lab.sweep[:2])
    payload = get(lab, "/api/compare", runs=f"{a},{b}")
    cli = lab.gitexp("compare", a, b, "--json").json()  # type: ignore[attr-defined]
    assert isinstance(payload, dict)
    acc = next(m for m in payload["metrics"] if m["key"] == "acc")
    row = next(r for r in cli["rows"] if r["key"] == "metrics.acc")
    assert acc["values"] == row["values"] and acc["best"] == row["best"]
    assert acc["deltas"][0] == 0 and math.isclose(acc["deltas"][1], row["values"][1] - row["values"][0])
    seed = next(p for p in payload["params"] if p["key"] == "seed")
    assert seed["differs"] == (row["values"][0] != row["values"][1] or seed["values"][0] != seed["values"][1])


def test_tree_links_child_runs_to_their_parent(lab: Lab) -> None:
    payload = get(lab, "/api/tree")
    assert isinstance(payload, dict)
    nodes = {n["name"]: n for n in payload["nodes"]}
    assert nodes["child"]["parent"] == "long" and nodes["child"]["branch"] == "main"
    assert payload["metric"] == "acc" and nodes["long"]["metric"] == 0.5
    assert set(nodes) == {r["name"] for r in get(lab, "/api/runs")["runs"]}  # type: ignore[index]


def test_groups_give_mean_sem_and_welch_as_diff_g(lab: Lab) -> None:
    payload = get(lab, "/api/groups", where="sweep != null", by="config", metric="acc")
    assert isinstance(payload, dict)
    groups = {g["key"]: g for g in payload["groups"]}
    cli = {g["group"]["config"]: g for g in lab.gitexp("list", "--where", "sweep != null", "--group-by", "config", "--json").json()}  # type: ignore[attr-defined]
    assert set(groups) == set(cli) == {"lr=0.1", "lr=0.2"}
    for key, g in groups.items():
        assert g["n"] == 3 and math.isclose(g["mean"], cli[key]["metrics"]["acc"]["mean"])
        assert math.isclose(g["sem"], cli[key]["metrics"]["acc"]["sem"])
    [welch] = payload["welch"]
    assert welch["a"] == "lr=0.2" and welch["b"] == "lr=0.1"  # against the best group
    test = lab.gitexp("diff", "-g", "params.lr = 0.2 and sweep != null", "params.lr = 0.1 and sweep != null", "--json").json()  # type: ignore[attr-defined]
    acc = next(m for m in test["metrics"] if m["metric"] == "acc")
    assert math.isclose(welch["p"], acc["p"]) and math.isclose(welch["diff"], acc["diff"])


# -- security ----------------------------------------------------------------------------


def test_every_response_carries_csp_and_nosniff(lab: Lab) -> None:
    for path in ("/", "/static/app.js", "/api/runs", "/api/nothing", "/api/runs?where=(", "/api/runs/nosuch"):
        response = lab.client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    assert lab.client.get("/static/plotly.min.js").content.startswith(b"/**")


def test_a_foreign_host_header_is_refused(lab: Lab) -> None:
    response = lab.client.get("/api/runs", headers={"Host": "attacker.example:80"})
    assert response.status_code == 400 and "Host" in response.json()["error"]
    port = lab.server.url.split(":")[2].split("/")[0]
    assert lab.client.get("/api/version", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_changes_need_the_token_and_the_same_origin(lab: Lab) -> None:
    name = lab.sweep[0]
    token = get(lab, "/api/session")["token"]  # type: ignore[index]
    refused = [
        lab.client.post(f"/api/runs/{name}/tags", json={"add": ["sneaky"]}),
        lab.client.post(f"/api/runs/{name}/tags", json={"add": ["sneaky"]}, params={"token": token}),
        lab.client.post(f"/api/runs/{name}/tags", json={"add": ["sneaky"]}, headers={"X-Gitexp-Token": "wrong"}),
        lab.client.post(f"/api/runs/{name}/note", json={"note": "sneaky"},
                        headers={"X-Gitexp-Token": token, "Origin": "http://attacker.example"}),
        lab.client.post(f"/api/runs/{name}/note", json={"note": "sneaky"},
                        headers={"X-Gitexp-Token": token, "Sec-Fetch-Site": "cross-site"}),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    shown = lab.gitexp("show", name, "--json").json()  # type: ignore[attr-defined]
    assert "sneaky" not in shown["tags"] and shown["note"] != "sneaky"
    origin = lab.server.url.split("?")[0].rstrip("/")
    ok = lab.client.post(f"/api/runs/{name}/tags", json={"add": ["best"]},
                         headers={"X-Gitexp-Token": token, "Origin": origin, "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200 and "best" in ok.json()["tags"]
    note = lab.client.post(f"/api/runs/{name}/note", json={"note": "from the ui"}, headers={"X-Gitexp-Token": token})
    assert note.status_code == 200
    shown = lab.gitexp("show", name, "--json").json()  # type: ignore[attr-defined]
    assert "best" in shown["tags"] and shown["note"] == "from the ui"
    bad = lab.client.post(f"/api/runs/{name}/tags", json={"add": [HOSTILE]}, headers={"X-Gitexp-Token": token})
    assert bad.status_code == 400 and "invalid tag" in bad.json()["error"]
    removed = lab.client.post(f"/api/runs/{name}/tags", json={"remove": ["best"]}, headers={"X-Gitexp-Token": token})
    assert "best" not in removed.json()["tags"]


def test_hostile_values_come_back_as_data(lab: Lab) -> None:
    name = lab.sweep[1]
    token = get(lab, "/api/session")["token"]  # type: ignore[index]
    lab.client.post(f"/api/runs/{name}/note", json={"note": HOSTILE + "\u2028</script>"}, headers={"X-Gitexp-Token": token})
    response = lab.client.get("/api/runs")
    assert response.headers["content-type"] == "application/json"
    assert b"<img" not in response.content and b"</script" not in response.content  # \u-escaped
    run = next(r for r in response.json()["runs"] if r["name"] == name)
    assert run["note"] == HOSTILE + "\u2028</script>"


def test_a_non_loopback_host_needs_the_token_on_every_request(ws: Workspace) -> None:
    ws.write("a.txt")
    ws.commit_all()
    ws.run("-n", "one", "--", "true")
    with serving(ws.root, "--host", "0.0.0.0") as server:
        assert "?token=" in server.url
        token = server.url.split("?token=")[1]
        port = server.url.split(":")[2].split("/")[0]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=60) as client:
            for path in ("/", "/api/runs", "/api/session", "/static/app.js", "/api/runs/one/file?path=a.txt"):
                assert client.get(path).status_code == 401, path
                assert client.get(path, headers={"X-Gitexp-Token": "nope"}).status_code == 401
            assert client.get("/api/runs", params={"token": token}).status_code == 200
            assert client.get("/api/runs", headers={"X-Gitexp-Token": token}).status_code == 200
            page = client.get("/", params={"token": token})
            assert page.status_code == 200 and "httponly" in page.headers["set-cookie"].lower()
            assert client.get("/static/app.js").status_code == 200  # the page's cookie carries it now
    refused = ws.gitexp("ui", "--token", "short")
    assert refused.code != 0 and "--token" in refused.err


# -- live --------------------------------------------------------------------------------


def test_version_changes_when_a_run_is_added_and_while_a_run_runs(ws: Workspace, tmp_path: Path) -> None:
    ws.write("slow.py", SLOW)
    ws.commit_all()
    ws.run("-n", "first", "--", "true")
    stop = tmp_path / "stop"
    with serving(ws.root) as server, server.client() as client:
        def version() -> str:
            return str(client.get("/api/version").json()["version"])

        v1 = version()
        assert version() == v1  # nothing changed: the same
        ws.run("-n", "second", "--", "true")
        v2 = version()
        assert v2 != v1 and {r["name"] for r in client.get("/api/runs").json()["runs"]} == {"first", "second"}
        proc = subprocess.Popen([*GITEXP, "run", "-n", "live", "--", PY, "slow.py", str(stop)], cwd=ws.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(lambda: "live" in ws.runs())
            seen = set()

            def changing() -> bool:  # the heartbeat of the run in progress changes the version
                seen.add(version())
                return len(seen) >= 3

            wait_for(changing)
            wait_for(lambda: client.get("/api/runs/live/series", params={"names": "loss"}).json()["series"]
                     .get("loss", {}).get("x", [0])[-1] >= 3)
            running = next(r for r in client.get("/api/runs").json()["runs"] if r["name"] == "live")
            assert running["status"] == "running"
            wait_for(lambda: "step 2" in client.get("/api/runs/live/logs").json()["text"])
            logs = client.get("/api/runs/live/logs").json()
            assert logs["running"] and logs["lines"][0]["text"] == "step 0"
            stop.write_text("")
            assert proc.wait(timeout=120) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=30)
        wait_for(lambda: next(r for r in client.get("/api/runs").json()["runs"] if r["name"] == "live")["status"] == "completed")
        assert not client.get("/api/runs/live/logs").json()["running"]


# -- downsampling, as a property ---------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=400),
       st.integers(min_value=2, max_value=60))
def test_downsampling_keeps_every_buckets_min_and_max(values: list[float], points: int) -> None:
    xs = [float(i) for i in range(len(values))]
    out_x, out_y, exact = downsample(xs, values, points)
    if len(values) <= points:
        assert exact and out_x == xs and out_y == values
        return
    assert not exact and len(out_x) <= points and out_x == sorted(out_x)
    buckets = points // 2
    for b in range(buckets):
        chunk = range(b * len(values) // buckets, (b + 1) * len(values) // buckets)
        if not chunk:
            continue
        kept = [out_y[i] for i, x in enumerate(out_x) if int(x) in chunk]
        assert min(values[i] for i in chunk) in kept and max(values[i] for i in chunk) in kept
        assert all(out_y[out_x.index(x)] == values[int(x)] for x in out_x)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=400),
       st.integers(min_value=0, max_value=399), st.integers(min_value=0, max_value=20))
def test_downsampling_is_exact_inside_a_small_window(values: list[float], start: int, width: int) -> None:
    xs = [float(i) for i in range(len(values))]
    out_x, out_y, exact = downsample(xs, values, 50, float(start), float(start + width))
    inside = [i for i in range(len(values)) if start <= i <= start + width]
    assert exact and out_x == [float(i) for i in inside] and out_y == [values[i] for i in inside]


def test_a_first_load_of_many_runs_answers_at_once_and_reads_stats_in_the_background(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitexp.store import Store
    from gitexp.ui import views as ui_views

    monkeypatch.setattr(ui_views, "SYNC_EXTRAS", 2)  # as if the repository had thousands of runs
    import shutil

    shutil.rmtree(lab.root / ".git/gitexp/ui-cache", ignore_errors=True)  # as if no server had read them before
    views = ui_views.Views(Store.discover(lab.root, bare_ok=True))
    before = views.version()
    first = views.runs_payload()
    assert first["pending"] == len(first["runs"]) == 8
    assert all(r["stats"] == {} for r in first["runs"])
    wait_for(lambda: views.version() != before)  # the background read ended: the version says so
    second = views.runs_payload()
    assert second["pending"] == 0 and second["runs"] == get(lab, "/api/runs")["runs"]  # type: ignore[index]
    restarted = ui_views.Views(Store.discover(lab.root, bare_ok=True)).runs_payload()  # what was read is kept on disk
    assert restarted["pending"] == 0 and restarted["runs"] == second["runs"]


# -- hostile runs and failures -------------------------------------------------------------


def test_a_hostile_fetched_run_is_shown_with_its_problem_and_serves_nothing_outside(ws: Workspace) -> None:
    ws.write("a.txt", "a\n")
    os.symlink("/etc/passwd", ws.root / "passwd")
    ws.commit_all()
    ws.run("-n", "good", "--", "true")
    # a run as a fetch could bring it: its data.json names a pointer outside the run, its steps are garbage
    tree = ws.git("rev-parse", "refs/experiments/good^{tree}").strip()
    env = {**os.environ, "GIT_INDEX_FILE": str(ws.root / ".git" / "evil-index")}
    subprocess.run(["git", "read-tree", tree], cwd=ws.root, env=env, check=True)
    for name, content in ((".gitexp/data.json", '{"outputs": [{"path": "../../etc/passwd", "kind": "file", "digest": "'
                           + "0" * 32 + '", "size": 1}]}'), (".gitexp/steps.jsonl", '{"step": [[[[\n\x00garbage\n')):
        blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=ws.root, input=content, text=True,
                              capture_output=True, check=True).stdout.strip()
        subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}"], cwd=ws.root, env=env, check=True)
    evil_tree = subprocess.run(["git", "write-tree"], cwd=ws.root, env=env, capture_output=True, text=True, check=True).stdout.strip()
    message = ws.git("log", "-1", "--format=%B", "refs/experiments/good").replace("Gitexp-Run: good", "Gitexp-Run: evil")
    commit = subprocess.run(["git", "commit-tree", evil_tree, "-m", message], cwd=ws.root, capture_output=True, text=True,
                            check=True, env={**os.environ, "GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x",
                                             "GIT_COMMITTER_NAME": "x", "GIT_COMMITTER_EMAIL": "x@x"}).stdout.strip()
    ws.git("update-ref", "refs/experiments/evil", commit)
    ws.git("update-ref", "refs/experiments/<img>", commit)  # git allows the name; no run can have it
    with serving(ws.root) as server, server.client() as client:
        runs = client.get("/api/runs")
        assert runs.status_code == 200 and {r["name"] for r in runs.json()["runs"]} == {"good", "evil"}
        odd = client.get("/api/runs/%3Cimg%3E")
        assert odd.status_code == 404 and b"<img" not in odd.content and "<img>" in odd.json()["error"]
        detail = client.get("/api/runs/evil")
        assert detail.status_code == 200 and detail.json()["files"] == []
        [problem] = detail.json()["problems"]
        assert "etc/passwd" in problem and "\n" not in problem
        assert client.get("/api/runs/evil/series").json()["series"] == {}
        for run, path in (("evil", "../../etc/passwd"), ("evil", "a.txt"), ("good", "passwd"), ("good", "passwd/")):
            refused = client.get(f"/api/runs/{run}/file", params={"path": path})
            assert refused.status_code == 404 and b"root:" not in refused.content, (run, path)
        assert client.get("/api/runs/good/file", params={"path": "a.txt"}).content == b"a\n"


def test_ui_outside_a_repository_or_on_a_busy_port_fails_in_one_line(tmp_path: Path, ws: Workspace) -> None:
    outside = gitexp(tmp_path, "ui")
    assert outside.code == 1 and outside.err.startswith("gitexp: error: not inside a git repository")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = gitexp(ws.root, "ui", "--port", str(busy.getsockname()[1]))
    assert taken.code == 1 and "cannot listen on 127.0.0.1" in taken.err and taken.err.count("\n") == 1


def test_open_hands_the_printed_url_to_the_browser(ws: Workspace, tmp_path: Path) -> None:
    ws.write("a.txt")
    ws.commit_all()
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    browser.chmod(0o755)
    with serving(ws.root, "--open", env={"BROWSER": str(browser)}) as server:
        wait_for(lambda: opened.exists() and opened.read_text() != "")
        assert opened.read_text() == server.url


def test_a_direction_set_in_the_config_changes_the_version_and_each_runs_best(ws: Workspace) -> None:
    from gitexp.store import Store
    from gitexp.ui.views import Views

    ws.write("s.py", "import gitexp\nfor i in range(5):\n    gitexp.log({'score': float(i)}, step=i)\n")
    ws.commit_all()
    ws.run("-n", "one", "--", PY, "s.py")
    views = Views(Store.discover(ws.root, bare_ok=True))
    before = views.version()
    assert views.runs_payload()["runs"][0]["stats"]["score"]["best"] == 4.0
    ws.write(".gitexp.yaml", "direction:\n  score: lower\n")
    assert views.version() != before
    payload = views.runs_payload()
    assert payload["directions"]["score"] == "min" and payload["runs"][0]["stats"]["score"]["best"] == 0.0
