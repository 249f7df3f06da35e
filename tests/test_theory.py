"""Theory bounds, the bound fit, KL estimators, empirical epsilon, and the sweep analysis."""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from _util import REPO, subprocess_env
from scipy.stats import binom, norm

from curvmia.distinguish import (
    audit,
    clopper_pearson,
    distinguishability,
    epsilon_bounds,
    gaussian_kl,
    kl_gauss,
    kl_knn,
    statistics,
)
from curvmia.io import save_npz
from curvmia.scores import FEATURES
from curvmia.theory import (
    analyse_sweep,
    auroc_form,
    crossover,
    curvature_bound,
    error_stability_bound,
    fit_auroc,
    kl_bound,
    main_targets_frame,
    operating_point_epsilon,
    sweep_note,
)
from curvmia.theory_plots import _null_band, plot_sweep

CFG = {
    "loss_clip": 10.0,
    "c2": 0.0,
    "query": 0,
    "kl_k": 5,
    "kl_null_reps": 8,
    "delta": 1e-5,
    "alpha": 0.05,
    "audit_select": 0.5,
    "seed": 0,
    "fit_attack": "curv_nll",
    "curv_attack": "curv_nll",
    "loss_attack": "yeom",
}


# --- bounds -----------------------------------------------------------------------------------


def test_bounds_at_hand_checked_points():
    # L(1 - e^-1) with L = 10: 10 * (1 - 0.36787944117144233)
    assert error_stability_bound(1.0, 10.0) == pytest.approx(6.321205588285577, rel=1e-12)
    assert error_stability_bound(0.0, 10.0) == 0.0
    assert error_stability_bound(np.inf, 3.0) == 3.0
    # ε = ln 2 -> 1 - e^-ε = 1/2: L(m+1)/2 + c2 = 2 * 10 / 2 + 1
    assert curvature_bound(math.log(2), 9, 2.0, 1.0) == pytest.approx(11.0, rel=1e-12)
    assert kl_bound(3.0) == 3.0 and kl_bound(0.5) == 0.5
    # u = 1/2: L m u = 3, + L + c = 4, s * 16 + offset = 8.1
    assert auroc_form(math.log(2), 0.5, -1.0, 0.1, L=2.0, m=3.0) == pytest.approx(8.1, rel=1e-12)
    assert auroc_form(0.0, 1.0, 0.0, 0.0, L=2.0, m=100.0) == pytest.approx(4.0)


# --- KL estimators ----------------------------------------------------------------------------


def test_gaussian_kl_closed_form():
    # log(2) + (1 + 1) / (2 * 4) - 1/2
    assert gaussian_kl(0.0, 1.0, 1.0, 2.0) == pytest.approx(math.log(2) - 0.25, rel=1e-12)
    assert gaussian_kl(3.0, 0.7, 3.0, 0.7) == 0.0


@pytest.mark.parametrize(
    "mu1,sd1,mu2,sd2", [(0.0, 1.0, 1.0, 2.0), (0.0, 1.0, 0.5, 1.0), (-2.0, 0.5, -1.0, 1.5)]
)
def test_kl_estimators_match_closed_form(mu1, sd1, mu2, sd2):
    rng = np.random.default_rng(1)
    x = rng.normal(mu1, sd1, 6000)
    y = rng.normal(mu2, sd2, 6000)
    truth = gaussian_kl(mu1, sd1, mu2, sd2)
    assert kl_gauss(x, y) == pytest.approx(truth, abs=0.03)
    assert kl_knn(x, y, k=5) == pytest.approx(truth, abs=0.06)
    # identical distributions: both near 0
    assert abs(kl_knn(x, rng.normal(mu1, sd1, 6000))) < 0.05


def test_kl_knn_survives_ties():
    rng = np.random.default_rng(2)
    x = np.r_[np.full(50, -50.0), rng.normal(0, 1, 950)]  # exact-zero curvatures as log 1e-22
    y = np.r_[np.full(50, -50.0), rng.normal(0, 1, 950)]
    val = kl_knn(x, y)
    assert np.isfinite(val) and abs(val) < 0.15


def test_statistics_orientation_and_extra_curvature():
    feats = {
        "loss": np.array([[1.0, 9.0], [2.0, 9.0]]),
        "p_true": np.array([[0.5, 0.1], [0.2, 0.1]]),
        "curv_zo": np.array([[1e-3, 1.0], [1.0, 1.0]]),
        "curv_hutch": np.array([[-2.0, 0.0], [0.5, 0.0]]),
    }
    st = statistics(feats, 0)
    assert set(st) == {"logcurv_zo", "logcurv_hutch", "loss", "log_loss", "p_true"}
    np.testing.assert_allclose(st["loss"], [-1.0, -2.0])
    np.testing.assert_allclose(st["log_loss"], [0.0, -math.log(2.0)], atol=1e-12)
    np.testing.assert_allclose(st["logcurv_zo"], [-math.log(1e-3), 0.0], atol=1e-12)
    np.testing.assert_allclose(st["logcurv_hutch"], [-math.log(2.0), -math.log(0.5)])


# --- bound fit --------------------------------------------------------------------------------

TRUE = {"s": 0.002, "c": 1.0, "offset": 0.5}
EPS = np.array([0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0])


def _synthetic_fit(seed, noise=0.005, L=2.0, m=5.0):
    rng = np.random.default_rng(seed)
    e = np.repeat(EPS, 3)
    y = auroc_form(e, TRUE["s"], TRUE["c"], TRUE["offset"], L=L, m=m) + rng.normal(0, noise, e.size)
    return fit_auroc(e, y, L=L, m=m)


