"""curvmia.theory: the bound formulas, the AUROC fit and the crossover, against
transcriptions and hand-computed cases (killed mutants, docs/testing.md)."""

import math

import numpy as np
import pytest
from scipy.stats import f as f_dist

from curvmia import theory
from curvmia.theory import (
    auroc_form,
    clipped_loss_gap,
    crossover,
    curvature_bound,
    error_stability_bound,
    fit_auroc,
    kl_bound,
)

# --- bounds -----------------------------------------------------------------------------------

EPS32 = np.array([0.1, 0.7, 3.3], dtype=np.float32)
EPS32_64 = EPS32.astype(np.float64)  # the same numbers, widened by hand


def test_bounds_widen_float32_epsilons_to_float64():
    want = 3.0 * (1.0 - np.exp(-EPS32_64))
    got = error_stability_bound(EPS32, 3.0)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13)
    # auroc_form: s·(L·m·u + L + c)² + offset with u = 1 − e^−ε, L = 2, m = 5
    u = 1.0 - np.exp(-EPS32_64)
    want = 0.25 * (10.0 * u + 2.0 - 1.0) ** 2 + 0.1
    got = auroc_form(EPS32, 0.25, -1.0, 0.1, L=2.0, m=5.0)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13)
    # curvature bound: L(m + 1)(1 − e^−ε) + c₂
    got = curvature_bound(EPS32, np.array([4.0, 9.0, 99.0]), 2.0, 0.5)
    np.testing.assert_allclose(got, 2.0 * np.array([5.0, 10.0, 100.0]) * u + 0.5, rtol=1e-13)
    # KL bound: ε itself, as float64 (integers and float32 alike)
    k = kl_bound(EPS32)
    assert k.dtype == np.float64 and list(k) == list(EPS32_64)
    k = kl_bound(np.array([1, 2, 8]))
    assert k.dtype == np.float64 and list(k) == [1.0, 2.0, 8.0]


def test_curvature_bound_widens_float32_sizes_and_defaults_c2_to_zero():
    # m = 2^24 in float32: m + 1 is not representable there (it rounds back to 2^24)
    m = np.array([2.0**24], dtype=np.float32)
    got = curvature_bound(math.log(2), m, 1.0)
    assert got[0] == pytest.approx((2**24 + 1) * 0.5, rel=1e-14)
    # without c2 the bound has no additive constant: L(m + 1)(1 − e^−ε) = 2·10·0.5
    assert curvature_bound(math.log(2), 9, 2.0) == pytest.approx(10.0, rel=1e-12)


def test_clipped_loss_gap_counts_only_losses_above_the_clip():
    loss = np.array([0.5, 2.0, 3.0, 1.0])
    got = clipped_loss_gap(loss, [1, 0, 0, 1], L=2.0)
    # non-members min(ℓ, 2): 2, 2 → 2; members 0.5, 1 → 0.75; only 3.0 lies above L = 2
    assert got == {"loss_gap_clipped": pytest.approx(1.25), "frac_clipped": 0.25}


# --- crossover --------------------------------------------------------------------------------


def test_crossover_notes_without_a_crossing():
    assert crossover([], [], []) == (None, "none within range (no sizes)")
    # one size, loss ahead there
    assert crossover([500], [0.5], [0.625]) == (
        None, "none within range: loss stays ahead up to m = 500"
    )  # fmt: skip
    # one size, curvature ahead there
    assert crossover([500], [0.75], [0.625]) == (
        None, "none within range: curvature is ahead already at the smallest m = 500"
    )  # fmt: skip
    # unsorted sizes; curvature ahead by 0.125 at the smallest (500) and everywhere
    assert crossover([3000, 500, 1000], [0.75, 0.75, 0.75], [0.5, 0.625, 0.5]) == (
        None, "none within range: curvature is ahead already at the smallest m = 500"
    )  # fmt: skip
    # unsorted sizes; loss ahead everywhere: the note names the largest size (3000)
    assert crossover([1000, 3000, 500], [0.5, 0.5, 0.5], [0.75, 0.625, 0.625]) == (
        None, "none within range: loss stays ahead up to m = 3000"
    )  # fmt: skip


