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


def _cp(k: int, n: int, q: float) -> float:
    """Clopper–Pearson quantile written out: the q-quantile of Beta(k, n − k + 1) for a lower
    limit (q < ½) and of Beta(k + 1, n − k) for an upper one, 0 and 1 at the ends."""
    from scipy.stats import beta

    if q < 0.5:
        return 0.0 if k == 0 else float(beta.ppf(q, k, n - k + 1))
    return 1.0 if k == n else float(beta.ppf(q, k + 1, n - k))


def test_epsilon_bounds_by_hand_and_at_exact_ties_with_delta():
    """ε = log((TPR − δ)/FPR), its limits from Clopper–Pearson at α/2 each; a TPR (or its
    limit) exactly at δ proves nothing (−inf), even with no false positive."""
    b = epsilon_bounds(30, 100, 10, 100, delta=0.1, alpha=0.05)
    assert b["eps"] == pytest.approx(np.log(0.2 / 0.1), rel=1e-12)
    lo = np.log((_cp(30, 100, 0.025) - 0.1) / _cp(10, 100, 0.975))
    hi = np.log((_cp(30, 100, 0.975) - 0.1) / _cp(10, 100, 0.025))
    assert b["eps_lo"] == pytest.approx(lo, rel=1e-9)
    assert b["eps_hi"] == pytest.approx(hi, rel=1e-9)
    # integer counts in numpy arrays give the same numbers
    bi = epsilon_bounds(np.array([30]), 100, np.array([10]), 100, delta=0.1, alpha=0.05)
    assert all(bi[key][0] == b[key] for key in b)
    assert 5 / 100 - 0.05 == 0.0  # TPR exactly δ below
    assert epsilon_bounds(5, 100, 0, 100, delta=0.05, alpha=0.05)["eps"] == -np.inf
    assert epsilon_bounds(100, 100, 0, 100, delta=1.0, alpha=0.05)["eps_hi"] == -np.inf
    # the lower TPR limit exactly at δ (0 members found, δ = 0): −inf, not log(1e-300/FPR)
    assert epsilon_bounds(0, 100, 3, 100, delta=0.0, alpha=0.05)["eps_lo"] == -np.inf


def test_clopper_pearson_upper_limit_of_all_but_one_in_closed_form_and_its_refusal():
    # n − 1 successes of n: the upper limit is the (1 − α)-quantile of Beta(n, 1), (1 − α)^(1/n)
    got = clopper_pearson(9, 10, 0.05, "upper")
    assert got == pytest.approx(0.95 ** (1 / 10), rel=1e-12)
    with pytest.raises(ValueError, match=r"^side must be 'lower' or 'upper', got 'mid'$"):
        clopper_pearson(1, 10, 0.05, "mid")


def test_kl_knn_defaults_and_the_smallest_samples_it_takes():
    rng = np.random.default_rng(8)
    x, y = np.round(rng.normal(size=30), 1), np.round(rng.normal(1, 1, 25), 1)
    assert kl_knn(x, y) == kl_knn(x, y, k=5, seed=0)
    assert kl_knn(x, y) != kl_knn(x, y, k=6, seed=0)
    # m = k non-members are enough (the k-th neighbour exists), n = k members are not
    x2, y2 = np.array([0.0, 1.0, 3.0, 4.5]), np.array([2.0, 7.0, 9.0])
    assert np.isfinite(kl_knn(x2, y2, k=3))
    with pytest.raises(ValueError, match=r"more than k=3 samples per side, got 3 and 3"):
        kl_knn(x2[:3], y2, k=3)
    # every value equal and not zero: the jitter's width is 1e-9 (the fallback spread 1)
    v, w = np.full(12, 5.0), np.full(9, 5.0)
    g = np.random.default_rng(0)
    vj, wj = v + g.uniform(-5e-10, 5e-10, 12), w + g.uniform(-5e-10, 5e-10, 9)
    rho = [np.sort(np.abs(np.delete(vj, i) - vj[i]))[2] for i in range(12)]
    nu = [np.sort(np.abs(wj - vj[i]))[2] for i in range(12)]
    want = np.mean(np.log(np.divide(nu, rho))) + np.log(9 / 11)
    assert kl_knn(v, w, k=3) == pytest.approx(want, rel=1e-12)


