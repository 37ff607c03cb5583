"""`gitexp report`: one self-contained HTML file (the UI's data embedded, its scripts inlined) or Markdown."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys

import pytest
from conftest import Workspace

pytest.importorskip("starlette")
pytest.importorskip("plotly")

PY = sys.executable
HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT = """import gitexp
p = gitexp.params()
for i in range(30):
    gitexp.log({"loss": 1.0 / (i + 1) + p["lr"]}, step=i)
gitexp.summary({"acc": 0.5 + p["lr"]})
"""


@pytest.fixture
def runs(ws: Workspace) -> Workspace:
    ws.write("params.yaml", f"lr: 0.1\ntitle: {json.dumps(HOSTILE + ' | `x` </script>')}\n")
    ws.write("train.py", SCRIPT)
    ws.commit_all()
    ws.run("-n", "base", "--", PY, "train.py")
    ws.run("-n", "better", "-S", "lr=0.3", "--", PY, "train.py")
    ws.run("-n", "worse", "-S", "lr=0.05", "--", PY, "train.py")
    assert ws.gitexp("note", "better", HOSTILE + "\u2028</script><!--").code == 0
    return ws


def embedded(page: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="gitexp-data">(.*?)</script>', page, re.DOTALL)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_html_report_is_self_contained_with_the_data_escaped(runs: Workspace) -> None:
    runs.freeze()
    result = runs.gitexp("report", "-o", "../report.html")
    assert result.code == 0, result.err
    page = (runs.root.parent / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", page, re.IGNORECASE)  # nothing fetched
    assert "/static/" not in page and 'src="http' not in page
    assert HOSTILE not in page and "\u2028" not in page  # every value of a run is \u-escaped in the JSON
    assert page.count("</script>") == page.count("<script")  # no value ended an element early
    data = embedded(page)
    assert data["report"] is True
    table = data["runs"]
    assert isinstance(table, dict)
    assert [r["name"] for r in table["runs"]] == ["worse", "better", "base"]
    better = next(r for r in table["runs"] if r["name"] == "better")
    assert better["note"] == HOSTILE + "\u2028</script><!--" and better["params"]["title"].startswith(HOSTILE)
    assert set(data["detail"]) == {"base", "better", "worse"}  # type: ignore[arg-type]
    loss = data["series"]["better"]["series"]["loss"]  # type: ignore[index]
    assert loss["exact"] and len(loss["x"]) == 30 and loss["y"][0] == pytest.approx(1.3)
    assert data["compare"]["runs"] == ["worse", "better", "base"]  # type: ignore[index]
    assert {n["name"] for n in data["tree"]["nodes"]} == {"base", "better", "worse"}  # type: ignore[index]


def test_html_report_allows_only_its_inlined_scripts(runs: Workspace) -> None:
    assert runs.gitexp("report", "better", "base", "-o", "../r.html").code == 0
    page = (runs.root.parent / "r.html").read_text(encoding="utf-8")
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert csp is not None and "'unsafe-inline'" not in csp.group(1).split("script-src")[1].split(";")[0]
    assert "connect-src 'none'" in csp.group(1)
    scripts = re.findall(r"<script(?![^>]*application/json)[^>]*>(.*?)</script>", page, re.DOTALL)
    assert len(scripts) >= 2 and any("Plotly" in s for s in scripts)  # plotly.min.js inlined, from the package
    hashes = set(re.findall(r"'(sha256-[^']+)'", csp.group(1)))
    assert hashes == {"sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in scripts}
    assert csp.group(0) in page[: page.index("<script")]  # the policy comes before any script
    assert [r["name"] for r in embedded(page)["runs"]["runs"]] == ["better", "base"]  # type: ignore[index]


def test_report_selects_by_where_and_refuses_a_bad_one_in_one_line(runs: Workspace) -> None:
    assert runs.gitexp("report", "--where", "params.lr > 0.08", "-o", "../w.html").code == 0
    data = embedded((runs.root.parent / "w.html").read_text(encoding="utf-8"))
    assert sorted(r["name"] for r in data["runs"]["runs"]) == ["base", "better"]  # type: ignore[index]
    assert data["groups"] is None  # no sweep
    bad = runs.gitexp("report", "--where", "params.lr >> 1", "-o", "../x.html")
    assert bad.code == 1 and bad.err.count("\n") == 1 and "column 12" in bad.err
    assert not (runs.root.parent / "x.html").exists()
    missing = runs.gitexp("report", "nosuch", "-o", "../x.html")
    assert missing.code == 1 and "no run matches 'nosuch'" in missing.err
    assert runs.gitexp("report").code == 2  # html needs -o


def test_markdown_report_is_a_table_with_deltas_against_the_first_run(runs: Workspace) -> None:
    result = runs.gitexp("report", "base", "better", "worse", "--format", "markdown")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "| run | status | params.lr | metrics.acc | metrics.loss |"
    assert lines[2].startswith("| base | completed | 0.1 | 0.6 |")
    assert "| better | completed | 0.3 | 0.8 (+0.2 ✅) |" in result.out
    assert "| worse | completed | 0.05 | 0.55 (-0.05 ❌) |" in result.out
    assert "Deltas against base" in result.out
    runs.gitexp("report", "--format", "markdown", "-o", "../pr.md")
    assert (runs.root.parent / "pr.md").read_text() == runs.gitexp("report", "--format", "markdown").out


def test_markdown_escapes_what_a_run_holds(runs: Workspace) -> None:
    text = runs.gitexp("report", "base", "--format", "markdown").out
    assert HOSTILE not in text and "&lt;img src=x onerror=alert\\(1\\)&gt; \\| \\`x\\` &lt;/script&gt;" in text
    header, _, row = text.splitlines()[:3]
    assert row.count(" | ") == header.count(" | ")  # the value's | does not make a column