def test_crossover_between_the_first_two_sizes():
    # d = curv − loss = −0.125, +0.125, +0.25: crossing between 100 and 200 at 100 + 100·0.5
    mc, note = crossover([100, 200, 400], [0.5, 0.75, 0.875], [0.625] * 3)
    assert mc == 150.0
    assert note == "curvature overtakes loss at m ≈ 150 (between 100 and 200)"
    # two sizes only
    mc, note = crossover([200, 100], [0.75, 0.5], [0.625] * 2)
    assert (mc, note) == (150.0, "curvature overtakes loss at m ≈ 150 (between 100 and 200)")


def test_crossover_at_exact_ties():
    # a tie (d = 0) at the smallest size is not "curvature ahead": it crosses right there
    mc, note = crossover([100, 200], [0.625, 0.875], [0.625, 0.625])
    assert (mc, note) == (100.0, "curvature overtakes loss at m ≈ 100 (between 100 and 200)")
    # d = −0.25, 0, +0.25: a tie is not yet ahead; the crossing is in the bracket (200, 400]
    mc, note = crossover([100, 200, 400], [0.375, 0.625, 0.875], [0.625] * 3)
    assert (mc, note) == (200.0, "curvature overtakes loss at m ≈ 200 (between 200 and 400)")


def test_crossover_interpolates_float32_sizes_in_float64():
    # 1e8 − 1 is not representable in float32; halfway between 1 and 1e8 is 50000000.5
    m = np.array([1.0, 1e8], dtype=np.float32)
    mc, note = crossover(m, [0.5, 0.75], [0.625, 0.625])
    assert mc == 50000000.5
    assert note == "curvature overtakes loss at m ≈ 50000000 (between 1 and 1e+08)"


# --- fit: the real curve_fit against a transcription of the least-squares optimum -------------

E5 = np.array([0.05, 0.2, 0.7, 1.5, 3.0, 5.0])


def _poly_start(x, y, L, m):
    """The exact quadratic least-squares fit in u = 1 − e^−ε, mapped to (s, c, offset)."""
    u = 1.0 - np.exp(-x)
    a2, a1, a0 = np.polyfit(u, y, 2)
    a = L * m
    s0, b0 = a2 / a**2, a1 * a / (2 * a2)
    resid = y - np.polyval([a2, a1, a0], u)
    return [s0, b0 - L, a0 - s0 * b0**2], float(resid @ resid)


def test_fit_starts_from_the_least_squares_solution_and_drops_non_finite_points(monkeypatch):
    seen = []
    real = theory.curve_fit

    def spy(*args, **kwargs):
        seen.append(kwargs.get("p0"))
        return real(*args, **kwargs)

    monkeypatch.setattr(theory, "curve_fit", spy)
    e = np.repeat(E5, 2).astype(np.float32)  # float32 epsilons are widened before the fit
    rng = np.random.default_rng(7)
    y = 0.5 + 0.03 * np.sqrt(e.astype(np.float64)) + rng.normal(0, 0.004, e.size)
    # a NaN AUROC and a NaN epsilon: both points are left out
    eps_in = np.r_[e, np.float32(np.nan), np.float32(1.0)]
    y_in = np.r_[y, 0.6, np.nan]
    fit = fit_auroc(eps_in, y_in, L=2.0, m=5.0)
    x = e.astype(np.float64)
    p0, rss = _poly_start(x, y, 2.0, 5.0)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], p0, rtol=1e-9)
    assert fit.n == 12 and fit.residuals.shape == (12,)
    # the start is already the optimum: the fit stays there
    for k, v in zip(("s", "c", "offset"), p0):
        assert fit.params[k] == pytest.approx(v, rel=1e-6), k
    assert fit.rss == pytest.approx(rss, rel=1e-9)
    rss0 = float(((y - y.mean()) ** 2).sum())
    F = ((rss0 - rss) / 2) / (rss / 9)
    assert fit.f_stat == pytest.approx(F, rel=1e-8)
    assert fit.p_value == pytest.approx(f_dist.sf(F, 2, 9), rel=1e-6)


