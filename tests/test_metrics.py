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
    """The interval brackets the estimate and its width is the normal one: 2·1.96·SE with
    DeLong's standard error of this AUROC (a 90% interval would be 2·1.645·SE)."""
    s, m = problem
    lo, hi = bootstrap_auroc(s, m, n_boot=2000, seed=0)
    a = auroc(s, m)
    assert lo < a < hi
    # DeLong: per-sample structural components from all member/non-member pairs
    pair = (s[m][:, None] > s[~m][None, :]) + 0.5 * (s[m][:, None] == s[~m][None, :])
    se = np.sqrt(pair.mean(1).var() / m.sum() + pair.mean(0).var() / (~m).sum())
    assert (hi - lo) / (2 * se) == pytest.approx(1.96, rel=0.08)  # 1.645 is 16% below


def test_percentile_interval_level_exact():
    """On the values 0, 0.001, …, 1 the quantiles are the levels themselves."""
    from curvmia.metrics import percentile_interval

    v = np.arange(1001) / 1000
    assert percentile_interval(v) == pytest.approx((0.025, 0.975), abs=1e-12)
    assert percentile_interval(v, 0.9) == pytest.approx((0.05, 0.95), abs=1e-12)
    assert percentile_interval(v[::-1], 0.5) == pytest.approx((0.25, 0.75), abs=1e-12)


def test_bootstrap_interval_level_from_width_ratio():
    """The 95% interval is wider than the 90% one by Φ⁻¹(0.975)/Φ⁻¹(0.95) = 1.19 (bootstrap
    AUROCs are close to normal here); a 90% interval reported as 95% gives 1.28 or 1.0."""
    rng = np.random.default_rng(4)
    m = np.r_[np.ones(1500, bool), np.zeros(1500, bool)]
    s = rng.normal(0, 1, 3000) + 0.7 * m
    lo95, hi95 = bootstrap_auroc(s, m, n_boot=2000, seed=1)
    lo90, hi90 = bootstrap_auroc(s, m, n_boot=2000, seed=1, level=0.9)
    assert (hi95 - lo95) / (hi90 - lo90) == pytest.approx(1.96 / 1.645, abs=0.05)
    summary = summarize(s, m, fprs=[0.01], n_boot=2000, seed=1)
    assert (summary["auroc_lo"], summary["auroc_hi"]) == pytest.approx((lo95, hi95))


def test_bootstrap_weights_are_a_stratified_resample():
    """By their distribution: within each group the counts of a replicate sum to the group's
    size; every index is drawn; each count averages 1 over replicates; a sample is left
    out with probability (1 − 1/n)^n ≈ e⁻¹ (n the size of its group)."""
    m = np.zeros(120, bool)
    m[np.r_[0:30, 90:110]] = True  # 50 members, 70 non-members, interleaved, last is OUT
    b = 4000
    w = bootstrap_weights(m, n_boot=b, seed=7)
    assert w.shape == (b, 120) and w.dtype == np.int32 and (w >= 0).all()
    assert (w[:, m].sum(1) == 50).all() and (w[:, ~m].sum(1) == 70).all()
    assert (w.max(0) > 0).all()  # every member and non-member, the last ones included
    # mean count 1 per sample: Var = 1 − 1/n, standard error ≈ 1/√b; 5 SE
    np.testing.assert_allclose(w.mean(0), 1.0, atol=5 / np.sqrt(b))
    for group, n in ((m, 50), (~m, 70)):
        zero = (w[:, group] == 0).mean()
        p0 = (1 - 1 / n) ** n  # 0.364 and 0.365 (e⁻¹ = 0.368)
        # per sample the zero indicator has SD 0.48; samples of one replicate are nearly
        # independent, so 5 SE of the pooled mean over b·n entries
        assert abs(zero - p0) < 5 * 0.49 / np.sqrt(b * n)
        assert abs(zero - np.exp(-1)) < 0.01
    assert not np.array_equal(w, bootstrap_weights(m, n_boot=b, seed=8))
    np.testing.assert_array_equal(w, bootstrap_weights(m, n_boot=b, seed=7))