def test_fit_recovers_known_parameters_within_standard_errors():
    fit = _synthetic_fit(0)
    assert fit.significant and fit.p_value < 1e-6
    for k, v in TRUE.items():
        assert abs(fit.params[k] - v) < 2.5 * fit.stderr[k], (k, fit.params[k], fit.stderr[k])
        assert fit.stderr[k] < 0.5 * abs(v) + 0.05
    assert fit.residuals.shape == (30,)
    assert fit.residuals.std() == pytest.approx(0.005, rel=0.35)
    # and the standard errors are honest: ~95% of 1.96-SE intervals cover the truth
    cover = {k: 0 for k in TRUE}
    for seed in range(60):
        f = _synthetic_fit(100 + seed)
        for k, v in TRUE.items():
            cover[k] += abs(f.params[k] - v) <= 1.96 * f.stderr[k]
    assert all(c >= 50 for c in cover.values()), cover


def test_fit_on_noise_is_not_significant():
    rng = np.random.default_rng(3)
    e = np.repeat(EPS, 2)
    fit = fit_auroc(e, 0.5 + rng.normal(0, 0.01, e.size), L=2.0, m=5.0)
    assert not fit.significant and "not significant" in fit.note
    assert isinstance(fit.f_stat, float) and np.isfinite(fit.f_stat)
    names = "(s|c|offset)"
    assert re.search(rf"; within 2 standard errors of 0: {names}(, {names})*$", fit.note)
    few = fit_auroc([1.0, 2.0], [0.5, 0.6], L=2.0, m=5.0)
    assert not few.significant and "not fitted" in few.note


def test_crossover():
    m = [500, 1000, 3000, 7000]
    mc, note = crossover(m, [0.6, 0.62, 0.70, 0.72], [0.8, 0.7, 0.66, 0.6])
    # d = -0.08 at 1000, +0.04 at 3000: 1000 + 2000 * 0.08 / 0.12
    assert mc == pytest.approx(1000 + 2000 * 0.08 / 0.12)
    assert "3000" in note
    assert crossover(m, [0.9] * 4, [0.8] * 4)[0] is None
    none, note = crossover(m, [0.5] * 4, [0.8] * 4)
    assert none is None and "loss stays ahead" in note


# --- empirical epsilon ------------------------------------------------------------------------


