"""Attack metrics (docs/method.md: Metrics): AUROC, balanced accuracy, TPR at low FPR, ROC curves,
bootstrap intervals.

Scores are "higher = member".  NaN scores (a sample an attack could not score,
e.g. with no IN shadow) are ranked lowest, as a confident "non-member", so a
metric never crashes and never rewards a missing score; +inf/-inf keep their
order (ties among equal infinities are ties).

Bootstrap: samples are resampled with replacement within members and within
non-members (stratified, so every replicate has both).  A replicate is a vector
of per-sample counts; the scores are sorted once and every replicate's AUROC
and ROC come from weighted cumulative sums over that one order (no re-sorting).
The same count vectors, drawn from the target's seed, serve every attack on a
target, so differences between attacks are paired.
"""

from __future__ import annotations

import numpy as np

CHUNK = 50  # bootstrap replicates processed at once (bounds memory at large N)


def _clean(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(s), -np.inf, s)


def _check(is_member: np.ndarray) -> np.ndarray:
    m = np.asarray(is_member, dtype=bool)
    if m.all() or not m.any():
        raise ValueError("metrics need both members and non-members")
    return m


class _Sorted:
    """Scores sorted once (ascending) with their tie blocks."""

    def __init__(self, scores: np.ndarray, is_member: np.ndarray):
        s = _clean(scores)
        self.order = np.argsort(s, kind="stable")
        so = s[self.order]
        self.starts = np.r_[0, np.flatnonzero(so[1:] != so[:-1]) + 1]
        self.member = np.asarray(is_member, bool)[self.order]

    def block_sums(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per tie block (ascending), the summed weights of members and non-members.

        ``w`` is (B, N) in the original sample order."""
        wo = w[:, self.order].astype(np.float64)
        bm = np.add.reduceat(np.where(self.member, wo, 0.0), self.starts, axis=1)
        bn = np.add.reduceat(np.where(self.member, 0.0, wo), self.starts, axis=1)
        return bm, bn


def _weighted_auroc(bm: np.ndarray, bn: np.ndarray) -> np.ndarray:
    below = np.cumsum(bn, axis=1) - bn
    return (bm * (below + 0.5 * bn)).sum(1) / (bm.sum(1) * bn.sum(1))


def _weighted_roc(bm: np.ndarray, bn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr), each (B, blocks + 1), thresholds from the highest block down."""
    tp = np.cumsum(bm[:, ::-1], axis=1)
    fp = np.cumsum(bn[:, ::-1], axis=1)
    z = np.zeros((len(bm), 1))
    return (np.hstack([z, fp / fp[:, -1:]]), np.hstack([z, tp / tp[:, -1:]]))


def auroc(scores: np.ndarray, is_member: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with ties counted one half)."""
    m = _check(is_member)
    bm, bn = _Sorted(scores, m).block_sums(np.ones((1, len(m))))
    return float(_weighted_auroc(bm, bn)[0])


def roc_curve(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1)."""
    m = _check(is_member)
    bm, bn = _Sorted(scores, m).block_sums(np.ones((1, len(m))))
    fpr, tpr = _weighted_roc(bm, bn)
    return fpr[0], tpr[0]


def balanced_accuracies(fpr: np.ndarray, tpr: np.ndarray) -> tuple[float, float]:
    """(paper, best): balanced accuracy at the ROC point minimising |FPR + TPR − 1|
    (the paper's threshold) and the maximum over all thresholds (LiRA's)."""
    bal = (tpr + 1.0 - fpr) / 2.0
    paper = bal[np.argmin(np.abs(fpr + tpr - 1.0))]
    return float(paper), float(bal.max())


def enough_nonmembers(target: float, n_nonmembers: int) -> bool:
    """docs/method.md: Metrics: a TPR at FPR ``target`` is reported only with ≥ 10/target
    non-members."""
    return n_nonmembers >= 10.0 / target


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float, n_nonmembers: int) -> float:
    """TPR at ``target`` FPR by linear interpolation on the ROC.

    NaN when there are fewer than 10/target non-members: below that the value
    rests on fewer than ten false positives and is not reported (docs/method.md: Metrics).
    """
    if not enough_nonmembers(target, n_nonmembers):
        return float("nan")
    return float(np.interp(target, fpr, tpr))


