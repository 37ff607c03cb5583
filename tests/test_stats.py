"""Stats for repeated runs: summaries, Welch's t-test, Student's t distribution, and the sentences users read.

scipy is a test-only dependency: the tests that compare with it skip when it is absent.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest

from gitexp.stats import Summary, Welch, format_mean_sem, summarize, t_ppf, t_sf, verdict, welch

ACCURACIES = [0.90, 0.92, 0.91, 0.95, 0.93]


def _gauss(seed: int, n: int, mu: float, sigma: float) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mu, sigma) for _ in range(n)]


# (a, b) pairs of samples for Welch's test; fixed seeds, so the data are the same on every run
PAIRS = {
    "seeds of two configs": (ACCURACIES, [0.94, 0.95, 0.96, 0.95, 0.97, 0.96]),
    "different sizes": (_gauss(1, 3, 0.0, 1.0), _gauss(2, 12, 0.1, 1.0)),
    "different variances": (_gauss(3, 6, 0.5, 0.01), _gauss(4, 9, 0.52, 0.5)),
    "clearly different (tiny p)": (_gauss(5, 20, 0.0, 0.01), _gauss(6, 20, 1.0, 0.01)),
    "same distribution": (_gauss(12, 8, 0.0, 1.0), _gauss(112, 8, 0.0, 1.0)),  # p ≈ 0.51
    "two against three": ([1.0, 2.0], [1.5, 2.5, 3.5]),
    "a without variance": ([0.5, 0.5, 0.5], [0.52, 0.55, 0.51, 0.53]),
}

DFS = [0.5, 1, 2.5, 5, 30, 1000, 1e6]


# summarize


def test_summarize_by_hand() -> None:
    s = summarize(ACCURACIES)
    mean = (0.90 + 0.92 + 0.91 + 0.95 + 0.93) / 5  # 4.61 / 5 = 0.922
    # deviations -0.022, -0.002, -0.012, 0.028, 0.008; squares sum to 0.00148; ddof=1 divides by 4
    std = math.sqrt((0.022**2 + 0.002**2 + 0.012**2 + 0.028**2 + 0.008**2) / (5 - 1))  # sqrt(0.00037)
    assert s.n == 5 and s.missing == 0
    assert s.mean == pytest.approx(0.922, rel=1e-12)
    assert s.mean == pytest.approx(mean, rel=1e-12)
    assert s.std == pytest.approx(math.sqrt(0.00037), rel=1e-12)
    assert s.std == pytest.approx(std, rel=1e-12)
    assert s.sem == pytest.approx(std / math.sqrt(5), rel=1e-12)
    assert (s.min, s.max) == (0.90, 0.95)


@pytest.mark.parametrize("values", [pair[0] for pair in PAIRS.values()] + [pair[1] for pair in PAIRS.values()])
def test_summarize_matches_statistics(values: list[float]) -> None:
    s = summarize(values)
    assert s.n == len(values)
    assert s.mean == pytest.approx(statistics.mean(values), rel=1e-15, abs=1e-300)
    assert s.std == pytest.approx(statistics.stdev(values), rel=1e-15, abs=1e-300)
    assert s.sem == pytest.approx(statistics.stdev(values) / math.sqrt(len(values)), rel=1e-15, abs=1e-300)
    assert (s.min, s.max) == (min(values), max(values))


def test_summarize_counts_only_finite_numbers() -> None:
    raw: list[object] = [0.9, 1, "0.8", "NaN", "Infinity", "-Infinity", float("nan"), float("inf"), None, "n/a"]
    raw += [True, False, [0.5], {"v": 0.5}, 10**400]
    s = summarize(raw)
    assert s.n == 3  # 0.9, 1 and the number's text "0.8", as compare.number reads recorded values
    assert s.missing == len(raw) - 3
    assert s.mean == pytest.approx(0.9)
    assert (s.min, s.max) == (0.8, 1.0)


def test_summarize_spread_beyond_the_largest_float() -> None:
    s = summarize([1.7e308, -1.7e308])
    assert (s.n, s.mean, s.std, s.sem) == (2, 0.0, math.inf, math.inf)
    w = welch(s, summarize([1.0, 2.0]))
    assert w is not None and math.isnan(w.p)  # reported, not raised


def test_summarize_accepts_any_iterable() -> None:
    assert summarize(v for v in ACCURACIES) == summarize(ACCURACIES)


def test_summarize_nothing() -> None:
    s = summarize(["NaN", None])
    assert (s.n, s.missing) == (0, 2)
    assert all(math.isnan(v) for v in (s.mean, s.sem, s.std, s.min, s.max))
    assert (summarize([]).n, summarize([]).missing) == (0, 0)
    assert format_mean_sem(s) == "-"


def test_summarize_one_value() -> None:
    s = summarize([0.912, "NaN"])
    assert (s.n, s.missing, s.mean, s.min, s.max) == (1, 1, 0.912, 0.912, 0.912)
    assert math.isnan(s.std) and math.isnan(s.sem)
    assert format_mean_sem(s) == "0.912 (n=1)"


def test_format_mean_sem() -> None:
    s = summarize(ACCURACIES)  # mean 0.922, SEM 0.0086023...
    assert format_mean_sem(s) == "0.922 ± 0.008602 (n=5)"
    assert format_mean_sem(s, digits=2) == "0.92 ± 0.0086 (n=5)"
    assert format_mean_sem(summarize([1234.5, 1234.5])) == "1234 ± 0 (n=2)"


# Welch's t-test against scipy


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, on [0.5, 0.5, 0.5]
@pytest.mark.parametrize("name", PAIRS)
def test_welch_matches_scipy(name: str) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = PAIRS[name]
    w = welch(summarize(a), summarize(b))
    assert w is not None
    expected = scipy_stats.ttest_ind(a, b, equal_var=False)
    # scipy's t is of mean_a - mean_b; ours is of diff = mean_b - mean_a
    assert math.isclose(w.t, -float(expected.statistic), rel_tol=0, abs_tol=1e-9)
    assert math.isclose(w.t, float(scipy_stats.ttest_ind(b, a, equal_var=False).statistic), abs_tol=1e-9)
    assert math.isclose(w.p, float(expected.pvalue), rel_tol=1e-9)
    assert math.isclose(w.diff, statistics.mean(b) - statistics.mean(a), rel_tol=1e-12, abs_tol=1e-15)

    # the Welch–Satterthwaite degrees of freedom
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    assert math.isclose(w.df, df, rel_tol=1e-12)
    if hasattr(expected, "df"):
        assert math.isclose(w.df, float(expected.df), rel_tol=1e-12)

    # the 95% interval of diff: diff ± t_0.975(df) * SE
    half = float(scipy_stats.t.ppf(0.975, df)) * math.sqrt(va + vb)
    assert math.isclose(w.ci_low, w.diff - half, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(w.ci_high, w.diff + half, rel_tol=1e-9, abs_tol=1e-12)
    assert w.ci_low <= w.diff <= w.ci_high
    assert (w.ci_low > 0 or w.ci_high < 0) == w.significant()  # the interval excludes 0 exactly when p < 0.05


def test_welch_tiny_p_keeps_its_digits() -> None:
    a, b = PAIRS["clearly different (tiny p)"]
    w = welch(summarize(a), summarize(b))
    assert w is not None
    assert 0 < w.p < 1e-30  # not rounded to 0 through 1 - cdf
    assert w.significant(alpha=1e-20)


def test_welch_same_distribution_is_within_noise() -> None:
    a, b = PAIRS["same distribution"]
    w = welch(summarize(a), summarize(b))
    assert w is not None and not w.significant()
    assert verdict(w).endswith(": within noise")


def test_welch_is_antisymmetric() -> None:
    a, b = (summarize(v) for v in PAIRS["different sizes"])
    ab, ba = welch(a, b), welch(b, a)
    assert ab is not None and ba is not None
    assert (ab.diff, ab.t, ab.df, ab.p) == (-ba.diff, -ba.t, ba.df, ba.p)
    assert (ab.ci_low, ab.ci_high) == pytest.approx((-ba.ci_high, -ba.ci_low), rel=1e-15)


# Welch's t-test: edge cases


@pytest.mark.parametrize(
    ("a", "b"),
    [([0.9], [0.9, 0.91]), ([0.9, 0.91], [0.9]), ([], [0.9, 0.91]), (["NaN", 0.9], [0.9, 0.91, 0.92])],
)
def test_welch_needs_two_runs_per_group(a: list[object], b: list[object]) -> None:
    w = welch(summarize(a), summarize(b))
    assert w is None
    assert verdict(w) == "needs at least 2 runs per group for a t-test"


def test_welch_no_variance_same_mean() -> None:
    w = welch(summarize([0.9, 0.9, 0.9]), summarize([0.9, 0.9]))
    assert w == Welch(diff=0.0, t=0.0, df=3.0, p=1.0, ci_low=0.0, ci_high=0.0)
    assert not w.significant()
    assert verdict(w) == "difference 0 (95% CI 0 to 0), p=1: within noise"


@pytest.mark.parametrize(("b", "sign"), [([0.95, 0.95], 1.0), ([0.85, 0.85], -1.0)])
def test_welch_no_variance_different_means(b: list[float], sign: float) -> None:
    w = welch(summarize([0.9, 0.9, 0.9]), summarize(b))
    assert w is not None
    assert w.t == sign * math.inf
    assert (w.p, w.df) == (0.0, 3.0)  # df = n_a + n_b - 2
    assert w.ci_low == w.ci_high == w.diff == pytest.approx(sign * 0.05)
    assert w.significant(alpha=1e-300)
    word = "higher" if sign > 0 else "lower"
    assert verdict(w) == f"B is {word} by 0.05 (95% CI 0.05 to 0.05), p<0.001: beyond noise"


def test_welch_one_group_without_variance() -> None:
    w = welch(summarize([0.5, 0.5, 0.5]), summarize([0.52, 0.55, 0.51, 0.53]))
    assert w is not None
    assert w.df == pytest.approx(3.0)  # all the variance is b's: n_b - 1
    assert math.isfinite(w.t) and 0 < w.p < 1


def test_welch_variances_too_small_to_square() -> None:
    w = welch(summarize([1e-200, 2e-200, 3e-200]), summarize([2e-200, 3e-200, 4e-200]))
    assert w is not None
    assert w.df == pytest.approx(4.0)  # equal sizes and variances: n_a + n_b - 2
    assert w.t == pytest.approx(math.sqrt(1.5))  # diff 1e-200, SE sqrt(2 * 1e-400 / 3)


def test_welch_non_finite_statistics_do_not_crash() -> None:
    broken = Summary(n=3, mean=1.0, sem=math.inf, std=math.inf, min=0.0, max=2.0, missing=0)
    w = welch(broken, summarize([1.0, 2.0, 3.0]))
    assert w is not None and math.isnan(w.p) and not w.significant()
    assert verdict(w) == "difference 1: no p-value (the statistics are not finite)"


# verdicts


def test_verdict_beyond_noise_higher() -> None:
    w = Welch(diff=0.012, t=3.9, df=7.5, p=0.003, ci_low=0.004, ci_high=0.020)
    assert verdict(w) == "B is higher by 0.012 (95% CI 0.004 to 0.02), p=0.003: beyond noise"


def test_verdict_beyond_noise_lower_reads_as_an_amount() -> None:
    w = Welch(diff=-0.012, t=-6.1, df=7.5, p=0.0004, ci_low=-0.020, ci_high=-0.004)
    assert verdict(w) == "B is lower by 0.012 (95% CI 0.004 to 0.02), p<0.001: beyond noise"


def test_verdict_within_noise() -> None:
    w = Welch(diff=0.002, t=0.6, df=8.0, p=0.5712, ci_low=-0.006, ci_high=0.010)
    assert verdict(w) == "difference 0.002 (95% CI -0.006 to 0.01), p=0.57: within noise"


def test_verdict_numbers_have_four_significant_digits_and_p_two() -> None:
    w = Welch(diff=1.234567, t=5.0, df=4.0, p=0.0123456, ci_low=0.6543219, ci_high=1.8148121)
    assert verdict(w) == "B is higher by 1.235 (95% CI 0.6543 to 1.815), p=0.012: beyond noise"


def test_verdict_alpha() -> None:
    w = Welch(diff=0.01, t=2.5, df=10.0, p=0.03, ci_low=0.001, ci_high=0.019)
    assert verdict(w).endswith("p=0.03: beyond noise")
    assert verdict(w, alpha=0.01).endswith("p=0.03: within noise")
    assert not Welch(0.01, 2.0, 10.0, 0.05, 0.0, 0.02).significant()  # p < alpha, strictly


def test_verdict_of_real_runs() -> None:
    a, b = (summarize(v) for v in PAIRS["seeds of two configs"])
    assert verdict(welch(a, b)) == "B is higher by 0.033 (95% CI 0.009426 to 0.05657), p=0.014: beyond noise"


# Student's t distribution: closed forms (no scipy needed)


@pytest.mark.parametrize("t", [-50.0, -3.0, -1.0, -0.25, 0.0, 1e-9, 0.5, 1.0, 2.0, 12.7, 1e6])
def test_t_sf_closed_forms(t: float) -> None:
    assert t_sf(t, 1) == pytest.approx(0.5 - math.atan(t) / math.pi, rel=1e-13)  # Cauchy
    assert t_sf(t, 2) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), rel=1e-13)
    assert t_sf(t, math.inf) == pytest.approx(0.5 * math.erfc(t / math.sqrt(2)), rel=1e-15)
    assert t_sf(t, 1e300) == pytest.approx(0.5 * math.erfc(t / math.sqrt(2)), rel=1e-12)


def test_t_sf_edges() -> None:
    for df in DFS:
        assert t_sf(0.0, df) == 0.5
        assert t_sf(math.inf, df) == 0.0
        assert t_sf(-math.inf, df) == 1.0
        assert math.isnan(t_sf(math.nan, df))
        values = [t_sf(t / 8, df) for t in range(-400, 401)]
        assert values == sorted(values, reverse=True)  # decreasing
        for t in (0.3, 2.0, 40.0):
            assert t_sf(t, df) + t_sf(-t, df) == pytest.approx(1.0, abs=1e-15)  # symmetric
    assert t_sf(1e200, 1) == pytest.approx(1 / (math.pi * 1e200), rel=1e-12)  # t * t overflows
    assert t_sf(1e-200, 1) == 0.5
    for df in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError):
            t_sf(1.0, df)


@pytest.mark.parametrize("q", [1e-12, 0.001, 0.025, 0.3, 0.5, 0.5 + 1e-12, 0.9, 0.975, 0.995])
def test_t_ppf_closed_forms(q: float) -> None:
    cauchy = math.tan(math.pi * (q - 0.5)) if q >= 0.5 else -1 / math.tan(math.pi * q)  # each exact in its half
    assert t_ppf(q, 1) == pytest.approx(cauchy, rel=1e-12, abs=1e-300)
    assert t_ppf(q, 2) == pytest.approx((2 * q - 1) / math.sqrt(2 * q * (1 - q)), rel=1e-12, abs=1e-300)
    assert t_ppf(q, math.inf) == pytest.approx(statistics.NormalDist().inv_cdf(q), rel=1e-12, abs=1e-300)


def test_t_ppf_edges() -> None:
    for df in DFS:
        assert t_ppf(0.5, df) == 0.0
        assert t_ppf(0.0, df) == -math.inf
        assert t_ppf(1.0, df) == math.inf
        assert t_ppf(0.125, df) == -t_ppf(0.875, df)
        for q in (1e-10, 0.2, 0.6, 0.975):
            assert 1.0 - t_sf(t_ppf(q, df), df) == pytest.approx(q, rel=1e-12)  # the inverse of the cdf
    assert t_ppf(1e-300, 0.5) == -math.inf  # beyond the largest float
    for q in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError):
            t_ppf(q, 5)
    with pytest.raises(ValueError):
        t_ppf(0.9, 0)


# Student's t distribution against scipy


@pytest.mark.parametrize("df", DFS)
def test_t_sf_matches_scipy(df: float) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    grid = [i / 4 for i in range(-200, 201)] + [k * 0.731 for k in range(-68, 69)]  # [-50, 50]
    for t in grid:
        expected = float(scipy_stats.t.sf(t, df))
        assert abs(t_sf(t, df) - expected) <= 1e-10, (t, df)
        if 1e-300 < expected < 0.5:  # in the upper tail, relative too: small p-values keep their digits
            assert math.isclose(t_sf(t, df), expected, rel_tol=1e-9), (t, df)


@pytest.mark.parametrize("df", [0.5, 1, 2, 2.5, 3.7, 5, 10, 30, 1000, 1e6])
def test_t_ppf_matches_scipy(df: float) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for q in (0.5, 0.9, 0.975, 0.995, 0.1, 0.025):
        expected = float(scipy_stats.t.ppf(q, df))
        assert math.isclose(t_ppf(q, df), expected, rel_tol=1e-9, abs_tol=1e-12), (q, df)