def test_kl_estimators_read_float32_and_integer_samples_as_float64():
    """A float32 statistic is widened before the 1e-9 jitter (which float32 cannot hold)."""
    rng = np.random.default_rng(9)
    x, y = np.round(rng.normal(size=40), 1), np.round(rng.normal(1, 2, 30), 1)
    assert kl_knn(x.astype(np.float32), y.astype(np.float32), k=3) == kl_knn(
        x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64), k=3
    )
    xi, yi = np.arange(20) % 7, np.arange(15) % 4
    assert kl_knn(xi, yi, k=2) == kl_knn(xi.astype(float), yi.astype(float), k=2)
    x32 = (rng.normal(size=50) * 1e3 + 1e4).astype(np.float32)
    y32 = (rng.normal(size=60) * 2e3 + 1e4).astype(np.float32)
    assert kl_gauss(x32, y32) == kl_gauss(x32.astype(np.float64), y32.astype(np.float64))


def test_distinguishability_rows_name_the_gaussian_model_and_take_numeric_labels():
    rng = np.random.default_rng(10)
    m = rng.random(120) < 0.4
    s = np.round(rng.normal(size=120) + m, 1)  # ties: the k-NN jitter's seed matters
    stats = {"loss": s, "phi": s}
    rows = distinguishability(stats, m, k=3, seed=4)
    assert [r["gauss_model"] for r in rows] == [
        "not fitted: skewed, bounded statistic (see log_loss, phi)",
        "fair",
    ]
    assert all(r["null_reps"] == 20 for r in rows)  # the default
    assert rows[0]["kl_knn"] == kl_knn(s[m], s[~m], k=3, seed=4)
    assert rows[0]["kl_knn"] != kl_knn(s[m], s[~m], k=3, seed=0)
    for labels in (m.astype(np.uint8), m.astype(np.int64), m.astype(float)):
        again = distinguishability(stats, labels, k=3, seed=4)
        for a, b in zip(again, rows):
            assert a.keys() == b.keys()
            assert all(a[f] == b[f] or (a[f] != a[f] and b[f] != b[f]) for f in a), labels.dtype


def test_above_null_needs_a_kl_strictly_above_the_nulls_quantile():
    """k-NN: members {0, 1}, non-members {3, 7} (offsets from 1e10, where the 1e-9 jitter
    vanishes in rounding): seed 15's single shuffle keeps the same halves, so the null's
    quantile equals the KL exactly and the KL is not above it; a statistic of random
    labels is below its null; one repetition decides the Gaussian too."""
    s = 1e10 + np.array([0.0, 1.0, 3.0, 7.0])
    m = np.array([True, True, False, False])
    r = distinguishability({"loss": s}, m, k=1, seed=15, null_reps=1)[0]
    assert r["kl_knn"] == r["kl_knn_null_q95"] == pytest.approx((np.log(6) / 2) + np.log(2))
    assert r["kl_knn_above_null"] is False
    rng = np.random.default_rng(11)
    s = rng.normal(size=200)
    r = distinguishability({"loss": s}, rng.random(200) < 0.5, k=5, seed=0)[0]
    assert r["kl_knn"] < r["kl_knn_null_q95"] and r["kl_knn_above_null"] is False
    m = rng.random(300) < 0.5
    s = rng.normal(size=300) + 5 * m
    r = distinguishability({"phi": s}, m, k=5, seed=0, null_reps=1)[0]
    assert r["kl_gauss"] > r["kl_gauss_null_q95"] and r["kl_gauss_above_null"] is True


