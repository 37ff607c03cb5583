"""Grouped statistics over repeats (mean ± SEM) and Welch's t-test between groups, end to end."""

from __future__ import annotations

import csv
import io
import math
import statistics
import sys

import pytest
from conftest import Workspace

PY = sys.executable
# acc by (lr, seed): lr=0.1 is clearly worse than lr=0.2; lr=0.3 is lr=0.2 plus noise.
ACC = {
    (0.1, 1): 0.80, (0.1, 2): 0.82, (0.1, 3): 0.81, (0.1, 4): 0.79,
    (0.2, 1): 0.90, (0.2, 2): 0.93, (0.2, 3): 0.91, (0.2, 4): 0.92,
    (0.3, 1): 0.92, (0.3, 2): 0.90, (0.3, 3): 0.93, (0.3, 4): 0.91,
}
SCRIPT = f"import gitexp\np = gitexp.params()\ngitexp.summary({{'acc': {ACC!r}[(p['lr'], p['seed'])]}})\n"


@pytest.fixture
def repeats(ws: Workspace) -> Workspace:
    ws.write("params.yaml", "lr: 0.1\nseed: 0\n")
    ws.write("m.py", SCRIPT)
    ws.commit_all()
    ws.run("-S", "lr=0.1,0.2,0.3", "--repeat", "4", "--seeds", "1,2,3,4", "--seed-param", "seed", "--", PY, "m.py")
    return ws


def test_group_by_config_collapses_repeats_into_mean_and_sem(repeats: Workspace) -> None:
    groups = repeats.gitexp("list", "--group-by", "config", "--json").json()
    assert [g["group"]["config"] for g in groups] == ["lr=0.1", "lr=0.2", "lr=0.3"]  # type: ignore[index]
    for g in groups:
        lr = float(g["group"]["config"].split("=")[1])  # type: ignore[index]
        values = [ACC[(lr, s)] for s in (1, 2, 3, 4)]
        mean = sum(values) / 4
        sem = math.sqrt(sum((v - mean) ** 2 for v in values) / 3) / 2  # sample stdev / sqrt(n), by hand
        acc = g["metrics"]["acc"]  # type: ignore[index]
        assert g["n"] == 4 and acc["n"] == 4  # type: ignore[index]
        assert acc["mean"] == pytest.approx(mean) and acc["sem"] == pytest.approx(sem)
        assert acc["std"] == pytest.approx(statistics.stdev(values))
        assert (acc["min"], acc["max"]) == (min(values), max(values))
    table = repeats.gitexp("list", "-g", "params.lr").out
    assert "0.805 ± 0.006455  0.79..0.82" in table and "params.lr" in table


def test_group_by_as_csv_has_a_number_column_per_metric_statistic(repeats: Workspace) -> None:
    rows = list(csv.DictReader(io.StringIO(repeats.gitexp("list", "-g", "params.lr", "--format", "csv").out)))
    assert list(rows[0]) == ["params.lr", "n", *(f"metrics.acc.{c}" for c in ("mean", "sem", "n", "min", "max"))]
    values = [ACC[(0.1, s)] for s in (1, 2, 3, 4)]
    first = {k: float(v) for k, v in rows[0].items()}
    assert first["params.lr"] == 0.1 and first["n"] == first["metrics.acc.n"] == 4
    assert first["metrics.acc.mean"] == pytest.approx(statistics.mean(values))
    assert first["metrics.acc.sem"] == pytest.approx(statistics.stdev(values) / 2)
    assert (first["metrics.acc.min"], first["metrics.acc.max"]) == (min(values), max(values))
    singles = list(csv.DictReader(io.StringIO(repeats.gitexp("list", "-g", "name", "-f", "csv").out)))
    assert len(singles) == 12 and all(r["metrics.acc.sem"] == "" and r["metrics.acc.n"] == "1" for r in singles)


def test_diff_of_groups_gives_welchs_p_value_and_a_plain_verdict(repeats: Workspace) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    a = [ACC[(0.1, s)] for s in (1, 2, 3, 4)]
    b = [ACC[(0.2, s)] for s in (1, 2, 3, 4)]
    c = [ACC[(0.3, s)] for s in (1, 2, 3, 4)]
    result = repeats.gitexp("diff", "--groups", "params.lr = 0.1", "params.lr = 0.2", "--json").json()
    acc = result["metrics"][0]  # type: ignore[index]
    expected = scipy_stats.ttest_ind(b, a, equal_var=False)
    assert acc["p"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert acc["diff"] == pytest.approx(sum(b) / 4 - sum(a) / 4) and acc["better"] is True
    text = repeats.gitexp("diff", "-g", "params.lr = 0.1", "params.lr = 0.2").out
    assert "beyond noise" in text and "B is better" in text
    noise = repeats.gitexp("diff", "-g", "params.lr = 0.2", "params.lr = 0.3", "--json").json()["metrics"][0]  # type: ignore[index]
    assert noise["p"] == pytest.approx(scipy_stats.ttest_ind(c, b, equal_var=False).pvalue, rel=1e-9)
    assert noise["better"] is None
    assert "within noise" in repeats.gitexp("diff", "-g", "params.lr = 0.2", "params.lr = 0.3").out
    compared = repeats.gitexp("compare", "-g", "params.lr = 0.1", "params.lr = 0.2", "params.lr = 0.3").out
    assert compared.count("beyond noise") == 2


def test_a_group_that_matches_nothing_or_a_bad_expression_is_a_clear_error(repeats: Workspace) -> None:
    empty = repeats.gitexp("diff", "-g", "params.lr = 9", "params.lr = 0.2")
    assert empty.code != 0 and "no run matches 'params.lr = 9'" in empty.err and "Traceback" not in empty.err
    bad = repeats.gitexp("list", "--group-by", "nonsense")
    assert bad.code == 1 and "unknown field 'nonsense'" in bad.err
    single = repeats.gitexp("diff", "-g", "params.lr = 0.1 and params.seed = 1", "params.lr = 0.2").out
    assert "needs at least 2 runs per group" in single