def test_metrics_refuse_labels_of_one_class():
    s = np.arange(4.0)
    for m in (np.ones(4, bool), np.zeros(4, bool)):
        for f in (auroc, roc_curve):
            with pytest.raises(ValueError, match=r"^metrics need both members and non-members$"):
                f(s, m)
        with pytest.raises(ValueError, match=r"^metrics need both members and non-members$"):
            bootstrap_auroc(s, m, n_boot=10, seed=0)


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
    """95% intervals cover the true AUROC Φ(d/√2) in 600 repetitions: a binomial 95% gives
    570 ± 5.3, a 90% interval 540 ± 7.3; the band 560–590 tells them apart."""
    from scipy.stats import norm

    rng = np.random.default_rng(11)
    d, n = 1.0, 300
    truth = norm.cdf(d / np.sqrt(2))
    hits = 0
    for rep in range(600):
        m = np.r_[np.ones(n, bool), np.zeros(n, bool)]
        s = rng.normal(0, 1, 2 * n) + d * m
        lo, hi = bootstrap_auroc(s, m, n_boot=400, seed=rep)
        hits += lo <= truth <= hi
    assert 560 <= hits <= 590, hits  # 578 with this seed; its 90% interval: 549


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


def test_summarize_columns_hold_their_own_values():
    """Each column against the function that defines it (exact key set, no column swapped)."""
    rng = np.random.default_rng(1)
    m = rng.random(2500) < 0.4
    s = rng.normal(0, 1, 2500) + m
    s[:3] = [np.nan, np.inf, -np.inf]
    out = summarize(s, m, fprs=[0.01], n_boot=30, seed=4, ci_fpr=0.01)
    fpr, tpr = roc_curve(s, m)
    paper, best = balanced_accuracies(fpr, tpr)
    n_non = int((~m).sum())
    want = {
        "auroc": roc_auc_score(m, np.nan_to_num(s, nan=-1e300, neginf=-1e300, posinf=1e300)),
        "bal_acc_paper": paper,
        "bal_acc_best": best,
        "n_members": int(m.sum()),
        "n_nonmembers": n_non,
        "n_nan_scores": 1,
        "n_inf_scores": 2,
        "tpr@0.01": tpr_at_fpr(fpr, tpr, 0.01, n_non),
        "tpr_strict@0.01": tpr_at_fpr_strict(fpr, tpr, 0.01, n_non),
    }
    w = bootstrap_weights(m, n_boot=30, seed=4)
    aucs, tprs = bootstrap_replicates(s, m, w, 0.01)
    want["auroc_lo"], want["auroc_hi"] = np.quantile(aucs, [0.025, 0.975])
    want["tpr@0.01_lo"], want["tpr@0.01_hi"] = np.quantile(tprs, [0.025, 0.975])
    assert set(out) == set(want)
    for key, value in want.items():
        assert out[key] == pytest.approx(value, rel=1e-12), key
    assert best > paper  # distinct values, so a swapped pair would show


def _weighted_roc_by_hand(s, m, w):
    """A replicate's ROC written out: at each distinct score (descending), the weighted
    members and non-members scoring ≥ it, from (0, 0)."""
    fpr, tpr = [0.0], [0.0]
    for t in sorted(set(s.tolist()), reverse=True):
        tpr.append(w[m & (s >= t)].sum() / w[m].sum())
        fpr.append(w[~m & (s >= t)].sum() / w[~m].sum())
    return np.array(fpr), np.array(tpr)


def _weighted_auroc_by_hand(s, m, w):
    """Mann–Whitney with weights: P(member > non-member) + ½ P(tie)."""
    sm, wm, sn, wn = s[m], w[m], s[~m], w[~m]
    gt = (sm[:, None] > sn[None, :]) + 0.5 * (sm[:, None] == sn[None, :])
    return (wm[:, None] * wn[None, :] * gt).sum() / (wm.sum() * wn.sum())


