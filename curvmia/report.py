"""Tables and figures of an experiment: tidy metrics, a markdown table, ROC and histogram plots."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .metrics import roc_curve, summarize  # noqa: E402

AGGREGATES = ("mean", "std")


def metrics_frame(
    attack_results: dict[str, dict[str, np.ndarray]],
    *,
    fprs: list[float],
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Tidy metrics: one row per attack × target, then ``mean`` and ``std`` (ddof 0) rows.

    ``attack_results`` maps an attack label to ``{"scores": (T, N),
    "is_member": (T, N), "targets": (T,)}`` as written by the attack step.
    """
    rows = []
    for label, res in attack_results.items():
        for t, target in enumerate(res["targets"]):
            m = summarize(
                res["scores"][t], res["is_member"][t], fprs=fprs, n_boot=n_boot, seed=seed + t
            )
            rows.append({"attack": label, "target": str(int(target)), **m})
    df = pd.DataFrame(rows)
    metric_cols = [c for c in df.columns if c not in ("attack", "target")]
    agg = []
    for label, g in df.groupby("attack", sort=False):
        for name in AGGREGATES:
            vals = g[metric_cols].agg(name, ddof=0) if name == "std" else g[metric_cols].mean()
            agg.append({"attack": label, "target": name, **vals.to_dict()})
    return pd.concat([df, pd.DataFrame(agg)], ignore_index=True)


def _pct(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def markdown_table(df: pd.DataFrame, fprs: list[float]) -> str:
    """Mean ± std over targets (in %) per attack, in the paper's Table 1 spirit."""
    mean = df[df.target == "mean"].set_index("attack")
    std = df[df.target == "std"].set_index("attack")
    cols = ["auroc", "bal_acc_paper", "bal_acc_best"] + [f"tpr@{f:g}" for f in fprs]
    heads = ["AUROC %", r"Bal. acc. % (\|FPR+TPR−1\| thr.)", "Bal. acc. % (best thr.)"] + [
        f"TPR % @ {100 * f:g}% FPR" for f in fprs
    ]
    lines = ["| attack | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for label in mean.index:
        cells = [_pct(mean.loc[label, c], std.loc[label, c]) for c in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    n_non = int(df[df.target == "mean"]["n_nonmembers"].min())
    skipped = [f for f in fprs if n_non < 10 / f]
    n_targets = df[~df.target.isin(AGGREGATES)].groupby("attack").size().max()
    notes = ["", f"Mean ± std (ddof 0) over {n_targets} targets."]
    if skipped:
        notes.append(
            "n/a: TPR at FPR "
            + ", ".join(f"{100 * f:g}%" for f in skipped)
            + f" is not reported: each target has only {n_non} non-members, fewer than 10/FPR."
        )
    return "\n".join(lines + notes) + "\n"


def plot_roc(attack_results: dict[str, dict[str, np.ndarray]], path: str) -> None:
    """Log-log ROC curves of every attack, one panel per target."""
    first = next(iter(attack_results.values()))
    n_t = len(first["targets"])
    fig, axes = plt.subplots(1, n_t, figsize=(4.2 * n_t, 4.0), squeeze=False)
    for t in range(n_t):
        ax = axes[0, t]
        for label, res in attack_results.items():
            fpr, tpr = roc_curve(res["scores"][t], res["is_member"][t])
            ax.plot(fpr, tpr, label=label, lw=1.2)
        n_non = int((~first["is_member"][t]).sum())
        lo = 1.0 / n_non
        ax.plot([lo, 1], [lo, 1], "k:", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, 1)
        ax.set_ylim(lo, 1)
        ax.set_xlabel("FPR")
        ax.set_ylabel("TPR")
        ax.set_title(f"target model {int(first['targets'][t])}")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curv_hist(
    curv: np.ndarray, is_member: np.ndarray, path: str, *, title: str, eps: float = 1e-22
) -> None:
    """Histogram of log ZO curvature of members vs non-members (exact zeros shown at log eps)."""
    s = np.log(np.asarray(curv, dtype=np.float64) + eps)
    finite = s[s > np.log(eps) + 1]
    bins = np.linspace(finite.min(), finite.max(), 50) if finite.size else 50
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.hist(s[is_member], bins=bins, alpha=0.55, density=True, label=f"members ({is_member.sum()})")
    ax.hist(
        s[~is_member],
        bins=bins,
        alpha=0.55,
        density=True,
        label=f"non-members ({(~is_member).sum()})",
    )
    n_zero = int((curv == 0).sum())
    ax.set_xlabel("log curv_zo (query 0)")
    ax.set_ylabel("density")
    ax.set_title(title + (f" ({n_zero} exact zeros not shown)" if n_zero else ""), fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
