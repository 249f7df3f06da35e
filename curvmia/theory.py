"""The paper's theory beside the measurements (docs/method.md: Theory).

The printed theorems of the paper could not be retrieved; as docs/method.md: Theory says, the
statements
below are exact for the precursor (Ravikumar et al., ICML 2024) and reconstructed for this
paper from its code and summaries:

- privacy ⇒ error stability: an ε-DP algorithm with loss in [0, L] is L(1 − e^−ε)
  error-stable (cross-entropy is clipped at L; the clipped fraction is reported);
- privacy ⇒ curvature: E[Curv] ≤ L(m + 1)(1 − e^−ε) + c₂;
- Thm 4.1: KL(train ‖ test) of output probabilities ≤ ε, whatever m;
- theory vs experiment: AUROC(ε) ≈ s·(L·m·(1 − e^−ε) + L + c)² + offset, fitted over s, c and
  offset with L and m known.

The fitted form is a quadratic in u = 1 − e^−ε whose three coefficients map one-to-one onto
(s, c, offset) when s ≠ 0, so the fit is started from the exact linear least-squares solution
and refined by ``scipy.optimize.curve_fit``, which also gives the covariance.  Whether the
form explains anything is judged by an F-test against the constant model (offset only).

A sweep's files are read by curvmia/sweeps.py; the figures are drawn by curvmia/theory_plots.py.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.optimize import curve_fit

from .distinguish import audit, distinguishability, epsilon_bounds, statistics
from .scorefile import load_score_file
from .sweeps import load_sweep_target, read_sweep

# --- bounds -----------------------------------------------------------------------------------


def error_stability_bound(eps, L: float):
    """L(1 − e^−ε): error stability of an ε-DP algorithm with loss clipped at L."""
    return L * -np.expm1(-np.asarray(eps, dtype=np.float64))


def curvature_bound(eps, m, L: float, c2: float = 0.0):
    """L(m + 1)(1 − e^−ε) + c₂: bound on the expected input-loss curvature."""
    return L * (np.asarray(m, dtype=np.float64) + 1) * -np.expm1(-np.asarray(eps, float)) + c2


def kl_bound(eps):
    """Thm 4.1: KL(train ‖ test) of output probabilities ≤ ε, independent of m."""
    return np.asarray(eps, dtype=np.float64).copy()


def auroc_form(eps, s: float, c: float, offset: float, *, L: float, m: float):
    """s·(L·m·(1 − e^−ε) + L + c)² + offset, the form fitted to AUROC against ε."""
    u = -np.expm1(-np.asarray(eps, dtype=np.float64))
    return s * (L * m * u + L + c) ** 2 + offset


# --- fit --------------------------------------------------------------------------------------


@dataclasses.dataclass
class BoundFit:
    """Result of fitting :func:`auroc_form` to (ε, AUROC) points."""

    L: float
    m: float
    n: int
    params: dict[str, float]
    stderr: dict[str, float]
    residuals: np.ndarray
    rss: float
    f_stat: float
    p_value: float
    significant: bool
    note: str

    def predict(self, eps) -> np.ndarray:
        p = self.params
        return auroc_form(eps, p["s"], p["c"], p["offset"], L=self.L, m=self.m)

    def summary(self) -> dict:
        out = {"L": self.L, "m": self.m, "n_points": self.n, "rss": self.rss}
        for k in ("s", "c", "offset"):
            out[k] = self.params[k]
            out[f"{k}_se"] = self.stderr[k]
        out.update(f_stat=self.f_stat, p_value=self.p_value, significant=self.significant)
        out["note"] = self.note
        return out


def _start_values(x: np.ndarray, y: np.ndarray, L: float, m: float) -> list[float]:
    """(s, c, offset) of the exact least-squares quadratic in u = 1 − e^−ε: curve_fit's start."""
    u = -np.expm1(-x)
    a = L * m
    a2, a1, a0 = np.linalg.lstsq(np.c_[u**2, u, np.ones_like(u)], y, rcond=None)[0]
    if a2 == 0:
        a2 = 1e-12
    s0 = a2 / a**2
    b0 = a1 * a / (2 * a2)
    return [s0, b0 - L, a0 - s0 * b0**2]