def test_bootstrap_replicates_one_by_one_across_chunks_and_top_ties():
    """Every one of 60 replicates (more than one chunk of 50) against a by-hand weighted
    AUROC and interpolated TPR, with 15 non-members tied at the top score (so at a small
    FPR the first ROC segment is interpolated from (0, 0)) and FPR targets that land on
    ROC vertices; all-equal scores give 0.5 in every replicate; no FPR, no TPRs."""
    rng = np.random.default_rng(12)
    m = rng.random(200) < 0.4
    s = np.round(rng.normal(size=200) + m, 1)
    s[np.flatnonzero(~m)[:15]] = 10.0  # the top block: 15 non-members, 3 members
    s[np.flatnonzero(m)[:3]] = 10.0
    s[np.flatnonzero(~m)[15:25]] = -10.0  # the bottom block: 10 non-members
    w = bootstrap_weights(m, n_boot=60, seed=5)
    for target in (0.05, 0.5, 0.9, 0.97):
        aucs, tprs = bootstrap_replicates(s, m, w, fpr=target)
        assert aucs.shape == tprs.shape == (60,)
        for k in range(60):
            f, t = _weighted_roc_by_hand(s, m, w[k])
            assert aucs[k] == pytest.approx(_weighted_auroc_by_hand(s, m, w[k]), abs=1e-12)
            assert tprs[k] == pytest.approx(np.interp(target, f, t), abs=1e-12), (target, k)
    aucs, none = bootstrap_replicates(s, m, w)
    assert none is None and aucs.shape == (60,)
    flat, _ = bootstrap_replicates(np.zeros(200), m, w)
    np.testing.assert_array_equal(flat, np.full(60, 0.5))
    # a target exactly at an ROC vertex with a vertical segment: non-members 1..10, members
    # 5.5 and 6.5; FPR 0.5 is reached at threshold 6 and stays until 5.5 joins
    s2 = np.r_[np.arange(1.0, 11.0), 5.5, 6.5]
    m2 = np.r_[np.zeros(10, bool), np.ones(2, bool)]
    w2 = np.ones((1, 12), dtype=np.int32)
    f, t = _weighted_roc_by_hand(s2, m2, w2[0])
    _, tpr2 = bootstrap_replicates(s2, m2, w2, fpr=0.5)
    assert tpr2[0] == np.interp(0.5, f, t)


def test_metrics_take_membership_as_zero_one_numbers():
    rng = np.random.default_rng(13)
    m = rng.random(1500) < 0.3
    s = rng.normal(size=1500) + m
    w = bootstrap_weights(m, n_boot=20, seed=1)
    want = summarize(s, m, fprs=[0.01], n_boot=20, seed=1)
    for labels in (m.astype(np.uint8), m.astype(np.int64), m.astype(float)):
        got = summarize(s, labels, fprs=[0.01], n_boot=20, seed=1)
        assert got.keys() == want.keys()
        assert all(got[k] == want[k] or (got[k] != got[k] and want[k] != want[k]) for k in got)
        np.testing.assert_array_equal(bootstrap_weights(labels, n_boot=20, seed=1), w)
        a, t = bootstrap_replicates(s, labels, w, fpr=0.01)
        a0, t0 = bootstrap_replicates(s, m, w, fpr=0.01)
        np.testing.assert_array_equal(a, a0)
        np.testing.assert_array_equal(t, t0)


def test_interval_levels_reach_summarize_and_the_paired_difference():
    """level = 0.9 gives the 5% and 95% quantiles of the replicates; one replicate gives a
    zero-width interval at that replicate."""
    rng = np.random.default_rng(14)
    m = rng.random(2200) < 0.5
    a = rng.normal(size=2200) + m
    b = a + rng.normal(0, 1, 2200)
    w = bootstrap_weights(m, n_boot=40, seed=2)
    out = summarize(a, m, fprs=[0.01], n_boot=40, seed=2, level=0.9)
    aucs, tprs = bootstrap_replicates(a, m, w, 0.01)
    close = {"rel": 1e-12}  # (1 − 0.9)/2 is 0.04999…: the quantile's last bit may differ
    assert [out["auroc_lo"], out["auroc_hi"]] == pytest.approx(
        np.quantile(aucs, [0.05, 0.95]), **close
    )
    assert [out["tpr@0.01_lo"], out["tpr@0.01_hi"]] == pytest.approx(
        np.quantile(tprs, [0.05, 0.95]), **close
    )
    d = paired_auroc_difference(a, b, m, weights=w, level=0.9)
    diffs = aucs - bootstrap_replicates(b, m, w)[0]
    assert [d["diff_lo"], d["diff_hi"]] == pytest.approx(np.quantile(diffs, [0.05, 0.95]), **close)
    one = summarize(a, m, fprs=[0.01], n_boot=1, seed=2)
    (rep,) = bootstrap_replicates(a, m, bootstrap_weights(m, n_boot=1, seed=2))[0]
    assert one["auroc_lo"] == one["auroc_hi"] == rep