def tpr_at_fpr_strict(fpr: np.ndarray, tpr: np.ndarray, target: float, n_nonmembers: int) -> float:
    """TPR at the last ROC point with FPR strictly below ``target`` (the convention of
    LiRA's and MICO's code); never above the interpolated value.  NaN as
    :func:`tpr_at_fpr` when there are too few non-members."""
    if not enough_nonmembers(target, n_nonmembers):
        return float("nan")
    return float(tpr[fpr < target].max())


def bootstrap_weights(is_member: np.ndarray, *, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, N) int32 resampling counts, stratified by membership, seeded."""
    m = np.asarray(is_member, bool)
    rng = np.random.default_rng(seed)
    n = len(m)
    w = np.zeros(n_boot * n, dtype=np.int64)
    offset = (np.arange(n_boot) * n)[:, None]
    for idx in (np.flatnonzero(m), np.flatnonzero(~m)):
        draw = idx[rng.integers(0, len(idx), (n_boot, len(idx)))]
        w += np.bincount((offset + draw).ravel(), minlength=n_boot * n)
    return w.reshape(n_boot, n).astype(np.int32)


class _Bootstrap:
    """One sort of an attack's scores, reused by every bootstrap replicate.

    Non-members are sorted once; for each member, the positions of the non-members
    below it and tied with it are found once (``searchsorted``).  A replicate, given
    as per-sample counts, then needs only cumulative sums of integer weights: its
    AUROC is Σ_i w_i·(C(lo_i) + C(hi_i)) / (2·W⁺·W⁻) with C the cumulative non-member
    weight, and its TPR at an FPR comes from the same sums at the non-member score
    blocks, interpolated on the replicate's ROC as :func:`tpr_at_fpr` does.
    """

    def __init__(self, scores: np.ndarray, is_member: np.ndarray):
        s = _clean(scores)
        m = np.asarray(is_member, bool)
        idx_n, idx_m = np.flatnonzero(~m), np.flatnonzero(m)
        self.order_n = idx_n[np.argsort(s[idx_n], kind="stable")]
        self.order_m = idx_m[np.argsort(s[idx_m], kind="stable")]
        sn, sm = s[self.order_n], s[self.order_m]
        self.lo = np.searchsorted(sn, sm, "left")
        self.hi = np.searchsorted(sn, sm, "right")
        self.ties = bool((self.lo != self.hi).any())
        self.block_starts = np.r_[0, np.flatnonzero(sn[1:] != sn[:-1]) + 1]  # non-member blocks
        v = sn[self.block_starts]
        self.gt = np.searchsorted(sm, v, "right")  # members with score ≤ v: Cm index for > v
        self.ge = np.searchsorted(sm, v, "left")

    def replicates(self, w: np.ndarray, fpr: float | None) -> tuple[np.ndarray, np.ndarray]:
        wn = w[:, self.order_n]
        wm = w[:, self.order_m]
        zero = np.zeros((len(w), 1), dtype=np.int64)
        cn = np.hstack([zero, np.cumsum(wn, axis=1, dtype=np.int64)])
        tot_n, tot_m = cn[:, -1], wm.sum(1, dtype=np.int64)
        hits = cn[:, self.lo] + (cn[:, self.hi] if self.ties else cn[:, self.lo])
        auc = (wm * hits).sum(1, dtype=np.int64) / (2.0 * tot_m * tot_n)
        if fpr is None:
            return auc, np.full(len(w), np.nan)
        cm = np.hstack([zero, np.cumsum(wm, axis=1, dtype=np.int64)])
        # F(k): non-member weight with score ≥ block k's value (decreasing in k)
        f_k = tot_n[:, None] - cn[:, self.block_starts]
        x = fpr * tot_n
        c = (f_k <= x[:, None]).sum(1)  # blocks at the top whose FPR stays ≤ target
        k1 = len(self.block_starts) - 1 - c  # the first block that crosses it
        rows = np.arange(len(w))
        f_hi = f_k[rows, k1]
        f_lo = np.where(c > 0, f_k[rows, np.minimum(k1 + 1, f_k.shape[1] - 1)], 0)
        t_top = tot_m - cm[rows, self.gt[k1]]  # members strictly above block k1
        t_end = tot_m - cm[rows, self.ge[k1]]  # ... and those tied with it
        tpr = (t_top + (x - f_lo) / (f_hi - f_lo) * (t_end - t_top)) / tot_m
        return auc, tpr


def bootstrap_replicates(
    scores: np.ndarray, is_member: np.ndarray, weights: np.ndarray, fpr: float | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """AUROC (and TPR at ``fpr``, interpolated) of every bootstrap replicate, (B,) each."""
    bs = _Bootstrap(scores, is_member)
    aucs, tprs = [], []
    for i in range(0, len(weights), CHUNK):
        a, t = bs.replicates(weights[i : i + CHUNK], fpr)
        aucs.append(a)
        tprs.append(t)
    return np.concatenate(aucs), (np.concatenate(tprs) if fpr is not None else None)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))


def bootstrap_auroc(
    scores: np.ndarray, is_member: np.ndarray, *, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC (stratified resampling of samples)."""
    m = _check(is_member)
    aucs, _ = bootstrap_replicates(scores, m, bootstrap_weights(m, n_boot=n_boot, seed=seed))
    return percentile_interval(aucs, level)


