"""Markdown tables of the tidy metric frames (curvmia/metric_frames.py): mean ± std of every
metric, per-target bootstrap intervals, paired AUROC differences, the shadow coverage note."""

from __future__ import annotations

import math

import pandas as pd

from .metric_frames import AGGREGATES


def pct_cell(mean: float, std: float) -> str:
    """``mean ± std`` in percent with two decimals, or n/a for a NaN mean."""
    if math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def markdown_table(df: pd.DataFrame, fprs: list[float]) -> str:
    """Mean ± std over targets (in %) of every metric of every attack.

    TPR columns: interpolated on the ROC and, labelled *strict*, the LiRA/MICO
    convention (last ROC point with FPR < target)."""
    mean = df[df.target == "mean"].set_index("attack")
    std = df[df.target == "std"].set_index("attack")
    cols = ["auroc", "bal_acc_paper", "bal_acc_best"]
    heads = ["AUROC %", r"Bal. acc. % (\|FPR+TPR−1\| thr.)", "Bal. acc. % (best thr.)"]
    for f in fprs:
        cols += [f"tpr@{f:g}", f"tpr_strict@{f:g}"]
        heads += [f"TPR % @ {100 * f:g}% FPR (interp.)", f"TPR % @ FPR < {100 * f:g}% (strict)"]
    lines = ["| attack | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for label in mean.index:
        cells = [pct_cell(mean.loc[label, c], std.loc[label, c]) for c in cols]
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


def interval_table(df: pd.DataFrame, ci_fpr: float = 0.01) -> str:
    """Per-target AUROC and TPR@ci_fpr with their 95% bootstrap intervals (in %)."""
    per = df[~df.target.isin(AGGREGATES)]
    key = f"tpr@{ci_fpr:g}"
    lines = [
        f"| attack | target | AUROC % [95% CI] | TPR % @ {100 * ci_fpr:g}% FPR [95% CI] |",
        "|---|---|---|---|",
    ]
    for _, r in per.iterrows():
        auc = f"{100 * r.auroc:.2f}"
        if "auroc_lo" in r and not math.isnan(r.auroc_lo):
            auc += f" [{100 * r.auroc_lo:.2f}, {100 * r.auroc_hi:.2f}]"
        tpr = "n/a"
        if key in r and not math.isnan(r[key]):
            tpr = f"{100 * r[key]:.2f}"
            if key + "_lo" in r and not math.isnan(r[key + "_lo"]):
                tpr += f" [{100 * r[key + '_lo']:.2f}, {100 * r[key + '_hi']:.2f}]"
        lines.append(f"| {r.attack} | {r.target} | {auc} | {tpr} |")
    return "\n".join(lines) + "\n"


def diff_markdown(diff: pd.DataFrame, skipped: list[list[str]]) -> str:
    """Paired AUROC differences per target with their 95% intervals."""
    lines = ["| a − b | target | ΔAUROC % [95% paired CI] |", "|---|---|---|"]
    for _, r in diff.iterrows():
        cell = f"{100 * r['diff']:+.2f}"
        if r.target not in AGGREGATES and not math.isnan(r.diff_lo):
            cell += f" [{100 * r.diff_lo:+.2f}, {100 * r.diff_hi:+.2f}]"
        lines.append(f"| {r.a} − {r.b} | {r.target} | {cell} |")
    for a, b in skipped:
        lines.append(f"| {a} − {b} | – | not computed: attack label not configured |")
    return "\n".join(lines) + "\n"


def coverage_note(df: pd.DataFrame) -> str:
    """How many samples had no IN or no OUT shadow (their scores are NaN, ranked lowest)."""
    per = df[~df.target.isin(AGGREGATES)]
    if "n_no_in_shadow" not in per:
        return ""
    n_in = int(per["n_no_in_shadow"].max())
    n_out = int(per["n_no_out_shadow"].max())
    n_nan = per.groupby("attack")["n_nan_scores"].max()
    nan_txt = ", ".join(f"{k} {int(v)}" for k, v in n_nan.items() if v > 0) or "none"
    return (
        f"Samples with no IN shadow: {n_in}; with no OUT shadow: {n_out}. Attacks that need "
        "the missing side score them NaN, which every metric ranks lowest (a confident "
        f"non-member). NaN scores per target (max over targets): {nan_txt}.\n"
    )
