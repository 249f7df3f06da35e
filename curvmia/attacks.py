"""Membership inference attacks (docs/method.md: Attacks), vectorised over (shadows, samples,
queries).

Every attack has one signature::

    fn(target: dict[str, (N, Q)], shadow: dict[str, (S, N, Q)], shadow_in: (S, N) bool,
       *, labels: (N,) | None = None, **params) -> (N,) score, higher = member

``target`` and ``shadow`` map feature names (``curv_zo``, ``loss``, ``p_true``,
``p_max``, ``phi``, ``phi_max``, ``mentr``, and any white-box curvature) to
arrays.  The same dicts may carry the held-out test split as ``test_<name>``
(target: (Nz, Q), shadow: (S, Nz, Q)); RMIA reads it as its reference
population z (no model ever trains on it).  Per sample and query, the IN
statistics run over the shadows whose mask holds the sample, the OUT statistics
over the rest (NaN-aware means, population variances).

Samples with no IN (or no OUT) shadow: an attack that needs the missing side
returns NaN for them (defined result); ``curvmia.metrics`` ranks NaN lowest,
i.e. as a confident non-member, so such a sample never helps an attack, and
:func:`coverage` counts them so the report states how many there were.

``variant="paper"`` reproduces the released code that produced the published
numbers; ``variant="clean"`` is the mathematically proper form.  Each quirk of
the paper variant is pinned by its own test (tests/test_attacks.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
from scipy.special import log_ndtr

VARIANTS = ("paper", "clean")
LOG_EPS = 1e-22
LOG_2PI = np.log(2 * np.pi)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


# --------------------------------------------------------------------------- statistics


def _valid(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(S, N, Q) bool: the shadow is on the wanted side and its value is not NaN."""
    return mask[:, :, None] & ~np.isnan(x)


