"""Statistics for groups of repeated runs (same config, different seeds): mean ± SEM and Welch's t-test.

Pure and standard library only. Student's t distribution is computed from the regularized incomplete
beta function: its continued fraction evaluated by Lentz's method, as in Numerical Recipes' `betacf`,
and, in the tails for large df where that fraction runs short of digits, the asymptotic expansion of
TOMS 708's `bgrat`.
"""

from __future__ import annotations

import math
import numbers
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

CONFIDENCE = 0.95  # of the interval Welch reports for the difference of means
NAN = math.nan


@dataclass(frozen=True)
class Summary:
    n: int  # finite values counted
    mean: float  # nan if n == 0
    sem: float  # standard error of the mean: std / sqrt(n); nan if n < 2
    std: float  # sample standard deviation (ddof=1); nan if n < 2
    min: float  # nan if n == 0
    max: float  # nan if n == 0
    missing: int  # values that were absent, non-numeric or non-finite (not counted in n)


@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variances t-test of group b against group a."""

    diff: float  # mean_b - mean_a
    t: float  # diff / its standard error: positive when b is higher
    df: float  # Welch–Satterthwaite degrees of freedom
    p: float  # two-sided p-value
    ci_low: float  # 95% confidence interval of diff
    ci_high: float

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p < alpha  # False when p is nan


def _finite_number(value: object) -> float | None:
    """value as a float when it is a finite real number (bools are not) or a finite number's text, else None."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        return None
    try:
        result = float(value)
    except (ValueError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def summarize(values: Iterable[object]) -> Summary:
    """n, mean, SEM, sample standard deviation, min and max of the finite numbers among raw metric values."""
    found: list[float] = []
    missing = 0
    for value in values:
        x = _finite_number(value)
        if x is None:
            missing += 1
        else:
            found.append(x)
    n = len(found)
    if n == 0:
        return Summary(0, NAN, NAN, NAN, NAN, NAN, missing)
    mean = float(statistics.mean(found))  # exact sums: no rounding error piles up
    try:
        std = float(statistics.stdev(found)) if n >= 2 else NAN
    except OverflowError:  # beyond the largest float, as values near it can spread
        std = math.inf
    return Summary(n, mean, std / math.sqrt(n), std, min(found), max(found), missing)


def welch(a: Summary, b: Summary) -> Welch | None:
    """Welch's t-test of b against a; None when either group has fewer than 2 values."""
    if a.n < 2 or b.n < 2:
        return None
    diff = b.mean - a.mean
    sa, sb = a.std / math.sqrt(a.n), b.std / math.sqrt(b.n)  # the standard errors of the two means
    if not all(math.isfinite(v) for v in (diff, sa, sb)):
        return Welch(diff, NAN, NAN, NAN, NAN, NAN)
    if sa == 0 and sb == 0:  # no noise at all: any difference is certain, none is certainly none
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return Welch(diff, t, float(a.n + b.n - 2), 1.0 if diff == 0 else 0.0, diff, diff)
    se = math.hypot(sa, sb)
    va, vb = (sa / max(sa, sb)) ** 2, (sb / max(sa, sb)) ** 2  # the squared errors, scaled: they cannot underflow
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    t = diff / se
    p = min(1.0, 2.0 * t_sf(abs(t), df))
    half = t_ppf(0.5 + CONFIDENCE / 2, df) * se
    return Welch(diff, t, df, p, diff - half, diff + half)


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t distribution with df > 0 degrees of freedom (df may be inf: the normal).

    Relative error below about 1e-13 wherever the result is a normal float (checked against mpmath for df from
    0.5 to 1e20): small p-values keep their digits, and 1 - p is never taken where p is what matters.
    """
    _check_df(df)
    if math.isnan(t):
        return NAN
    if t == 0:
        return 0.5
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if math.isinf(df):
        return 0.5 * math.erfc(t / math.sqrt(2.0))
    upper, middle = _t_tails(abs(t), df)
    return upper if t > 0 else 0.5 + middle


def t_ppf(q: float, df: float) -> float:
    """The t with P(T <= t) = q (the quantile function), found by Newton's method kept inside a bisection bracket."""
    _check_df(df)
    if not 0.0 <= q <= 1.0:  # also nan
        raise ValueError(f"a probability must be between 0 and 1, got {q}")
    if q == 0.5:
        return 0.0
    sign = 1.0 if q > 0.5 else -1.0
    if q in (0.0, 1.0):
        return sign * math.inf
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(q)
    # The solution t > 0 of P(T > t) = tail, mirrored for q < 0.5. Near the centre it is solved as
    # P(0 < T < t) = 0.5 - tail instead, both sides exact: 0.5 - sf(t) would lose t's digits to cancellation.
    tail = 1.0 - q if q > 0.5 else q

    def excess(t: float) -> float:  # decreasing in t, zero at the solution
        upper, middle = _t_tails(t, df)
        return upper - tail if tail < 0.25 else (0.5 - tail) - middle

    lo, hi = 0.0, 1.0
    while excess(hi) > 0:
        lo, hi = hi, 2.0 * hi
        if math.isinf(hi):
            return sign * math.inf
    t = 0.5 * (lo + hi)
    for _ in range(200):
        f = excess(t)
        if f == 0:
            break
        if f > 0:
            lo = t
        else:
            hi = t
        density = _t_pdf(t, df)
        newton = t + f / density if density > 0 else NAN
        nxt = newton if lo < newton < hi else 0.5 * (lo + hi)
        if abs(nxt - t) <= 1e-15 * nxt or nxt in (lo, hi):
            t = nxt
            break
        t = nxt
    return sign * t


def format_mean_sem(s: Summary, digits: int = 4) -> str:
    """ "0.912 ± 0.004 (n=5)"; "0.912 (n=1)" for one value; "-" for none."""
    if s.n == 0:
        return "-"
    if s.n == 1:
        return f"{s.mean + 0.0:.{digits}g} (n=1)"  # + 0.0: no "-0"
    return f"{s.mean + 0.0:.{digits}g} ± {s.sem:.{digits}g} (n={s.n})"


def verdict(w: Welch | None, alpha: float = 0.05) -> str:
    """A plain sentence: how b differs from a, with the 95% CI and p, and whether that is beyond noise."""
    if w is None:
        return "needs at least 2 runs per group for a t-test"
    if math.isnan(w.p):
        return f"difference {_num(w.diff)}: no p-value (the statistics are not finite)"
    pvalue = "p<0.001" if w.p < 0.001 else f"p={w.p:.2g}"
    if not w.significant(alpha):
        return f"difference {_num(w.diff)} (95% CI {_num(w.ci_low)} to {_num(w.ci_high)}), {pvalue}: within noise"
    if w.diff > 0:
        return f"B is higher by {_num(w.diff)} (95% CI {_num(w.ci_low)} to {_num(w.ci_high)}), {pvalue}: beyond noise"
    # the interval of how much lower B is: of a - b
    return f"B is lower by {_num(-w.diff)} (95% CI {_num(-w.ci_high)} to {_num(-w.ci_low)}), {pvalue}: beyond noise"


def _num(value: float) -> str:
    return f"{value + 0.0:.4g}"  # + 0.0: no "-0"


def _check_df(df: float) -> None:
    if not df > 0:  # also nan
        raise ValueError(f"degrees of freedom must be positive, got {df}")


def _t_tails(t: float, df: float) -> tuple[float, float]:
    """P(T > t) and P(0 < T < t), each to full relative precision, for finite t > 0 and finite df.

    P(T > t) = 0.5 * I_x(df/2, 1/2) with x = df / (df + t²), and P(0 < T < t) = 0.5 - P(T > t).

    x and y = 1 - x = t² / (df + t²) and their logarithms are all computed from r = t² / df = y / x,
    so that neither is lost to cancellation near 1 or to overflow of t².
    """
    r = t * t / df
    exact = 1e-300 < r < 1e300  # else t * t or the quotient under- or overflowed: go through logarithms
    log_r = math.log(r) if exact else 2.0 * math.log(t) - math.log(df)
    s = (r if r <= 1 else 1.0 / r) if exact else math.exp(-abs(log_r))  # min(r, 1 / r)
    if log_r <= 0:  # r = s
        x, y = 1.0 / (1.0 + s), s / (1.0 + s)
        log_x, log_y = -math.log1p(s), log_r - math.log1p(s)
    else:  # r = 1 / s
        x, y = s / (1.0 + s), 1.0 / (1.0 + s)
        log_x, log_y = -log_r - math.log1p(s), -math.log1p(s)
    a = 0.5 * df
    if a >= 15.0 and 1.5 / (a + 2.5) < y <= 0.3:
        # Where _betai would use the fraction for I_x(a, 1/2) with x near 1: for large df it loses about
        # df * 1e-16 (relative) there, because it needs x to more digits than a float holds.
        upper = _betai_large_a_half(a, log_x)
        return 0.5 * upper, 0.5 * (1.0 - upper)
    upper, lower = _betai(a, 0.5, x, y, log_x, log_y)
    return 0.5 * upper, 0.5 * lower


def _t_pdf(t: float, df: float) -> float:
    log_kernel = (df + 1.0) / 2.0 * math.log1p(t / df * t)
    return math.exp(-0.5 * math.log(df) - _lbeta(0.5 * df, 0.5) - log_kernel)


def _betai(a: float, b: float, x: float, y: float, log_x: float, log_y: float) -> tuple[float, float]:
    """The regularized incomplete beta function I_x(a, b) and its complement 1 - I_x(a, b) = I_y(b, a),
    given y = 1 - x and the logarithms of both."""
    front = math.exp(a * log_x + b * log_y - _lbeta(a, b))
    if front == 0:  # below the smallest float: so is the part from the fraction, which then may converge slowly
        return (0.0, 1.0) if y > (b + 1.0) / (a + b + 2.0) else (1.0, 0.0)
    if y > (b + 1.0) / (a + b + 2.0):  # x < (a + 1) / (a + b + 2): where the fraction for I_x(a, b) converges quickly
        i = front * _betacf(a, b, x) / a
        return i, 1.0 - i
    j = front * _betacf(b, a, y) / b
    return 1.0 - j, j


def _betai_large_a_half(a: float, log_x: float) -> float:
    """I_x(a, 1/2) for a >= 15 and x >= 0.7, by the asymptotic expansion of TOMS 708's `bgrat` (DiDonato and
    Morris, 1992) around the incomplete gamma function, which for b = 1/2 is erfc. It needs only log x."""
    b = 0.5
    nu = a + 0.5 * (b - 1.0)
    z = -nu * log_x
    q = math.erfc(math.sqrt(z))  # Q(1/2, z)
    r = math.sqrt(z / math.pi) * math.exp(-z)  # exp(-z) z^b / Γ(b)
    scale = math.exp(math.lgamma(b) - _lbeta(a, b) - b * math.log(nu))  # Γ(a + b) / (Γ(a) nu^b)
    v, t2 = 0.25 / (nu * nu), 0.25 * log_x * log_x
    total = jn = q  # jn: r times bgrat's J_n
    t, cn, n2 = 1.0, 1.0, 0.0
    c: list[float] = []
    d: list[float] = []
    for n in range(1, 31):
        bp2n = b + n2
        jn = (bp2n * (bp2n + 1.0) * jn + (z + bp2n + 1.0) * t * r) * v
        n2 += 2.0
        t *= t2
        cn /= n2 * (n2 + 1.0)
        c.append(cn)
        s = sum((b * (i + 1) - n) * c[i] * d[n - i - 2] for i in range(n - 1))
        d.append((b - 1.0) * cn + s / n)
        term = d[-1] * jn
        total += term
        if abs(term) <= 1e-15 * total:
            break
    return scale * total


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), by the modified Lentz method (Numerical Recipes' betacf)."""
    tiny, eps = 1e-300, 4e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (tiny if abs(d) < tiny else d)
    h = d
    for m in range(1, 10_000):  # converges in O(sqrt(max(a, b))) steps where it is used
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),  # the even step
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),  # the odd step
        ):
            d = 1.0 + aa * d
            d = 1.0 / (tiny if abs(d) < tiny else d)
            c = 1.0 + aa / c
            c = tiny if abs(c) < tiny else c
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def _lbeta(a: float, b: float) -> float:
    """log B(a, b), without the cancellation of lgamma(a) - lgamma(a + b) when a (or b) is large."""
    small, large = min(a, b), max(a, b)
    if large < 10.0:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    # Stirling: lgamma(z) = (z - 1/2) log z - z + log(2π)/2 + S(z); subtract it at z = large + small and z = large
    shift = (large - 0.5) * math.log1p(small / large) + small * math.log(large + small) - small
    return math.lgamma(small) - shift - (_stirling(large + small) - _stirling(large))


def _stirling(z: float) -> float:
    """S(z) = lgamma(z) - ((z - 1/2) log z - z + log(2π)/2), for z >= 10 (error below 2e-14)."""
    w = 1.0 / (z * z)
    return (1 / 12 - w * (1 / 360 - w * (1 / 1260 - w * (1 / 1680 - w / 1188)))) / z
