"""Shadows as pseudo-targets (docs/method.md: Realistic audit metrics): each kept shadow in
turn plays the target, scored by the same attack with the other shadows, minus it and minus
its complement, as references.  Real targets never enter.  Their scores and their own
membership give label-free thresholds for the real targets.

``shadow`` maps feature names to (P, N, Q) arrays (and ``test_<name>`` to (P, Nz, Q)),
``shadow_in`` is (P, N) bool, ``complement`` (P,) the position of each shadow's complement
within the same P shadows, or -1 where it has none (independent layout, or excluded by
health).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from .attacks import (
    ATTACKS,
    CARLINI_FORMS,
    PAPER_LR_EPS,
    PAPER_NLL_EPS,
    _check_variant,
    _log_gauss,
    _logcurv,
    _loss,
    _valid,
    carlini_p_max,
    logit_scale_paper,
)


def complement_positions(rows: list[int], n_random: int, complements: bool) -> np.ndarray:
    """(P,) position of each row's complement among ``rows`` (-1: none among them)."""
    pos = {r: i for i, r in enumerate(rows)}
    out = np.full(len(rows), -1, dtype=np.int64)
    if complements:
        for i, r in enumerate(rows):
            c = r + n_random if r < n_random else r - n_random
            out[i] = pos.get(c, -1)
    return out


def reference_positions(complement: np.ndarray) -> list[np.ndarray]:
    """For each pseudo-target p, the positions of its references: all but p and its
    complement."""
    n = len(complement)
    return [np.array([j for j in range(n) if j != p and j != complement[p]]) for p in range(n)]


def _params(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in ("name", "label")}


def pseudo_target_scores_reference(
    spec: dict,
    shadow: dict[str, np.ndarray],
    shadow_in: np.ndarray,
    labels: np.ndarray,
    complement: np.ndarray,
) -> np.ndarray:
    """(P, N) scores of every pseudo-target: the attack function itself run once per
    pseudo-target on its reduced reference set (the definition; slow)."""
    fn = ATTACKS[spec["name"]]
    shadow_in = np.asarray(shadow_in, dtype=bool)
    out = []
    for p, refs in enumerate(reference_positions(np.asarray(complement))):
        target = {f: v[p] for f, v in shadow.items()}
        ref_feats = {f: v[refs] for f, v in shadow.items()}
        out.append(fn(target, ref_feats, shadow_in[refs], labels=labels, **_params(spec)))
    return np.stack(out).astype(np.float64)


def pseudo_target_scores(
    spec: dict,
    shadow: dict[str, np.ndarray],
    shadow_in: np.ndarray,
    labels: np.ndarray,
    complement: np.ndarray,
) -> np.ndarray:
    """(P, N) scores of every pseudo-target, equal to
    :func:`pseudo_target_scores_reference` (rtol 1e-9, same NaN pattern) at a fraction of
    its cost: per-side sums over all shadows once, each pseudo-target's and its
    complement's shares subtracted (two passes where that loses digits); quantiles from
    one sort at adjusted ranks; Song's thresholds from one sort per class (FAST below)."""
    name = spec["name"]
    if name not in FAST:
        raise ValueError(f"attacks: no pseudo-target form of attack {name!r}")
    scores = FAST[name](
        shadow, np.asarray(shadow_in, dtype=bool), labels, np.asarray(complement), **_params(spec)
    )
    return np.asarray(scores, dtype=np.float64)


# --------------------------------------------------------------------------- fast form
#
# Every statistic an attack takes over its references is a sum or an order statistic over
# the shadows, so leaving pseudo-target p and its complement out costs O(N·Q), not a
# whole attack: the sums over all P shadows are taken once, p's and its complement's
# shares subtracted; a quantile is read at the rank adjusted for the two removed values.

# An updated variance below SPREAD_TOL of the sums' own scale (Σ (x − m)² / n over all
# shadows), or below SHIFT_TOL · mean², is recomputed in two passes over the references
# exactly as :func:`curvmia.attacks.in_out_stats` does: the subtraction lost too many
# digits there, or the attack's (s − μ)/σ amplifies the mean's rounding beyond 1e-12.
SPREAD_TOL = 1e-2
SHIFT_TOL = 1e-6


def _drop(p: int, complement: np.ndarray) -> list[int]:
    """Pseudo-target p and its complement (when it has one among the shadows)."""
    c = int(complement[p])
    return [p] if c < 0 else [p, c]


