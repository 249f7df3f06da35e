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
    (e.g. α = 1), t = −inf.
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
    if k >= len(finite):
        return float("-inf")
    return float(np.nextafter(finite[k], np.inf))


def balanced_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold (a score value, or +inf to flag nothing) that maximises the balanced
    accuracy (TPR + 1 − FPR)/2 of ``scores``; among equal maxima, the largest threshold
    (fewest samples flagged)."""
    s = np.asarray(scores, dtype=np.float64)
    m = _as_member(is_member, len(s), "balanced_threshold")
    if m.all() or not m.any():
        raise ValueError("balanced_threshold needs both members and non-members")
    ok = ~np.isnan(s)
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
    return np.median(per, axis=0).reshape(len(alphas))


def labelfree_balanced_threshold(pseudo_scores: np.ndarray, pseudo_in: np.ndarray) -> float:
    """Median over pseudo-targets of :func:`balanced_threshold`."""
    ps, pi = _check_pseudo(pseudo_scores, pseudo_in)
    return float(np.median([balanced_threshold(s, m) for s, m in zip(ps, pi)]))
