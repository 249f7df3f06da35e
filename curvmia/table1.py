"""The paper's Table 1 beside ours: its published numbers, our rows in its layout (with the
scoring-precision note), and the same rows as the report's HTML headline."""

from __future__ import annotations

import math
import re

import pandas as pd

from .attacks import TABLE1_EXTRA, TABLE1_METHODS, spec_label
from .metric_frames import Verdicts
from .report_tables import pct_cell

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
    return pct_cell(value, float(std[col].iloc[0]))


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


class _Ours:
    """Our cells of a Table 1 row (AUROC / balanced accuracy, TPR at TABLE1_FPR), recording
    which labels have a row so the remaining attacks can follow."""

    def __init__(self, df: pd.DataFrame, no_result: Verdicts):
        self.df, self.used, self.no_result = df, set(), no_result
        self.mean = df[df.target == "mean"].set_index("attack")
        self.std = df[df.target == "std"].set_index("attack")

    def has(self, label: str | None) -> bool:
        return label is not None and label in self.mean.index

    def __call__(self, label: str | None, with_label: bool) -> tuple[str, str]:
        if not self.has(label):
            return "not run", "not run"
        self.used.add(label)
        mean, std = self.mean, self.std
        why = self.no_result.get((label, "mean"))
        cell = why or (
            f"{pct_cell(mean.loc[label, 'auroc'], std.loc[label, 'auroc'])} / "
            f"{pct_cell(mean.loc[label, 'bal_acc_paper'], std.loc[label, 'bal_acc_paper'])}"
        )
        if with_label:
            cell += f" (`{label}`)"
        return cell, "no result" if why else _tpr_cell(self.df, label, TABLE1_FPR)


def _table1_head(dataset: str, paper_ds: str | None) -> list[str]:
    """Header and rule: ours, then (for the paper's datasets) the published column beside."""
    fpr_txt = f"{100 * TABLE1_FPR:g}%"
    head = f"| method | ours ({dataset}): AUROC % / oracle bal. acc. % |"
    rule = "|---|---|"
    if paper_ds:
        head += f" paper ({paper_ds}) |"
        rule += "---|"
    head += f" ours: oracle TPR % @ {fpr_txt} FPR |"
    rule += "---|"
    if paper_ds:
        head += f" paper: TPR % @ {fpr_txt} FPR |"
        rule += "---|"
    return [head, rule]


def _paper_tpr(paper_ds: str | None, method: str | None) -> str:
    """The published TPR at 0.01% FPR of ``method``, or why there is none."""
    if paper_ds != "CIFAR-100":
        return f"not published for {paper_ds}"
    if method not in PAPER_TPR_CIFAR100:
        return "not published"
    return f"{PAPER_TPR_CIFAR100[method][2]:.2f}"


def _method_rows(ours: _Ours, specs: list[dict], paper_ds: str | None) -> list[str]:
    """One row per method of the paper's table, "not run" where it is not configured."""
    lines = []
    for name, method in TABLE1_METHODS.items():
        cell, tpr = ours(_table1_label(specs, name), True)
        line = f"| {method} | {cell} |"
        if paper_ds:
            auc, bal = PAPER_TABLE1[paper_ds][method]
            line += f" {auc:.2f} / {bal:.2f} |"
        line += f" {tpr} |"
        if paper_ds:
            line += f" {_paper_tpr(paper_ds, method)} |"
        lines.append(line)
    return lines


def _other_rows(ours: _Ours, specs: list[dict], paper_ds: str | None) -> list[str]:
    """The rows outside the paper's table: TABLE1_EXTRA's where run, then every other attack."""
    lines = []
    for name, title in TABLE1_EXTRA.items():
        label = _table1_label(specs, name)
        if not ours.has(label):
            continue
        cell, tpr = ours(label, True)
        no_paper = " not in the paper's table |" if paper_ds else ""
        lines.append(f"| {title} | {cell} |{no_paper} {tpr} |{no_paper}")
    for label in ours.mean.index:
        if label in ours.used:
            continue
        cell, tpr = ours(label, False)
        no_paper = " |" if paper_ds else ""
        lines.append(
            f"| `{label}` (not in the paper's table) | {cell} |{no_paper} {tpr} |{no_paper}"
        )
    return lines


