"""The one-run ε lower bound (Steinke, Nasr and Jagielski, "Privacy auditing with one (1)
training run", NeurIPS 2023, Theorem 5.2 and Appendix D; docs/method.md: One-run ε lower
bound).

m audited examples were each included in training by an independent fair coin.  An attack
guesses IN for its k₊ highest scores, OUT for its k₋ lowest and abstains on the rest:
r = k₊ + k₋ guesses, v of them correct.  If the training is (ε, δ)-DP, then with
q = e^ε / (1 + e^ε)

    P[V ≥ v] ≤ p(ε) = min(1, P[Bin(r, q) ≥ v] + 2mδ·α),
    α = max over i = 1..v of (1/i)·P[v − i ≤ Bin(r, q) < v],

so every ε with p(ε) < β is rejected at level β, and ε̂ = sup{ε : p(ε) < β} is a lower
bound on the training's ε that holds with probability at least 1 − β over the coins.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import betaincinv, expit, logit
from scipy.stats import binom

EPS_TOL = 1e-6  # ε̂ is within this of the crossing, and always on its rejected side
_XTOL = 1e-7  # the root search's own tolerance (a tenth of EPS_TOL)
_GRID = 0.05  # scan step where p need not be monotone (2mδ > 1)


def _check(r: int, v: int, m: int, delta: float) -> None:
    if not 0 <= v <= r:
        raise ValueError(f"one-run bound: need 0 <= v <= r, got r = {r}, v = {v}")
    if r > m:
        raise ValueError(f"one-run bound: r = {r} guesses exceed m = {m} audited examples")
    if not 0 <= delta < 1:
        raise ValueError(f"one-run bound: delta must be in [0, 1), got {delta}")


def _alpha(r: int, v: int, q: float) -> float:
    """max over i = 1..v of (1/i)·P[v − i ≤ Bin(r, q) < v], the pmf summed from v − 1 down.

    Only x ≥ lo enters the sum (lo ≤ the mode, far in the lower tail).  That is exact: below
    the mode the pmf increases, so every left-out term is at most pmf(lo); a term no larger
    than the best running mean cannot raise any later running mean above it, and when
    pmf(lo) exceeds that mean the full range is summed instead."""
    if v == 0:
        return 0.0
    mode = math.floor((r + 1) * q)
    if v - 1 <= mode:  # the pmf decreases from v − 1 down: the first term is the largest mean
        return float(binom.pmf(v - 1, r, q))
    sd = math.sqrt(r * q * (1 - q))
    lo = max(0, min(mode, math.floor(r * q - 12 * sd) - 1))
    while True:
        pmf = binom.pmf(np.arange(v - 1, lo - 1, -1), r, q)  # x = v − 1 down to lo
        best = float(np.max(np.cumsum(pmf) / np.arange(1, len(pmf) + 1)))
        if lo == 0 or pmf[-1] <= best:
            return best
        lo = 0


def p_value(eps: float, r: int, v: int, m: int, delta: float) -> float:
    """p(ε): the probability, under (ε, δ)-DP, of at least v correct among r guesses on m
    fair-coin examples (an upper bound, Theorem 5.2)."""
    _check(r, v, m, delta)
    q = float(expit(eps))
    tail = float(binom.sf(v - 1, r, q))  # P[Bin(r, q) ≥ v]
    if delta == 0 or tail >= 1:
        return min(1.0, tail)
    return min(1.0, tail + 2 * m * delta * _alpha(r, v, q))


def _eps_delta0(r: int, v: int, beta: float) -> float:
    """The crossing for δ = 0: P[Bin(r, q) ≥ v] = I_q(v, r − v + 1) = β solved for q."""
    return float(logit(betaincinv(v, r - v + 1, beta)))


def eps_lower(r: int, v: int, m: int, delta: float, beta: float = 0.05) -> float:
    """ε̂ = sup{ε : p(ε) < β} (0 when no ε ≥ 0 qualifies, e.g. v ≤ r/2), within EPS_TOL below
    the crossing.  p is nondecreasing in ε when 2mδ ≤ 1 (each term of the max has slope at
    least r·P[Bin(r−1, q) = v−1]·(1 − 2mδ/i) in q), so a root search finds the sup; for
    2mδ > 1 the first crossing is found by a scan of step 0.05 (the conservative choice: it
    holds without monotonicity)."""
    _check(r, v, m, delta)
    if not 0 < beta < 1:
        raise ValueError(f"one-run bound: beta must be in (0, 1), got {beta}")
    if v == 0 or p_value(0.0, r, v, m, delta) >= beta:
        return 0.0
    # p ≥ P[Bin ≥ v], which reaches β at the δ = 0 root: the crossing lies in (0, hi]
    hi = _eps_delta0(r, v, beta) + _XTOL
    if delta == 0:
        lo = hi - 4 * _XTOL
    else:
        lo, hi = _bracket(r, v, m, delta, beta, hi)
        lo = brentq(lambda e: p_value(e, r, v, m, delta) - beta, lo, hi, xtol=_XTOL, rtol=1e-15)
    lo = max(0.0, lo - _XTOL)
    while lo > 0 and p_value(lo, r, v, m, delta) >= beta:  # on the rejected side
        lo = max(0.0, lo - _XTOL)
    return lo


def _bracket(r: int, v: int, m: int, delta: float, beta: float, hi: float) -> tuple[float, float]:
    """(lo, hi) with p(lo) < β ≤ p(hi) around the crossing the search reports."""
    if 2 * m * delta <= 1:
        return 0.0, hi
    lo = 0.0
    for e in np.arange(_GRID, hi, _GRID):
        if p_value(float(e), r, v, m, delta) >= beta:
            return lo, float(e)
        lo = float(e)
    return lo, hi


def ranking(scores: np.ndarray, seed: int) -> np.ndarray:
    """Indices of the non-NaN scores, lowest first; ties in the order of a permutation drawn
    from ``seed`` alone.  :func:`guesses` takes its ends."""
    s = np.asarray(scores, dtype=np.float64)
    finite = np.flatnonzero(~np.isnan(s))
    tiebreak = np.random.default_rng(seed).permutation(len(s))
    return finite[np.lexsort((tiebreak[finite], s[finite]))]


def guesses(scores: np.ndarray, k_pos: int, k_neg: int, seed: int) -> np.ndarray:
    """(N,) int8: +1 (IN) on the k₊ highest scores, −1 (OUT) on the k₋ lowest, 0 elsewhere.

    Higher scores mean member.  NaN is never a guess; ties at a boundary are broken by a
    permutation drawn from ``seed`` alone (it never sees membership).  Asking for more
    guesses than there are finite scores is an error."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"guesses: scores must be one-dimensional, got shape {s.shape}")
    if k_pos < 0 or k_neg < 0:
        raise ValueError(f"guesses: k_pos and k_neg must be >= 0, got {k_pos}, {k_neg}")
    finite = np.flatnonzero(~np.isnan(s))
    if k_pos + k_neg > len(finite):
        raise ValueError(
            f"guesses: k_pos + k_neg = {k_pos + k_neg} exceeds the {len(finite)} non-NaN scores"
        )
    order = ranking(s, seed)
    out = np.zeros(len(s), dtype=np.int8)
    out[order[len(order) - k_pos :]] = 1
    out[order[:k_neg]] = -1
    return out


def count(guess: np.ndarray, is_member: np.ndarray) -> tuple[int, int]:
    """(r, v): the number of guesses and of correct ones."""
    g = np.asarray(guess)
    mem = np.asarray(is_member, dtype=bool)
    if g.shape != mem.shape:
        raise ValueError(f"count: guesses {g.shape} and is_member {mem.shape} differ in shape")
    r = int(np.count_nonzero(g))
    v = int(np.count_nonzero((g == 1) & mem) + np.count_nonzero((g == -1) & ~mem))
    return r, v