def _cp_reference(k, n, a, side):
    """Clopper-Pearson limit by bisection on the binomial tail (independent of beta.ppf)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        p = (lo + hi) / 2
        if side == "lower":  # P(X >= k | p) = a
            lo, hi = (p, hi) if binom.sf(k - 1, n, p) < a else (lo, p)
        else:  # P(X <= k | p) = a
            lo, hi = (p, hi) if binom.cdf(k, n, p) > a else (lo, p)
    return (lo + hi) / 2


def test_epsilon_bound_hand_computed():
    b = epsilon_bounds(90, 100, 10, 100, delta=0.0, alpha=0.05)
    assert b["eps"] == pytest.approx(math.log(9.0))
    tpr_lo = _cp_reference(90, 100, 0.025, "lower")
    fpr_hi = _cp_reference(10, 100, 0.025, "upper")
    assert float(b["eps_lo"]) == pytest.approx(math.log(tpr_lo / fpr_hi), rel=1e-6)
    assert 1.0 < float(b["eps_lo"]) < math.log(9.0) < float(b["eps_hi"])
    # with delta: log((0.9 - 0.1) / 0.1)
    assert epsilon_bounds(90, 100, 10, 100, delta=0.1, alpha=0.05)["eps"] == pytest.approx(
        math.log(8.0)
    )
    # no false positives: a finite lower bound, an infinite point estimate
    b0 = epsilon_bounds(50, 100, 0, 100, delta=0.0, alpha=0.05)
    assert b0["eps"] == np.inf and np.isfinite(b0["eps_lo"])
    assert float(clopper_pearson(0, 100, 0.025, "upper")) == pytest.approx(1 - 0.025 ** (1 / 100))
    # TPR below delta proves nothing
    assert epsilon_bounds(0, 100, 0, 100, delta=1e-5, alpha=0.05)["eps_lo"] == -np.inf


def test_epsilon_interval_covers_the_truth():
    rng = np.random.default_rng(4)
    tpr, fpr, n, delta = 0.6, 0.1, 400, 1e-5
    truth = math.log((tpr - delta) / fpr)
    tp = rng.binomial(n, tpr, 2000)
    fp = rng.binomial(n, fpr, 2000)
    b = epsilon_bounds(tp, n, fp, n, delta=delta, alpha=0.05)
    assert (b["eps_lo"] <= truth).mean() >= 0.95
    assert ((b["eps_lo"] <= truth) & (truth <= b["eps_hi"])).mean() >= 0.90
    assert np.median(b["eps_lo"]) > 1.0  # and it is informative


def test_audit_on_synthetic_attack_covers_the_truth():
    """Gaussian attack scores: members N(1.5, 1), non-members N(0, 1); the true ε of the
    chosen threshold t is log((1 − Φ(t − 1.5) − δ) / (1 − Φ(t)))."""
    delta, hits, los = 1e-5, 0, []
    for seed in range(150):
        rng = np.random.default_rng(1000 + seed)
        m = rng.random(2000) < 0.5
        s = rng.normal(0, 1, 2000) + 1.5 * m
        r = audit({"a": s, "noise": rng.normal(size=2000)}, m, delta=delta, alpha=0.05,
                  select_frac=0.5, seed=seed)  # fmt: skip
        t = r["audit_threshold"]
        truth = math.log((norm.sf(t - 1.5) - delta) / norm.sf(t))
        hits += r["eps_emp_lo"] <= truth
        los.append(r["eps_emp_lo"])
        assert r["audit_attack"] == "a" or r["eps_emp_lo"] == 0.0
        assert r["audit_n_members"] + r["audit_n_nonmembers"] == 1000
    assert hits >= 0.95 * 150
    assert np.median(los) > 0.5
    # no signal: no bound
    rng = np.random.default_rng(5)
    m = rng.random(2000) < 0.5
    r = audit({"a": rng.normal(size=2000)}, m, delta=delta, alpha=0.05, select_frac=0.5, seed=0)
    assert r["eps_emp_lo"] < 0.3


# --- per-target and sweep analysis on files in the issue-5 output format ----------------------


def _features(rng, member, effect):
    """Score-file arrays (population and test split, 2 queries) whose loss and curvature are
    lower for members by ``effect`` standard deviations."""
    n = len(member)
    out = {}
    for prefix, mem in (("", member), ("test_", np.zeros(200, bool))):
        k = len(mem)
        z = rng.normal(size=(k, 2)) - effect * mem[:, None]
        loss = np.exp(z - 1.0)
        f = {
            "loss": loss,
            "p_true": np.exp(-loss),
            "p_max": np.exp(-loss),
            "phi": -np.log(np.expm1(loss)),
            "phi_max": -np.log(np.expm1(loss)),
            "mentr": loss,
            "curv_zo": np.exp(z + 0.3 * rng.normal(size=(k, 2)) - 3.0),
            "curv_hutch": np.exp(z + 0.3 * rng.normal(size=(k, 2)) + 1.0),
            "curv_hutch_sq": np.exp(2 * z + 0.3 * rng.normal(size=(k, 2)) + 2.0),
        }
        out.update({prefix + key: v for key, v in f.items()})
    out["meta"] = np.array(json.dumps({"row": 0, "synthetic": True, "n": n}))
    return out


def _write_sweep(tmp_path, sweep, values, effect_of, auroc_of):
    d = tmp_path / "results" / "exp" / "sweeps" / sweep
    d.mkdir(parents=True)
    rng = np.random.default_rng(7)
    rows, mrows = [], []
    for value in values:
        for seed in (0, 1):
            model = f"{sweep}_{value}_{seed}"
            n = 600
            m_count = int(value) if sweep == "size" else 300
            member = np.zeros(n, bool)
            member[rng.permutation(n)[:m_count]] = True
            feats = _features(rng, member, effect_of(value))
            assert set(FEATURES) <= set(feats)
            spath = d / "scores" / f"{model}.npz"
            mpath = d / "members" / f"{model}.npy"
            mpath.parent.mkdir(exist_ok=True)
            save_npz(spath, **feats)
            np.save(mpath, member)
            rows.append({"sweep": sweep, "value": value, "seed": seed, "model": model,
                         "scores": str(spath.relative_to(tmp_path)),
                         "members": str(mpath.relative_to(tmp_path)), "test_acc": 0.9})  # fmt: skip
            for attack in ("curv_nll", "yeom"):
                a = auroc_of(attack, value) + 0.002 * (seed - 0.5)
                mrows.append({"attack": attack, "target": model, "auroc": a,
                              "bal_acc_paper": a, "bal_acc_best": a, "n_members": m_count,
                              "n_nonmembers": n - m_count, "n_nan_scores": 0, "auroc_lo": a - 0.02,
                              "auroc_hi": a + 0.02, "tpr@0.01": 0.05, "tpr@0.001": np.nan,
                              "tpr@0.0001": np.nan, "value": value, "seed": seed})  # fmt: skip
    # the aggregate rows of the main metrics.csv format are ignored
    mrows.append({**mrows[0], "target": "mean"})
    pd.DataFrame(rows).to_csv(d / "targets.csv", index=False)
    pd.DataFrame(mrows).to_csv(d / "metrics.csv", index=False)
    return d


DP_EPS = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def _dp_auroc(attack, eps):
    return float(auroc_form(eps, 1e-9, 10.0, 0.52, L=10.0, m=300.0))


def test_dp_sweep_analysis(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = _write_sweep(tmp_path, "dp", DP_EPS, lambda e: 0.1 * math.log1p(e), _dp_auroc)
    res = analyse_sweep(str(d / "targets.csv"), str(d / "metrics.csv"), "dp", CFG)
    f = res["frame"]
    assert len(f.drop_duplicates("model")) == 12
    assert set(f["statistic"]) == {
        "logcurv_zo",
        "logcurv_hutch",
        "logcurv_hutch_sq",
        "loss",
        "log_loss",
        "p_true",
        "phi",
    }
    assert (f["m"] == 300).all() and (f["eps_train"] == f["value"]).all()
    # L(1 - e^-ε) at each training ε
    np.testing.assert_allclose(f["bound_error_stability"], 10 * (1 - np.exp(-f["value"])))
    fit = res["fit"]
    assert fit.m == 300 and fit.n == 12 and fit.significant
    assert fit.params["offset"] == pytest.approx(0.52, abs=3 * fit.stderr["offset"] + 1e-3)
    # membership effect grows with ε: the loss KL and AUROC follow
    lo = f[f["statistic"] == "log_loss"].groupby("value")[["kl_gauss", "auroc"]].mean()
    assert lo["kl_gauss"].iloc[-1] > lo["kl_gauss"].iloc[0]
    assert lo["auroc"].iloc[-1] > 0.55
    plot_sweep(res, CFG, str(tmp_path / "dp.png"))
    assert (tmp_path / "dp.png").stat().st_size > 10_000
    note = sweep_note(res, CFG)
    assert "fit significant" in note and "12 targets" in note
    assert f["eps_ops_lo"].notna().all() and (f["eps_ops_attack"] != "").all()
    # the note's KL range is that of p_true (one value per target)
    pr = f[f["statistic"] == "p_true"].drop_duplicates("model")["kl_knn"]
    assert f"KL of p_true (kNN) {pr.min():.3g}..{pr.max():.3g} (its null" in note
    # the audit proves nothing here (ε lower bound 0): no violation; the closing sentence
    assert (f["eps_emp_lo"] == 0).all()
    assert "(δ = 1e-05, 95% confidence) 0..0; exceeds the training ε for 0 of 12 targets.\n" in note
    assert note.endswith(
        "\nOn the small default dataset these sweeps prove the pipeline; they are not expected "
        "to reproduce the paper's trends.\n"
    )
    # one target whose audit exceeds its training ε is flagged
    bad = f.copy()
    first = bad["model"] == bad["model"].iloc[0]
    bad.loc[first, "eps_emp_lo"] = bad.loc[first, "eps_train"] + 1.0
    note = sweep_note({**res, "frame": bad}, CFG)
    assert "exceeds the training ε for 1 of 12 targets (a DP violation or a bug).\n" in note


def test_size_sweep_analysis_in_process(tmp_path, monkeypatch):
    """The size branch of analyse_sweep and its note, without the script (tests/_mutation.py
    runs in-process tests only)."""
    monkeypatch.chdir(tmp_path)
    sizes = [50, 100, 200, 400]
    curv = {50: 0.60, 100: 0.65, 200: 0.70, 400: 0.72}
    loss = {50: 0.80, 100: 0.70, 200: 0.66, 400: 0.60}
    d = _write_sweep(tmp_path, "size", sizes, lambda m: 1.0,
                     lambda a, m: curv[m] if a == "curv_nll" else loss[m])  # fmt: skip
    res = analyse_sweep(str(d / "targets.csv"), str(d / "metrics.csv"), "size", CFG)
    a = res["auroc"]
    assert list(a["m"]) == sizes
    np.testing.assert_allclose(a["curv"], [curv[m] for m in sizes])
    np.testing.assert_allclose(a["loss"], [loss[m] for m in sizes])
    assert res["crossover"] == pytest.approx(100 + 100 * 0.05 / 0.09, rel=1e-9)
    assert set(res["auroc_points"]) == {"curv", "loss"}
    note = sweep_note(res, CFG)
    assert "curv_nll AUROC 0.600, 0.650, 0.700, 0.720" in note
    assert "yeom AUROC 0.800, 0.700, 0.660, 0.600" in note
    for stat in ("logcurv_zo", "loss"):
        g = res["frame"][res["frame"]["statistic"] == stat].groupby("value")
        kl, nm, ns = (g[c].mean() for c in ("kl_knn", "kl_knn_null_mean", "kl_knn_null_sd"))
        want = ", ".join(f"{k:g}: {kl[k]:.3g} [{nm[k]:.2g} ± {ns[k]:.2g}]" for k in kl.index)
        assert f"KL {stat} (knn) by m, [null on shuffled labels, mean ± sd]: {want}" in note


def test_size_sweep_analysis_and_script(tmp_path):
    sizes = [50, 100, 200, 400]
    curv = {50: 0.60, 100: 0.65, 200: 0.70, 400: 0.72}
    loss = {50: 0.80, 100: 0.70, 200: 0.66, 400: 0.60}
    d = _write_sweep(tmp_path, "size", sizes, lambda m: 1.0,
                     lambda a, m: curv[m] if a == "curv_nll" else loss[m])  # fmt: skip
    out = tmp_path / "theory"
    cfg = json.dumps(CFG)
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "theory_sweep.py"), "--sweep", "size",
         "--theory", cfg, "--targets", str(d / "targets.csv"), "--metrics",
         str(d / "metrics.csv"), "--csv", str(out / "size.csv"), "--fit", str(out / "size.json"),
         "--note", str(out / "size.md"), "--fig", str(out / "size.png")],
        capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "size.json").read_text())
    # d = -0.05 at 100, +0.04 at 200: 100 + 100 * 0.05 / 0.09
    assert summary["crossover_m"] == pytest.approx(100 + 100 * 0.05 / 0.09, rel=1e-6)
    frame = pd.read_csv(out / "size.csv")
    assert sorted(frame["m"].unique()) == sizes
    fair = frame["gauss_model"] == "fair"
    assert set(frame.loc[fair, "statistic"]) == {
        "logcurv_zo",
        "logcurv_hutch",
        "logcurv_hutch_sq",
        "log_loss",
        "phi",
    }
    assert frame.loc[fair, "kl_gauss"].gt(0.1).all()  # a one-std effect: KL ≈ 0.5 per statistic
    assert frame.loc[~fair, "kl_gauss"].isna().all()  # raw loss, raw p_true: no Gaussian fit
    assert "[null on shuffled labels" in (out / "size.md").read_text()
    assert "Crossover: curvature overtakes loss" in (out / "size.md").read_text()
    assert (out / "size.png").stat().st_size > 10_000


def test_sweep_rejects_a_contract_violation(tmp_path):
    d = _write_sweep(tmp_path, "dp", DP_EPS[:3], lambda e: 0.1, _dp_auroc)
    t = pd.read_csv(d / "targets.csv").drop(columns=["members"])
    t.to_csv(d / "targets.csv", index=False)
    with pytest.raises(ValueError, match="members"):
        analyse_sweep(str(d / "targets.csv"), str(d / "metrics.csv"), "dp", CFG)
    with pytest.raises(ValueError, match="theory.fit_attack"):
        _write_sweep(tmp_path / "b", "dp", DP_EPS[:3], lambda e: 0.1, _dp_auroc)
        d2 = tmp_path / "b" / "results" / "exp" / "sweeps" / "dp"
        analyse_sweep(str(d2 / "targets.csv"), str(d2 / "metrics.csv"), "dp",
                      {**CFG, "fit_attack": "nope"})  # fmt: skip


def test_main_targets_frame(tmp_path):
    rng = np.random.default_rng(8)
    masks = rng.random((4, 800)) < 0.5
    paths = []
    for row in (2, 3):
        p = tmp_path / f"model_{row}.npz"
        save_npz(p, **_features(rng, masks[row], 1.0))
        paths.append(str(p))
    attack = {
        "targets": np.array([2, 3]),
        "is_member": masks[[2, 3]],
        "scores": masks[[2, 3]] * 2.0 + rng.normal(size=(2, 800)),
    }
    df = main_targets_frame(paths, [2, 3], masks, {"strong": attack}, CFG)
    assert set(df["target"]) == {2, 3}
    assert (df["audit_attack"] == "strong").all()
    assert (df["eps_train"] == np.inf).all() and (df["bound_kl"] == np.inf).all()
    assert df["eps_emp_lo"].min() > 1.0  # a 2-std attack proves a sizeable ε
    loss_rows = df[df["statistic"] == "loss"]
    assert loss_rows["auroc"].between(0.7, 0.85).all()  # Φ(1/√2) ≈ 0.76
    # a 1-std shift of a Gaussian seen through exp(): KL = 0.5 whatever the monotone map,
    # which the kNN estimator sees and the Gaussian one need not
    assert loss_rows["kl_knn"].between(0.25, 0.75).all()
    # log curvature is Gaussian with variance 1 + 0.3²: KL = 1 / (2 * 1.09)
    curv = df[df["statistic"] == "logcurv_zo"]
    assert curv["kl_gauss"].between(0.46 - 0.25, 0.46 + 0.25).all()
    # a real effect sits above its null; the null (shuffled labels) sits near 0
    assert loss_rows["kl_knn_above_null"].all() and curv["kl_gauss_above_null"].all()
    assert (df["kl_knn_null_mean"].abs() < 0.1).all() and (df["kl_knn_null_sd"] > 0).all()
    assert loss_rows["kl_gauss"].isna().all() and (loss_rows["gauss_model"] != "fair").all()
    bad = {**attack, "is_member": ~attack["is_member"]}
    with pytest.raises(ValueError, match="membership"):
        main_targets_frame(paths, [2, 3], masks, {"bad": bad}, CFG)


def test_operating_point_epsilon_hand_computed():
    base = {"value": 2.0, "seed": 0, "n_members": 1000, "n_nonmembers": 2000}
    metrics = pd.DataFrame(
        [
            {**base, "attack": "weak", "target": "m0", "tpr@0.01": 0.02, "tpr@0.001": np.nan},
            {**base, "attack": "strong", "target": "m0", "tpr@0.01": 0.30, "tpr@0.001": np.nan},
            {**base, "attack": "strong", "target": "mean", "tpr@0.01": 0.9, "tpr@0.001": 0.9},
        ]
    )
    out = operating_point_epsilon(metrics, delta=0.0, alpha=0.05)
    assert len(out) == 1
    r = out.iloc[0]
    assert r["eps_ops_attack"] == "strong" and r["eps_ops_fpr"] == 0.01
    # 2 candidates (the aggregate row and the empty cells do not count): α/2 each, then α/4
    # per rate; TP = 300 of 1000, FP = 20 of 2000
    tpr_lo = _cp_reference(300, 1000, 0.05 / 4, "lower")
    fpr_hi = _cp_reference(20, 2000, 0.05 / 4, "upper")
    assert r["eps_ops_lo"] == pytest.approx(math.log(tpr_lo / fpr_hi), rel=1e-6)
    assert 2.5 < r["eps_ops_lo"] < math.log(30)


def test_audit_split_is_stratified_and_independent_of_other_seeded_permutations():
    # the size sweep's members: the first m of default_rng(perm_seed).permutation(N); with the
    # same seed a plain permutation split would put every member in one half
    n, m = 500, 50
    member = np.zeros(n, bool)
    member[np.random.default_rng(0).permutation(n)[:m]] = True
    scores = {"s": np.where(member, 1.0, 0.0) + np.random.default_rng(1).normal(size=n)}
    res = audit(scores, member, delta=1e-5, alpha=0.05, select_frac=0.5, seed=0)
    assert res["audit_n_members"] == 25 and res["audit_n_nonmembers"] == 225


def test_kl_estimates_sit_in_their_null_without_signal():
    """No membership signal, unequal small sizes (the size sweep's m = 400 case): the k-NN
    estimate can be below 0, and its null (same estimator, same sizes, shuffled labels)
    says so; with a signal the estimate leaves the null."""
    rng = np.random.default_rng(11)
    n = 1700
    m = np.zeros(n, bool)
    m[:400] = True
    stats = {"logcurv_zo": rng.normal(0, 1, n), "loss": rng.exponential(1, n)}
    rows = {r["statistic"]: r for r in distinguishability(stats, m, k=5, seed=0, null_reps=30)}
    for name, r in rows.items():
        assert abs(r["kl_knn"] - r["kl_knn_null_mean"]) < 4 * r["kl_knn_null_sd"], (name, r)
        assert r["null_reps"] == 30 and r["kl_knn_null_sd"] > 0
    assert rows["loss"]["gauss_model"] != "fair" and math.isnan(rows["loss"]["kl_gauss"])
    assert rows["logcurv_zo"]["kl_gauss_null_q95"] > 0
    shifted = {"logcurv_zo": stats["logcurv_zo"] + 0.8 * m}
    r = distinguishability(shifted, m, k=5, seed=0, null_reps=30)[0]
    assert r["kl_knn_above_null"] and r["kl_gauss_above_null"]
    # seeded: the null is reproducible
    again = distinguishability(shifted, m, k=5, seed=0, null_reps=30)[0]
    assert again["kl_knn_null_mean"] == r["kl_knn_null_mean"]


def test_fit_needs_three_points_and_three_distinct_epsilons():
    nan_keys = {"s", "c", "offset"}
    # 4 points but only 2 distinct epsilons: not fitted (3 needed)
    few = fit_auroc([1.0, 1.0, 2.0, 2.0], [0.5, 0.52, 0.6, 0.61], L=2.0, m=5.0)
    assert "not fitted: 4 points at 2 distinct epsilons" in few.note
    assert set(few.params) == set(few.stderr) == nan_keys
    assert all(np.isnan(v) for v in [*few.params.values(), *few.stderr.values()])
    assert np.isnan(few.rss) and np.isnan(few.f_stat) and np.isnan(few.p_value)
    assert not few.significant and few.n == 4 and np.isnan(few.residuals).all()
    # three distinct epsilons, exactly 3 points: fitted, no residual freedom
    three = fit_auroc([0.5, 1.0, 4.0], [0.5, 0.55, 0.62], L=2.0, m=5.0)
    assert "no residual freedom" in three.note and np.isnan(three.p_value)


def test_clipped_loss_gap_by_hand():
    from curvmia.theory import clipped_loss_gap

    loss = np.array([0.1, 0.3, 5.0, 1.0, 3.0])
    got = clipped_loss_gap(loss, [1, 1, 0, 0, 0], L=2.0)
    # non-members min(ℓ, 2): 2, 1, 2 → 5/3; members 0.2
    assert got["loss_gap_clipped"] == pytest.approx(5 / 3 - 0.2)
    assert got["frac_clipped"] == pytest.approx(2 / 5)


def test_attack_points_rows_and_refusal():
    from curvmia.theory import attack_points

    mt = pd.DataFrame(
        {"attack": ["a", "a", "b", "a", "a"], "target": ["1", "2", "1", "mean", "std"],
         "value": ["0.5", "1", "0.5", "0.7", "0.7"], "seed": [0, 1, 0, 0, 0],
         "auroc": [0.6, 0.7, 0.8, 0.65, 0.01]}
    )  # fmt: skip
    pts = attack_points(mt, "a", "fit_attack")
    assert list(pts["value"]) == [0.5, 1.0] and pts["value"].dtype == float
    assert list(pts["auroc"]) == [0.6, 0.7] and list(pts["seed"]) == [0, 1]
    assert pts["seed"].dtype == np.int64 and list(pts.columns) == ["value", "seed", "auroc"]
    with pytest.raises(ValueError, match=r"theory.fit_attack: attack 'c' is not in"):
        attack_points(mt, "c", "fit_attack")


def test_fit_falls_back_to_its_start_values_when_curve_fit_fails(monkeypatch):
    from curvmia import theory

    def fail(*args, **kwargs):
        raise RuntimeError("no convergence")

    monkeypatch.setattr(theory, "curve_fit", fail)
    rng = np.random.default_rng(0)
    e = np.repeat(EPS, 2)
    fit = theory.fit_auroc(e, 0.5 + 0.02 * e + rng.normal(0, 0.01, e.size), L=2.0, m=5.0)
    # the start values: a quadratic least-squares fit in u = 1 − e^−ε, mapped to (s, c, offset)
    y = 0.5 + 0.02 * e + np.random.default_rng(0).normal(0, 0.01, e.size)
    a2, a1, a0 = np.polyfit(1 - np.exp(-e), y, 2)
    s0, b0 = a2 / 10.0**2, a1 * 10.0 / (2 * a2)  # a = L·m = 10
    want = {"s": s0, "c": b0 - 2.0, "offset": a0 - s0 * b0**2}
    for k, v in want.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-8), k
    assert all(v == np.inf for v in fit.stderr.values()) and len(fit.residuals) == e.size
    summary = fit.summary()
    assert summary == {
        "L": 2.0, "m": 5.0, "n_points": e.size, "rss": fit.rss,
        "s": fit.params["s"], "s_se": np.inf, "c": fit.params["c"], "c_se": np.inf,
        "offset": fit.params["offset"], "offset_se": np.inf, "f_stat": fit.f_stat,
        "p_value": fit.p_value, "significant": fit.significant, "note": fit.note,
    }  # fmt: skip


def test_null_band_shades_two_sd_around_the_null_mean():
    """The shaded null band spans mean ± 2 sd at each x; an all-NaN null draws nothing."""
    import matplotlib.pyplot as plt

    x = np.array([1.0, 2.0, 4.0])
    g = pd.DataFrame({"kl_knn_null_mean": [0.1, 0.2, 0.4], "kl_knn_null_sd": [0.01, 0.05, 0.1]})
    fig, ax = plt.subplots()
    try:
        _null_band(ax, x, g, "kl_knn", "C3")  # not the axes' first default colour, C0
        (band,) = ax.collections
        v = band.get_paths()[0].vertices
        lo, hi = np.array([0.08, 0.1, 0.2]), np.array([0.12, 0.3, 0.6])
        for xi, a, b in zip(x, lo, hi):
            ys = v[np.isclose(v[:, 0], xi), 1]
            np.testing.assert_allclose([ys.min(), ys.max()], [a, b], rtol=1e-12)
        assert v[:, 1].min() == pytest.approx(0.08) and v[:, 1].max() == pytest.approx(0.6)
        # the band's look: the estimator's colour at 15% opacity, no outline
        from matplotlib.colors import to_rgba

        np.testing.assert_allclose(band.get_facecolor()[0], to_rgba("C3", 0.15))
        assert band.get_alpha() == 0.15 and list(band.get_linewidths()) == [0.0]
        _null_band(ax, x, g.assign(kl_knn_null_mean=np.nan), "kl_knn", "C0")
        assert len(ax.collections) == 1
    finally:
        plt.close(fig)


def _dp_res(eps_ops):
    """A DP sweep's analysis built by hand: three targets (two rows each, the p_true row
    first), with ties at every count's threshold."""
    from types import SimpleNamespace

    per = {
        "model": ["a", "b", "c"],
        "eps_train": [1.0, 2.0, 4.0],
        "kl_knn": [1.5, 2.0, 0.5],  # above ε: a only (b ties)
        "kl_knn_above_null": [True, False, True],
        "kl_knn_null_mean": [0.1, 0.2, 0.3],
        "kl_knn_null_sd": [0.01, 0.02, 0.03],
        "eps_emp_lo": [1.0, 2.5, 0.0],  # above ε: b only (a ties)
        "eps_ops_lo": eps_ops,
        "loss_gap_clipped": [0.3, 0.5, 0.1],  # within the bound: a (tie) and c
        "bound_error_stability": [0.3, 0.4, 0.2],
        "frac_clipped": [0.0, 0.125, 0.0625],  # 12.5% prints as 12 (12.625% would be 13)
    }
    rows = []
    for i in range(3):
        for stat in ("p_true", "loss"):
            rows.append({"statistic": stat, **{k: v[i] for k, v in per.items()}})
    fit = SimpleNamespace(L=10.0, m=300.0, n=6, rss=0.0123, note="fit note",
                          params={"s": 0.5, "c": 2.0, "offset": 0.51},
                          stderr={"s": 0.05, "c": 0.25, "offset": 0.01})  # fmt: skip
    auroc = pd.DataFrame({"value": [1.0, 1.0, 2.0, 4.0], "auroc": [0.6, 0.62, 0.7, 0.8]})
    return {"sweep": "dp", "frame": pd.DataFrame(rows), "fit": fit, "auroc": auroc}


