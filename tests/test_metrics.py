"""Metrics against scikit-learn and hand-computed cases."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from curvmia.metrics import (
    auroc,
    balanced_accuracies,
    bootstrap_auroc,
    roc_curve,
    summarize,
    tpr_at_fpr,
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
