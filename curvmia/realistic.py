"""Label-free thresholds and what they achieve on a real target (docs/method.md: Realistic
audit metrics; Jebreel et al., PoPETs 2026).

A threshold is chosen on pseudo-targets (shadows scored as targets, curvmia/pseudo_targets.py)
from their own membership, never from a real target's labels, and then applied to the real
target: a sample counts as a member when its score is at least the threshold.  NaN scores
never count as members (a NaN compares false), but non-members scored NaN stay in the
denominator of the FPR, as members scored NaN stay in that of the TPR.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _as_member(is_member: np.ndarray, n: int, what: str) -> np.ndarray:
    m = np.asarray(is_member, dtype=bool)
    if m.shape != (n,):
        raise ValueError(f"{what}: membership has shape {m.shape}, expected ({n},)")
    return m


def threshold_at_fpr(scores: np.ndarray, is_member: np.ndarray, alpha: float) -> float:
    """The smallest threshold t at which at most a share ``alpha`` of the non-members have a
    score ≥ t, from the non-members only (members are never read).

    With k = ⌊α·n⌋ (n non-members, NaN-scored ones included) and v the (k+1)-th largest
    non-NaN non-member score, every t ≤ v flags more than k non-members and every t > v at
    most k, so t is the next float above v.  Ties: non-members tied at v are excluded
    together, so the share achieved on this pseudo-target is ≤ α and can fall below it when
    a tie straddles the boundary.  When k reaches the count of non-NaN non-member scores
    (e.g. α = 1), t = −inf; with no non-NaN non-member score at all there is nothing to
    calibrate on and t is NaN (no threshold, never "flag everything").
    """
    s = np.asarray(scores, dtype=np.float64)
    m = _as_member(is_member, len(s), "threshold_at_fpr")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"FPR level must lie in [0, 1], got {alpha}")
    non = s[~m]
    if len(non) == 0:
        raise ValueError("threshold_at_fpr needs at least one non-member")
    k = int(np.floor(alpha * len(non) + 1e-9))
    finite = np.sort(non[~np.isnan(non)])[::-1]
    if len(finite) == 0:
        return float("nan")
    if k >= len(finite):
        return float("-inf")
    return float(np.nextafter(finite[k], np.inf))


def balanced_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold (a score value, or +inf to flag nothing) that maximises the balanced
    accuracy (TPR + 1 − FPR)/2 of ``scores``; among equal maxima, the largest threshold
    (fewest samples flagged).  All scores NaN (an attack with no usable reference for this
    pseudo-target, e.g. online LiRA with one shadow): NaN, no threshold."""
    s = np.asarray(scores, dtype=np.float64)
    m = _as_member(is_member, len(s), "balanced_threshold")
    if m.all() or not m.any():
        raise ValueError("balanced_threshold needs both members and non-members")
    ok = ~np.isnan(s)
    if not ok.any():
        return float("nan")
    order = np.argsort(-s[ok], kind="stable")
    so, mo = s[ok][order], m[ok][order]
    ends = np.r_[np.flatnonzero(so[1:] != so[:-1]), len(so) - 1]  # last index of each tie block
    tpr = np.r_[0.0, np.cumsum(mo)[ends] / m.sum()]
    fpr = np.r_[0.0, np.cumsum(~mo)[ends] / (~m).sum()]
    cand = np.r_[np.inf, so[ends]]  # descending thresholds; +inf flags nothing
    return float(cand[int(np.argmax(tpr - fpr))])  # argmax: first maximum = largest t


def achieved(scores: np.ndarray, is_member: np.ndarray, threshold: float) -> tuple[float, float]:
    """(FPR, TPR) of ``scores`` ≥ ``threshold`` on a target with membership ``is_member``."""
    s = np.asarray(scores, dtype=np.float64)
    m = _as_member(is_member, len(s), "achieved")
    if m.all() or not m.any():
        raise ValueError("achieved needs both members and non-members")
    flag = s >= threshold  # NaN compares false: never flagged
    return float(flag[~m].mean()), float(flag[m].mean())


def _check_pseudo(pseudo_scores: np.ndarray, pseudo_in: np.ndarray) -> tuple:
    ps = np.asarray(pseudo_scores, dtype=np.float64)
    pi = np.asarray(pseudo_in, dtype=bool)
    if ps.ndim != 2 or ps.shape != pi.shape or len(ps) == 0:
        raise ValueError(
            f"pseudo-target scores {ps.shape} and membership {pi.shape} must be equal (P, N), P ≥ 1"
        )
    return ps, pi


def labelfree_thresholds(
    pseudo_scores: np.ndarray, pseudo_in: np.ndarray, alphas: list[float]
) -> np.ndarray:
    """(L,) threshold per level α: the median over pseudo-targets of
    :func:`threshold_at_fpr`.  The median, not the mean, so that one odd shadow (a poor
    fit, extreme scores, an infinite threshold) cannot drag it; lira_analysis (Jebreel et
    al.) aggregates its shadows' thresholds the same way."""
    ps, pi = _check_pseudo(pseudo_scores, pseudo_in)
    per = np.array([[threshold_at_fpr(s, m, a) for a in alphas] for s, m in zip(ps, pi)])
    return _median_of_defined(per).reshape(len(alphas))