def test_sweep_note_of_a_dp_sweep_word_for_word():
    from curvmia.theory import sweep_note

    cfg = {**CFG, "delta": 1e-5, "alpha": 0.05}
    tail = (
        "On the small default dataset these sweeps prove the pipeline; they are not expected "
        "to reproduce the paper's trends.\n"
    )
    head = (
        "DP sweep: 3 targets at ε in [1.0, 2.0, 4.0]; curv_nll AUROC 0.610..0.800 (ε 1 → 4).\n"
        "Bound fit (L = 10, m = 300): s = 0.5 ± 0.05, c = 2 ± 0.25, offset = 0.51 ± 0.01; "
        "RSS 0.0123 over 6 points. fit note.\n"
        "KL of p_true (kNN) 0.5..2 (its null on shuffled labels 0.2 ± 0.02); above the null's "
        "95% quantile for 2 and above the ε bound for 1 of 3 targets.\n"
        "Empirical ε lower bound (δ = 1e-05, 95% confidence) 0..2.5; exceeds the training ε for "
        "1 of 3 targets (a DP violation or a bug).\n"
    )
    gap = (
        "Clipped loss gap within the error-stability bound L(1−e^−ε) for 2 of 3 targets; "
        "12% of losses clipped at most.\n"
    )
    got = sweep_note(_dp_res([1.0, np.nan, 4.5]), cfg)
    ops = "From the attacks' TPR at fixed FPR in metrics.csv: ε ≥ 1..4.5; exceeds the "
    assert got == head + ops + "training ε for 1 of 3 targets.\n" + gap + tail
    none = sweep_note(_dp_res([np.nan] * 3), cfg)
    no_ops = "metrics.csv reports no TPR at fixed FPR (too few non-members).\n"
    assert none == head + no_ops + gap + tail