def test_fit_with_exactly_three_points_has_no_residual_freedom():
    fit = fit_auroc([0.5, 1.0, 4.0], [0.5, 0.55, 0.62], L=2.0, m=5.0)
    assert fit.note == "fit not significant: 3 points for 3 parameters leave no residual freedom"
    assert fit.stderr == {"s": np.inf, "c": np.inf, "offset": np.inf}
    assert np.isnan(fit.f_stat) and np.isnan(fit.p_value) and fit.significant is False


def test_not_fitted_result_keeps_L_and_m():
    few = fit_auroc([1.0, 1.0, 2.0, 2.0], [0.5, 0.52, 0.6, 0.61], L=2.0, m=5.0)
    assert few.L == 2.0 and few.m == 5.0 and few.n == 4
    assert few.significant is False
    assert few.note == "not fitted: 4 points at 2 distinct epsilons (3 needed)"


def test_fit_start_when_the_quadratic_coefficient_is_exactly_zero(monkeypatch):
    """All-zero AUROCs: least squares gives a2 = 0 exactly, replaced by 1e-12 so the map to
    (s, c, offset) is defined: s0 = 1e-12/(L·m)², c0 = 0·(L·m)/(2e-12) − L, offset0 = 0."""

    def fail(*args, **kwargs):
        raise RuntimeError("no convergence")

    monkeypatch.setattr(theory, "curve_fit", fail)
    fit = fit_auroc(E5, np.zeros(E5.size), L=2.0, m=5.0)
    assert fit.params["s"] == pytest.approx(1e-14, rel=1e-12)
    assert fit.params["c"] == -2.0 and fit.params["offset"] == 0.0


# --- fit: the statistics and the note from a given (popt, pcov) -------------------------------


def _fixed_fit(monkeypatch, popt, pcov):
    def fake(f, x, y, p0=None, maxfev=None):
        return np.asarray(popt, float), np.asarray(pcov, float)

    monkeypatch.setattr(theory, "curve_fit", fake)


def _form(x, s, c, offset, L, m):
    """s·(L·m·(1 − e^−ε) + L + c)² + offset, by hand."""
    return s * (L * m * (1.0 - np.exp(-x)) + L + c) ** 2 + offset


def _stats(y, pred, n_par=3):
    r = y - pred
    rss = float(r @ r)
    rss0 = float(((y - y.mean()) ** 2).sum())
    dof = y.size - n_par
    F = ((rss0 - rss) / 2) / (rss / dof)
    return r, rss, F, f_dist.sf(F, 2, dof)


X5 = np.array([0.1, 0.4, 1.0, 2.0, 4.0])
R5 = np.array([0.01, -0.02, 0.015, 0.0, -0.005])
POPT = (2.0, 2.5, 3.0)


@pytest.mark.parametrize(
    "var, loose",
    [
        # se = 1, 1, 0.5: s sits at exactly 2 se (loose), c at 2.5 se, offset at 6 se
        ((1.0, 1.0, 0.25), "; within 2 standard errors of 0: s"),
        ((0.01, 0.01, 0.01), ""),  # all far from 0: no list
    ],
)
def test_fit_note_lists_parameters_within_two_standard_errors(monkeypatch, var, loose):
    _fixed_fit(monkeypatch, POPT, np.diag(var))
    y = _form(X5, *POPT, 2.0, 5.0) + R5
    fit = fit_auroc(X5, y, L=2.0, m=5.0)
    r, rss, F, p = _stats(y, _form(X5, *POPT, 2.0, 5.0))
    assert fit.params == {"s": 2.0, "c": 2.5, "offset": 3.0}
    assert fit.stderr == dict(zip(("s", "c", "offset"), np.sqrt(var)))
    np.testing.assert_allclose(fit.residuals, R5, atol=1e-9)
    assert fit.rss == pytest.approx(rss, rel=1e-9)
    assert fit.f_stat == pytest.approx(F, rel=1e-9)
    assert fit.p_value == pytest.approx(p, rel=1e-6) and p < 0.05 and fit.significant is True
    assert fit.note == f"fit significant: F = {F:.3g}, p = {p:.2g} vs a constant AUROC" + loose


