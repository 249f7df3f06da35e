"""The report's matplotlib figures: log-log ROC curves of every attack, the most exposed
images, the curvature histogram of members and non-members, and a text-only stand-in."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .metrics import roc_curve  # noqa: E402

ROC_STYLES = ("-", "--", "-.", ":")


def _mean_roc(res: dict[str, np.ndarray], grid: np.ndarray) -> tuple[np.ndarray, float]:
    """TPR averaged over the targets at each FPR of ``grid``, and the mean AUROC."""
    tprs, aucs = [], []
    for t in range(len(res["targets"])):
        fpr, tpr = roc_curve(res["scores"][t], res["is_member"][t])
        tprs.append(np.interp(grid, fpr, tpr))
        aucs.append(float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))
    return np.mean(tprs, 0), float(np.mean(aucs))


def roc_panels(
    labels: list[str], table1: set[str], aurocs: dict[str, float]
) -> list[list[tuple[str, object, str]]]:
    """Attack labels split into the paper's Table 1 attacks and the rest, each panel ordered
    by AUROC (highest first), each label with a (colour, line style) distinct in its panel."""
    colours = [plt.get_cmap("tab10")(i) for i in range(10)]
    panels = []
    for members in ([x for x in labels if x in table1], [x for x in labels if x not in table1]):
        ordered = sorted(members, key=lambda x: (-aurocs[x], x))
        panels.append(
            [
                (x, colours[i % 10], ROC_STYLES[(i // 10 + i) % len(ROC_STYLES)])
                for i, x in enumerate(ordered)
            ]
        )
    return [p for p in panels if p]


def plot_roc(
    attack_results: dict[str, dict[str, np.ndarray]],
    path: str,
    *,
    table1: set[str] | frozenset[str] = frozenset(),
) -> list[list[tuple[str, object, str]]]:
    """Log-log ROC curves, TPR averaged over the targets at each FPR of a common log grid
    (vertical averaging): the paper's Table 1 attacks (labels in ``table1``) in the left
    panel, the others in the right one, legends ordered by AUROC. Returns the panels'
    (label, colour, style)."""
    first = next(iter(attack_results.values()))
    n_non = int(min((~np.asarray(m, bool)).sum() for m in first["is_member"]))
    lo = 1.0 / n_non
    grid = np.logspace(np.log10(lo), 0, 200)
    curves = {label: _mean_roc(res, grid) for label, res in attack_results.items()}
    aurocs = {label: auc for label, (_, auc) in curves.items()}
    panels = roc_panels(list(attack_results), set(table1), aurocs)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.0), squeeze=False)
    titles = ["the paper's Table 1 attacks", "the other attacks"] if len(panels) == 2 else [""]
    if len(panels) == 1:
        titles = ["the paper's Table 1 attacks" if panels[0][0][0] in table1 else "all attacks"]
    for ax, panel, title in zip(axes[0], panels, titles):
        for label, colour, style in panel:
            tpr, auc = curves[label]
            ax.plot(grid, tpr, color=colour, ls=style, lw=1.4, label=f"{label} ({auc:.3f})")
        ax.plot([lo, 1], [lo, 1], color="0.5", ls=(0, (1, 3)), lw=0.8, label="chance")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, 1)
        ax.set_ylim(lo, 1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{title}: TPR averaged over {len(first['targets'])} targets", fontsize=9)
        ax.legend(fontsize=7, loc="lower right", title="attack (AUROC)", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return panels


def plot_exposed(
    images: np.ndarray, vuln: pd.DataFrame, path: str, *, top_k: int, rank_label: str
) -> None:
    """The ``top_k`` most exposed population images with label and exposure."""
    top = vuln.head(top_k)
    cols = min(6, max(1, len(top)))
    rows = max(1, math.ceil(len(top) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.9 * rows), squeeze=False)
    others = [
        c for c in vuln.columns if c.startswith("exposure_") and c != f"exposure_{rank_label}"
    ]
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, r) in zip(axes.ravel(), top.iterrows()):
        img = images[int(r["sample"])]
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        best_other = max((r[c] for c in others if not math.isnan(r[c])), default=float("nan"))
        ax.set_title(
            f"#{int(r['sample'])} label {int(r['label'])}\n"
            f"{rank_label} {r[f'exposure_{rank_label}']:.3f}"
            f" (score {r[f'score_{rank_label}']:.3g})\n"
            f"max other {best_other:.3f}",
            fontsize=7,
        )
    fig.suptitle(f"Most exposed members (ranked by {rank_label} exposure)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_text(path: str, text: str) -> None:
    """A figure holding only ``text`` (a plot that cannot be drawn says why)."""
    import textwrap

    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    ax.axis("off")
    ax.text(0.02, 0.5, textwrap.fill(text, 80), fontsize=8, va="center")
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


def plot_stability(pairs: pd.DataFrame, samples: pd.DataFrame, path: str) -> None:
    """Left: pairwise Jaccard agreement of flagged members per attack (one dot per pair of
    targets sharing members). Right: per attack, the share of member samples flagged by
    k targets out of those it is a member of, k = 0..max."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.0, 4.0))
    labels = [c.removeprefix("n_flagged_") for c in samples.columns if c.startswith("n_flagged_")]
    for x, label in enumerate(labels):
        jac = pairs.loc[pairs["attack"] == label, "jaccard"].dropna().to_numpy()
        ax1.plot(np.full(len(jac), x), jac, "o", alpha=0.5, ms=4)
    ax1.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("Jaccard of flagged shared members")
    ax1.set_title("Agreement between pairs of targets", fontsize=9)
    n_member = samples["n_targets_member"].to_numpy() if len(samples) else np.zeros(0)
    member = n_member > 0
    k_max = int(n_member.max(initial=0))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        n = samples[f"n_flagged_{label}"].to_numpy()[member]
        if np.isnan(n).all():
            continue
        share = [(n == k).mean() for k in range(k_max + 1)]
        ax2.bar(np.arange(k_max + 1) - 0.4 + (i + 0.5) * width, share, width, label=label)
    ax2.set_xticks(range(k_max + 1))
    ax2.set_xlabel("number of targets flagging the sample (as a member)")
    ax2.set_ylabel("share of member samples")
    ax2.set_title("How many targets flag each member sample", fontsize=9)
    ax2.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_budget(summary: pd.DataFrame, path: str, *, unit: str, fpr_level: float) -> None:
    """The shadow budget (curvmia/budget.py: budget_summary): per attack, mean AUROC and mean
    label-free TPR against K on a log axis, bars ± the std over draws."""
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6), sharex=True)
    colours = [plt.get_cmap("tab20")(i) for i in range(20)]
    level = "no supported level" if np.isnan(fpr_level) else f"FPR {fpr_level:g}"
    for i, (label, g) in enumerate(summary.groupby("attack", sort=False)):
        style = {"color": colours[i % 20], "ls": ROC_STYLES[(i // 20) % len(ROC_STYLES)]}
        for ax, col in zip(axes, ("auroc", "tpr"), strict=True):
            ok = g[col].notna()
            if ok.any():
                ax.errorbar(
                    g.n_refs[ok], g[col][ok], yerr=g[col + "_std"][ok], marker="o", ms=3,
                    capsize=2, lw=1, label=label, **style,
                )  # fmt: skip
    for ax, name in zip(axes, ("AUROC", f"label-free TPR ({level})"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"K: reference {unit} in the subset")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].axhline(0.5, color="grey", lw=0.8, ls=":")
    ks = sorted(summary.n_refs.unique())
    axes[0].set_xticks(ks, [str(k) for k in ks])
    axes[1].legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle("Shadow budget: mean ± std over the seeded subsets of each K", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
