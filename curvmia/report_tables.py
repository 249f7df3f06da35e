"""Markdown tables of the tidy metric frames (curvmia/metric_frames.py): mean ± std of every
metric, per-target bootstrap intervals, paired AUROC differences, the shadow coverage note."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .metric_frames import AGGREGATES, Verdicts


def pct_cell(mean: float, std: float) -> str:
    """``mean ± std`` in percent with two decimals, or n/a for a NaN mean."""
    if math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def markdown_table(df: pd.DataFrame, fprs: list[float], no_result: Verdicts | None = None) -> str:
    """Mean ± std over targets (in %) of every metric of every attack; an attack in
    ``no_result`` shows its reason instead (:func:`curvmia.metric_frames.nan_verdicts`).

    TPR columns: interpolated on the ROC and, labelled *strict*, the LiRA/MICO
    convention (last ROC point with FPR < target).  Balanced accuracies and TPRs are
    labelled *oracle*: their thresholds are chosen with the target's own membership."""
    no_result = no_result or {}
    mean = df[df.target == "mean"].set_index("attack")
    std = df[df.target == "std"].set_index("attack")
    cols = ["auroc", "bal_acc_paper", "bal_acc_best"]
    heads = [
        "AUROC %",
        r"Oracle bal. acc. % (\|FPR+TPR−1\| thr.)",
        "Oracle bal. acc. % (best thr.)",
    ]
    for f in fprs:
        cols += [f"tpr@{f:g}", f"tpr_strict@{f:g}"]
        heads += [
            f"Oracle TPR % @ {100 * f:g}% FPR (interp.)",
            f"Oracle TPR % @ FPR < {100 * f:g}% (strict)",
        ]
    lines = ["| attack | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for label in mean.index:
        cells = [pct_cell(mean.loc[label, c], std.loc[label, c]) for c in cols]
        if (label, "mean") in no_result:
            cells = [no_result[(label, "mean")]] + ["no result"] * (len(cols) - 1)
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


def interval_table(
    df: pd.DataFrame, ci_fpr: float = 0.01, no_result: Verdicts | None = None
) -> str:
    """Per-target AUROC and TPR@ci_fpr with their 95% bootstrap intervals (in %), or the
    reason a target has no result (``no_result``)."""
    no_result = no_result or {}
    per = df[~df.target.isin(AGGREGATES)]
    key = f"tpr@{ci_fpr:g}"
    lines = [
        f"| attack | target | AUROC % [95% CI] | oracle TPR % @ {100 * ci_fpr:g}% FPR [95% CI] |",
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
        if (r.attack, r.target) in no_result:
            auc, tpr = no_result[(r.attack, r.target)], "no result"
        lines.append(f"| {r.attack} | {r.target} | {auc} | {tpr} |")
    return "\n".join(lines) + "\n"


def diff_markdown(
    diff: pd.DataFrame, skipped: list[list[str]], no_result: Verdicts | None = None
) -> str:
    """Paired AUROC differences per target with their 95% intervals; no result where
    either attack has none on that target (``no_result``)."""
    no_result = no_result or {}
    lines = ["| a − b | target | ΔAUROC % [95% paired CI] |", "|---|---|---|"]
    for _, r in diff.iterrows():
        cell = f"{100 * r['diff']:+.2f}"
        if r.target not in AGGREGATES and not math.isnan(r.diff_lo):
            cell += f" [{100 * r.diff_lo:+.2f}, {100 * r.diff_hi:+.2f}]"
        why = [
            f"{no_result[(x, r.target)]} (`{x}`)" for x in (r.a, r.b) if (x, r.target) in no_result
        ]
        if why:
            cell = "; ".join(why)
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


def _pct_range(v: pd.Series) -> str:
    return f"{100 * v.mean():.2f} [{100 * v.min():.2f}–{100 * v.max():.2f}]"


def realistic_markdown(realistic: pd.DataFrame, metrics: pd.DataFrame, prior: float) -> str:
    """The headline's lead: per attack its AUROC, the label-free TPR at the lowest FPR level
    supported for every target (10/FPR rule, realistic.csv's ``supported``), the achieved
    FPR there, the PPV at ``prior`` and the oracle TPR at the same level for comparison.
    Means over targets with [min–max]; a PPV whose achieved FPR is 0 counts its lower
    bound (marked ≥), never 1."""
    from .realistic import ppv_headline, prior_key

    mean = metrics[metrics.target == "mean"].set_index("attack")
    key = prior_key(prior)
    lines = [
        f"| attack | AUROC % | FPR level | label-free TPR % [min–max] | achieved FPR % [min–max]"
        f" | PPV % at π = {100 * prior:g}% | oracle TPR % at the level |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, g in realistic.groupby("attack", sort=False):
        auc = f"{100 * mean.loc[label, 'auroc']:.2f}" if label in mean.index else "n/a"
        ok = g.groupby("fpr_level")["supported"].all()
        levels = ok.index[ok.to_numpy(dtype=bool)]
        if not len(levels):
            why = "no level supported: fewer than 10/FPR non-members at every metrics.fprs level"
            if g["threshold"].isna().all():
                why = "no label-free threshold: no pseudo-target scored a non-member"
            lines.append(f"| {label} | {auc} | {why} | – | – | – | – |")
            continue
        lv = float(levels.min())
        r = g[g.fpr_level == lv]
        heads = [ppv_headline(p, lo, f) for p, lo, f in zip(r[key], r[f"{key}_lo"], r["fpr"])]
        heads = pd.Series(heads, dtype=float).dropna()
        if heads.empty:
            ppv_cell = "n/a: no sample flagged (TPR = FPR = 0)"
        else:
            ppv_cell = ("≥ " if (r["fpr"] == 0).any() else "") + _pct_range(heads)
        oracle = mean.loc[label, f"tpr@{lv:g}"] if f"tpr@{lv:g}" in mean.columns else np.nan
        ocell = "n/a" if label not in mean.index or np.isnan(oracle) else f"{100 * oracle:.2f}"
        lines.append(
            f"| {label} | {auc} | {100 * lv:g}% | {_pct_range(r['tpr'])}"
            f" | {_pct_range(r['fpr'])} | {ppv_cell} | {ocell} |"
        )
    note = (
        "\nThresholds chosen without the targets' labels: each shadow in turn is scored as a "
        "pseudo-target by the same attack (the other shadows, minus its complement, as "
        "references); its threshold at the FPR level comes from its own non-members, and "
        "the median over shadows is applied to every target (docs/method.md: Realistic audit "
        "metrics). Per target: realistic.csv. The oracle column reads the target's own ROC, "
        "which no attacker can.\n"
    )
    return "\n".join(lines) + "\n" + note
