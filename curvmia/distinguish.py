"""Measured member/non-member distinguishability (docs/method.md: Theory) and empirical privacy
audits.

Two KL estimators of KL(members ‖ non-members) of a scalar statistic:

- ``gauss``: fit a Gaussian to each side (mean, population std) and use the closed form
  KL(N(μ₁,σ₁²) ‖ N(μ₂,σ₂²)) = log(σ₂/σ₁) + (σ₁² + (μ₁−μ₂)²)/(2σ₂²) − 1/2.  Exact when both
  sides are Gaussian, blind to any other shape.
- ``knn``: the k-nearest-neighbour estimator of Wang, Kulkarni and Verdú (IEEE Trans. Inf.
  Theory 2009): with n member values x, m non-member values y, ρ_k(i) the distance of x_i to
  its k-th nearest other member and ν_k(i) to its k-th nearest non-member,
  KL ≈ (d/n) Σ_i log(ν_k(i)/ρ_k(i)) + log(m/(n−1)), d = 1 here.  Consistent for any
  continuous densities.  Ties (e.g. the exact-zero curvatures of the float32 scorer, all at
  log 1e-22) would make ρ_k = 0, so values get a seeded uniform jitter of width 1e-9 × the
  pooled spread first: a point mass becomes a tiny interval, which keeps the estimate finite
  and close to that of the mixed discrete/continuous distributions.

Gaussian fits are reported only where a Gaussian is a fair model of the statistic: log
curvature, log loss and the logit-scaled probability phi (``GAUSS_FAIR``).  Raw loss and raw
probability are skewed and bounded (a point mass near 0 or 1), and a Gaussian fitted to them
measures the misfit, not the distinguishability: their ``kl_gauss`` is NaN and
``gauss_model`` says why.

Every KL estimate comes with its own null: the same estimator at the same sample sizes on
shuffled membership labels (``null_reps`` seeded permutations of the pooled values), whose
mean, standard deviation and 95% quantile show what the estimator reports when members and
non-members do not differ.  An estimate is evidence of a difference only above that null
(``*_above_null``); the k-NN estimator's bias (it can be below zero) shows in its null.

Empirical epsilon (the usual auditing bound): an (ε, δ)-DP training algorithm forces every
membership test to satisfy TPR ≤ e^ε·FPR + δ, so an operating point proves
ε ≥ log((TPR − δ)/FPR).  With counts, the lower confidence bound replaces TPR by its one-sided
Clopper–Pearson lower limit and FPR by its upper limit, each at α/2, so the bound holds with
probability ≥ 1 − α.  The operating point (attack and threshold) is chosen on a seeded
selection half of the samples and the bound is evaluated on the other half, so choosing the
best of many thresholds does not inflate it.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import beta

from .metrics import auroc

LOG_EPS = 1e-22

# Fixed orientation of each statistic ("higher = member"), chosen a priori, never from data:
# members sit in flatter regions (lower curvature), have lower loss and higher probability.
ORIENTATION = {"loss": -1.0, "p_true": 1.0, "phi": 1.0}
# Statistics a Gaussian models fairly (prefix match): log curvature, log loss, logit-scaled
# probability.  The rest (raw loss, raw probability) get no Gaussian KL.
GAUSS_FAIR = ("logcurv_", "log_loss", "phi")
_NULL_STREAM = 0x4E011  # keys the null's label shuffles apart from other seeded draws


def gaussian_kl(mu1: float, sd1: float, mu2: float, sd2: float) -> float:
    """Closed-form KL(N(mu1, sd1²) ‖ N(mu2, sd2²))."""
    return float(np.log(sd2 / sd1) + (sd1**2 + (mu1 - mu2) ** 2) / (2 * sd2**2) - 0.5)


def kl_gauss(x: np.ndarray, y: np.ndarray) -> float:
    """KL(P ‖ Q) of Gaussians fitted to samples x ~ P and y ~ Q (population stds)."""
    x, y = _finite(x, "x"), _finite(y, "y")
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return float("nan")
    return gaussian_kl(x.mean(), sx, y.mean(), sy)


def kl_knn(x: np.ndarray, y: np.ndarray, k: int = 5, seed: int = 0) -> float:
    """k-NN estimate of KL(P ‖ Q) from 1-D samples x ~ P, y ~ Q (Wang et al. 2009)."""
    x, y = _finite(x, "x"), _finite(y, "y")
    n, m = len(x), len(y)
    if n <= k or m < k:
        raise ValueError(f"kl_knn needs more than k={k} samples per side, got {n} and {m}")
    both = np.concatenate([x, y])
    spread = float(np.subtract(*np.percentile(both, [75, 25]))) or float(both.std()) or 1.0
    rng = np.random.default_rng(seed)
    width = 1e-9 * spread
    x = x + rng.uniform(-width / 2, width / 2, n)
    y = y + rng.uniform(-width / 2, width / 2, m)
    # k+1 neighbours within x: the first is the point itself.
    rho = cKDTree(x[:, None]).query(x[:, None], k=k + 1)[0][:, k]
    nu = cKDTree(y[:, None]).query(x[:, None], k=k)[0]
    nu = nu[:, k - 1] if k > 1 else nu
    return float(np.mean(np.log(nu / rho)) + np.log(m / (n - 1)))


def _finite(v: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if len(v) < 2:
        raise ValueError(f"{name}: need at least 2 finite values, got {len(v)}")
    return v


def absent_features(features: dict[str, np.ndarray]) -> list[str]:
    """Curvature features a score file holds but did not compute (all NaN: the white-box
    ones when scoring.hutch_nprobes is 0); :func:`statistics` skips them."""
    return sorted(
        k
        for k, v in features.items()
        if k.startswith("curv_") and np.ndim(v) == 2 and v.size and np.isnan(v).all()
    )


def statistics(features: dict[str, np.ndarray], query: int) -> dict[str, np.ndarray]:
    """Scalar statistics of one model's population, oriented so higher = member.

    ``logcurv_<name>`` = −log(|curv_<name>| + 1e-22) for every curvature feature present
    (curv_zo; curv_hutch and others when the score file has them and computed them), then
    −loss, the log loss ``log_loss`` = −log(loss + 1e-22), p_true, phi, all at query ``query``.
    """
    out = {}
    absent = absent_features(features)
    for key in sorted(features):
        if key.startswith("curv_") and np.ndim(features[key]) == 2 and key not in absent:
            out["log" + key] = -np.log(np.abs(features[key][:, query]) + LOG_EPS)
    for key, sign in ORIENTATION.items():
        if key in features:
            out[key] = sign * features[key][:, query]
    if "loss" in features:
        out["log_loss"] = -np.log(features["loss"][:, query] + LOG_EPS)
    if not out:
        raise ValueError("score file holds none of the curvature, loss, p_true or phi features")
    return out


def gauss_is_fair(name: str) -> bool:
    """Whether a Gaussian is a fair model of statistic ``name`` (:data:`GAUSS_FAIR`)."""
    return name.startswith(GAUSS_FAIR)


def kl_null(
    s: np.ndarray, n_members: int, *, k: int, reps: int, seed: int, gauss: bool
) -> dict[str, float]:
    """Both KL estimators on ``reps`` seeded shuffles of the membership labels of the pooled
    values ``s`` (same sizes: ``n_members`` vs the rest): their mean, std and 95% quantile."""
    s = np.asarray(s, dtype=np.float64)
    rng = np.random.default_rng([_NULL_STREAM, seed])
    vals: dict[str, list[float]] = {"knn": [], "gauss": []}
    for _ in range(reps):
        perm = rng.permutation(len(s))
        x, y = s[perm[:n_members]], s[perm[n_members:]]
        vals["knn"].append(kl_knn(x, y, k=k, seed=seed))
        vals["gauss"].append(kl_gauss(x, y) if gauss else float("nan"))
    out = {}
    for est, v in vals.items():
        v = np.asarray(v, dtype=np.float64)
        ok = bool(len(v)) and bool(np.isfinite(v).any())
        out[f"kl_{est}_null_mean"] = float(np.nanmean(v)) if ok else float("nan")
        out[f"kl_{est}_null_sd"] = float(np.nanstd(v)) if ok else float("nan")
        out[f"kl_{est}_null_q95"] = float(np.nanquantile(v, 0.95)) if ok else float("nan")
    return out


def distinguishability(
    stats: dict[str, np.ndarray],
    is_member: np.ndarray,
    *,
    k: int,
    seed: int,
    null_reps: int = 20,
) -> list[dict]:
    """KL(members ‖ non-members) with both estimators, each beside its null
    (:func:`kl_null`, ``null_reps`` label shuffles), and the AUROC of each statistic.

    Each KL is computed on the statistic as oriented by :func:`statistics`; KL is invariant
    under that sign flip.  ``kl_gauss`` only where :func:`gauss_is_fair`.
    """
    m = np.asarray(is_member, dtype=bool)
    rows = []
    for name, s in stats.items():
        fair = gauss_is_fair(name)
        kg = kl_gauss(s[m], s[~m]) if fair else float("nan")
        kk = kl_knn(s[m], s[~m], k=k, seed=seed)
        null = kl_null(s, int(m.sum()), k=k, reps=null_reps, seed=seed, gauss=fair)
        rows.append(
            {
                "statistic": name,
                "kl_gauss": kg,
                "kl_knn": kk,
                **null,
                "kl_knn_above_null": bool(null_reps > 0 and kk > null["kl_knn_null_q95"]),
                "kl_gauss_above_null": bool(
                    fair and null_reps > 0 and kg > null["kl_gauss_null_q95"]
                ),
                "gauss_model": "fair"
                if fair
                else "not fitted: skewed, bounded statistic (see log_loss, phi)",
                "null_reps": int(null_reps),
                "auroc": auroc(s, m),
                "n_members": int(m.sum()),
                "n_nonmembers": int((~m).sum()),
            }
        )
    return rows


def clopper_pearson(k: np.ndarray, n: np.ndarray, alpha: float, side: str) -> np.ndarray:
    """One-sided Clopper–Pearson limit of a binomial proportion at level 1 − alpha.

    ``side="lower"``: P(p < limit) ≤ alpha; ``side="upper"``: P(p > limit) ≤ alpha.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if side == "lower":
        with np.errstate(invalid="ignore"):
            return np.where(k <= 0, 0.0, beta.ppf(alpha, np.maximum(k, 1), n - k + 1))
    if side == "upper":
        with np.errstate(invalid="ignore"):
            return np.where(k >= n, 1.0, beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1)))
    raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")