def _f_test(y: np.ndarray, rss: float, dof: int, level: float) -> tuple[float, float, bool]:
    """F statistic, p-value and significance (p < ``level``) of the fitted form against the
    constant model (offset only); NaN without residual freedom or with a perfect fit."""
    if dof > 0 and rss > 0:
        rss0 = float(((y - y.mean()) ** 2).sum())
        f_stat = ((rss0 - rss) / 2) / (rss / dof)
        p_value = float(sps.f.sf(f_stat, 2, dof))
    else:
        f_stat, p_value = float("nan"), float("nan")
    return float(f_stat), p_value, bool(np.isfinite(p_value) and p_value < level)


def _fit_note(
    n: int, dof: int, level: float, test: tuple[float, float, bool], params: dict, stderr: dict
) -> str:
    """Whether the fit explains the AUROCs (``test``: :func:`_f_test`'s), and which
    parameters are within 2 standard errors of 0."""
    f_stat, p_value, significant = test
    if dof <= 0:
        note = f"fit not significant: {n} points for 3 parameters leave no residual freedom"
    elif significant:
        note = f"fit significant: F = {f_stat:.3g}, p = {p_value:.2g} vs a constant AUROC"
    else:
        note = (
            f"fit not significant: F = {f_stat:.3g}, p = {p_value:.2g} (≥ {level:g}) vs a "
            "constant AUROC; the measurements do not show the bound's trend"
        )
    loose = [k for k, v in params.items() if not abs(v) > 2 * stderr[k]]
    if loose and dof > 0:
        note += f"; within 2 standard errors of 0: {', '.join(loose)}"
    return note