def _table1_note(dataset: str, paper_ds: str | None) -> str:
    """What the published numbers are (or why there are none) under the table."""
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
    return note


def table1_markdown(
    df: pd.DataFrame,
    specs: list[dict],
    dataset: str,
    *,
    notes: dict[str, str] | None = None,
    precision: str = "",
    no_result: Verdicts | None = None,
) -> str:
    """Our results in the layout of the paper's Table 1 (AUROC % / balanced accuracy %
    at the |FPR+TPR−1| threshold, mean ± std over targets), with the published
    numbers beside ours where the dataset is one of the paper's, and TPR at 0.01% FPR
    (ours, or why it is empty, beside the published one).  ``notes``: per attack label,
    a remark printed under the table (e.g. carlini_paper's fallback); ``precision``: the
    scoring-precision sentence (:func:`scoring_precision_note`); ``no_result``: the rows
    shown as no result with their reason (:func:`curvmia.metric_frames.nan_verdicts`)."""
    paper_ds = PAPER_DATASETS.get(dataset.lower())
    ours = _Ours(df, no_result or {})
    lines = _table1_head(dataset, paper_ds) + _method_rows(ours, specs, paper_ds)
    lines += _other_rows(ours, specs, paper_ds)
    extra = [f"\n`{k}`: {v}" for k, v in sorted((notes or {}).items())]
    if precision:
        extra.append("\n" + precision)
    note = _table1_note(dataset, paper_ds)
    return "\n".join(lines) + "\n" + note + "\n" + "".join(e + "\n" for e in extra)


def _inline(text: str) -> str:
    """``text`` HTML-escaped, with `code` spans as <code>."""
    import html

    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def _md_table_html(md: str) -> tuple[str, list[str]]:
    """The first Markdown table of ``md`` as HTML rows (rows whose label is code-quoted, the
    attacks outside the paper's Table 1, left out) and its other lines as paragraphs."""
    rows, notes = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            if not set(line) <= set("|-: ") and not line.startswith("| `"):
                rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif line.strip():
            notes.append(f"<p>{_inline(line.strip())}</p>")
    head = "".join(f"<th>{_inline(c)}</th>" for c in rows[0]) if rows else ""
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return f"<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody>", notes


def headline_html(table1_md: str, facts: str, realistic_md: str = "", one_run_md: str = "") -> str:
    """The report's first item: ``facts`` (what ran), then the realistic audit
    (``realistic_md``, :func:`curvmia.report_tables.realistic_markdown`: label-free
    thresholds), the one-run ε lower bound per target (``one_run_md``,
    :func:`curvmia.one_run_audit.headline_markdown`) and the Table 1 rows of ``table1_md``
    (table1_markdown's text, oracle thresholds) as HTML tables, each with its notes below."""
    style = (
        "body{font-family:sans-serif;font-size:14px;margin:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px}"
        "th{background:#eee}tr td:first-child{font-weight:bold}"
    )
    out = [
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Headline</title>'
        f"<style>{style}</style></head><body>\n<p>{_inline(facts)}</p>\n"
    ]
    if realistic_md:
        table, notes = _md_table_html(realistic_md)
        out.append(
            "<h2>Headline: realistic audit (thresholds chosen without the targets' labels)</h2>\n"
            f'<table id="realistic">{table}</table>\n' + "\n".join(notes) + "\n"
        )
    if one_run_md:
        table, notes = _md_table_html(one_run_md)
        out.append(
            "<h2>One-run ε lower bound per target (Steinke, Nasr and Jagielski 2023)</h2>\n"
            f'<table id="one-run">{table}</table>\n' + "\n".join(notes) + "\n"
        )
    table, notes = _md_table_html(table1_md)
    out.append(
        "<h2>Table 1 layout: the paper's rows (oracle thresholds)</h2>\n"
        f'<table id="headline">{table}</table>\n' + "\n".join(notes) + "\n</body></html>\n"
    )
    return "".join(out)