def _log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(num > 0, np.log(np.maximum(num, 1e-300) / den), -np.inf)


def epsilon_bounds(
    tp: np.ndarray, n_pos: int, fp: np.ndarray, n_neg: int, *, delta: float, alpha: float
) -> dict[str, np.ndarray]:
    """Epsilon implied by (TP, FP) counts: point value and confidence limits.

    ``eps``: log((TPR − δ)/FPR) from the rates; ``eps_lo``: the same with the Clopper–Pearson
    lower TPR and upper FPR limits at α/2 each (ε ≥ eps_lo with probability ≥ 1 − α);
    ``eps_hi``: upper TPR and lower FPR limits (the matching upper limit, so
    [eps_lo, eps_hi] holds the operating point's value with probability ≥ 1 − 2α).
    −inf means the point proves nothing (TPR not above δ).
    """
    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    tpr, fpr = tp / n_pos, fp / n_neg
    with np.errstate(divide="ignore"):
        point = np.where(fpr > 0, _log_ratio(tpr - delta, np.where(fpr > 0, fpr, 1.0)), np.inf)
        point = np.where(tpr - delta > 0, point, -np.inf)
    tpr_lo = clopper_pearson(tp, n_pos, alpha / 2, "lower")
    fpr_hi = clopper_pearson(fp, n_neg, alpha / 2, "upper")
    tpr_hi = clopper_pearson(tp, n_pos, alpha / 2, "upper")
    fpr_lo = clopper_pearson(fp, n_neg, alpha / 2, "lower")
    lo = _log_ratio(tpr_lo - delta, fpr_hi)
    hi = np.where(fpr_lo > 0, _log_ratio(tpr_hi - delta, np.where(fpr_lo > 0, fpr_lo, 1.0)), np.inf)
    hi = np.where(tpr_hi - delta > 0, hi, -np.inf)
    return {"eps": point, "eps_lo": lo, "eps_hi": hi}


