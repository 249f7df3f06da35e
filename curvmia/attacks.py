"""Membership inference attacks (SPEC §4), vectorised over (shadows, samples, queries).

Every attack has one signature::

    fn(target: dict[str, (N, Q)], shadow: dict[str, (S, N, Q)], shadow_in: (S, N) bool,
       *, labels: (N,) | None = None, **params) -> (N,) score, higher = member

``target`` and ``shadow`` map feature names (``curv_zo``, ``loss``, ``p_true``,
``p_max``, ``phi``, ``phi_max``, ``mentr``) to arrays.  Per sample and query,
the IN statistics run over the shadows whose mask holds the sample, the OUT
statistics over the rest (nan-aware means, population variances).  A sample
with no IN (or no OUT) shadow gets NaN from the attacks that need that side;
the metrics rank NaN lowest (see ``metrics``).

``variant="paper"`` reproduces the released code that produced the published
numbers; ``variant="clean"`` is the mathematically proper form.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy.special import log_ndtr

VARIANTS = ("paper", "clean")
LOG_EPS = 1e-22
LOG_2PI = np.log(2 * np.pi)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def in_out_stats(
    x: np.ndarray, shadow_in: np.ndarray, center: str = "mean"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-(sample, query) centre and population variance over IN and OUT shadows.

    ``x`` is (S, N, Q), ``shadow_in`` (S, N).  Returns mu_in, var_in, mu_out,
    var_out, each (N, Q); NaN where a side has no shadow.  ``center`` is
    ``mean`` or ``median``; the variance is always about the mean.
    """
    m = shadow_in[:, :, None]
    xin = np.where(m, x, np.nan)
    xout = np.where(m, np.nan, x)
    cfun = {"mean": np.nanmean, "median": np.nanmedian}[center]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return cfun(xin, 0), np.nanvar(xin, 0), cfun(xout, 0), np.nanvar(xout, 0)


def _log_gauss(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Gaussian log-density with standard deviation ``sd``."""
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * LOG_2PI


def _logcurv(d: dict[str, np.ndarray], feature: str) -> np.ndarray:
    return np.log(d[feature] + LOG_EPS)


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

    paper: Σ_a [(s−μ_out)² − (s−μ_in)²] / (2·V_in²), V_in the IN *variance*.
    clean: Σ_a [log N(s; μ_in, σ_in) − log N(s; μ_out, σ_out)].
    """
    _check_variant(variant)
    s = _logcurv(target, feature)
    mu_in, var_in, mu_out, var_out = in_out_stats(_logcurv(shadow, feature), shadow_in)
    with np.errstate(divide="ignore", invalid="ignore"):
        if variant == "paper":
            per_q = ((s - mu_out) ** 2 - (s - mu_in) ** 2) / (2 * var_in**2)
        else:
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

    paper: Σ_a g(s; μ_in, V_in) / (Σ_a g(s; μ_out, V_out) + 1e-22), g the
    Gaussian density with the variance V where the std belongs (V = 1 with
    ``unit_variance``, as on ImageNet).  clean: mean over queries of the
    Gaussian log-ratio with the standard deviations.
    """
    _check_variant(variant)
    s = _logcurv(target, feature)
    mu_in, var_in, mu_out, var_out = in_out_stats(_logcurv(shadow, feature), shadow_in)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if variant == "paper":
            if unit_variance:
                var_in = np.ones_like(var_in)
                var_out = np.ones_like(var_out)
            g_in = np.exp(_log_gauss(s, mu_in, var_in)).sum(1)
            g_out = np.exp(_log_gauss(s, mu_out, var_out)).sum(1)
            return g_in / (g_out + LOG_EPS)
        sd_in = np.ones_like(var_in) if unit_variance else np.sqrt(var_in)
        sd_out = np.ones_like(var_out) if unit_variance else np.sqrt(var_out)
        return (_log_gauss(s, mu_in, sd_in) - _log_gauss(s, mu_out, sd_out)).mean(1)


def _lira_inputs(target: dict, shadow: dict, shadow_in, variant: str, center: str | None):
    _check_variant(variant)
    feature = "phi_max" if variant == "paper" else "phi"
    center = center or ("mean" if variant == "paper" else "median")
    obs = target[feature]
    stats = in_out_stats(shadow[feature], shadow_in, center)
    return feature, obs, stats


def _std(var: np.ndarray, x: np.ndarray, mask: np.ndarray, fix_variance: bool) -> np.ndarray:
    """Per-example std, or one global std over the masked shadow values."""
    if fix_variance:
        return np.full_like(var, np.nanstd(np.where(mask[:, :, None], x, np.nan)))
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
    (true class) with median centres (LiRA's code).  Mean over queries.
    """
    feature, obs, (mu_in, var_in, mu_out, var_out) = _lira_inputs(
        target, shadow, shadow_in, variant, center
    )
    x = shadow[feature]
    sd_in = _std(var_in, x, shadow_in, fix_variance) + 1e-30
    sd_out = _std(var_out, x, ~shadow_in, fix_variance) + 1e-30
    with np.errstate(divide="ignore", invalid="ignore"):
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
    feature, obs, (_, _, mu_out, var_out) = _lira_inputs(target, shadow, shadow_in, variant, center)
    sd_out = _std(var_out, shadow[feature], ~shadow_in, fix_variance) + 1e-30
    with np.errstate(divide="ignore", invalid="ignore"):
        if variant == "paper":
            return -_log_gauss(obs, mu_out, sd_out).mean(1)
        return log_ndtr((obs - mu_out) / sd_out).mean(1)


def yeom(
    target: dict,
    shadow: dict,
    shadow_in: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    loss_query: int = 0,
) -> np.ndarray:
    """Yeom et al. (2018): minus the target's loss on query ``loss_query``."""
    return -target["loss"][:, loss_query]


AttackFn = Callable[..., np.ndarray]

ATTACKS: dict[str, AttackFn] = {
    "curv_nll": curv_nll,
    "curv_lr": curv_lr,
    "lira_online": lira_online,
    "lira_offline": lira_offline,
    "yeom": yeom,
}


def attack_params(name: str) -> dict[str, object]:
    """The keyword parameters (with defaults) that attack ``name`` accepts."""
    import inspect

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
