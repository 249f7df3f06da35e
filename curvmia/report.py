"""Tables and figures of an experiment: tidy metrics, the Table 1 layout, paired AUROC
differences, model health, per-example exposure, leave-one-out, ROC and histogram plots."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .attacks import (  # noqa: E402
    ATTACKS,
    TABLE1_EXTRA,
    TABLE1_METHODS,
    coverage,
    healthy_shadows,
    spec_label,
)
from .masks import complement_of  # noqa: E402
from .metrics import (  # noqa: E402
    bootstrap_weights,
    paired_auroc_difference,
    roc_curve,
    summarize,
)

AGGREGATES = ("mean", "std")

# docs/method.md: Published numbers: the paper's Table 1, AUROC % / balanced accuracy % (mean over
# 3 targets).
PAPER_TABLE1 = {
    "ImageNet": {
        "Curv NLL": (77.45, 69.16),
        "Curv LR": (72.28, 68.76),
        "Carlini et al.": (73.46, 66.14),
        "Yeom": (63.23, 58.50),
        "Sablayrolles": (76.50, 66.93),
        "Watson": (69.44, 61.40),
        "Ye": (75.79, 66.16),
        "Song": (63.29, 57.88),
    },
    "CIFAR-100": {
        "Curv NLL": (93.48, 84.47),
        "Curv LR": (90.14, 80.48),
        "Carlini et al.": (88.89, 81.55),
        "Yeom": (82.11, 76.29),
        "Sablayrolles": (81.11, 70.22),
        "Watson": (71.66, 62.71),
        "Ye": (90.88, 80.73),
        "Song": (82.28, 75.58),
    },
    "CIFAR-10": {
        "Curv NLL": (68.95, 61.96),
        "Curv LR": (58.96, 55.04),
        "Carlini et al.": (61.79, 58.27),
        "Yeom": (60.44, 55.57),
        "Sablayrolles": (61.50, 56.65),
        "Watson": (58.58, 54.86),
        "Ye": (67.30, 59.62),
        "Song": (60.42, 55.63),
    },
}
# docs/method.md: Published numbers: CIFAR-100 TPR % at FPR 1% / 0.1% / 0.01%.
PAPER_TPR_CIFAR100 = {
    "Curv NLL": (41.54, 7.75, 0.00),
    "Curv LR": (35.54, 23.44, 5.23),
    "Carlini et al.": (21.78, 15.80, 6.56),
    "Ye": (34.72, 6.63, 2.86),
}
PAPER_DATASETS = {
    "cifar10": "CIFAR-10",
    "cifar-10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "cifar-100": "CIFAR-100",
    "imagenet": "ImageNet",
    "imagenet1k": "ImageNet",
}


# --------------------------------------------------------------------------- metrics


class _Weights:
    """Bootstrap counts per target (seed + target index), drawn once and shared by every
    attack with the same members on that target, so differences between them are paired."""

    def __init__(self, n_boot: int, seed: int):
        self.n_boot, self.seed, self.cache = n_boot, seed, {}

    def __call__(self, t: int, is_member: np.ndarray) -> np.ndarray | None:
        if self.n_boot <= 0:
            return None
        m = np.asarray(is_member, bool)
        key = (t, m.tobytes())
        if key not in self.cache:
            self.cache[key] = bootstrap_weights(m, n_boot=self.n_boot, seed=self.seed + t)
        return self.cache[key]


def metrics_frame(
    attack_results: dict[str, dict[str, np.ndarray]],
    *,
    fprs: list[float],
    n_boot: int,
    seed: int,
    ci_fpr: float = 0.01,
) -> pd.DataFrame:
    """Tidy metrics: one row per attack × target, then ``mean`` and ``std`` (ddof 0) rows.

    ``attack_results`` maps an attack label to ``{"scores": (T, N),
    "is_member": (T, N), "targets": (T,)}`` as written by the attack step (plus,
    optionally, ``n_shadows``, ``n_no_in_shadow``, ``n_no_out_shadow``).  Bootstrap
    counts are drawn once per target (seed + target index) and shared by all attacks.
    """
    weights = _Weights(n_boot, seed)
    rows = []
    for label, res in attack_results.items():
        extra = {
            k: int(res[k]) for k in ("n_shadows", "n_no_in_shadow", "n_no_out_shadow") if k in res
        }
        for t, target in enumerate(res["targets"]):
            m = summarize(
                res["scores"][t],
                res["is_member"][t],
                fprs=fprs,
                n_boot=n_boot,
                seed=seed + t,
                ci_fpr=ci_fpr,
                weights=weights(t, res["is_member"][t]),
            )
            rows.append({"attack": label, "target": str(int(target)), **m, **extra})
    df = pd.DataFrame(rows)
    metric_cols = [c for c in df.columns if c not in ("attack", "target")]
    agg = []
    for label, g in df.groupby("attack", sort=False):
        for name in AGGREGATES:
            vals = g[metric_cols].agg(name, ddof=0) if name == "std" else g[metric_cols].mean()
            agg.append({"attack": label, "target": name, **vals.to_dict()})
    return pd.concat([df, pd.DataFrame(agg)], ignore_index=True)


def paired_frame(
    attack_results: dict[str, dict[str, np.ndarray]],
    pairs: list[list[str]],
    *,
    n_boot: int,
    seed: int,
) -> tuple[pd.DataFrame, list[list[str]]]:
    """AUROC(a) − AUROC(b) per target with paired 95% bootstrap intervals (the same
    counts as :func:`metrics_frame`), plus mean/std rows.  Returns the frame and the
    pairs skipped because a label is not configured."""
    weights = _Weights(max(n_boot, 1), seed)
    rows, skipped = [], []
    for a, b in pairs:
        if a not in attack_results or b not in attack_results:
            skipped.append([a, b])
            continue
        ra, rb = attack_results[a], attack_results[b]
        per = []
        for t, target in enumerate(ra["targets"]):
            m = ra["is_member"][t]
            if not np.array_equal(m, rb["is_member"][t]):
                raise ValueError(f"paired difference {a} − {b}: target {target} differs")
            d = paired_auroc_difference(ra["scores"][t], rb["scores"][t], m, weights=weights(t, m))
            per.append(d)
            rows.append({"a": a, "b": b, "target": str(int(target)), **d})
        diffs = np.array([p["diff"] for p in per])
        rows.append({"a": a, "b": b, "target": "mean", "diff": diffs.mean()})
        rows.append({"a": a, "b": b, "target": "std", "diff": diffs.std()})
    cols = ["a", "b", "target", "diff", "diff_lo", "diff_hi"]
    return pd.DataFrame(rows, columns=cols), skipped


def _pct(mean: float, std: float) -> str:
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


def _table1_label(specs: list[dict], method_name: str) -> str | None:
    """The first configured label that is ``method_name`` in its paper form."""
    for spec in specs:
        if spec["name"] == method_name and spec.get("variant", "paper") == "paper":
            return spec_label(spec)
    return None


def table1_labels(specs: list[dict]) -> set[str]:
    """Labels of the configured attacks that are rows of our Table 1 (the paper's methods
    in their paper form, and the proper LiRA shown beside them)."""
    names = [*TABLE1_METHODS, *TABLE1_EXTRA]
    return {lb for lb in (_table1_label(specs, n) for n in names) if lb is not None}


TABLE1_FPR = 1e-4  # the lowest FPR of the paper's TPR columns (0.01%)


def _tpr_cell(df: pd.DataFrame, label: str, fpr: float) -> str:
    """Our TPR at ``fpr`` (mean ± std, %), or why the cell is empty."""
    col = f"tpr@{fpr:g}"
    if col not in df.columns:
        return f"not computed: {fpr:g} is not in metrics.fprs"
    mean = df[(df.target == "mean") & (df.attack == label)]
    std = df[(df.target == "std") & (df.attack == label)]
    value = float(mean[col].iloc[0])
    if math.isnan(value):
        n_non = int(mean["n_nonmembers"].iloc[0])
        return f"empty: {n_non} non-members, fewer than 10/FPR = {round(10 / fpr)}"
    return _pct(value, float(std[col].iloc[0]))


def scoring_precision_note(metas: list[dict]) -> str:
    """One sentence on the TF32 setting the score files record (their metadata, not the
    config): a reader of Table 1 must know whether ZO values carry TF32 rounding."""
    if not metas:
        return ""
    cudnn = sorted({bool(m.get("tf32", {}).get("cudnn", False)) for m in metas})
    matmul = sorted({bool(m.get("tf32", {}).get("matmul", False)) for m in metas})
    asked = sorted({bool(m.get("scoring", {}).get("tf32", False)) for m in metas})
    devices = sorted({str(m.get("device_name", m.get("device", "?"))) for m in metas})

    def onoff(v: list[bool]) -> str:
        return " / ".join("on" if x else "off" for x in v) + (" (mixed)" if len(v) > 1 else "")

    return (
        f"Scoring precision (from the metadata of {len(metas)} score files): TF32 for cuDNN "
        f"convolutions {onoff(cudnn)}, for matmuls {onoff(matmul)} (scoring.tf32: "
        f"{onoff(asked)}); device {', '.join(devices)}. TF32 has no effect on a CPU."
    )


def table1_markdown(
    df: pd.DataFrame,
    specs: list[dict],
    dataset: str,
    *,
    notes: dict[str, str] | None = None,
    precision: str = "",
) -> str:
    """Our results in the layout of the paper's Table 1 (AUROC % / balanced accuracy %
    at the |FPR+TPR−1| threshold, mean ± std over targets), with the published
    numbers beside ours where the dataset is one of the paper's, and TPR at 0.01% FPR
    (ours, or why it is empty, beside the published one).  ``notes``: per attack label,
    a remark printed under the table (e.g. carlini_paper's fallback); ``precision``: the
    scoring-precision sentence (:func:`scoring_precision_note`)."""
    mean = df[df.target == "mean"].set_index("attack")
    std = df[df.target == "std"].set_index("attack")
    paper_ds = PAPER_DATASETS.get(dataset.lower())
    fpr_txt = f"{100 * TABLE1_FPR:g}%"
    head = f"| method | ours ({dataset}): AUROC % / bal. acc. % |"
    rule = "|---|---|"
    if paper_ds:
        head += f" paper ({paper_ds}) |"
        rule += "---|"
    head += f" ours: TPR % @ {fpr_txt} FPR |"
    rule += "---|"
    if paper_ds:
        head += f" paper: TPR % @ {fpr_txt} FPR |"
        rule += "---|"
    lines = [head, rule]
    used = set()

    def ours_cells(label: str | None, with_label: bool) -> tuple[str, str]:
        if label is None or label not in mean.index:
            return "not run", "not run"
        used.add(label)
        cell = (
            f"{_pct(mean.loc[label, 'auroc'], std.loc[label, 'auroc'])} / "
            f"{_pct(mean.loc[label, 'bal_acc_paper'], std.loc[label, 'bal_acc_paper'])}"
        )
        if with_label:
            cell += f" (`{label}`)"
        return cell, _tpr_cell(df, label, TABLE1_FPR)

    def paper_tpr(method: str | None) -> str:
        if paper_ds != "CIFAR-100":
            return f"not published for {paper_ds}"
        if method not in PAPER_TPR_CIFAR100:
            return "not published"
        return f"{PAPER_TPR_CIFAR100[method][2]:.2f}"

    for name, method in TABLE1_METHODS.items():
        ours, tpr = ours_cells(_table1_label(specs, name), True)
        line = f"| {method} | {ours} |"
        if paper_ds:
            auc, bal = PAPER_TABLE1[paper_ds][method]
            line += f" {auc:.2f} / {bal:.2f} |"
        line += f" {tpr} |"
        if paper_ds:
            line += f" {paper_tpr(method)} |"
        lines.append(line)
    for name, title in TABLE1_EXTRA.items():
        label = _table1_label(specs, name)
        if label is None or label not in mean.index:
            continue
        ours, tpr = ours_cells(label, True)
        no_paper = " not in the paper's table |" if paper_ds else ""
        lines.append(f"| {title} | {ours} |{no_paper} {tpr} |{no_paper}")
    for label in mean.index:
        if label in used:
            continue
        ours, tpr = ours_cells(label, False)
        no_paper = " |" if paper_ds else ""
        lines.append(
            f"| `{label}` (not in the paper's table) | {ours} |{no_paper} {tpr} |{no_paper}"
        )
    note = (
        f"\nPublished numbers: the paper's Table 1 for {paper_ds}, mean over its 3 targets. "
        'Its "Carlini et al." row is the notebooks\' logit-scaled max-softmax probability '
        "through the Curv LR (CIFAR) or Curv NLL (ImageNet) formula (`carlini_paper`), not "
        "LiRA; the proper LiRA is shown as its own row (docs/method.md, Attacks)."
        if paper_ds
        else f"\nOurs only: {dataset} is not one of the paper's datasets (ImageNet, CIFAR-100, "
        "CIFAR-10), so its published numbers are not comparable and are not shown."
    )
    if paper_ds == "CIFAR-100":
        note += " Paper's CIFAR-100 TPR % at FPR 1% / 0.1% / 0.01%: " + "; ".join(
            f"{k} {' / '.join(f'{v:.2f}' for v in vals)}" for k, vals in PAPER_TPR_CIFAR100.items()
        )
    extra = [f"\n`{k}`: {v}" for k, v in sorted((notes or {}).items())]
    if precision:
        extra.append("\n" + precision)
    return "\n".join(lines) + "\n" + note + "\n" + "".join(e + "\n" for e in extra)


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


# --------------------------------------------------------------------------- model health


def health_frame(
    models: pd.DataFrame, *, min_test_acc: float, action: str
) -> tuple[pd.DataFrame, list[int]]:
    """Model table with ``passes_floor`` and ``used`` columns; returns it and the
    excluded shadow rows.  ``action="fail"`` raises on a shadow below the floor.
    A target below the floor is attacked anyway and flagged in ``note``."""
    df = models.sort_values("row").reset_index(drop=True).copy()
    shadows = [int(r) for r in df.loc[df.role == "shadow", "row"]]
    acc = {int(r): float(a) for r, a in zip(df.row, df.test_acc)}
    _, excluded = healthy_shadows(shadows, acc, min_test_acc, action)
    df["passes_floor"] = df.test_acc >= min_test_acc
    df["used"] = ~df.row.isin(excluded)
    df["note"] = ""
    df.loc[df.row.isin(excluded), "note"] = f"shadow excluded: test accuracy < {min_test_acc}"
    low_target = (df.role == "target") & ~df.passes_floor
    df.loc[low_target, "note"] = f"target below the floor {min_test_acc}: attacked, flagged"
    return df, excluded


def health_markdown(health: pd.DataFrame, min_test_acc: float) -> str:
    """Per-model train/test accuracy and what the health floor did."""
    lines = [
        "| row | role | train acc. % | test acc. % | used | note |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in health.iterrows():
        lines.append(
            f"| {int(r.row)} | {r.role} | {100 * r.train_acc:.2f} | {100 * r.test_acc:.2f} | "
            f"{'yes' if r.used else 'no'} | {r.note or ''} |"
        )
    excl = health[~health.used]
    lines += [
        "",
        f"Test-accuracy floor {min_test_acc}: {len(excl)} shadow(s) excluded"
        + (f" (rows {', '.join(str(int(r)) for r in excl.row)})" if len(excl) else "")
        + ".",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- per example


def exposure(scores: np.ndarray, is_member: np.ndarray) -> np.ndarray:
    """Per sample, the fraction of the target's non-members it outscores (ties ½):
    1 − the FPR an attacker must accept to flag it.  NaN scores rank lowest.  A target
    whose members are unknown has no member marked: its exposure is then the fraction of
    the whole population a sample outscores (a ranking, not an FPR)."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    non = np.sort(s[~np.asarray(is_member, bool)])
    lo = np.searchsorted(non, s, "left")
    hi = np.searchsorted(non, s, "right")
    return (lo + hi) / (2.0 * len(non))


def known_targets(res: dict[str, np.ndarray]) -> np.ndarray:
    """Per target of an attack result, whether its members are known (older results: all)."""
    return np.asarray(res.get("known", np.ones(len(res["targets"]), dtype=bool)), dtype=bool)


def known_only(attack_results: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """The attack results restricted to the targets whose members are known (the metrics'
    input: AUROC and TPR need the true members)."""
    out = {}
    for label, res in attack_results.items():
        k = known_targets(res)
        out[label] = {
            key: (v[k] if key in ("scores", "is_member", "targets", "known") else v)
            for key, v in res.items()
        }
    return out


def per_example_frame(attack_results: dict, labels: np.ndarray) -> pd.DataFrame:
    """Tidy per-example results: one row per attack × target × sample with its label,
    membership, score and exposure."""
    parts = []
    for label, res in attack_results.items():
        for t, target in enumerate(res["targets"]):
            s, m = res["scores"][t], res["is_member"][t]
            parts.append(
                pd.DataFrame(
                    {
                        "attack": label,
                        "target": int(target),
                        "sample": np.arange(len(s)),
                        "label": labels,
                        "is_member": m,
                        "member_known": bool(known_targets(res)[t]),
                        "score": s,
                        "exposure": exposure(s, m),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def vulnerability_frame(per_example: pd.DataFrame, rank_label: str) -> pd.DataFrame:
    """Vulnerability ranking across targets: per sample and attack, the mean exposure
    (and mean raw score) over the targets of which it is a member; ranked by
    ``rank_label``'s exposure.
    Samples that are a member of no target come last (NaN).  A target whose members are
    unknown counts every sample (its exposure ranks the whole population)."""
    known = per_example["member_known"] if "member_known" in per_example else True
    mem = per_example[per_example.is_member | ~known]
    attacks = sorted(per_example["attack"].unique())
    # dropna=False and the reindex keep an attack whose scores are all NaN (legitimately,
    # e.g. a white-box feature not computed) as a NaN column instead of dropping it
    wide = mem.pivot_table(
        index="sample", columns="attack", values="exposure", aggfunc="mean", dropna=False
    ).reindex(columns=attacks)
    wide.columns = [f"exposure_{c}" for c in wide.columns]
    raw = mem.pivot_table(
        index="sample", columns="attack", values="score", aggfunc="mean", dropna=False
    ).reindex(columns=attacks)
    raw.columns = [f"score_{c}" for c in raw.columns]
    n_in = (
        per_example[per_example.is_member]
        .groupby("sample")["target"]
        .nunique()
        .rename("n_targets_member")
    )
    labels = per_example.groupby("sample")["label"].first()
    out = (
        pd.concat([labels, n_in, wide, raw], axis=1)
        .reset_index()
        .rename(columns={"index": "sample"})
    )
    out["n_targets_member"] = out["n_targets_member"].fillna(0).astype(int)
    key = f"exposure_{rank_label}"
    out = out.sort_values([key, "sample"], ascending=[False, True], na_position="last")
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out.reset_index(drop=True)


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


# --------------------------------------------------------------------------- leave one out


def loo_layouts(rows: list[int], n_random: int, complements: bool) -> list[tuple[int, list[int]]]:
    """Leave-one-out (docs/method.md: Membership layouts): each model as target, the others minus
    its complement as
    shadows."""
    out = []
    for t in rows:
        c = complement_of(t, n_random, complements)
        out.append((t, [r for r in rows if r not in (t, c)]))
    return out


def loo_frame(
    specs: list[dict],
    feats: dict[str, np.ndarray],
    masks: np.ndarray,
    layouts: list[tuple[int, list[int]]],
    labels: np.ndarray,
    *,
    fprs: list[float],
) -> pd.DataFrame:
    """Metrics (no bootstrap) of every attack with every model as target.

    ``feats`` maps feature names to (M, N, Q) arrays over the models of ``layouts``
    in the order of ``sorted(rows)``; ``masks`` is the full mask set."""
    rows_sorted = sorted({t for t, _ in layouts} | {r for _, s in layouts for r in s})
    pos = {r: i for i, r in enumerate(rows_sorted)}
    out = []
    for t, shadows in layouts:
        tf = {f: v[pos[t]] for f, v in feats.items()}
        sf = {f: v[[pos[r] for r in shadows]] for f, v in feats.items()}
        s_in = masks[shadows]
        cov = coverage(s_in)
        for spec in specs:
            params = {k: v for k, v in spec.items() if k not in ("name", "label")}
            score = ATTACKS[spec["name"]](tf, sf, s_in, labels=labels, **params)
            m = summarize(score, masks[t], fprs=fprs, n_boot=0, seed=0)
            out.append(
                {"attack": spec_label(spec), "target": t, "n_shadows": len(shadows), **cov, **m}
            )
    return pd.DataFrame(out)


def loo_markdown(loo: pd.DataFrame, fixed: pd.DataFrame | None = None) -> str:
    """Leave-one-out AUROC (mean ± std over all models) beside the fixed targets'."""
    g = loo.groupby("attack", sort=False)["auroc"]
    bal = loo.groupby("attack", sort=False)["bal_acc_paper"]
    n = loo.target.nunique()
    head = f"| attack | leave-one-out AUROC % ({n} targets) | LOO bal. acc. % |"
    rule = "|---|---|---|"
    if fixed is not None:
        head += " fixed targets AUROC % |"
        rule += "---|"
    lines = [head, rule]
    for label, vals in g:
        line = f"| {label} | {_pct(vals.mean(), vals.std(ddof=0))} | "
        b = bal.get_group(label)
        line += f"{_pct(b.mean(), b.std(ddof=0))} |"
        if fixed is not None:
            f = fixed[fixed.attack == label].set_index("target")
            line += (
                f" {_pct(f.loc['mean', 'auroc'], f.loc['std', 'auroc'])} |"
                if "mean" in f.index
                else " – |"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- figures


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


def headline_html(table1_md: str, facts: str) -> str:
    """The report's first item: ``facts`` (what ran) above the Table 1 rows of
    ``table1_md`` (table1_markdown's text) as an HTML table, and its notes below."""
    import html

    def inline(text: str) -> str:
        return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))

    rows, notes = [], []
    for line in table1_md.splitlines():
        if line.startswith("|"):
            # the paper's rows and LiRA proper; attacks outside Table 1 stay under Metrics
            if not set(line) <= set("|-: ") and not line.startswith("| `"):
                rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif line.strip():
            notes.append(f"<p>{inline(line.strip())}</p>")
    head = "".join(f"<th>{inline(c)}</th>" for c in rows[0]) if rows else ""
    body = "\n".join(
        "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    style = (
        "body{font-family:sans-serif;font-size:14px;margin:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px}"
        "th{background:#eee}tr td:first-child{font-weight:bold}"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Headline</title>'
        f"<style>{style}</style></head><body>\n<h2>Headline: the paper's Table 1 rows</h2>\n"
        f'<p>{inline(facts)}</p>\n<table id="headline"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table>\n" + "\n".join(notes) + "\n</body></html>\n"
    )


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
