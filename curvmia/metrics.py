"""Attack metrics (SPEC §5): AUROC, balanced accuracy, TPR at low FPR, ROC curves.

Scores are "higher = member".  NaN scores (a sample an attack could not score,
e.g. with no IN shadow) are ranked lowest, as a confident "non-member", so a
metric never crashes and never rewards a missing score; +inf/-inf keep their
order.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _clean(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(s), -np.inf, s)


def _check(is_member: np.ndarray) -> np.ndarray:
    m = np.asarray(is_member, dtype=bool)
    if m.all() or not m.any():
        raise ValueError("metrics need both members and non-members")
    return m


def auroc(scores: np.ndarray, is_member: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with tie correction)."""
    m = _check(is_member)
    r = rankdata(_clean(scores))
    n_pos, n_neg = m.sum(), (~m).sum()
    return float((r[m].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1)."""
    m = _check(is_member)
    s = _clean(scores)
    order = np.argsort(-s, kind="stable")
    s, m = s[order], m[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # end of each tie block
    tp = np.cumsum(m)[last]
    fp = np.cumsum(~m)[last]
    tpr = np.r_[0.0, tp / m.sum()]
    fpr = np.r_[0.0, fp / (~m).sum()]
    return fpr, tpr


def balanced_accuracies(fpr: np.ndarray, tpr: np.ndarray) -> tuple[float, float]:
    """(paper, best): balanced accuracy at the ROC point minimising |FPR + TPR − 1|
    (the paper's threshold) and the maximum over all thresholds (LiRA's)."""
    bal = (tpr + 1.0 - fpr) / 2.0
    paper = bal[np.argmin(np.abs(fpr + tpr - 1.0))]
    return float(paper), float(bal.max())


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float, n_nonmembers: int) -> float:
    """TPR at ``target`` FPR by linear interpolation on the ROC.

    NaN when there are fewer than 10/target non-members: below that the value
    rests on fewer than ten false positives and is not reported (SPEC §5).
    """
    if n_nonmembers < 10.0 / target:
        return float("nan")
    return float(np.interp(target, fpr, tpr))


def bootstrap_auroc(
    scores: np.ndarray, is_member: np.ndarray, *, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC, resampling samples with replacement."""
    s = _clean(scores)
    m = np.asarray(is_member, dtype=bool)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(s), len(s))
        if m[idx].all() or not m[idx].any():
            continue
        vals.append(auroc(s[idx], m[idx]))
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(vals, alpha)), float(np.quantile(vals, 1.0 - alpha))


def summarize(
    scores: np.ndarray,
    is_member: np.ndarray,
    *,
    fprs: list[float],
    n_boot: int,
    seed: int,
) -> dict[str, float]:
    """Every metric of one attack on one target, as a flat dict."""
    m = _check(is_member)
    fpr, tpr = roc_curve(scores, m)
    bal_paper, bal_best = balanced_accuracies(fpr, tpr)
    out = {
        "auroc": auroc(scores, m),
        "bal_acc_paper": bal_paper,
        "bal_acc_best": bal_best,
        "n_members": int(m.sum()),
        "n_nonmembers": int((~m).sum()),
        "n_nan_scores": int(np.isnan(np.asarray(scores, dtype=np.float64)).sum()),
    }
    if n_boot > 0:
        out["auroc_lo"], out["auroc_hi"] = bootstrap_auroc(scores, m, n_boot=n_boot, seed=seed)
    for f in fprs:
        out[f"tpr@{f:g}"] = tpr_at_fpr(fpr, tpr, f, int((~m).sum()))
    return out
