"""curvmia.distinguish beyond the theory tests: the k-NN KL estimator against a brute-force
transcription, the bound's edge cases, the audit's ties and refusals (killed mutants,
docs/testing.md)."""

import numpy as np
import pytest

from curvmia.distinguish import (
    _counts,
    absent_features,
    audit,
    clopper_pearson,
    distinguishability,
    epsilon_bounds,
    kl_gauss,
    kl_knn,
)


def test_kl_knn_matches_a_brute_force_transcription_with_ties():
    """Wang–Kulkarni–Verdú with the documented jitter: uniform on ±width/2, width = 1e-9 ×
    the pooled interquartile range, drawn from default_rng(seed) for x then y."""
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(0, 1, 40), 1)  # heavy ties
    y = np.round(rng.normal(0.5, 1.5, 55), 1)
    k, seed = 3, 9
    both = np.r_[x, y]
    width = 1e-9 * (np.percentile(both, 75) - np.percentile(both, 25))
    g = np.random.default_rng(seed)
    xj = x + g.uniform(-width / 2, width / 2, len(x))
    yj = y + g.uniform(-width / 2, width / 2, len(y))
    total = 0.0
    for i in range(len(x)):
        rho = np.sort(np.abs(np.delete(xj, i) - xj[i]))[k - 1]
        nu = np.sort(np.abs(yj - xj[i]))[k - 1]
        total += np.log(nu / rho)
    want = total / len(x) + np.log(len(y) / (len(x) - 1))
    assert kl_knn(x, y, k=k, seed=seed) == pytest.approx(want, rel=1e-12)
    # k = 1 (the nearest neighbour) and the default seed 0, on the same transcription
    g = np.random.default_rng(0)
    xj = x + g.uniform(-width / 2, width / 2, len(x))
    yj = y + g.uniform(-width / 2, width / 2, len(y))
    rho = [np.abs(np.delete(xj, i) - xj[i]).min() for i in range(len(x))]
    nu = [np.abs(yj - xj[i]).min() for i in range(len(x))]
    want1 = np.mean(np.log(np.divide(nu, rho))) + np.log(len(y) / (len(x) - 1))
    assert kl_knn(x, y, k=1) == pytest.approx(want1, rel=1e-12)
    assert kl_knn(x, y, k=1, seed=1) != pytest.approx(want1, rel=1e-6)
    # no spread at all (every value equal): a jitter of width 1e-9 keeps the estimate finite
    assert np.isfinite(kl_knn(np.zeros(10), np.zeros(12), k=3))
    with pytest.raises(ValueError, match=r"more than k=5 samples per side, got 5 and 9"):
        kl_knn(x[:5], y[:9], k=5)


def test_finite_values_and_their_count():
    # two finite values are enough (NaN and inf dropped); one names its side
    # N(1, 1) against N(2, 1): (1 − 2)²/2
    assert kl_gauss([0.0, 2.0, np.nan], [1.0, 3.0, np.inf]) == pytest.approx(0.5)
    assert np.isnan(kl_gauss([1.0, 1.0], [0.0, 2.0]))  # zero spread: undefined
    with pytest.raises(ValueError, match=r"^x: need at least 2 finite values, got 1"):
        kl_gauss([1.0, np.nan], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"^y: need at least 2 finite values, got 0"):
        kl_gauss([1.0, 2.0], [np.nan])
    with pytest.raises(ValueError, match=r"^x: need at least 2 finite values, got 1$"):
        kl_knn([1.0, np.inf], np.arange(9.0), k=1)
    with pytest.raises(ValueError, match=r"^y: need at least 2 finite values, got 1$"):
        kl_knn(np.arange(9.0), [np.nan, 2.0], k=1)


def test_statistics_log_loss_at_zero_loss_and_an_empty_file():
    from curvmia.distinguish import statistics

    loss = np.array([[0.0, 1.0], [2.0, 0.5]])
    got = statistics({"loss": loss}, 0)
    np.testing.assert_array_equal(got["log_loss"], [-np.log(1e-22), -np.log(2.0)])
    np.testing.assert_array_equal(got["loss"], [-0.0, -2.0])
    msg = r"^score file holds none of the curvature, loss, p_true or phi features$"
    with pytest.raises(ValueError, match=msg):
        statistics({"p_max": loss}, 0)


