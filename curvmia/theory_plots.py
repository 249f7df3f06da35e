"""The theory figures (docs/method.md: Theory): a DP or size sweep's AUROC, KL and empirical ε
against the bounds, with the sweep's note under the axes, and where the main experiment's
targets stand against the ε bounds. The numbers come from curvmia/theory.py."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .theory import error_stability_bound, kl_bound, sweep_note  # noqa: E402


def _null_band(ax, x, g: pd.DataFrame, est: str, color: str) -> None:
    """Shade the estimator's null (shuffled labels): mean ± 2 sd at each x."""
    mu = np.asarray(g[f"{est}_null_mean"], dtype=float)
    sd = np.asarray(g[f"{est}_null_sd"], dtype=float)
    if np.isfinite(mu).any():
        ax.fill_between(np.asarray(x, dtype=float), mu - 2 * sd, mu + 2 * sd, color=color,
                        alpha=0.15, lw=0)  # fmt: skip


def _dp_auroc_panel(ax, res: dict, cfg: dict) -> None:
    """The fit attack's AUROC per DP target with the fitted bound form."""
    pts, fit = res["auroc"], res["fit"]
    ax.plot(pts["value"], pts["auroc"], "o", label=f"{cfg['fit_attack']} (targets)")
    if np.isfinite(fit.params["s"]):
        grid = np.linspace(0, max(pts["value"].max(), 1e-3) * 1.05, 200)
        ax.plot(grid, fit.predict(grid), "-", label="fitted bound form")
    ax.set(xlabel="training ε", ylabel="AUROC", title="AUROC vs ε")
    ax.legend(fontsize=7)


def _dp_kl_panel(ax, f: pd.DataFrame) -> None:
    """kNN KL of every statistic against training ε, each with its null, and KL ≤ ε."""
    for i, stat in enumerate(sorted(set(f["statistic"]))):
        g = f[f["statistic"] == stat].sort_values("eps_train")
        ax.plot(g["eps_train"], g["kl_knn"], "o", ms=4, color=f"C{i}", label=f"{stat} (kNN)")
        _null_band(ax, g["eps_train"], g, "kl_knn", f"C{i}")
    e = np.sort(f["eps_train"].unique())
    ax.plot(e, kl_bound(e), "k--", label="bound KL ≤ ε (probabilities)")
    ax.set(xlabel="training ε", ylabel="KL(members ‖ non-members)", title="KL vs ε")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.legend(fontsize=7)


def _dp_epsilon_panel(ax, f: pd.DataFrame, cfg: dict) -> None:
    """Empirical ε (point estimate and the two lower bounds) against training ε."""
    one = f.drop_duplicates("model")
    e = np.sort(f["eps_train"].unique())
    finite = np.isfinite(one["eps_emp"])
    ax.plot(one["eps_train"][finite], one["eps_emp"][finite], "o", mfc="none",
            label="empirical ε (point estimate)")  # fmt: skip
    ax.plot(one["eps_train"], one["eps_emp_lo"], "v", label="ε lower bound (statistics)")
    ax.plot(one["eps_train"], one["eps_ops_lo"], "^", label="ε lower bound (attacks' TPR@FPR)")
    ax.plot(e, e, "k--", label="training ε")
    ax.set(xlabel="training ε", ylabel="ε", title=f"empirical ε (δ = {cfg['delta']:g})")
    ax.legend(fontsize=7)


def _size_auroc_panel(ax, res: dict, cfg: dict) -> None:
    """Curvature and loss AUROC against m (targets and their mean), with the crossover."""
    a, ap = res["auroc"], res["auroc_points"]
    for i, (key, lab) in enumerate((("curv", cfg["curv_attack"]), ("loss", cfg["loss_attack"]))):
        ax.plot(ap[key]["value"], ap[key]["auroc"], "o", color=f"C{i}", alpha=0.5)
        ax.plot(a["m"], a[key], "-", color=f"C{i}", label=lab)
    if res["crossover"] is not None:
        ax.axvline(res["crossover"], color="k", ls=":", label="crossover")
    ax.set(xlabel="training-set size m", ylabel="AUROC", title="AUROC vs m", xscale="log")
    ax.legend(fontsize=7)