def fit_auroc(eps, auroc, *, L: float, m: float, level: float = 0.05) -> BoundFit:
    """Fit s, c and offset of :func:`auroc_form` (L, m fixed); standard errors, residuals and
    an F-test against the constant model (significant when p < ``level``)."""
    x = np.asarray(eps, dtype=np.float64)
    y = np.asarray(auroc, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    nan = float("nan")
    if n < 3 or len(np.unique(x)) < 3:
        return BoundFit(
            L, m, n, {"s": nan, "c": nan, "offset": nan}, {"s": nan, "c": nan, "offset": nan},
            np.full(n, nan), nan, nan, nan, False,
            f"not fitted: {n} points at {len(np.unique(x))} distinct epsilons (3 needed)",
        )  # fmt: skip
    p0 = _start_values(x, y, L, m)

    def f(e, s, c, offset):
        return auroc_form(e, s, c, offset, L=L, m=m)

    try:
        popt, pcov = curve_fit(f, x, y, p0=p0, maxfev=20000)
    except RuntimeError:
        popt, pcov = np.asarray(p0), np.full((3, 3), np.inf)
    resid = y - f(x, *popt)
    rss = float(resid @ resid)
    dof = n - 3
    se = np.sqrt(np.diag(pcov)) if dof > 0 else np.full(3, np.inf)
    test = _f_test(y, rss, dof, level)
    names = ("s", "c", "offset")
    params, stderr = dict(zip(names, map(float, popt))), dict(zip(names, map(float, se)))
    note = _fit_note(n, dof, level, test, params, stderr)
    return BoundFit(L, m, n, params, stderr, resid, rss, *test, note)


def crossover(m, curv_auroc, loss_auroc) -> tuple[float | None, str]:
    """Smallest m where the curvature attack overtakes the loss attack (linear interpolation
    between the bracketing sizes); None with the reason when it does not within the range."""
    m = np.asarray(m, dtype=np.float64)
    order = np.argsort(m)
    m = m[order]
    d = (np.asarray(curv_auroc, float) - np.asarray(loss_auroc, float))[order]
    if len(m) == 0:
        return None, "none within range (no sizes)"
    if d[0] > 0:
        return None, f"none within range: curvature is ahead already at the smallest m = {m[0]:g}"
    for i in range(1, len(m)):
        if d[i - 1] <= 0 < d[i]:
            mc = m[i - 1] + (m[i] - m[i - 1]) * (-d[i - 1]) / (d[i] - d[i - 1])
            note = f"curvature overtakes loss at m ≈ {mc:.0f} (between {m[i - 1]:g} and {m[i]:g})"
            return float(mc), note
    return None, f"none within range: loss stays ahead up to m = {m[-1]:g}"


# --- per-target analysis ----------------------------------------------------------------------


def clipped_loss_gap(loss: np.ndarray, is_member: np.ndarray, L: float) -> dict[str, float]:
    """Mean clipped loss min(ℓ, L) of non-members minus members (the empirical counterpart of
    error stability) and the fraction of samples whose loss exceeds L."""
    lc = np.minimum(loss, L)
    m = np.asarray(is_member, dtype=bool)
    return {
        "loss_gap_clipped": float(lc[~m].mean() - lc[m].mean()),
        "frac_clipped": float((loss > L).mean()),
    }


def analyse_target(
    features: dict[str, np.ndarray],
    is_member: np.ndarray,
    *,
    cfg: dict,
    attack_scores: dict[str, np.ndarray] | None = None,
    eps: float = math.inf,
) -> list[dict]:
    """One row per statistic: KL (both estimators), AUROC; plus, on every row, the clipped
    loss gap, the bounds at ``eps`` and the empirical epsilon of the best attack.

    ``attack_scores`` (label → (N,) scores) are the audited attacks; without them the
    statistics themselves are audited as threshold attacks.
    """
    L, q = cfg["loss_clip"], cfg["query"]
    st = statistics(features, q)
    rows = distinguishability(
        st, is_member, k=cfg["kl_k"], seed=cfg["seed"], null_reps=cfg["kl_null_reps"]
    )
    m = int(np.asarray(is_member, bool).sum())
    common = {
        "m": m,
        "eps_train": eps,
        "bound_error_stability": float(error_stability_bound(eps, L)),
        "bound_curvature": float(curvature_bound(eps, m, L, cfg["c2"])),
        "bound_kl": float(kl_bound(eps)),
        **clipped_loss_gap(features["loss"][:, q], is_member, L),
        **audit(
            attack_scores if attack_scores is not None else st,
            is_member,
            delta=cfg["delta"],
            alpha=cfg["alpha"],
            select_frac=cfg["audit_select"],
            seed=cfg["seed"],
        ),
    }
    return [{**r, **common} for r in rows]


def main_targets_frame(
    score_paths: list[str],
    rows: list[int],
    masks: np.ndarray,
    attack_results: dict[str, dict[str, np.ndarray]],
    cfg: dict,
) -> pd.DataFrame:
    """Theory table of the main experiment's targets (non-private: ε = ∞)."""
    out = []
    for path, row in zip(score_paths, rows):
        feats = load_score_file(path)
        member = masks[row]
        scores = {}
        for label, res in attack_results.items():
            idx = [int(t) for t in res["targets"]].index(row)
            if not np.array_equal(res["is_member"][idx], member):
                raise ValueError(f"attack {label}: membership of target {row} differs from masks")
            scores[label] = res["scores"][idx]
        for r in analyse_target(feats, member, cfg=cfg, attack_scores=scores or None):
            out.append({"target": row, **r})
    return pd.DataFrame(out)


# --- sweeps -----------------------------------------------------------------------------------


def sweep_frame(targets: pd.DataFrame, base: Path, cfg: dict) -> pd.DataFrame:
    """Per sweep target and statistic: KL, AUROC, clipped loss gap, bounds, empirical ε.

    The audit runs on the shadow-free statistics of the score file (the sweep's per-sample
    attack scores are not part of its outputs), so its empirical ε is that of the best
    threshold attack on loss, probability or curvature.
    """
    out = []
    for _, t in targets.iterrows():
        feats, member = load_sweep_target(t, base)
        eps = float(t["value"]) if t["sweep"] == "dp" else math.inf
        for r in analyse_target(feats, member, cfg=cfg, eps=eps):
            out.append(
                {"sweep": t["sweep"], "value": t["value"], "seed": int(t["seed"]),
                 "model": t["model"], "test_acc": t["test_acc"], **r}
            )  # fmt: skip
    return pd.DataFrame(out)


def attack_points(metrics: pd.DataFrame, attack: str, key: str) -> pd.DataFrame:
    """Per-target (value, seed, auroc) rows of one attack from a sweep metrics.csv."""
    mt = metrics[~metrics["target"].isin(["mean", "std"])]
    pts = mt[mt["attack"] == attack]
    if pts.empty:
        raise ValueError(
            f"theory.{key}: attack {attack!r} is not in the sweep's metrics.csv "
            f"(attacks: {sorted(set(mt['attack']))})"
        )
    return pts[["value", "seed", "auroc"]].astype({"value": float})


_TPR_COL = re.compile(r"tpr@([0-9.eE+-]+)")


def operating_point_epsilon(metrics: pd.DataFrame, *, delta: float, alpha: float) -> pd.DataFrame:
    """Empirical ε lower bound per sweep target from the attacks' TPR at fixed FPR in a
    metrics.csv (columns ``tpr@<fpr>``, with ``n_members`` and ``n_nonmembers``).

    Counts are TP = round(TPR·n_members) and FP = ceil(FPR·n_nonmembers). The threshold at
    a fixed FPR is an order statistic of the non-member scores, whose true FPR is
    Beta(FP + 1, n − FP) distributed, so the Clopper–Pearson upper limit stays valid; TPR is
    read off the interpolated ROC, so the bound is approximate. The best of all attacks ×
    FPRs is taken with a Bonferroni correction (α divided by the number of candidates).
    Empty cells (too few non-members for that FPR) are skipped.
    """
    mt = metrics[~metrics["target"].isin(["mean", "std"])]
    # interpolated TPR columns only (not tpr_strict@f, nor the bootstrap tpr@f_lo / _hi)
    cols = {c: float(m.group(1)) for c in mt.columns if (m := _TPR_COL.fullmatch(c))}
    rows = []
    for (value, seed), g in mt.groupby(["value", "seed"], sort=True):
        cands = []
        for c, f in cols.items():
            for _, r in g[g[c].notna()].iterrows():
                cands.append((r["attack"], f, r[c], int(r["n_members"]), int(r["n_nonmembers"])))
        best = {"value": value, "seed": int(seed), "eps_ops_lo": float("nan"),
                "eps_ops_attack": "", "eps_ops_fpr": float("nan")}  # fmt: skip
        for attack, f, tpr, n_pos, n_neg in cands:
            b = epsilon_bounds(
                round(tpr * n_pos), n_pos, math.ceil(f * n_neg - 1e-9), n_neg,
                delta=delta, alpha=alpha / len(cands),
            )  # fmt: skip
            lo = max(0.0, float(b["eps_lo"]))
            if not lo <= best["eps_ops_lo"]:
                best.update(eps_ops_lo=lo, eps_ops_attack=attack, eps_ops_fpr=f)
        rows.append(best)
    return pd.DataFrame(
        rows, columns=["value", "seed", "eps_ops_lo", "eps_ops_attack", "eps_ops_fpr"]
    )


def analyse_sweep(targets_csv: str, metrics_csv: str, sweep: str, cfg: dict) -> dict:
    """Everything the sweep figure and note need: per-target frame, attack AUROCs, and the
    bound fit (dp) or the curvature/loss crossover (size)."""
    targets, metrics = read_sweep(targets_csv, metrics_csv, sweep)
    if sweep == "dp":  # config errors before the (slow) per-target work
        pts = attack_points(metrics, cfg["fit_attack"], "fit_attack")
    else:
        c = attack_points(metrics, cfg["curv_attack"], "curv_attack")
        lo = attack_points(metrics, cfg["loss_attack"], "loss_attack")
    frame = sweep_frame(targets, Path(targets_csv).parent, cfg)
    ops = operating_point_epsilon(metrics, delta=cfg["delta"], alpha=cfg["alpha"])
    frame = frame.merge(ops.astype({"value": float}), how="left", on=["value", "seed"])
    res: dict = {"sweep": sweep, "frame": frame}
    if sweep == "dp":
        m_vals = frame.drop_duplicates("model")["m"]
        m_fix = float(np.median(m_vals))
        res["auroc"] = pts
        res["fit"] = fit_auroc(pts["value"], pts["auroc"], L=cfg["loss_clip"], m=m_fix)
        res["m_range"] = (int(m_vals.min()), int(m_vals.max()))
    else:
        mc = c.groupby("value")["auroc"].mean()
        ml = lo.groupby("value")["auroc"].mean()
        common = mc.index.intersection(ml.index)
        res["auroc"] = pd.DataFrame(
            {"m": common, "curv": mc.loc[common].values, "loss": ml.loc[common].values}
        )
        res["auroc_points"] = {"curv": c, "loss": lo}
        res["crossover"], res["crossover_note"] = crossover(
            common, mc.loc[common].values, ml.loc[common].values
        )
    return res


def _dp_fit_note(res: dict, cfg: dict) -> list[str]:
    """The DP sweep's AUROC range over ε and its bound fit."""
    pts = res["auroc"].groupby("value")["auroc"].mean()
    fit = res["fit"]
    p = fit.params
    return [
        f"DP sweep: {res['frame']['model'].nunique()} targets at ε in {sorted(set(pts.index))}; "
        f"{cfg['fit_attack']} AUROC {pts.min():.3f}..{pts.max():.3f} "
        f"(ε {pts.idxmin():g} → {pts.idxmax():g}).",
        f"Bound fit (L = {fit.L:g}, m = {fit.m:g}): s = {p['s']:.3g} ± {fit.stderr['s']:.2g}, "
        f"c = {p['c']:.3g} ± {fit.stderr['c']:.2g}, offset = {p['offset']:.3g} ± "
        f"{fit.stderr['offset']:.2g}; RSS {fit.rss:.3g} over {fit.n} points. {fit.note}.",
    ]


def _dp_kl_note(f: pd.DataFrame) -> str:
    """KL of p_true (kNN) against its null and against the ε bound, per DP target."""
    pr = f[f["statistic"] == "p_true"].drop_duplicates("model")
    above = int((pr["kl_knn"] > pr["eps_train"]).sum())
    sig = int(pr["kl_knn_above_null"].sum())
    return (
        f"KL of p_true (kNN) {pr['kl_knn'].min():.3g}..{pr['kl_knn'].max():.3g} (its null on "
        f"shuffled labels {pr['kl_knn_null_mean'].mean():.3g} ± "
        f"{pr['kl_knn_null_sd'].mean():.2g}); above the null's 95% quantile for {sig} and "
        f"above the ε bound for {above} of {len(pr)} targets."
    )


def _dp_epsilon_note(f: pd.DataFrame, cfg: dict) -> list[str]:
    """Empirical ε (audit and operating points) and the clipped loss gap against the bounds."""
    one = f.drop_duplicates("model")
    viol = int((one["eps_emp_lo"] > one["eps_train"]).sum())
    lines = [
        f"Empirical ε lower bound (δ = {cfg['delta']:g}, {100 * (1 - cfg['alpha']):g}% "
        f"confidence) {one['eps_emp_lo'].min():.3g}..{one['eps_emp_lo'].max():.3g}; exceeds "
        f"the training ε for {viol} of {len(one)} targets"
        + (" (a DP violation or a bug)." if viol else ".")
    ]
    ops = one["eps_ops_lo"].dropna()
    if len(ops):
        lines.append(
            f"From the attacks' TPR at fixed FPR in metrics.csv: ε ≥ {ops.min():.3g}.."
            f"{ops.max():.3g}; exceeds the training ε for "
            f"{int((one['eps_ops_lo'] > one['eps_train']).sum())} of {len(one)} targets."
        )
    else:
        lines.append("metrics.csv reports no TPR at fixed FPR (too few non-members).")
    gap_ok = int((one["loss_gap_clipped"] <= one["bound_error_stability"]).sum())
    lines.append(
        f"Clipped loss gap within the error-stability bound L(1−e^−ε) for {gap_ok} of "
        f"{len(one)} targets; {100 * one['frac_clipped'].max():.2g}% of losses clipped at most."
    )
    return lines


def _size_note(res: dict, cfg: dict) -> list[str]:
    """The size sweep's AUROCs by m, their crossover, and KL by m beside its null."""
    f, a = res["frame"], res["auroc"]
    lines = [
        f"Size sweep: m in {[int(v) for v in a['m']]}; {cfg['curv_attack']} AUROC "
        + ", ".join(f"{v:.3f}" for v in a["curv"])
        + f"; {cfg['loss_attack']} AUROC "
        + ", ".join(f"{v:.3f}" for v in a["loss"])
        + ".",
        f"Crossover: {res['crossover_note']}.",
    ]
    for stat, est in (("logcurv_zo", "kl_knn"), ("loss", "kl_knn"), ("logcurv_zo", "kl_gauss"),
                      ("log_loss", "kl_gauss")):  # fmt: skip
        g = f[f["statistic"] == stat].groupby("value")
        if not len(g):
            continue
        v, nm, ns = g[est].mean(), g[f"{est}_null_mean"].mean(), g[f"{est}_null_sd"].mean()
        lines.append(
            f"KL {stat} ({est[3:]}) by m, [null on shuffled labels, mean ± sd]: "
            + ", ".join(f"{k:g}: {v[k]:.3g} [{nm[k]:.2g} ± {ns[k]:.2g}]" for k in v.index)
        )
    return lines


def sweep_note(res: dict, cfg: dict) -> str:
    """Plain-text summary, in numbers, of what a sweep shows."""
    if res["sweep"] == "dp":
        f = res["frame"]
        lines = [*_dp_fit_note(res, cfg), _dp_kl_note(f), *_dp_epsilon_note(f, cfg)]
    else:
        lines = _size_note(res, cfg)
    lines.append(
        "On the small default dataset these sweeps prove the pipeline; they are not expected to "
        "reproduce the paper's trends."
    )
    return "\n".join(lines) + "\n"