def paired_auroc_difference(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    is_member: np.ndarray,
    *,
    weights: np.ndarray,
    level: float = 0.95,
) -> dict[str, float]:
    """AUROC(a) − AUROC(b) on the same target, with a paired percentile bootstrap
    interval (both attacks see the same resampled samples)."""
    m = _check(is_member)
    a, _ = bootstrap_replicates(scores_a, m, weights)
    b, _ = bootstrap_replicates(scores_b, m, weights)
    lo, hi = percentile_interval(a - b, level)
    return {"diff": auroc(scores_a, m) - auroc(scores_b, m), "diff_lo": lo, "diff_hi": hi}


def summarize(
    scores: np.ndarray,
    is_member: np.ndarray,
    *,
    fprs: list[float],
    n_boot: int,
    seed: int,
    ci_fpr: float = 0.01,
    weights: np.ndarray | None = None,
    level: float = 0.95,
) -> dict[str, float]:
    """Every metric of one attack on one target, as a flat dict.

    ``tpr@f`` is interpolated on the ROC, ``tpr_strict@f`` the LiRA/MICO convention
    (FPR strictly below f); both NaN with fewer than 10/f non-members.  With
    ``n_boot > 0``: ``auroc_lo``/``auroc_hi`` and ``tpr@<ci_fpr>_lo``/``_hi``, the
    ``level`` percentile bootstrap interval (``weights`` from
    :func:`bootstrap_weights`, else drawn from ``seed``).
    """
    m = _check(is_member)
    s = np.asarray(scores, dtype=np.float64)
    fpr, tpr = roc_curve(s, m)
    bal_paper, bal_best = balanced_accuracies(fpr, tpr)
    n_non = int((~m).sum())
    out = {
        "auroc": auroc(s, m),
        "bal_acc_paper": bal_paper,
        "bal_acc_best": bal_best,
        "n_members": int(m.sum()),
        "n_nonmembers": n_non,
        "n_nan_scores": int(np.isnan(s).sum()),
        "n_inf_scores": int(np.isinf(s).sum()),
    }
    for f in fprs:
        out[f"tpr@{f:g}"] = tpr_at_fpr(fpr, tpr, f, n_non)
        out[f"tpr_strict@{f:g}"] = tpr_at_fpr_strict(fpr, tpr, f, n_non)
    if n_boot > 0:
        if weights is None:
            weights = bootstrap_weights(m, n_boot=n_boot, seed=seed)
        ok = enough_nonmembers(ci_fpr, n_non)
        aucs, tprs = bootstrap_replicates(s, m, weights, ci_fpr if ok else None)
        out["auroc_lo"], out["auroc_hi"] = percentile_interval(aucs, level)
        key = f"tpr@{ci_fpr:g}"
        out[key + "_lo"], out[key + "_hi"] = (
            percentile_interval(tprs, level) if ok else (float("nan"), float("nan"))
        )
    return out