class _LeaveOut:
    """NaN-aware mean and population variance over axis 0 of ``x`` (P, N, Q) restricted
    to ``side`` (P, N), with some shadows left out (centred sums about the all-shadow
    mean, subtracted; two-pass fallback where that is inaccurate)."""

    def __init__(self, x: np.ndarray, side: np.ndarray):
        self.x = x
        self.valid = side[:, :, None] & ~np.isnan(x)
        self.n = self.valid.sum(0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            m = np.where(self.valid, x, 0.0).sum(0) / self.n
            self.m = np.where(np.isfinite(m), m, 0.0)
            self.d = np.where(self.valid, x - self.m, 0.0)
            self.s1 = self.d.sum(0)
            self.s2 = (self.d * self.d).sum(0)

    def stats(self, drop: list[int], checked: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(mean, var), each (N, Q), over the shadows not in ``drop``; NaN where none is
        valid.  ``checked=False``: the mean alone is wanted, to relative accuracy (no
        fallback for a small variance)."""
        n = self.n - self.valid[drop].sum(0)
        d = self.d[drop]
        s1 = self.s1 - d.sum(0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            a = s1 / n
            mean = self.m + a
            var = (self.s2 - (d * d).sum(0)) / n - a * a
            ok = np.isfinite(mean) & np.isfinite(var)
            if checked:
                ok &= (var >= SPREAD_TOL * self.s2 / n) & (var >= SHIFT_TOL * mean * mean)
        redo = np.nonzero(~ok & (n > 0))
        if len(redo[0]):
            mean[redo], var[redo] = self._two_pass(drop, redo)
        empty = n == 0
        mean[empty], var[empty] = np.nan, np.nan
        return mean, var

    def _two_pass(self, drop: list[int], cols: tuple) -> tuple[np.ndarray, np.ndarray]:
        """In_out_stats' own two passes over the references, on the columns ``cols``."""
        x = self.x[(slice(None), *cols)]
        v = self.valid[(slice(None), *cols)].copy()
        v[drop] = False
        n = v.sum(0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mean = np.where(v, x, 0.0).sum(0) / n
            var = np.where(v, (x - mean) ** 2, 0.0).sum(0) / n
        return mean, var


class _LeaveOutQuantile:
    """Linear-interpolated quantile over axis 0 of ``x`` (P, N, Q) restricted to ``side``
    (P, N), with some shadows left out: one sort, read at ranks adjusted for the removed
    values (the convention of :func:`curvmia.attacks._masked_quantile`)."""

    def __init__(self, x: np.ndarray, side: np.ndarray):
        self.valid = side[:, :, None] & ~np.isnan(x)
        self.n = self.valid.sum(0)
        # sorted along the last axis of an (N, Q, P) copy: contiguous, so the sort and the
        # per-pseudo-target reads are fast
        filled = np.where(self.valid, x, np.nan).transpose(1, 2, 0).copy()  # NaN sorts last
        order = np.argsort(filled, axis=-1, kind="stable")
        self.n_sh = len(x)
        self.xs = np.take_along_axis(filled, order, -1).ravel()
        self.rank = np.empty_like(order)
        np.put_along_axis(self.rank, order, np.arange(self.n_sh), -1)
        self.base = np.arange(self.n.size).reshape(self.n.shape) * self.n_sh

    def _at(self, k: np.ndarray, removed: list[np.ndarray]) -> np.ndarray:
        """The k-th smallest remaining value: k shifted past each removed rank ≤ it."""
        for r in removed:  # ascending ranks
            k = k + (k >= r)
        return self.xs[self.base + np.minimum(k, self.n_sh - 1)]

    def quantile(self, drop: list[int], q: float) -> np.ndarray:
        ranks = [np.where(self.valid[s], self.rank[..., s], self.n_sh) for s in drop]
        if len(ranks) == 2:
            ranks = [np.minimum(*ranks), np.maximum(*ranks)]
        n = self.n - self.valid[drop].sum(0)
        pos = (np.maximum(n, 1) - 1) * q
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        v_lo, v_hi = self._at(lo, ranks), self._at(hi, ranks)
        with np.errstate(invalid="ignore"):
            out = v_lo + (pos - lo) * (v_hi - v_lo)
        out = np.where(pos == lo, v_lo, out)
        return np.where(n > 0, out, np.nan)


class _LeaveOutStd:
    """``np.std`` of all valid values of ``x`` (P, N, Q) on ``side`` (P, N), some shadows
    left out (LiRA's ``fix_variance``): per-shadow centred sums about the global mean."""

    def __init__(self, x: np.ndarray, side: np.ndarray):
        self.x, self.side = x, side
        valid = side[:, :, None] & ~np.isnan(x)
        self.n = valid.sum((1, 2))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            m = np.where(valid, x, 0.0).sum() / self.n.sum()
            self.m = m if np.isfinite(m) else 0.0
            d = np.where(valid, x - self.m, 0.0)
            self.s1, self.s2 = d.sum((1, 2)), (d * d).sum((1, 2))

    def std(self, drop: list[int]) -> float:
        keep = np.ones(len(self.n), dtype=bool)
        keep[drop] = False
        n, s1, s2 = self.n[keep].sum(), self.s1[keep].sum(), self.s2[keep].sum()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            a = s1 / n
            var = s2 / n - a * a
        if n > 0 and np.isfinite(var) and var >= SPREAD_TOL * s2 / n:
            return float(np.sqrt(var))
        x = self.x[keep]
        return float(np.std(x[_valid(x, self.side[keep])]))


def _curv_score(
    s: np.ndarray, st: tuple, variant: str, nll: bool, unit_variance: bool
) -> np.ndarray:
    """Curv NLL / Curv LR (and the paper formulas carlini_paper reuses) of ``s`` (N, Q)
    from the IN/OUT stats ``st`` = (mu_in, var_in, mu_out, var_out)."""
    mu_in, var_in, mu_out, var_out = st
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if variant == "paper" and nll:
            w = var_in + PAPER_NLL_EPS
            return (((s - mu_out) ** 2 - (s - mu_in) ** 2) / (2 * w**2)).sum(1)
        if variant == "paper":
            if unit_variance:
                var_in, var_out = np.ones_like(var_in), np.ones_like(var_out)
            else:
                var_in, var_out = var_in + PAPER_LR_EPS, var_out + PAPER_LR_EPS
            g_in = np.exp(_log_gauss(s, mu_in, var_in)).sum(1)
            g_out = np.exp(_log_gauss(s, mu_out, var_out)).sum(1)
            return g_in / (g_out + PAPER_LR_EPS)
        if nll:
            per_q = _log_gauss(s, mu_in, np.sqrt(var_in)) - _log_gauss(s, mu_out, np.sqrt(var_out))
            return per_q.sum(1)
        sd_in = np.ones_like(var_in) if unit_variance else np.sqrt(var_in)
        sd_out = np.ones_like(var_out) if unit_variance else np.sqrt(var_out)
        return (_log_gauss(s, mu_in, sd_in) - _log_gauss(s, mu_out, sd_out)).mean(1)


def _gauss_family(
    x: np.ndarray, s_in: np.ndarray, comp: np.ndarray, variant: str, nll: bool, uv: bool
) -> np.ndarray:
    """Curv NLL / LR (paper or clean) of every pseudo-target on the statistic ``x``."""
    sides = _LeaveOut(x, s_in), _LeaveOut(x, ~s_in)
    out = []
    for p in range(len(x)):
        drop = _drop(p, comp)
        (mu_in, var_in), (mu_out, var_out) = (side.stats(drop) for side in sides)
        out.append(_curv_score(x[p], (mu_in, var_in, mu_out, var_out), variant, nll, uv))
    return np.stack(out)


def _curv_nll(shadow, s_in, labels, comp, *, variant="paper", feature="curv_zo"):
    _check_variant(variant)
    return _gauss_family(_logcurv(shadow, feature), s_in, comp, variant, True, False)


def _curv_lr(
    shadow, s_in, labels, comp, *, variant="paper", feature="curv_zo", unit_variance=False
):
    _check_variant(variant)
    return _gauss_family(_logcurv(shadow, feature), s_in, comp, variant, False, unit_variance)


def _carlini_paper(shadow, s_in, labels, comp, *, form="lr"):
    if form not in CARLINI_FORMS:
        raise ValueError(f"carlini_paper: form must be one of {CARLINI_FORMS}, got {form!r}")
    s = logit_scale_paper(carlini_p_max(shadow)[0])
    return _gauss_family(s, s_in, comp, "paper", form == "nll", False)


def _lira(shadow, s_in, comp, variant, center, fix_variance, online):
    """LiRA online / offline of every pseudo-target (:func:`curvmia.attacks.lira_online`)."""
    _check_variant(variant)
    x = shadow["phi_max" if variant == "paper" else "phi"]
    center = center or ("mean" if variant == "paper" else "median")
    if center not in ("mean", "median"):
        raise ValueError(f"center must be 'mean' or 'median', got {center!r}")
    sides = (s_in, ~s_in) if online else (~s_in,)
    stats = [_LeaveOut(x, m) for m in sides]
    med = [_LeaveOutQuantile(x, m) for m in sides] if center == "median" else []
    glob = [_LeaveOutStd(x, m) for m in sides] if fix_variance else []
    out = []
    for p in range(len(x)):
        drop = _drop(p, comp)
        mu, sd = [], []
        for i, side in enumerate(stats):
            mean, var = side.stats(drop)
            mu.append(med[i].quantile(drop, 0.5) if med else mean)
            sd.append((np.full_like(var, glob[i].std(drop)) if glob else np.sqrt(var)) + 1e-30)
        obs = x[p]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if online:
                s = _log_gauss(obs, mu[0], sd[0]) - _log_gauss(obs, mu[1], sd[1])
            elif variant == "paper":
                s = -_log_gauss(obs, mu[0], sd[0])
            else:
                s = log_ndtr((obs - mu[0]) / sd[0])
            out.append(s.mean(1))
    return np.stack(out)


def _lira_online(shadow, s_in, labels, comp, *, variant="paper", center=None, fix_variance=False):
    return _lira(shadow, s_in, comp, variant, center, fix_variance, online=True)


def _lira_offline(shadow, s_in, labels, comp, *, variant="paper", center=None, fix_variance=False):
    return _lira(shadow, s_in, comp, variant, center, fix_variance, online=False)


def _yeom(shadow, s_in, labels, comp, *, loss_query=0, variant="paper"):
    return -_loss(shadow, loss_query, variant=variant)


def _loss_means(shadow, s_in, comp, loss_query, variant, in_weight):
    """−(loss − (w·μ_in + (1 − w)·μ_out)) per pseudo-target, w = ``in_weight`` (½:
    Sablayrolles, 0: Watson), the means left-out."""
    x = _loss(shadow, loss_query, variant=variant)[:, :, None]
    sides = (_LeaveOut(x, s_in), _LeaveOut(x, ~s_in))
    out = []
    for p in range(len(x)):
        drop = _drop(p, comp)
        mu_out = sides[1].stats(drop)[0][:, 0]
        if in_weight:
            ref = (sides[0].stats(drop)[0][:, 0] + mu_out) / 2
        else:
            ref = mu_out
        out.append(-(x[p, :, 0] - ref))
    return np.stack(out)


def _sablayrolles(shadow, s_in, labels, comp, *, loss_query=0, variant="paper"):
    return _loss_means(shadow, s_in, comp, loss_query, variant, 0.5)


def _watson(shadow, s_in, labels, comp, *, loss_query=0, variant="paper"):
    return _loss_means(shadow, s_in, comp, loss_query, variant, 0.0)


def _ye(shadow, s_in, labels, comp, *, loss_query=0, alpha=1e-4, variant="paper"):
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    x = _loss(shadow, loss_query, variant=variant)[:, :, None]
    quant = _LeaveOutQuantile(x, ~s_in)
    return np.stack(
        [-(x[p, :, 0] - quant.quantile(_drop(p, comp), alpha)[:, 0]) for p in range(len(x))]
    )


def _song(shadow, s_in, labels, comp, *, loss_query=0, variant="paper"):
    """Song's per-class thresholds per pseudo-target (:func:`curvmia.attacks.class_thresholds`
    on the references): each class's pooled (shadow, sample) values sorted once; the
    balanced-accuracy counts of the references at each run of equal values come from
    cumulative counts of the entries that are not left out."""
    if labels is None:
        raise ValueError("song: needs the samples' labels (labels=...)")
    labels = np.asarray(labels)
    values = _loss(shadow, loss_query, "mentr", variant)
    n_sh, n_classes = len(values), int(labels.max()) + 1
    pooled = []
    for c in range(n_classes):
        cols = labels == c
        v, m = values[:, cols].ravel(), s_in[:, cols].ravel()
        sid = np.repeat(np.arange(n_sh, dtype=np.int32), cols.sum())
        keep = ~np.isnan(v)
        order = np.argsort(v[keep], kind="stable")
        v, m, sid = v[keep][order], m[keep][order], sid[keep][order]
        last = np.r_[np.flatnonzero(v[1:] != v[:-1]), len(v) - 1]  # each run's last entry
        pooled.append((v, m, sid, last))
    out = []
    for p in range(n_sh):
        tau = np.full(n_classes, -np.inf)
        for c, (v, m, sid, last) in enumerate(pooled):
            if len(v):
                tau[c] = _left_out_threshold(v, m, sid, last, _drop(p, comp))
        out.append(tau[labels] - values[p])
    return np.stack(out)


def _left_out_threshold(v, m, sid, last, drop: list[int]) -> float:
    """One class's τ over the entries of shadows not in ``drop``; ``v`` sorted, ``last`` the
    last index of each run of equal values."""
    kept = sid != drop[0]
    for s in drop[1:]:
        kept &= sid != s
    acc = np.int32 if len(v) < 2**31 else np.int64  # int32 cumulative sums are faster
    n_k = np.cumsum(kept.view(np.int8), dtype=acc)[last].astype(np.int64)
    tp = np.cumsum((kept & m).view(np.int8), dtype=acc)[last].astype(np.int64)
    fp = n_k - tp
    n_in, n_out = tp[-1], fp[-1]
    if n_in == 0 or n_out == 0:
        return np.inf if n_in else -np.inf
    gain = tp * n_out - fp * n_in
    gain[np.diff(n_k, prepend=0) == 0] = np.iinfo(np.int64).min  # a run wholly left out
    return v[last[np.argmax(gain)]]


def _rmia_fast(shadow, s_in, comp, *, offline: bool, a: float, gamma: float) -> np.ndarray:
    """RMIA of every pseudo-target (:func:`curvmia.attacks._rmia`), the reference means
    over the left-out shadows."""
    if "test_p_true" not in shadow:
        raise ValueError("rmia: needs the test split's features (test_p_true) as population z")
    if gamma <= 0:
        raise ValueError(f"rmia: gamma must be > 0, got {gamma}")
    sx, sz = shadow["p_true"], shadow["test_p_true"]
    mean_x = _LeaveOut(sx, ~s_in if offline else np.ones(sx.shape[:2], bool))
    mean_z = _LeaveOut(sz, np.ones(sz.shape[:2], bool))
    out = []
    for p in range(len(sx)):
        drop = _drop(p, comp)
        ref_x, ref_z = mean_x.stats(drop, checked=False)[0], mean_z.stats(drop, checked=False)[0]
        if offline:
            ref_x, ref_z = 0.5 * ((1 + a) * ref_x + (1 - a)), 0.5 * ((1 + a) * ref_z + (1 - a))
        with np.errstate(divide="ignore", invalid="ignore"):
            lr_x, lr_z = sx[p] / ref_x, sz[p] / ref_z
        score = np.zeros(lr_x.shape[0])
        for q in range(lr_x.shape[1]):
            z = np.sort(lr_z[:, q][~np.isnan(lr_z[:, q])])
            with np.errstate(invalid="ignore"):
                cnt = np.searchsorted(z, lr_x[:, q] / gamma, side="right")
            score += np.where(np.isnan(lr_x[:, q]), np.nan, cnt / max(len(z), 1))
        out.append(score / lr_x.shape[1])
    return np.stack(out)


def _rmia_online(shadow, s_in, labels, comp, *, gamma=1.0):
    return _rmia_fast(shadow, s_in, comp, offline=False, a=1.0, gamma=gamma)


def _rmia_offline(shadow, s_in, labels, comp, *, a=0.3, gamma=1.0):
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"rmia_offline: a must be in [0, 1], got {a}")
    return _rmia_fast(shadow, s_in, comp, offline=True, a=a, gamma=gamma)


FAST = {
    "curv_nll": _curv_nll,
    "curv_lr": _curv_lr,
    "lira_online": _lira_online,
    "lira_offline": _lira_offline,
    "yeom": _yeom,
    "sablayrolles": _sablayrolles,
    "watson": _watson,
    "ye": _ye,
    "song": _song,
    "carlini_paper": _carlini_paper,
    "rmia_online": _rmia_online,
    "rmia_offline": _rmia_offline,
}