def test_sweep_note_of_a_size_sweep_word_for_word():
    """The KL lines of the statistics present, in their fixed order, skipping one that is
    absent (loss here)."""
    from curvmia.theory import sweep_note

    rows = []
    for stat, base in (("logcurv_zo", 1.0), ("log_loss", 2.0)):
        for value in (100.0, 300.0):
            k = base * value / 100
            rows.append({"statistic": stat, "value": value, "kl_knn": k, "kl_gauss": k / 2,
                         "kl_knn_null_mean": 0.1, "kl_knn_null_sd": 0.01,
                         "kl_gauss_null_mean": 0.05, "kl_gauss_null_sd": 0.005})  # fmt: skip
    res = {
        "sweep": "size",
        "frame": pd.DataFrame(rows),
        "auroc": pd.DataFrame({"m": [100, 300], "curv": [0.6, 0.7], "loss": [0.65, 0.66]}),
        "crossover_note": "curvature overtakes loss at m ≈ 200 (between 100 and 300)",
    }
    want = (
        "Size sweep: m in [100, 300]; curv_nll AUROC 0.600, 0.700; yeom AUROC 0.650, 0.660.\n"
        "Crossover: curvature overtakes loss at m ≈ 200 (between 100 and 300).\n"
        "KL logcurv_zo (knn) by m, [null on shuffled labels, mean ± sd]: "
        "100: 1 [0.1 ± 0.01], 300: 3 [0.1 ± 0.01]\n"
        "KL logcurv_zo (gauss) by m, [null on shuffled labels, mean ± sd]: "
        "100: 0.5 [0.05 ± 0.005], 300: 1.5 [0.05 ± 0.005]\n"
        "KL log_loss (gauss) by m, [null on shuffled labels, mean ± sd]: "
        "100: 1 [0.05 ± 0.005], 300: 3 [0.05 ± 0.005]\n"
        "On the small default dataset these sweeps prove the pipeline; they are not expected "
        "to reproduce the paper's trends.\n"
    )
    assert sweep_note(res, CFG) == want