def test_fit_with_four_points_has_one_residual_degree_of_freedom(monkeypatch):
    x = X5[:4]
    popt = (0.001, 1.0, 0.5)
    _fixed_fit(monkeypatch, popt, np.diag([1e-6, 16.0, 0.0001]))  # se 0.001, 4, 0.01
    y = _form(x, *popt, 2.0, 5.0) + np.array([0.01, -0.02, 0.015, -0.005])
    fit = fit_auroc(x, y, L=2.0, m=5.0)
    r, rss, F, p = _stats(y, _form(x, *popt, 2.0, 5.0))
    assert fit.stderr == {"s": 0.001, "c": 4.0, "offset": 0.01}
    assert fit.f_stat == pytest.approx(F, rel=1e-9)
    assert fit.p_value == pytest.approx(p, rel=1e-6) and p >= 0.05
    assert fit.note == (
        f"fit not significant: F = {F:.3g}, p = {p:.2g} (≥ 0.05) vs a constant AUROC; the "
        "measurements do not show the bound's trend; within 2 standard errors of 0: s, c"
    )


def test_fit_p_value_equal_to_the_level_is_not_significant(monkeypatch):
    # the fitted curve is the mean itself (s = 0, offset = mean): F = 0, p = 1 exactly
    _fixed_fit(monkeypatch, (0.0, 0.0, 0.5), np.diag([1.0, 1.0, 0.01]))
    y = np.array([0.25, 0.5, 0.75, 0.5, 0.5])
    fit = fit_auroc(X5, y, L=2.0, m=5.0, level=1.0)
    assert fit.f_stat == 0.0 and fit.p_value == 1.0 and fit.significant is False
    assert fit.note == (
        "fit not significant: F = 0, p = 1 (≥ 1) vs a constant AUROC; the measurements do "
        "not show the bound's trend; within 2 standard errors of 0: s, c"
    )


def test_fit_with_zero_residuals_has_no_f_statistic(monkeypatch):
    # a perfect fit (constant AUROC, fitted exactly): no residual variance, F undefined
    _fixed_fit(monkeypatch, (0.0, 0.0, 0.5), np.diag([1.0, 1.0, 0.01]))
    fit = fit_auroc(X5, np.full(5, 0.5), L=2.0, m=5.0)
    assert fit.rss == 0.0 and np.isnan(fit.f_stat) and np.isnan(fit.p_value)
    assert fit.note == (
        "fit not significant: F = nan, p = nan (≥ 0.05) vs a constant AUROC; the measurements "
        "do not show the bound's trend; within 2 standard errors of 0: s, c"
    )


def test_fit_f_statistic_from_float32_aurocs_is_computed_in_float64(monkeypatch):
    _fixed_fit(monkeypatch, POPT, np.diag([1.0, 1.0, 0.25]))
    y32 = (_form(X5, *POPT, 2.0, 5.0) + R5).astype(np.float32)
    fit = fit_auroc(X5, y32, L=2.0, m=5.0)
    y = y32.astype(np.float64)
    r, rss, F, p = _stats(y, _form(X5, *POPT, 2.0, 5.0))
    # float32 sums would be off by ~1e-7; float64 agrees with the transcription to ~1e-12
    assert fit.rss == pytest.approx(rss, rel=1e-10)
    assert fit.f_stat == pytest.approx(F, rel=1e-10)