def _size_kl_panel(ax, f: pd.DataFrame, est: str, stats: tuple[str, str]) -> None:
    """KL of ``stats`` by ``est`` against m: targets, their mean and the mean null band."""
    for i, stat in enumerate(stats):
        g = f[f["statistic"] == stat]
        ax.plot(g["value"], g[est], "o", ms=4, color=f"C{i}", label=stat)
        gm = g.groupby("value")[[est, f"{est}_null_mean", f"{est}_null_sd"]].mean()
        ax.plot(gm.index, gm[est], "-", color=f"C{i}")
        _null_band(ax, gm.index, gm, est, f"C{i}")
    ax.set(xlabel="training-set size m", ylabel="KL", xscale="log",
           title=f"KL(members ‖ non-members), {est[3:]}; band: null ± 2 sd")  # fmt: skip
    ax.legend(fontsize=7)


def plot_sweep(res: dict, cfg: dict, path: str) -> None:
    """DP: AUROC with the fitted bound curve, KL with the ε bound, empirical ε vs training ε.
    Size: AUROC and KL against m for curvature and loss. The note is printed under the axes."""
    f = res["frame"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    if res["sweep"] == "dp":
        _dp_auroc_panel(axes[0], res, cfg)
        _dp_kl_panel(axes[1], f)
        _dp_epsilon_panel(axes[2], f, cfg)
    else:
        _size_auroc_panel(axes[0], res, cfg)
        # Gaussian KL only for statistics a Gaussian models fairly (log loss, not raw loss)
        _size_kl_panel(axes[1], f, "kl_knn", ("logcurv_zo", "loss"))
        _size_kl_panel(axes[2], f, "kl_gauss", ("logcurv_zo", "log_loss"))
    note = sweep_note(res, cfg)
    fig.text(0.01, 0.01, note, fontsize=7, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.07 + 0.028 * note.count("\n"), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_main(frame: pd.DataFrame, cfg: dict, path: str) -> None:
    """Where the main targets stand against the ε bounds: the error-stability bound with the
    measured clipped loss gap, and the KL ≤ ε bound with the measured KL of p_true, each with
    the empirical ε lower bound the best attack proves."""
    one = frame.drop_duplicates("target")
    top = max(float(one["eps_emp_lo"].max()) * 2, 5.0)
    e = np.linspace(0, top, 300)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    ax.plot(e, error_stability_bound(e, cfg["loss_clip"]), "k-", label="L(1−e^−ε)")
    for _, r in one.iterrows():
        ax.axhline(r["loss_gap_clipped"], ls=":", lw=1, label=f"gap, target {r['target']}")
    ax.set(
        xlabel="ε", ylabel="clipped loss gap", title=f"error stability (L = {cfg['loss_clip']:g})"
    )
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(e, kl_bound(e), "k-", label="KL ≤ ε")
    # only the nonparametric estimate, and only with its null beside it: an estimate inside its
    # null is labelled so, never shown as a measured KL
    pt = frame[frame["statistic"] == "p_true"]
    for i, (_, r) in enumerate(pt.iterrows()):
        lo = r["kl_knn_null_mean"] - 2 * r["kl_knn_null_sd"]
        hi = r["kl_knn_null_mean"] + 2 * r["kl_knn_null_sd"]
        if np.isfinite(lo):
            ax.axhspan(lo, hi, color=f"C{i}", alpha=0.12, lw=0)
        tag = "" if r["kl_knn_above_null"] else " — within its null, no evidence"
        ax.axhline(r["kl_knn"], ls=":", lw=1, color=f"C{i}",
                   label=f"KL p_true (kNN), target {r['target']}{tag}")  # fmt: skip
    for _, r in one.iterrows():
        ax.axvline(r["eps_emp_lo"], color="r", ls="--", lw=0.8)
    ax.set(xlabel="ε", ylabel="KL(members ‖ non-members)",
           title="p_true KL, band: its null ± 2 sd (red: empirical ε lower bounds)")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