def test_operating_point_epsilon_rows_columns_and_ties():
    """One row per (value, seed) in sorted order, with the documented columns even when
    nothing is reported; an aggregate 'std' row is skipped; of two candidates with the same
    bound the first is kept; a bound below 0 is reported as 0."""
    base = {"n_members": 1000, "n_nonmembers": 2000}
    rows = [
        {**base, "value": 4.0, "seed": 1, "attack": "x", "target": "t1", "tpr@0.01": 0.3},
        {**base, "value": 4.0, "seed": 1, "attack": "y", "target": "t1", "tpr@0.01": 0.3},
        {**base, "value": 1.0, "seed": 0, "attack": "x", "target": "t0", "tpr@0.01": 0.005},
        {**base, "value": 1.0, "seed": 0, "attack": "x", "target": "std", "tpr@0.01": 0.9},
        {**base, "value": 2.0, "seed": 0, "attack": "x", "target": "t2", "tpr@0.01": np.nan},
    ]
    out = operating_point_epsilon(pd.DataFrame(rows), delta=0.0, alpha=0.05)
    assert list(out.columns) == ["value", "seed", "eps_ops_lo", "eps_ops_attack", "eps_ops_fpr"]
    assert out[["value", "seed"]].values.tolist() == [[1.0, 0], [2.0, 0], [4.0, 1]]
    assert out["eps_ops_attack"].tolist() == ["x", "", "x"]  # y ties x: the first stays
    assert out["eps_ops_lo"].iloc[0] == 0.0 and out["eps_ops_fpr"].iloc[0] == 0.01
    assert np.isnan(out["eps_ops_lo"].iloc[1]) and np.isnan(out["eps_ops_fpr"].iloc[1])
    tpr_lo = _cp_reference(300, 1000, 0.05 / 4, "lower")
    fpr_hi = _cp_reference(20, 2000, 0.05 / 4, "upper")
    assert out["eps_ops_lo"].iloc[2] == pytest.approx(math.log(tpr_lo / fpr_hi), rel=1e-6)
    empty = operating_point_epsilon(pd.DataFrame(rows[4:]), delta=0.0, alpha=0.05)
    assert list(empty.columns) == list(out.columns) and empty["eps_ops_attack"].tolist() == [""]
    # only aggregate rows: no target at all, still the documented columns
    none = operating_point_epsilon(pd.DataFrame(rows[3:4]), delta=0.0, alpha=0.05)
    assert len(none) == 0 and list(none.columns) == list(out.columns)


