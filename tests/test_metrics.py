"""Metrics against scikit-learn and hand-computed cases."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from curvmia.metrics import (
    auroc,
    balanced_accuracies,
    bootstrap_auroc,
    bootstrap_replicates,
    bootstrap_weights,
    paired_auroc_difference,
    roc_curve,
    summarize,
    tpr_at_fpr,
    tpr_at_fpr_strict,
)


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    m = rng.random(3000) < 0.4
    s = rng.normal(0, 1, 3000) + 0.8 * m
    s[:200] = np.round(s[:200], 1)  # ties
    return s, m


def test_auroc_matches_sklearn(problem):
    s, m = problem
    assert auroc(s, m) == pytest.approx(roc_auc_score(m, s), abs=1e-12)


def test_roc_matches_sklearn(problem):
    s, m = problem
    fpr, tpr = roc_curve(s, m)
    sk_fpr, sk_tpr, _ = sk_roc_curve(m, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)


def test_balanced_accuracy_conventions(problem):
    s, m = problem
    sk_fpr, sk_tpr, _ = sk_roc_curve(m, s, drop_intermediate=False)
    fpr, tpr = roc_curve(s, m)
    paper, best = balanced_accuracies(fpr, tpr)
    i = np.argmin(np.abs(sk_fpr + sk_tpr - 1))
    assert paper == pytest.approx((sk_tpr[i] + 1 - sk_fpr[i]) / 2)
    # best threshold: brute force over every cut
    cuts = np.unique(s)
    accs = [((s[m] >= c).mean() + (s[~m] < c).mean()) / 2 for c in cuts]
    assert best == pytest.approx(max(accs))
    assert best >= paper


def test_hand_case():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    m = np.array([True, False, True, True, False, False])
    # pairs (member > non-member): 0.9 beats 3, 0.7 beats 2, 0.6 beats 2 → 7 of 9
    assert auroc(s, m) == pytest.approx(7 / 9)
    fpr, tpr = roc_curve(s, m)
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1, 1])


def test_tpr_at_fpr_interpolates_and_needs_enough_nonmembers():
    fpr = np.array([0.0, 0.02, 1.0])
    tpr = np.array([0.0, 0.5, 1.0])
    assert tpr_at_fpr(fpr, tpr, 0.01, n_nonmembers=1000) == pytest.approx(0.25)
    assert np.isnan(tpr_at_fpr(fpr, tpr, 0.01, n_nonmembers=999))


def test_nan_and_inf_scores_never_crash():
    s = np.array([np.nan, np.inf, -np.inf, 1.0, 0.0, np.nan])
    m = np.array([True, True, False, False, True, False])
    # NaN ranks lowest (tied with -inf): same as replacing NaN by -inf
    ref = roc_auc_score(m, np.array([-1e9, 1e9, -1e9, 1.0, 0.0, -1e9]))
    assert auroc(s, m) == pytest.approx(ref)
    out = summarize(s, m, fprs=[0.1], n_boot=20, seed=0)
    assert out["n_nan_scores"] == 2 and 0 <= out["auroc"] <= 1


def test_bootstrap_interval_contains_point_estimate(problem):
    s, m = problem
    lo, hi = bootstrap_auroc(s, m, n_boot=200, seed=0)
    a = auroc(s, m)
    assert lo < a < hi
    # width ≈ 2·1.96·SE, SE from Hanley–McNeil ≈ 0.01 here
    assert 0.02 < hi - lo < 0.06


def test_roc_ties_among_infinities():
    s = np.array([np.inf, np.inf, 1.0, -np.inf, -np.inf, np.nan])
    m = np.array([True, False, True, False, True, False])
    fpr, tpr = roc_curve(s, m)
    # blocks from the top: {inf, inf}, {1}, {-inf, -inf, nan→-inf}
    np.testing.assert_allclose(fpr, [0, 1 / 3, 1 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1])


def test_strict_tpr_is_the_lira_convention():
    fpr = np.array([0.0, 0.005, 0.01, 0.02, 1.0])
    tpr = np.array([0.0, 0.2, 0.3, 0.5, 1.0])
    # strict: last point with fpr < 0.01 → 0.2; interpolation at 0.01 → 0.3
    assert tpr_at_fpr_strict(fpr, tpr, 0.01, n_nonmembers=1000) == pytest.approx(0.2)
    assert tpr_at_fpr(fpr, tpr, 0.01, n_nonmembers=1000) == pytest.approx(0.3)
    assert tpr_at_fpr_strict(fpr, tpr, 0.015, n_nonmembers=1000) == pytest.approx(0.3)
    assert np.isnan(tpr_at_fpr_strict(fpr, tpr, 0.01, n_nonmembers=999))


def test_strict_tpr_by_hand_on_scores():
    # 1000 non-members at 0..999, members at 1000.5 (3 of them) and 500.5 (97)
    non = np.arange(1000.0)
    mem = np.r_[np.full(3, 1000.5), np.full(97, 500.5)]
    s, m = np.r_[non, mem], np.r_[np.zeros(1000, bool), np.ones(100, bool)]
    fpr, tpr = roc_curve(s, m)
    # FPR < 1% admits at most 9 non-members above the cut: only the 3 top members
    assert tpr_at_fpr_strict(fpr, tpr, 0.01, 1000) == pytest.approx(0.03)


@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("target", [0.002, 0.01, 0.05, 0.3])
def test_weighted_bootstrap_equals_explicit_resampling(problem, decimals, target):
    """Replicates from one sort + counts equal AUROC / TPR of explicitly resampled data
    (with few ties, and with heavy ties between members and non-members)."""
    s, m = problem
    if decimals is not None:
        s = np.round(s, decimals)
    w = bootstrap_weights(m, n_boot=5, seed=3)
    assert (w[:, m].sum(1) == m.sum()).all() and (w[:, ~m].sum(1) == (~m).sum()).all()
    aucs, tprs = bootstrap_replicates(s, m, w, fpr=target)
    for k in range(5):
        idx = np.repeat(np.arange(len(s)), w[k])
        assert aucs[k] == pytest.approx(roc_auc_score(m[idx], s[idx]), abs=1e-12)
        f, t, _ = sk_roc_curve(m[idx], s[idx], drop_intermediate=False)
        assert tprs[k] == pytest.approx(np.interp(target, f, t), abs=1e-12)


def test_bootstrap_interval_coverage():
    """95% intervals cover the true AUROC Φ(d/√2) in 90–98% of 200 repetitions."""
    from scipy.stats import norm

    rng = np.random.default_rng(11)
    d, n = 1.0, 300
    truth = norm.cdf(d / np.sqrt(2))
    hits = 0
    for rep in range(200):
        m = np.r_[np.ones(n, bool), np.zeros(n, bool)]
        s = rng.normal(0, 1, 2 * n) + d * m
        lo, hi = bootstrap_auroc(s, m, n_boot=200, seed=rep)
        hits += lo <= truth <= hi
    assert 180 <= hits <= 196, hits  # 190 with this seed


def test_paired_difference():
    rng = np.random.default_rng(2)
    m = rng.random(2000) < 0.5
    base = rng.normal(0, 1, 2000) + 0.8 * m
    a = base + rng.normal(0, 0.3, 2000)
    b = base + rng.normal(0, 0.3, 2000) - 0.4 * m  # weaker
    w = bootstrap_weights(m, n_boot=200, seed=0)
    same = paired_auroc_difference(a, a, m, weights=w)
    assert same == {"diff": 0.0, "diff_lo": 0.0, "diff_hi": 0.0}
    d = paired_auroc_difference(a, b, m, weights=w)
    assert d["diff"] == pytest.approx(roc_auc_score(m, a) - roc_auc_score(m, b))
    assert 0 < d["diff_lo"] < d["diff"] < d["diff_hi"]
    # pairing removes the shared variance: the difference's interval is narrower than
    # either attack's own AUROC interval
    lo_a, hi_a = bootstrap_auroc(a, m, n_boot=200, seed=0)
    assert d["diff_hi"] - d["diff_lo"] < 0.6 * (hi_a - lo_a)


def test_summarize_labels_strict_and_interval_columns():
    rng = np.random.default_rng(0)
    m = rng.random(3000) < 0.5
    s = rng.normal(0, 1, 3000) + m
    out = summarize(s, m, fprs=[0.01, 0.001], n_boot=50, seed=0)
    assert out["tpr_strict@0.01"] <= out["tpr@0.01"]
    assert out["tpr@0.01_lo"] <= out["tpr@0.01"] <= out["tpr@0.01_hi"]
    assert np.isnan(out["tpr@0.001"]) and np.isnan(out["tpr_strict@0.001"])
    small = summarize(s[:500], m[:500], fprs=[0.01], n_boot=20, seed=0)
    assert np.isnan(small["tpr@0.01_lo"]) and small["auroc_lo"] < small["auroc"]