def _counts(scores: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (each distinct score; predict member when score ≥ threshold) and counts."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    order = np.argsort(-s, kind="stable")
    s, mm = s[order], m[order]
    # ends of tie blocks; not np.diff(s) != 0, which splits tied infinities (inf − inf = nan)
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    return s[last], np.cumsum(mm)[last], np.cumsum(~mm)[last]


_AUDIT_STREAM = 0xA0D17  # keys the audit's selection split apart from other seeded draws


def _selection_half(m: np.ndarray, select_frac: float, seed: int) -> np.ndarray:
    """The seeded, stratified selection share of the samples (True); the rest evaluates."""
    if not 0 < select_frac < 1:
        raise ValueError(f"theory.audit_select must be in (0, 1), got {select_frac}")
    # Stratified by membership, from a stream of its own: a plain permutation from `seed`
    # would coincide with other seeded permutations (the size sweep's members are the first
    # m of default_rng(perm_seed).permutation(N)) and could leave one half without members.
    rng = np.random.default_rng([_AUDIT_STREAM, seed])
    sel = np.zeros(len(m), dtype=bool)
    for side in (np.flatnonzero(m), np.flatnonzero(~m)):
        sel[rng.permutation(side)[: int(round(select_frac * len(side)))]] = True
    for part, name in ((sel, "selection"), (~sel, "evaluation")):
        if m[part].all() or not m[part].any():
            raise ValueError(f"audit: the {name} half needs both members and non-members")
    return sel


def _operating_point(
    scores: dict[str, np.ndarray], m: np.ndarray, sel: np.ndarray, *, delta: float, alpha: float
) -> tuple[str, float]:
    """The attack and threshold with the largest ``eps_lo`` on the selection ``sel``; where
    none proves anything, the first attack at its top score over all samples."""
    best = {"attack": None, "threshold": np.inf, "sel_eps_lo": -np.inf}
    for label, sc in scores.items():
        sc = np.asarray(sc, dtype=np.float64)
        thr, tp, fp = _counts(sc[sel], m[sel])
        b = epsilon_bounds(tp, m[sel].sum(), fp, (~m[sel]).sum(), delta=delta, alpha=alpha)
        i = int(np.argmax(b["eps_lo"]))
        if b["eps_lo"][i] > best["sel_eps_lo"]:
            best = {
                "attack": label,
                "threshold": float(thr[i]),
                "sel_eps_lo": float(b["eps_lo"][i]),
            }
    if best["attack"] is None:  # nothing proves anything: report the first attack's top point
        label = next(iter(scores))
        best["attack"] = label
        best["threshold"] = float(np.nanmax(np.asarray(scores[label], dtype=np.float64)))
    return best["attack"], best["threshold"]


def audit(
    scores: dict[str, np.ndarray],
    is_member: np.ndarray,
    *,
    delta: float,
    alpha: float,
    select_frac: float,
    seed: int,
) -> dict:
    """Empirical epsilon lower bound of the best attack of ``scores`` (label → (N,) scores).

    A seeded ``select_frac`` share of the members and of the non-members (stratified) picks
    the attack and threshold with the largest ``eps_lo``; the returned counts and bounds come
    from the remaining samples only.
    """
    m = np.asarray(is_member, dtype=bool)
    sel = _selection_half(m, select_frac, seed)
    ev = ~sel
    attack, threshold = _operating_point(scores, m, sel, delta=delta, alpha=alpha)
    sc = np.asarray(scores[attack], dtype=np.float64)[ev]
    pred = np.where(np.isnan(sc), -np.inf, sc) >= threshold
    n_pos, n_neg = int(m[ev].sum()), int((~m[ev]).sum())
    tp, fp = int((pred & m[ev]).sum()), int((pred & ~m[ev]).sum())
    b = epsilon_bounds(tp, n_pos, fp, n_neg, delta=delta, alpha=alpha)
    return {
        "audit_attack": attack,
        "audit_threshold": threshold,
        "audit_tp": tp,
        "audit_fp": fp,
        "audit_n_members": n_pos,
        "audit_n_nonmembers": n_neg,
        "audit_tpr": tp / n_pos,
        "audit_fpr": fp / n_neg,
        "eps_emp": float(b["eps"]),
        "eps_emp_lo": max(0.0, float(b["eps_lo"])),
        "eps_emp_hi": float(b["eps_hi"]),
    }