def test_analyse_target_rows_by_hand():
    """Every row carries the member count, the configured null repetitions, the curvature
    bound L(m + 1)(1 − e^−ε) + c2 with the configured c2, and the clipped loss gap of query
    0; 0/1 membership numbers give the same rows."""
    from curvmia.theory import analyse_target

    rng = np.random.default_rng(30)
    member = np.zeros(300, bool)
    member[rng.permutation(300)[:120]] = True
    feats = _features(rng, member, 0.5)
    feats["loss"][:5, 0] = 25.0  # above L = 10: clipped
    cfg = {**CFG, "c2": 0.3, "kl_null_reps": 3, "loss_clip": 10.0}
    rows = analyse_target(feats, member, cfg=cfg, eps=2.0)
    lc = np.minimum(feats["loss"][:, 0], 10.0)
    gap = lc[~member].mean() - lc[member].mean()
    for r in rows:
        assert r["m"] == 120 and r["null_reps"] == 3 and r["eps_train"] == 2.0
        assert r["bound_curvature"] == pytest.approx(10.0 * 121 * (1 - math.exp(-2.0)) + 0.3)
        assert r["loss_gap_clipped"] == pytest.approx(gap, rel=1e-12)
        assert r["frac_clipped"] == pytest.approx((feats["loss"][:, 0] > 10.0).mean())
    again = analyse_target(feats, member.astype(np.uint8), cfg=cfg, eps=2.0)
    assert [r["auroc"] for r in again] == [r["auroc"] for r in rows]
    assert [r["loss_gap_clipped"] for r in again] == [r["loss_gap_clipped"] for r in rows]