def test_kl_null_against_a_transcription_and_silent_without_the_gaussian():
    """Label shuffles drawn from default_rng([0x4E011, seed]), each split scored by kl_knn
    with the k asked for; without the Gaussian its fields are NaN, with no numpy warning."""
    import warnings

    from curvmia.distinguish import kl_null

    rng = np.random.default_rng(6)
    s = rng.normal(size=40)
    g = np.random.default_rng([0x4E011, 3])
    vals = []
    for _ in range(6):
        perm = g.permutation(40)
        vals.append(kl_knn(s[perm[:15]], s[perm[15:]], k=2, seed=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = kl_null(s, 15, k=2, reps=6, seed=3, gauss=False)
    assert out["kl_knn_null_mean"] == pytest.approx(np.mean(vals), rel=1e-12)
    assert out["kl_knn_null_sd"] == pytest.approx(np.std(vals), rel=1e-12)
    assert out["kl_knn_null_q95"] == pytest.approx(np.quantile(vals, 0.95), rel=1e-12)
    assert all(np.isnan(out[f"kl_gauss_null_{f}"]) for f in ("mean", "sd", "q95"))


def test_a_kl_equal_to_the_nulls_quantile_is_not_above_it():
    """Members and non-members each hold five 0s and five 1s: the Gaussian KL is exactly 0,
    and so is the single shuffle's (seed 2 draws a balanced split): not above the null."""
    s = np.array([0.0, 1.0] * 10)
    m = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    r = distinguishability({"phi": s}, m, k=1, seed=2, null_reps=1)[0]
    assert r["kl_gauss"] == 0.0 == r["kl_gauss_null_q95"]
    assert r["kl_gauss_above_null"] is False


def test_distinguishability_rows():
    rng = np.random.default_rng(0)
    m = np.r_[np.ones(60, bool), np.zeros(40, bool)]
    s = rng.normal(0, 1, 100) + m
    (row,) = distinguishability({"logcurv_zo": s}, m, k=3, seed=1)
    assert row["statistic"] == "logcurv_zo"
    assert (row["n_members"], row["n_nonmembers"]) == (60, 40)
    assert row["kl_gauss"] == pytest.approx(kl_gauss(s[m], s[~m]))
    assert row["kl_knn"] == pytest.approx(kl_knn(s[m], s[~m], k=3, seed=1))
    assert 0.6 < row["auroc"] < 1


def test_epsilon_upper_limit_is_minus_infinity_when_even_the_upper_tpr_is_below_delta():
    # 0 of 100 members: the upper TPR limit is 1 − 0.025^(1/100) = 0.036 < δ = 0.05
    b = epsilon_bounds(0, 100, 3, 100, delta=0.05, alpha=0.05)
    assert b["eps_hi"] == -np.inf and b["eps"] == -np.inf and b["eps_lo"] == -np.inf
    # no member and no false positive found: still nothing proved (not an unbounded ε)
    assert epsilon_bounds(0, 100, 0, 100, delta=0.05, alpha=0.05)["eps_hi"] == -np.inf
    # 0 false positives: the lower FPR limit is 0, the upper epsilon limit unbounded
    assert epsilon_bounds(50, 100, 0, 100, delta=0.0, alpha=0.05)["eps_hi"] == np.inf
    # the point value: unbounded with TPR above δ and no false positive, −inf at TPR = 0
    assert epsilon_bounds(50, 100, 0, 100, delta=0.1, alpha=0.05)["eps"] == np.inf
    assert epsilon_bounds(0, 100, 0, 100, delta=1e-5, alpha=0.05)["eps"] == -np.inf


def test_audit_refuses_halves_without_both_classes_and_keeps_the_first_of_tied_attacks():
    m = np.r_[True, np.zeros(9, bool)]
    s = np.arange(10.0)
    with pytest.raises(ValueError, match=r"audit: the selection half needs both"):
        audit({"a": s}, m, delta=0.0, alpha=0.05, select_frac=0.4, seed=0)
    with pytest.raises(ValueError, match=r"audit: the evaluation half needs both"):
        audit({"a": s}, m, delta=0.0, alpha=0.05, select_frac=0.9, seed=0)
    with pytest.raises(ValueError, match=r"theory.audit_select must be in \(0, 1\), got 1"):
        audit({"a": s}, m, delta=0.0, alpha=0.05, select_frac=1, seed=0)
    rng = np.random.default_rng(1)
    m = rng.random(400) < 0.5
    s = rng.normal(0, 1, 400) + 3 * m
    r = audit({"first": s, "second": s.copy()}, m, delta=0.0, alpha=0.05, select_frac=0.5, seed=2)
    assert r["audit_attack"] == "first" and r["eps_emp_lo"] > 0


def test_threshold_counts_match_brute_force_with_tied_infinities_and_nans():
    """Each distinct score once (NaN scores as −inf), with the counts of score ≥ threshold."""
    rng = np.random.default_rng(5)
    s = rng.choice([-np.inf, -1.0, 0.0, 0.5, 2.0, np.inf, np.nan], size=200)
    m = rng.random(200) < 0.4
    thr, tp, fp = _counts(s, m)
    filled = np.where(np.isnan(s), -np.inf, s)
    want = np.array(sorted(set(filled.tolist()), reverse=True))
    np.testing.assert_array_equal(thr, want)
    np.testing.assert_array_equal(tp, [(m & (filled >= t)).sum() for t in want])
    np.testing.assert_array_equal(fp, [(~m & (filled >= t)).sum() for t in want])


def test_audit_does_not_split_a_tie_at_infinity():
    """Half the members and half the non-members score +inf (saturated): predicting "member"
    at +inf takes all of them, so the best threshold is 1.0 (every member, half the
    non-members), not a member-only prefix of the +inf tie."""
    s = np.r_[np.full(200, np.inf), np.ones(100), np.zeros(100)]
    m = np.r_[np.ones(100, bool), np.zeros(100, bool), np.ones(100, bool), np.zeros(100, bool)]
    r = audit({"a": s}, m, delta=0.0, alpha=0.05, select_frac=0.5, seed=0)
    assert r["audit_threshold"] == 1.0
    assert r["audit_tp"] == r["audit_n_members"] == 100 and r["audit_n_nonmembers"] == 100
    assert 0 < r["audit_fp"] < 100  # the +inf non-members of the evaluation half
    # the reported ε and its limits by hand (δ = 0, α = 0.05: Clopper–Pearson at α/2 each)
    from scipy.stats import beta

    fp, n = r["audit_fp"], r["audit_n_nonmembers"]
    assert r["eps_emp"] == pytest.approx(np.log(1.0 / (fp / n)), rel=1e-12)
    fpr_lo, fpr_hi = beta.ppf(0.025, fp, n - fp + 1), beta.ppf(0.975, fp + 1, n - fp)
    tpr_lo = beta.ppf(0.025, 100, 1)  # all 100 members found; the upper TPR limit is 1
    assert r["eps_emp_hi"] == pytest.approx(np.log(1.0 / fpr_lo), rel=1e-9)
    assert r["eps_emp_lo"] == pytest.approx(np.log(tpr_lo / fpr_hi), rel=1e-9)
    assert set(r) == {
        "audit_attack", "audit_threshold", "audit_tp", "audit_fp", "audit_n_members",
        "audit_n_nonmembers", "audit_tpr", "audit_fpr", "eps_emp", "eps_emp_lo", "eps_emp_hi",
    }  # fmt: skip


def test_audit_without_any_proof_reports_the_first_attacks_top_score():
    """δ = 1: no threshold proves anything, so the audit evaluates the first attack at its
    highest (non-NaN) score."""
    rng = np.random.default_rng(4)
    m = rng.random(200) < 0.5
    a, b = rng.normal(size=200), rng.normal(size=200) + 2 * m
    a[3] = np.nan
    r = audit({"a": a, "b": b}, m, delta=1.0, alpha=0.05, select_frac=0.5, seed=0)
    assert r["audit_attack"] == "a" and r["audit_threshold"] == np.nanmax(a)
    assert r["audit_tp"] + r["audit_fp"] <= 1 and r["eps_emp_lo"] == 0.0


def test_one_null_repetition_still_decides_above_null():
    """With a single label shuffle the null's 95% quantile is that shuffle's value."""
    rng = np.random.default_rng(2)
    m = rng.random(300) < 0.5
    s = rng.normal(size=300) + 5 * m
    r = distinguishability({"loss": s}, m, k=5, seed=0, null_reps=1)[0]
    assert r["kl_knn_null_q95"] == r["kl_knn_null_mean"] and r["kl_knn_null_sd"] == 0
    assert r["kl_knn"] > r["kl_knn_null_q95"] and r["kl_knn_above_null"] is True
    r0 = distinguishability({"loss": s}, m, k=5, seed=0, null_reps=0)[0]
    assert r0["kl_knn_above_null"] is False and np.isnan(r0["kl_knn_null_q95"])


def test_absent_features_are_the_all_nan_per_query_curvatures():
    n = np.full((5, 2), np.nan)
    feats = {
        "curv_hutch": n,  # not computed (hutch_nprobes = 0)
        "curv_zo": np.ones((5, 2)),
        "curv_part": np.r_[n[:4], [[1.0, np.nan]]],  # computed, one value finite
        "curv_flat": np.full(5, np.nan),  # not a (N, queries) feature
        "curv_empty": np.empty((0, 2)),
        "loss": n,  # not a curvature
    }
    assert absent_features(feats) == ["curv_hutch"]


def test_clopper_pearson_lower_limit_of_one_success_in_closed_form():
    """Beta(1, n) quantile: the lower limit for k = 1 is 1 − (1 − α)^(1/n); for k = 0 it is 0."""
    for n in (1, 7, 100):
        got = float(clopper_pearson(1, n, 0.025, "lower"))
        assert got == pytest.approx(1 - 0.975 ** (1 / n), rel=1e-12)
    assert float(clopper_pearson(0, 100, 0.025, "lower")) == 0.0