def _audit_by_hand(scores, m, delta, alpha, frac, seed):
    """audit() transcribed: the stratified selection from default_rng([0xA0D17, seed]), each
    threshold's ε lower limit on the selection (highest threshold first; the first attack
    wins ties), then the counts on the rest; NaN scores count as −inf."""
    rng = np.random.default_rng([0xA0D17, seed])
    sel = np.zeros(len(m), bool)
    for side in (np.flatnonzero(m), np.flatnonzero(~m)):
        sel[rng.permutation(side)[: int(round(frac * len(side)))]] = True
    npos, nneg = int((m & sel).sum()), int((~m & sel).sum())
    best, thr = -np.inf, None
    for label, sc in scores.items():
        s = np.where(np.isnan(sc), -np.inf, sc)
        for t in sorted(set(s[sel].tolist()), reverse=True):
            tp, fp = int((m & sel & (s >= t)).sum()), int((~m & sel & (s >= t)).sum())
            num = _cp(tp, npos, alpha / 2) - delta
            lo = np.log(num / _cp(fp, nneg, 1 - alpha / 2)) if num > 0 else -np.inf
            if lo > best:
                best, thr, attack = lo, t, label
    s = np.where(np.isnan(scores[attack]), -np.inf, scores[attack])
    ev = ~sel
    tp, fp = int((m & ev & (s >= thr)).sum()), int((~m & ev & (s >= thr)).sum())
    return attack, thr, tp, fp, int((m & ev).sum()), int((~m & ev).sum())


@pytest.mark.parametrize("member_frac,seed", [(0.15, 0), (0.85, 12), (0.5, 1)])
def test_audit_against_a_transcription_on_imbalanced_classes(member_frac, seed):
    rng = np.random.default_rng(100 + seed)
    m = rng.random(300) < member_frac
    a = np.round(rng.normal(size=300) + 1.5 * m, 1)
    rng = np.random.default_rng(200 + seed)
    b = np.round(rng.normal(size=300) + 1.0 * m, 1)
    b[rng.random(300) < 0.05] = np.nan
    scores = {"a": a, "b": b}
    r = audit(scores, m, delta=0.0, alpha=0.05, select_frac=0.5, seed=seed)
    attack, thr, tp, fp, npos, nneg = _audit_by_hand(scores, m, 0.0, 0.05, 0.5, seed)
    assert (r["audit_attack"], r["audit_threshold"]) == (attack, thr)
    assert (r["audit_tp"], r["audit_fp"]) == (tp, fp)
    assert (r["audit_n_members"], r["audit_n_nonmembers"]) == (npos, nneg)
    assert r["audit_tpr"] == tp / npos and r["audit_fpr"] == fp / nneg
    # membership as 0/1 numbers gives the same audit
    for labels in (m.astype(np.uint8), m.astype(float)):
        again = audit(scores, labels, delta=0.0, alpha=0.05, select_frac=0.5, seed=seed)
        assert again == r


def test_audit_counts_nan_scores_as_minus_infinity_at_evaluation_too():
    """Members score NaN, non-members finite: only "everyone is a member" (threshold −inf)
    has a finite lower limit, and at evaluation every NaN member is above it."""
    m = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    s = np.r_[np.full(50, np.nan), np.linspace(0, 1, 50)]
    r = audit({"a": s}, m, delta=0.0, alpha=0.05, select_frac=0.5, seed=0)
    assert r["audit_threshold"] == -np.inf
    assert r["audit_tp"] == r["audit_n_members"] == 25 and r["audit_fp"] == 25
    with pytest.raises(ValueError, match=r"^theory\.audit_select must be in \(0, 1\), got 0$"):
        audit({"a": s}, m, delta=0.0, alpha=0.05, select_frac=0, seed=0)


def test_statistics_at_exact_zero_curvature():
    from curvmia.distinguish import statistics

    c = np.array([[0.0, 3.0], [-2.0, 1.0]])
    got = statistics({"curv_zo": c}, 0)
    np.testing.assert_array_equal(got["logcurv_zo"], [-np.log(1e-22), -np.log(2.0)])
