"""Realistic audit: label-free thresholds, achieved rates, PPV and its interval, the support
rule, stability (curvmia/realistic.py, curvmia/stability.py, scripts/realistic.py).
References are written by hand or with plain loops, never with the helpers they check."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from curvmia.realistic import (
    achieved,
    balanced_threshold,
    labelfree_balanced_threshold,
    labelfree_thresholds,
    ppv,
    ppv_headline,
    ppv_interval,
    realistic_frames,
    supported_level,
    target_rows,
    threshold_at_fpr,
    with_labelfree,
)
from curvmia.report_tables import realistic_markdown
from curvmia.stability import pair_jaccard, stability_frames

ROOT = Path(__file__).resolve().parents[1]


def _count_at_least(scores, t):
    return sum(1 for x in scores if x >= t)  # NaN >= t is False


def test_threshold_hand_values():
    non = [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    s = np.array(non + [100.0])
    m = np.array([False] * 10 + [True])
    t = threshold_at_fpr(s, m, 0.2)  # at most 2 of 10 non-members: 9 and 10 flagged
    assert 8 < t <= 9
    assert _count_at_least(non, t) == 2
    assert _count_at_least(non, np.nextafter(t, -np.inf)) == 3  # the smallest such t
    assert achieved(s, m, t) == (0.2, 1.0)


def test_threshold_ties_exclude_the_whole_tie_and_nan_never_counts():
    s = np.array([5.0, 5, 5, 1, 9])
    m = np.array([False, False, False, False, True])
    t = threshold_at_fpr(s, m, 0.5)  # k = 2 but three non-members tie at 5: all out
    assert 5 < t <= 9 and _count_at_least([5, 5, 5, 1], t) == 0
    s = np.array([np.nan, np.nan, 3.0, 2.0, 0.0])
    m = np.array([False, False, False, False, True])
    assert threshold_at_fpr(s, m, 0.5) == -np.inf  # 2 of 4 may be flagged: both finite ones
    t = threshold_at_fpr(s, m, 0.25)
    assert 2 < t <= 3
    assert achieved(s, m, t) == (0.25, 0.0)


def test_threshold_against_brute_force_on_random_ties():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(5, 40))
        s = rng.integers(0, 6, n).astype(float)
        s[rng.random(n) < 0.1] = np.nan
        m = rng.random(n) < 0.4
        m[0] = False
        non = [x for x, mm in zip(s, m) if not mm]
        for alpha in (0.0, 0.1, 0.25, 0.5, 1.0):
            finite = [x for x in non if not math.isnan(x)]
            cands = sorted({-math.inf, *finite, *(math.nextafter(x, math.inf) for x in finite)})
            ref = next(c for c in cands if _count_at_least(non, c) <= alpha * len(non) + 1e-9)
            assert threshold_at_fpr(s, m, alpha) == ref


def test_balanced_threshold_hand_value_and_tie_to_largest():
    # t=4: TPR .5 FPR 0 -> .75; t=2: TPR 1 FPR .5 -> .75; every other t lower: the largest
    s = np.array([1.0, 2, 3, 4])
    m = np.array([False, True, False, True])
    assert balanced_threshold(s, m) == 4.0
    s = np.array([1.0, 2, 3, 4, np.nan])
    m = np.array([False, False, True, True, True])
    assert balanced_threshold(s, m) == 3.0  # TPR 2/3, FPR 0


def test_labelfree_thresholds_are_the_median_over_pseudo_targets():
    base = np.arange(10, dtype=float)
    m = np.zeros(10, bool)
    m[[2, 5]] = True
    ps = np.stack([base, base + 5, base + 1000])  # one odd shadow
    pi = np.stack([m, m, m])
    one = [threshold_at_fpr(base + d, m, 0.25) for d in (0, 5, 1000)]
    got = labelfree_thresholds(ps, pi, [0.25, 1.0])
    assert got[0] == sorted(one)[1]  # the middle one, not dragged by the odd shadow
    assert got[1] == -np.inf
    bal = sorted(balanced_threshold(base + d, m) for d in (0, 5, 1000))[1]
    assert labelfree_balanced_threshold(ps, pi) == bal


def test_ppv_hand_values():
    assert ppv(0.01, 0.5, 0.1) == pytest.approx(0.005 / (0.005 + 0.099))
    assert ppv(0.5, 0.3, 0.1) == pytest.approx(0.75)
    assert ppv(0.01, 0.2, 0.0) == 1.0
    assert math.isnan(ppv(0.01, 0.0, 0.0))


def test_ppv_interval_from_clopper_pearson_bounds():
    tp, n_pos, fp, n_neg, pi = 5, 10, 10, 100, 0.01
    t_lo, t_hi = beta.ppf(0.025, tp, n_pos - tp + 1), beta.ppf(0.975, tp + 1, n_pos - tp)
    f_lo, f_hi = beta.ppf(0.025, fp, n_neg - fp + 1), beta.ppf(0.975, fp + 1, n_neg - fp)
    lo, hi = ppv_interval(pi, tp, n_pos, fp, n_neg)
    assert lo == pytest.approx(pi * t_lo / (pi * t_lo + (1 - pi) * f_hi), rel=1e-9)
    assert hi == pytest.approx(pi * t_hi / (pi * t_hi + (1 - pi) * f_lo), rel=1e-9)
    # closed forms at the edges: k = n gives TPR's lower 0.025^(1/n); k = 0 gives FPR's
    # upper 1 − 0.025^(1/n) and its lower 0, so the upper PPV is 1
    lo, hi = ppv_interval(pi, 10, 10, 0, 100)
    t_lo, f_hi = 0.025 ** (1 / 10), 1 - 0.025 ** (1 / 100)
    assert lo == pytest.approx(pi * t_lo / (pi * t_lo + (1 - pi) * f_hi), rel=1e-9)
    assert hi == 1.0
    assert ppv_headline(1.0, lo, 0.0) == lo  # FPR 0: the headline shows the lower bound
    assert ppv_headline(0.3, 0.1, 0.05) == 0.3


def test_support_rule_uses_the_smaller_count():
    assert supported_level(0.01, 1000, 1000)
    assert not supported_level(0.01, 1000, 999)
    assert not supported_level(0.01, 999, 5000)
    assert supported_level(0.1, 100, 120)


def test_target_rows_unsupported_level_keeps_threshold_rates_nan():
    s = np.arange(200, dtype=float)
    m = np.arange(200) % 2 == 0
    rows = target_rows(s, m, np.array([150.5, 190.5]), [0.1, 0.01], [0.01], n_pseudo_non_min=100,
                       weights=None)  # fmt: skip
    ok, no = rows
    assert ok["supported"] and not no["supported"]
    # 150.5: non-members (odd) 151..199 = 25 of 100; members (even) 152..198 = 24 of 100
    assert (ok["fpr"], ok["tpr"]) == (0.25, 0.24)
    assert ok["ppv_0.01"] == pytest.approx(0.01 * 0.24 / (0.01 * 0.24 + 0.99 * 0.25))
    assert no["threshold"] == 190.5 and math.isnan(no["tpr"]) and "10/FPR" in no["note"]


def _synthetic(seed=0, n=400, t=4, p=6):
    rng = np.random.default_rng(seed)

    def draw(k):
        m = np.zeros((k, n), bool)
        for i in range(k):
            m[i, rng.permutation(n)[: n // 2]] = True
        return m, rng.normal(size=(k, n)) + m

    m, s = draw(t)
    m[1] = ~m[0]  # targets 0 and 1 are complements
    pm, ps = draw(p)
    attacks = {"a": {"scores": s, "is_member": m, "targets": np.arange(t) + 10,
                     "known": np.ones(t, bool)}}  # fmt: skip
    pseudo = {"a": {"scores": ps, "is_member": pm}}
    return attacks, pseudo


CFG = {"fprs": [0.1, 0.01], "priors": [0.01, 0.5], "bootstrap": 20, "seed": 0}


def test_shuffled_target_labels_leave_every_threshold_unchanged():
    attacks, pseudo = _synthetic()
    real, bal = realistic_frames(attacks, pseudo, CFG)
    rng = np.random.default_rng(1)
    shuffled = {"a": dict(attacks["a"])}
    shuffled["a"]["is_member"] = np.stack([rng.permutation(r) for r in attacks["a"]["is_member"]])
    real2, bal2 = realistic_frames(shuffled, pseudo, CFG)
    assert (real2["threshold"].to_numpy() == real["threshold"].to_numpy()).all()
    assert (bal2["threshold_bal"].to_numpy() == bal["threshold_bal"].to_numpy()).all()
    assert not np.allclose(real2["tpr"].fillna(0), real["tpr"].fillna(0))  # the rates do move


def test_an_attack_without_pseudo_target_scores_has_no_threshold():
    """Online LiRA with two shadows leaves each pseudo-target without an IN reference: every
    score NaN (the CIFAR rehearsal's `realistic` failed on it with an IndexError)."""
    attacks, pseudo = _synthetic()
    assert np.isnan(balanced_threshold(np.full(4, np.nan), np.array([1, 0, 1, 0], bool)))
    assert np.isnan(threshold_at_fpr(np.array([np.nan, 1.0]), np.array([False, True]), 0.1))
    # the targets keep their scores (two references each): a threshold of -inf would flag
    # every one of them, a "result" of FPR 100%; no threshold is no result
    pseudo["a"]["scores"][:] = np.nan
    real, bal = realistic_frames(attacks, pseudo, CFG)
    assert bal.threshold_bal.isna().all() and bal.bal_acc_labelfree.isna().all()
    assert real.threshold.isna().all() and not real.supported.astype(bool).any()
    assert real.fpr.isna().all() and real.tpr.isna().all()
    assert (real.note == "no label-free threshold: no pseudo-target scored a non-member").all()
    metrics = pd.DataFrame([{"attack": "a", "target": "mean", "auroc": 0.7}])
    row = realistic_markdown(real, metrics, 0.01).splitlines()[2]
    why = "no label-free threshold: no pseudo-target scored a non-member"
    assert row == f"| a | 70.00 | {why} | – | – | – | – |"
    # one pseudo-target without scores does not vote: the others' median stands
    _, full = _synthetic()
    part = {"a": {k: np.array(v) for k, v in full["a"].items()}}
    part["a"]["scores"][0] = np.nan
    want = np.median(
        [
            threshold_at_fpr(s, m, 0.1)
            for s, m in zip(full["a"]["scores"][1:], full["a"]["is_member"][1:])
        ]
    )
    real, _ = realistic_frames(attacks, part, CFG)
    assert (real[real.fpr_level == 0.1].threshold == want).all()


def test_jaccard_hand_value_and_complements():
    a = np.array([1, 1, 1, 0, 0, 0], bool)
    b = np.array([0, 1, 1, 1, 0, 0], bool)
    common = np.array([1, 1, 1, 1, 1, 0], bool)
    assert pair_jaccard(a, b, common) == (0.5, 5)
    jac, n_common = pair_jaccard(a, b, np.zeros(6, bool))
    assert math.isnan(jac) and n_common == 0
    attacks, pseudo = _synthetic()
    real, _ = realistic_frames(attacks, pseudo, CFG)
    pairs, samples = stability_frames(attacks, real)
    comp = pairs[(pairs.target_a == 10) & (pairs.target_b == 11)].iloc[0]
    assert math.isnan(comp.jaccard) and comp.n_common == 0
    assert len(pairs) == 6 and (pairs.n_common[1:] > 0).all()
    # per sample: flagged members counted by hand at the stability level's threshold
    thr = real[(real.fpr_level == 0.1)].threshold.iloc[0]
    s, m = attacks["a"]["scores"], attacks["a"]["is_member"]
    for j in (0, 7, 99):
        hand = sum(1 for i in range(4) if m[i, j] and s[i, j] >= thr)
        assert samples.loc[j, "n_flagged_a"] == hand


def test_metrics_columns_and_headline_markdown():
    attacks, pseudo = _synthetic()
    real, bal = realistic_frames(attacks, pseudo, CFG)
    metrics = pd.DataFrame(
        [{"attack": "a", "target": str(t), "auroc": 0.7, "tpr@0.1": 0.3} for t in range(10, 14)]
        + [{"attack": "a", "target": "mean", "auroc": 0.7, "tpr@0.1": 0.3},
           {"attack": "a", "target": "std", "auroc": 0.0, "tpr@0.1": 0.0}]
    )  # fmt: skip
    out = with_labelfree(metrics, bal)
    per = out[~out.target.isin(["mean", "std"])]
    assert per.bal_acc_labelfree.notna().all()
    assert out.loc[out.target == "mean", "bal_acc_labelfree"].iloc[0] == pytest.approx(
        sum(per.bal_acc_labelfree) / 4
    )
    md = realistic_markdown(real, out, 0.01)
    row = [ln for ln in md.splitlines() if ln.startswith("| a |")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "70.00" and cells[2] == "10%" and cells[-1] == "30.00"
    assert all(c and c != "–" for c in cells)


def test_script_end_to_end_on_synthetic_files(tmp_path):
    attacks, pseudo = _synthetic()
    (tmp_path / "attacks").mkdir()
    (tmp_path / "pseudo").mkdir()
    np.savez(tmp_path / "attacks" / "a.npz", **attacks["a"])
    np.savez(tmp_path / "pseudo" / "a.npz", **pseudo["a"])
    out = {k: tmp_path / f"{k}.csv" for k in ("csv", "bal", "stability", "samples")}
    cfg = '{"fprs": [0.1, 0.01], "priors": [0.001, 0.01], "bootstrap": 10, "seed": 0}'
    cmd = [sys.executable, str(ROOT / "scripts" / "realistic.py"), "--metrics", cfg,
           "--pseudo", str(tmp_path / "pseudo" / "a.npz"), "--figure", str(tmp_path / "s.png"),
           *(x for k, p in out.items() for x in (f"--{k}", str(p))),
           str(tmp_path / "attacks" / "a.npz")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    real = pd.read_csv(out["csv"])
    head = ["attack", "target", "fpr_level", "threshold", "fpr", "tpr", "tpr_lo", "tpr_hi"]
    assert list(real.columns[:10]) == head + ["ppv_0.001", "ppv_0.01"]
    assert len(real) == 4 * 2
    assert list(pd.read_csv(out["stability"]).columns[:5]) == [
        "attack", "target_a", "target_b", "jaccard", "n_common"
    ]  # fmt: skip
    assert (tmp_path / "s.png").stat().st_size > 0
    # the threshold applied is what the pseudo-targets give, by hand for the 10% level
    own = []
    for srow, mrow in zip(pseudo["a"]["scores"], pseudo["a"]["is_member"]):
        non = sorted((x for x, mm in zip(srow, mrow) if not mm), reverse=True)
        own.append(np.nextafter(non[int(0.1 * len(non))], np.inf))
    assert real.threshold[real.fpr_level == 0.1].iloc[0] == pytest.approx(np.median(own))


def test_vulnerability_gains_flag_columns_rows_and_order_unchanged():
    from curvmia.exposure import with_flags

    vuln = pd.DataFrame({"rank": [1, 2, 3], "sample": [2, 0, 1], "exposure_a": [0.9, 0.5, 0.1]})
    flags = pd.DataFrame({"sample": [0, 1, 2], "n_targets_member": [1, 2, 2],
                          "n_flagged_a": [0, 1, 2]})  # fmt: skip
    out = with_flags(vuln, flags)
    assert list(out["sample"]) == [2, 0, 1] and list(out["n_flagged_a"]) == [2, 0, 1]
    assert "n_targets_member" not in out.columns  # vulnerability.csv's own stays the only one