def test_size_sweep_refuses_attacks_not_in_its_metrics_by_their_config_key(tmp_path):
    d = _write_sweep(tmp_path, "size", [100.0, 300.0], lambda m: 0.3, lambda a, m: 0.6)
    args = (str(d / "targets.csv"), str(d / "metrics.csv"), "size")
    for key in ("curv_attack", "loss_attack"):
        msg = rf"^theory\.{key}: attack 'nope' is not in the sweep's metrics\.csv "
        with pytest.raises(ValueError, match=msg + r"\(attacks: \['curv_nll', 'yeom'\]\)$"):
            analyse_sweep(*args, {**CFG, key: "nope"})


def test_dp_sweep_with_paths_relative_to_its_folder_and_a_target_without_metrics(
    tmp_path, monkeypatch
):
    """Score and member paths relative to the targets.csv folder resolve from any working
    directory; a target that metrics.csv does not list stays in the frame (no empirical ε
    from metrics.csv); the range of member counts is reported."""
    d = _write_sweep(tmp_path, "dp", DP_EPS[:3], lambda e: 0.1 * math.log1p(e), _dp_auroc)
    t = pd.read_csv(d / "targets.csv")
    prefix = str(d.relative_to(tmp_path)) + "/"
    for col in ("scores", "members"):
        t[col] = [p.removeprefix(prefix) for p in t[col]]
    extra = t.iloc[[0]].assign(seed=7, model="dp_extra")
    t = pd.concat([t, extra], ignore_index=True)
    t.to_csv(d / "targets.csv", index=False)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = analyse_sweep(str(d / "targets.csv"), str(d / "metrics.csv"), "dp", CFG)
    f = res["frame"]
    assert f["model"].nunique() == 7 and res["m_range"] == (300, 300)
    assert f.loc[f["model"] == "dp_extra", "eps_ops_lo"].isna().all()
    assert f.loc[f["model"] != "dp_extra", "eps_ops_lo"].notna().all()