def _median_of_defined(values: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the non-NaN entries (pseudo-targets without a threshold do not
    vote); NaN where none has one."""
    v = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = np.full(v.shape[1], np.nan)
    for j in range(v.shape[1]):
        col = v[~np.isnan(v[:, j]), j]
        if len(col):
            out[j] = np.median(col)
    return out


def labelfree_balanced_threshold(pseudo_scores: np.ndarray, pseudo_in: np.ndarray) -> float:
    """Median over pseudo-targets of :func:`balanced_threshold`."""
    ps, pi = _check_pseudo(pseudo_scores, pseudo_in)
    return float(
        _median_of_defined(np.array([balanced_threshold(s, m) for s, m in zip(ps, pi)]))[0]
    )


def ppv(prior: float, tpr: np.ndarray | float, fpr: np.ndarray | float) -> np.ndarray:
    """Precision at membership prior π: π·TPR / (π·TPR + (1 − π)·FPR); NaN where the
    denominator is 0 (TPR = FPR = 0: no sample flagged, so no precision)."""
    tpr, fpr = np.asarray(tpr, dtype=np.float64), np.asarray(fpr, dtype=np.float64)
    num = prior * tpr
    den = num + (1.0 - prior) * fpr
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def cp_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper–Pearson interval of k successes out of n (each side 1 − level/2)."""
    from .distinguish import clopper_pearson

    a = (1.0 - level) / 2.0
    return (
        float(clopper_pearson(k, n, a, "lower")),
        float(clopper_pearson(k, n, a, "upper")),
    )


def ppv_interval(
    prior: float, tp: int, n_pos: int, fp: int, n_neg: int, level: float = 0.95
) -> tuple[float, float]:
    """PPV interval from Clopper–Pearson bounds: lower = PPV(TPR's lower, FPR's upper bound),
    upper = PPV(TPR's upper, FPR's lower bound)."""
    t_lo, t_hi = cp_interval(tp, n_pos, level)
    f_lo, f_hi = cp_interval(fp, n_neg, level)
    return float(ppv(prior, t_lo, f_hi)), float(ppv(prior, t_hi, f_lo))


def ppv_headline(point: float, lower: float, fpr: float) -> float:
    """The PPV a headline shows: the point value, or its lower bound where the achieved FPR
    is 0 (the point value would be 1, a claim no finite sample supports)."""
    return lower if fpr == 0 else point


def prior_key(prior: float) -> str:
    """Column name of a prior's PPV: ``ppv_0.01``."""
    return f"ppv_{prior:g}"


def supported_level(alpha: float, n_target_non: int, n_pseudo_non_min: int) -> bool:
    """The 10/FPR rule (curvmia/metrics.py) on the smaller of the target's and the smallest
    pseudo-target's non-member counts: the threshold and its achieved FPR both rest on at
    least ten false positives' worth of non-members."""
    from .metrics import enough_nonmembers

    return enough_nonmembers(alpha, min(n_target_non, n_pseudo_non_min))


def _boot_rates(flag: np.ndarray, m: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """(B,) FPR and TPR of the fixed flags under bootstrap counts ``w`` (B, N)."""
    wf = w * flag
    return (wf[:, ~m].sum(1) / w[:, ~m].sum(1), wf[:, m].sum(1) / w[:, m].sum(1))


def target_rows(
    scores: np.ndarray,
    is_member: np.ndarray,
    thresholds: np.ndarray,
    alphas: list[float],
    priors: list[float],
    *,
    n_pseudo_non_min: int,
    weights: np.ndarray | None,
) -> list[dict]:
    """One row per level α: the label-free threshold applied to one real target, its
    achieved FPR and TPR (bootstrap intervals from ``weights``, stratified counts, and
    Clopper–Pearson bounds) and the PPV at every prior with its interval.  A level outside
    the 10/FPR rule keeps its threshold, its rates are NaN and ``note`` says why."""
    from .metrics import percentile_interval

    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(is_member, dtype=bool)
    n_pos, n_neg = int(m.sum()), int((~m).sum())
    rows = []
    for alpha, t in zip(alphas, thresholds):
        flag = s >= t
        tp, fp = int(flag[m].sum()), int(flag[~m].sum())
        row = {"fpr_level": alpha, "threshold": float(t), "fpr": fp / n_neg, "tpr": tp / n_pos}
        if weights is not None and len(weights):
            bf, bt = _boot_rates(flag, m, weights)
            row["tpr_lo"], row["tpr_hi"] = percentile_interval(bt)
            fpr_lo, fpr_hi = percentile_interval(bf)
        else:
            row["tpr_lo"] = row["tpr_hi"] = fpr_lo = fpr_hi = float("nan")
        cps = {"tpr_cp": cp_interval(tp, n_pos), "fpr_cp": cp_interval(fp, n_neg)}
        ppvs, extra = {}, {"fpr_lo": fpr_lo, "fpr_hi": fpr_hi}
        for pi in priors:
            k = prior_key(pi)
            ppvs[k] = float(ppv(pi, row["tpr"], row["fpr"]))
            extra[f"{k}_lo"], extra[f"{k}_hi"] = ppv_interval(pi, tp, n_pos, fp, n_neg)
        for name, (lo, hi) in cps.items():
            extra[f"{name}_lo"], extra[f"{name}_hi"] = lo, hi
        ok = supported_level(alpha, n_neg, n_pseudo_non_min)
        note = "" if ok else f"unsupported: fewer than 10/FPR = {10 / alpha:g} non-members"
        if np.isnan(t):
            ok, note = False, "no label-free threshold: no pseudo-target scored a non-member"
        if ok and tp == 0 and fp == 0:
            note = "no sample flagged (TPR = FPR = 0): PPV undefined"
        row.update(ppvs, **extra, supported=ok, tp=tp, fp=fp, n_members=n_pos)
        row.update(n_nonmembers=n_neg, n_pseudo_nonmembers_min=n_pseudo_non_min, note=note)
        if not ok:
            for key in row:
                if key not in ("fpr_level", "threshold", "supported", "note") and key[:2] != "n_":
                    row[key] = float("nan")
        rows.append(row)
    return rows


def _pseudo_arrays(label: str, pseudo: dict) -> tuple[np.ndarray, np.ndarray]:
    ps, pi = np.asarray(pseudo["scores"]), np.asarray(pseudo["is_member"], dtype=bool)
    if ps.ndim != 2 or len(ps) == 0:
        raise ValueError(
            f"pseudo/{label}.npz: expected (P, N) pseudo-target scores with P ≥ 1, got {ps.shape}"
            " (label-free thresholds need at least one kept shadow as pseudo-target)"
        )
    return ps, pi


def realistic_frames(
    attacks: dict[str, dict], pseudo: dict[str, dict], cfg: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(realistic, balanced): per attack × known target × level of ``cfg["fprs"]`` the
    label-free threshold and what it achieves (:func:`target_rows`); per attack × target the
    label-free balanced-accuracy threshold (``threshold_bal``) and the balanced accuracy it
    achieves (``bal_acc_labelfree``).  Targets with unknown members are left out.  Bootstrap
    counts: metrics.csv's own (``cfg["seed"]`` + target index, shared by every attack)."""
    from .metric_frames import _Weights, known_only

    alphas, priors = [float(a) for a in cfg["fprs"]], [float(p) for p in cfg["priors"]]
    weights = _Weights(cfg["bootstrap"], cfg["seed"])  # the counts metrics.csv draws
    rows, bal = [], []
    for label, res in known_only(attacks).items():
        if label not in pseudo:
            raise ValueError(f"attack {label!r} has no pseudo/{label}.npz")
        ps, pi = _pseudo_arrays(label, pseudo[label])
        thr = labelfree_thresholds(ps, pi, alphas)
        t_bal = labelfree_balanced_threshold(ps, pi)
        n_pseudo = int((~pi).sum(1).min())
        for i, t in enumerate(res["targets"]):
            s, m = np.asarray(res["scores"][i]), np.asarray(res["is_member"][i], dtype=bool)
            kw = {"n_pseudo_non_min": n_pseudo, "weights": weights(i, m)}
            for row in target_rows(s, m, thr, alphas, priors, **kw):
                rows.append({"attack": label, "target": int(t), **row})
            f, r = achieved(s, m, t_bal)  # no threshold (NaN): no balanced accuracy
            bal.append(
                {"attack": label, "target": int(t), "threshold_bal": t_bal,
                 "bal_acc_labelfree": np.nan if np.isnan(t_bal) else (r + 1.0 - f) / 2.0}
            )  # fmt: skip
    head = ["attack", "target", "fpr_level", "threshold", "fpr", "tpr", "tpr_lo", "tpr_hi"]
    real = pd.DataFrame(rows) if rows else pd.DataFrame(columns=head + ["supported"])
    return real, pd.DataFrame(bal, columns=BAL_COLUMNS)


BAL_COLUMNS = ["attack", "target", "threshold_bal", "bal_acc_labelfree"]


def with_labelfree(metrics: pd.DataFrame, bal: pd.DataFrame) -> pd.DataFrame:
    """metrics.csv's frame with ``bal_acc_labelfree`` and ``threshold_bal`` per attack ×
    target and in its ``mean`` and ``std`` (ddof 0) rows; NaN where ``bal`` has no row."""
    per = bal.assign(target=bal["target"].astype(int).astype(str))
    g = per.groupby("attack")[["bal_acc_labelfree", "threshold_bal"]]
    agg = pd.concat([g.mean().assign(target="mean"), g.std(ddof=0).assign(target="std")])
    both = pd.concat([per, agg.reset_index()], ignore_index=True)
    return metrics.merge(both, on=["attack", "target"], how="left")


def headline_prior(priors: list[float]) -> float:
    """The prior whose PPV the headline shows: 1% when listed (metrics.priors), else the
    first."""
    return 0.01 if any(abs(p - 0.01) < 1e-12 for p in priors) else float(priors[0])