def _masked_mean_var(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = valid.sum(0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean = np.where(valid, x, 0.0).sum(0) / n
        var = np.where(valid, (x - mean) ** 2, 0.0).sum(0) / n
    return mean, var


def _masked_quantile(x: np.ndarray, valid: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated quantile ``q`` in [0, 1] over axis 0 of the valid entries.

    Same convention as ``np.nanquantile`` (method ``linear``) but one sort for
    all columns instead of a Python loop over them.
    """
    xs = np.sort(np.where(valid, x, np.inf), axis=0)  # invalid entries sort last
    n = valid.sum(0)
    pos = (np.maximum(n, 1) - 1) * q
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    v_lo = np.take_along_axis(xs, lo[None], 0)[0]
    v_hi = np.take_along_axis(xs, hi[None], 0)[0]
    with np.errstate(invalid="ignore"):
        out = v_lo + (pos - lo) * (v_hi - v_lo)
    out = np.where(pos == lo, v_lo, out)
    return np.where(n > 0, out, np.nan)


def in_out_stats(
    x: np.ndarray, shadow_in: np.ndarray, center: str = "mean"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-(sample, query) centre and population variance over IN and OUT shadows.

    ``x`` is (S, N, Q), ``shadow_in`` (S, N).  Returns mu_in, var_in, mu_out,
    var_out, each (N, Q); NaN where a side has no shadow.  ``center`` is
    ``mean`` or ``median``; the variance is always about the mean.
    """
    if center not in ("mean", "median"):
        raise ValueError(f"center must be 'mean' or 'median', got {center!r}")
    shadow_in = np.asarray(shadow_in, dtype=bool)
    out = []
    for side in (shadow_in, ~shadow_in):
        v = _valid(x, side)
        mean, var = _masked_mean_var(x, v)
        out += [mean if center == "mean" else _masked_quantile(x, v, 0.5), var]
    return out[0], out[1], out[2], out[3]


def coverage(shadow_in: np.ndarray) -> dict[str, int]:
    """How many samples have no IN shadow and no OUT shadow (their scores are NaN
    for the attacks that need that side)."""
    s = np.asarray(shadow_in, dtype=bool)
    return {"n_no_in_shadow": int((~s.any(0)).sum()), "n_no_out_shadow": int(s.all(0).sum())}


def _log_gauss(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Gaussian log-density with standard deviation ``sd``."""
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * LOG_2PI


def _logcurv(d: dict[str, np.ndarray], feature: str) -> np.ndarray:
    """log(|c| + 1e-22): curv_zo is ≥ 0; a Hutchinson trace can be negative (docs/method.md:
    Estimators)."""
    return np.log(np.abs(d[feature]) + LOG_EPS)


# --------------------------------------------------------------------------- curvature


PAPER_LR_EPS = 1e-22  # added to the variances and to the OUT likelihood (notebooks' Curv LR)
PAPER_NLL_EPS = 1e-32  # added to the IN variance (notebooks' Curv NLL)


def paper_nll(s: np.ndarray, shadow_s: np.ndarray, shadow_in: np.ndarray) -> np.ndarray:
    """The released notebooks' "NLL ratio" of a statistic ``s`` (N, Q) given the
    shadows' values (S, N, Q): Σ_a [(s−μ_out)² − (s−μ_in)²] / (2·W²), W = V_in + 1e-32
    (the IN *variance* in the std's place, in both terms).  A side with zero
    variance stays finite: W = 1e-32 (docs/method.md, Attacks)."""
    mu_in, var_in, mu_out, _ = in_out_stats(shadow_s, shadow_in)
    w = var_in + PAPER_NLL_EPS
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (((s - mu_out) ** 2 - (s - mu_in) ** 2) / (2 * w**2)).sum(1)


def paper_lr(
    s: np.ndarray, shadow_s: np.ndarray, shadow_in: np.ndarray, unit_variance: bool = False
) -> np.ndarray:
    """The released notebooks' likelihood ratio of ``s``: Σ_a g(s; μ_in, V_in + 1e-22) /
    (Σ_a g(s; μ_out, V_out + 1e-22) + 1e-22), g the Gaussian density with the variance V
    in the std's place (V = 1 with ``unit_variance``, as on ImageNet)."""
    mu_in, var_in, mu_out, var_out = in_out_stats(shadow_s, shadow_in)
    if unit_variance:
        var_in, var_out = np.ones_like(var_in), np.ones_like(var_out)
    else:
        var_in, var_out = var_in + PAPER_LR_EPS, var_out + PAPER_LR_EPS
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        g_in = np.exp(_log_gauss(s, mu_in, var_in)).sum(1)
        g_out = np.exp(_log_gauss(s, mu_out, var_out)).sum(1)
        return g_in / (g_out + PAPER_LR_EPS)


def curv_nll(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    variant: str = "paper",
    feature: str = "curv_zo",
) -> np.ndarray:
    """Curv NLL: IN vs OUT Gaussian fit of log curvature, summed over queries.

    paper: :func:`paper_nll`, Σ_a [(s−μ_out)² − (s−μ_in)²] / (2·(V_in + 1e-32)²), V_in
    the IN *variance* (where a std belongs) and the IN one in both terms.
    clean: Σ_a [log N(s; μ_in, σ_in) − log N(s; μ_out, σ_out)].
    ``feature`` names the curvature (``curv_zo``, or a white-box trace).
    """
    _check_variant(variant)
    s = _logcurv(target, feature)
    if variant == "paper":
        return paper_nll(s, _logcurv(shadow, feature), shadow_in)
    mu_in, var_in, mu_out, var_out = in_out_stats(_logcurv(shadow, feature), shadow_in)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        per_q = _log_gauss(s, mu_in, np.sqrt(var_in)) - _log_gauss(s, mu_out, np.sqrt(var_out))
        return per_q.sum(1)


def curv_lr(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    variant: str = "paper",
    feature: str = "curv_zo",
    unit_variance: bool = False,
) -> np.ndarray:
    """Curv LR: likelihood ratio of log curvature.

    paper: :func:`paper_lr`, Σ_a g(s; μ_in, V_in + 1e-22) / (Σ_a g(s; μ_out, V_out +
    1e-22) + 1e-22), g the Gaussian density with the variance V where the std belongs
    (V = 1 with ``unit_variance``, as on ImageNet).  clean: mean over queries of the
    Gaussian log-ratio with the standard deviations.
    """
    _check_variant(variant)
    s = _logcurv(target, feature)
    if variant == "paper":
        return paper_lr(s, _logcurv(shadow, feature), shadow_in, unit_variance)
    mu_in, var_in, mu_out, var_out = in_out_stats(_logcurv(shadow, feature), shadow_in)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sd_in = np.ones_like(var_in) if unit_variance else np.sqrt(var_in)
        sd_out = np.ones_like(var_out) if unit_variance else np.sqrt(var_out)
        return (_log_gauss(s, mu_in, sd_in) - _log_gauss(s, mu_out, sd_out)).mean(1)


CARLINI_FORMS = ("lr", "nll")


def logit_scale_paper(p: np.ndarray) -> np.ndarray:
    """The notebooks' logit scaling log(p/(1 − p + 1e-22) + 1e-22), in float64 on a
    probability already rounded to float32 (p = 1 gives log(1e22) ≈ 50.66)."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p / (1 - p + LOG_EPS) + LOG_EPS)


def carlini_p_max(d: dict) -> tuple[np.ndarray, bool]:
    """The float32 max-softmax probability the notebooks stored (``p_max_f32``), or, when
    a score file lacks it, the float64 ``p_max`` cast to float32 (the fallback: True)."""
    if "p_max_f32" in d:
        return np.asarray(d["p_max_f32"], dtype=np.float64), False
    return np.asarray(d["p_max"], dtype=np.float32).astype(np.float64), True


def carlini_paper(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    form: str = "lr",
) -> np.ndarray:
    """The paper's "Carlini et al." row as its notebooks computed it (not LiRA).

    s = log(p/(1 − p + 1e-22) + 1e-22) of the float32 *max*-softmax probability p
    (``p_max_f32``), pushed through the Curv LR paper formula (``form="lr"``, CIFAR:
    :func:`paper_lr`) or the Curv NLL paper formula (``form="nll"``, ImageNet:
    :func:`paper_nll`).  Without ``p_max_f32`` the float64 ``p_max`` is cast to float32
    (:func:`carlini_p_max`; the attack step announces it).  LiRA proper is
    :func:`lira_online`.
    """
    if form not in CARLINI_FORMS:
        raise ValueError(f"carlini_paper: form must be one of {CARLINI_FORMS}, got {form!r}")
    s = logit_scale_paper(carlini_p_max(target)[0])
    s_shadow = logit_scale_paper(carlini_p_max(shadow)[0])
    if form == "lr":
        return paper_lr(s, s_shadow, shadow_in)
    return paper_nll(s, s_shadow, shadow_in)


# --------------------------------------------------------------------------- LiRA


def _lira_inputs(target: dict, shadow: dict, shadow_in, variant: str, center: str | None):
    """LiRA's feature name, target observations, boolean IN mask (0/1 numbers too) and
    in_out_stats for ``variant``."""
    _check_variant(variant)
    feature = "phi_max" if variant == "paper" else "phi"
    center = center or ("mean" if variant == "paper" else "median")
    shadow_in = np.asarray(shadow_in, dtype=bool)
    stats = in_out_stats(shadow[feature], shadow_in, center)
    return feature, target[feature], shadow_in, stats


def _std(var: np.ndarray, x: np.ndarray, mask: np.ndarray, fix_variance: bool) -> np.ndarray:
    """Per-example std, or one global std over the masked shadow values."""
    if fix_variance:
        return np.full_like(var, np.std(x[_valid(x, mask)]))
    return np.sqrt(var)


def lira_online(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    variant: str = "paper",
    center: str | None = None,
    fix_variance: bool = False,
) -> np.ndarray:
    """LiRA online (Carlini et al. 2022): Gaussian log-likelihood ratio IN vs OUT.

    paper: on phi_max with mean centres (the paper's table); clean: on phi
    (true class) with median centres (LiRA's code).  ``fix_variance``: one
    global std per side instead of per-example stds.  Mean over queries.
    """
    feature, obs, shadow_in, (mu_in, var_in, mu_out, var_out) = _lira_inputs(
        target, shadow, shadow_in, variant, center
    )
    x = shadow[feature]
    sd_in = _std(var_in, x, shadow_in, fix_variance) + 1e-30
    sd_out = _std(var_out, x, ~shadow_in, fix_variance) + 1e-30
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (_log_gauss(obs, mu_in, sd_in) - _log_gauss(obs, mu_out, sd_out)).mean(1)


def lira_offline(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    variant: str = "paper",
    center: str | None = None,
    fix_variance: bool = False,
) -> np.ndarray:
    """LiRA offline: only OUT shadows.

    paper: −mean_a log N(obs; μ_out, σ_out), the two-sided form of LiRA's
    released code.  clean: mean_a log Φ((obs − μ_out)/σ_out), the one-sided
    test of the LiRA paper (a member's confidence is higher than OUT).
    """
    feature, obs, shadow_in, (_, _, mu_out, var_out) = _lira_inputs(
        target, shadow, shadow_in, variant, center
    )
    sd_out = _std(var_out, shadow[feature], ~shadow_in, fix_variance) + 1e-30
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if variant == "paper":
            return -_log_gauss(obs, mu_out, sd_out).mean(1)
        return log_ndtr((obs - mu_out) / sd_out).mean(1)


# --------------------------------------------------------------------------- loss baselines


F32_SUFFIX = "_f32"
F32_READERS = {
    "yeom": "loss",
    "sablayrolles": "loss",
    "watson": "loss",
    "ye": "loss",
    "song": "mentr",
}


def needed_f32_features(spec: dict) -> list[str]:
    """The float32 fields (``loss_f32``, ``mentr_f32``) a config entry reads: the paper
    variant of a loss baseline needs them; nothing else does (``carlini_paper`` falls
    back, announced, to the cast ``p_max``)."""
    base = F32_READERS.get(spec.get("name"))
    if base is None or spec.get("variant", "paper") != "paper":
        return []
    return [base + F32_SUFFIX]


def _loss(d: dict, loss_query: int, name: str = "loss", variant: str = "paper") -> np.ndarray:
    """Query ``loss_query`` of feature ``name``: paper reads the float32 values the
    released code computed (``<name>_f32``, with their ties at 0), clean the float64 ones."""
    _check_variant(variant)
    if variant == "clean":
        return d[name][..., loss_query]
    key = name + F32_SUFFIX
    if key not in d:
        raise ValueError(
            f"variant 'paper' reads {key!r} (float32, as the released code computed it), "
            "which these features lack: rescore with scoring.variant: paper, or use "
            "variant: clean"
        )
    return np.asarray(d[key][..., loss_query], dtype=np.float64)


def yeom(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    loss_query: int = 0,
    variant: str = "paper",
) -> np.ndarray:
    """Yeom et al. (2018): minus the target's loss on query ``loss_query``
    (the paper's code read query 1, the flip, on CIFAR and 0 on ImageNet).
    ``variant``: paper reads the float32 loss (``loss_f32``), clean the float64 one."""
    return -_loss(target, loss_query, variant=variant)


def sablayrolles(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    loss_query: int = 0,
    variant: str = "paper",
) -> np.ndarray:
    """Sablayrolles et al. (2019): −(loss − (μ_in + μ_out)/2), per-example means of the
    shadows' losses; NaN without an IN or an OUT shadow.  ``variant`` as for Yeom."""
    x = _loss(shadow, loss_query, variant=variant)[:, :, None]
    mu_in, _, mu_out, _ = in_out_stats(x, shadow_in)
    return -(_loss(target, loss_query, variant=variant) - (mu_in[:, 0] + mu_out[:, 0]) / 2)


def watson(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    loss_query: int = 0,
    variant: str = "paper",
) -> np.ndarray:
    """Watson et al. (2022), difficulty calibration: −(loss − μ_out), μ_out the mean OUT
    shadow loss of the sample.  ``variant`` as for Yeom."""
    x = _loss(shadow, loss_query, variant=variant)[:, :, None]
    _, _, mu_out, _ = in_out_stats(x, shadow_in)
    return -(_loss(target, loss_query, variant=variant) - mu_out[:, 0])


def ye(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    loss_query: int = 0,
    alpha: float = 1e-4,
    variant: str = "paper",
) -> np.ndarray:
    """Ye et al. (2022) attack R: −(loss − q_α), q_α the per-example α-quantile (linear
    interpolation) of the OUT shadows' losses, α = 1e-4 as in the paper.  ``variant`` as
    for Yeom."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    x = _loss(shadow, loss_query, variant=variant)[:, :, None]
    q = _masked_quantile(x, _valid(x, ~np.asarray(shadow_in, bool)), alpha)[:, 0]
    return -(_loss(target, loss_query, variant=variant) - q)


def class_thresholds(
    values: np.ndarray, is_in: np.ndarray, labels: np.ndarray, n_classes: int
) -> np.ndarray:
    """Per class c, the threshold τ_c that best separates IN (value ≤ τ) from OUT.

    ``values`` and ``is_in`` are (S, N) shadow values and memberships, ``labels`` (N,).
    Best = maximal balanced accuracy over the class's pooled (shadow, sample) pairs;
    ties keep the lowest threshold.  A class without IN or OUT values gets τ = +inf
    when it has only IN values, −inf otherwise.
    """
    tau = np.full(n_classes, -np.inf)
    for c in range(n_classes):
        cols = labels == c
        v = values[:, cols].ravel()
        m = is_in[:, cols].ravel()
        keep = ~np.isnan(v)
        v, m = v[keep], m[keep]
        n_in, n_out = m.sum(), (~m).sum()
        if n_in == 0 or n_out == 0:
            tau[c] = np.inf if n_in else -np.inf
            continue
        order = np.argsort(v, kind="stable")
        v, m = v[order], m[order]
        # the last index of each run of equal values (not np.diff: inf − inf is NaN)
        last = np.r_[np.flatnonzero(v[1:] != v[:-1]), len(v) - 1]
        tp, fp = np.cumsum(m)[last], np.cumsum(~m)[last]  # int64 counts
        # balanced accuracy (tp/n_in + 1 − fp/n_out)/2 ranked exactly, in integers: equal
        # accuracies tie (in floats they may differ by rounding), so the lowest τ wins
        tau[c] = v[last[np.argmax(tp * n_out - fp * n_in)]]
    return tau


def song(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    loss_query: int = 0,
    variant: str = "paper",
) -> np.ndarray:
    """Song & Mittal (2021): modified entropy with class-dependent thresholds.

    τ_c is fitted per class on the shadows (:func:`class_thresholds`); the score is
    τ_{y_j} − Mentr_j, so one global cut at 0 is the per-class threshold attack and the
    AUROC ranks all samples by their margin to their own class's threshold.  The
    released code instead computed a per-class AUROC over *all* samples; that bug is
    documented, not reproduced.  ``loss_query`` picks the query (the released Mentr
    scores used the original image, 0, on every dataset).  ``variant``: paper reads the
    float32 Mentr the released code computed (``mentr_f32``), clean the float64 one.
    Needs ``labels``.
    """
    if labels is None:
        raise ValueError("song: needs the samples' labels (labels=...)")
    labels = np.asarray(labels)
    tau = class_thresholds(
        _loss(shadow, loss_query, "mentr", variant),
        np.asarray(shadow_in, bool),
        labels,
        int(labels.max()) + 1,
    )
    return tau[labels] - _loss(target, loss_query, "mentr", variant)


# --------------------------------------------------------------------------- RMIA


def _rmia(target, shadow, shadow_in, *, offline: bool, a: float, gamma: float) -> np.ndarray:
    """RMIA (Zarifzadeh et al., ICML 2024) on the true-class probability.

    LR(x) = Pr(x|θ) / Pr(x), Pr(x) = mean over all reference models (online) or
    ½((1+a)·mean over OUT models + (1−a)) (offline); score(x) = fraction of the
    reference population z with LR(x)/LR(z) ≥ γ, averaged over queries.  z is the
    held-out test split (``test_p_true``): every shadow is OUT for it.
    """
    if "test_p_true" not in target or "test_p_true" not in shadow:
        raise ValueError("rmia: needs the test split's features (test_p_true) as population z")
    if gamma <= 0:
        raise ValueError(f"rmia: gamma must be > 0, got {gamma}")
    px, pz = target["p_true"], target["test_p_true"]
    sx, sz = shadow["p_true"], shadow["test_p_true"]
    if offline:
        _, _, out_x, _ = in_out_stats(sx, np.asarray(shadow_in, bool))
        ref_x = 0.5 * ((1 + a) * out_x + (1 - a))
        ref_z = 0.5 * ((1 + a) * np.nanmean(sz, 0) + (1 - a))
    else:
        ref_x = np.nanmean(sx, 0)
        ref_z = np.nanmean(sz, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lr_x = px / ref_x
        lr_z = pz / ref_z
    score = np.zeros(px.shape[0])
    for q in range(px.shape[1]):
        z = np.sort(lr_z[:, q][~np.isnan(lr_z[:, q])])
        # LR(x)/LR(z) ≥ γ  ⟺  LR(z) ≤ LR(x)/γ  (LR > 0)
        with np.errstate(invalid="ignore"):
            cnt = np.searchsorted(z, lr_x[:, q] / gamma, side="right")
        score += np.where(np.isnan(lr_x[:, q]), np.nan, cnt / max(len(z), 1))
    return score / px.shape[1]


def rmia_online(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    gamma: float = 1.0,
) -> np.ndarray:
    """RMIA online: Pr(x) is the mean true-class probability over all shadows."""
    return _rmia(target, shadow, shadow_in, offline=False, a=1.0, gamma=gamma)


def rmia_offline(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    a: float = 0.3,
    gamma: float = 1.0,
) -> np.ndarray:
    """RMIA offline: Pr(x) ≈ ½((1+a)·Pr_OUT(x) + (1−a)), the paper's linear correction
    (a = 0.3 on CIFAR in its experiments)."""
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"rmia_offline: a must be in [0, 1], got {a}")
    return _rmia(target, shadow, shadow_in, offline=True, a=a, gamma=gamma)


# --------------------------------------------------------------------------- registry

AttackFn = Callable[..., np.ndarray]

ATTACKS: dict[str, AttackFn] = {
    "curv_nll": curv_nll,
    "curv_lr": curv_lr,
    "lira_online": lira_online,
    "lira_offline": lira_offline,
    "yeom": yeom,
    "sablayrolles": sablayrolles,
    "watson": watson,
    "ye": ye,
    "song": song,
    "carlini_paper": carlini_paper,
    "rmia_online": rmia_online,
    "rmia_offline": rmia_offline,
}

# Table 1 of the paper: which attack, in its paper form, is which published row.
TABLE1_METHODS = {
    "curv_nll": "Curv NLL",
    "curv_lr": "Curv LR",
    "carlini_paper": "Carlini et al.",
    "yeom": "Yeom",
    "sablayrolles": "Sablayrolles",
    "watson": "Watson",
    "ye": "Ye",
    "song": "Song",
}
# Rows of our Table 1 with no published counterpart, each with the label it is shown under.
TABLE1_EXTRA = {"lira_online": "LiRA online, the proper attack (Carlini et al. 2022)"}


def attack_params(name: str) -> dict[str, object]:
    """The keyword parameters (with defaults) that attack ``name`` accepts."""
    sig = inspect.signature(ATTACKS[name])
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "labels"
    }


def check_attack_spec(spec: dict, where: str) -> None:
    """Validate one ``attacks`` config entry; the error names the entry and the key."""
    name = spec.get("name")
    if name not in ATTACKS:
        raise ValueError(
            f"{where}.name: unknown attack {name!r}; expected one of {sorted(ATTACKS)}"
        )
    allowed = attack_params(name)
    for key, value in spec.items():
        if key in ("name", "label"):
            continue
        if key not in allowed:
            raise ValueError(
                f"{where}.{key}: attack {name!r} has no parameter {key!r}; "
                f"accepted: {sorted(allowed)}"
            )
        if key == "variant" and value not in VARIANTS:
            raise ValueError(f"{where}.variant: expected one of {VARIANTS}, got {value!r}")
        if key == "form" and value not in CARLINI_FORMS:
            raise ValueError(f"{where}.form: expected one of {CARLINI_FORMS}, got {value!r}")


def spec_label(spec: dict) -> str:
    """The result label of a config entry (``label``, default the attack name)."""
    return spec.get("label", spec["name"])


def healthy_shadows(
    shadow_rows: list[int], test_acc: dict[int, float], floor: float, action: str
) -> tuple[list[int], list[int]]:
    """Split shadows into (kept, excluded) by test accuracy ≥ ``floor`` (model health).

    ``action="fail"`` raises instead of excluding; fewer than two kept shadows always
    raise, since IN/OUT statistics need both sides.
    """
    if action not in ("exclude", "fail"):
        raise ValueError(f"health.action must be 'exclude' or 'fail', got {action!r}")
    missing = [r for r in shadow_rows if r not in test_acc]
    if missing:
        raise ValueError(f"model health: no test accuracy for shadow rows {missing}")
    bad = [r for r in shadow_rows if not test_acc[r] >= floor]
    if bad and action == "fail":
        raise ValueError(
            f"health.min_test_acc: shadows {bad} have test accuracy "
            f"{[round(test_acc[r], 4) for r in bad]} below {floor}"
        )
    kept = [r for r in shadow_rows if r not in bad]
    if len(kept) < 2:
        raise ValueError(f"health.min_test_acc: only {len(kept)} shadows pass the floor {floor}")
    return kept, bad


def run_attack(
    spec: dict,
    target_feats: list[dict[str, np.ndarray]],
    shadow_feats: dict[str, np.ndarray],
    shadow_in: np.ndarray,
    target_in: np.ndarray,
    labels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the attack of one config entry against each target.

    Returns scores (T, N) and the targets' membership (T, N).
    """
    params = {k: v for k, v in spec.items() if k not in ("name", "label")}
    fn = ATTACKS[spec["name"]]
    scores = np.stack(
        [fn(t, shadow_feats, shadow_in, labels=labels, **params) for t in target_feats]
    )
    return scores.astype(np.float64), np.asarray(target_in, dtype=bool)
