"""Metrics of every attack on every target: tidy CSV, the Table 1 layout and the full
markdown report, paired AUROC differences, one log-log ROC figure with all attacks."""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from curvmia.io import atomic_path, load_npz, write_text
from curvmia.provenance import code_record
from curvmia.report import (
    coverage_note,
    diff_markdown,
    health_markdown,
    interval_table,
    markdown_table,
    metrics_frame,
    paired_frame,
    plot_roc,
    scoring_precision_note,
    table1_markdown,
)


def score_meta(path: str) -> dict:
    """The metadata of one score file (read alone: the arrays stay on disk)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metrics", required=True, help="metrics config section as JSON")
    ap.add_argument("--specs", required=True, help="attacks config section as JSON")
    ap.add_argument("--dataset", required=True, help="dataset name (selects the paper column)")
    ap.add_argument("--health", required=True, help="health.csv")
    ap.add_argument("--min-test-acc", type=float, required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--diff-csv", required=True)
    ap.add_argument("--table1", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--roc", required=True)
    ap.add_argument(
        "--scores", nargs="+", default=[], help="score files: their metadata gives the TF32 line"
    )
    ap.add_argument("attacks", nargs="+", help="attack result files <label>.npz")
    a = ap.parse_args()
    cfg = json.loads(a.metrics)
    specs = json.loads(a.specs)
    results = {Path(p).stem: load_npz(p) for p in a.attacks}
    kw = {"n_boot": cfg["bootstrap"], "seed": cfg["seed"]}
    df = metrics_frame(results, fprs=cfg["fprs"], ci_fpr=cfg["ci_fpr"], **kw)
    diff, skipped = paired_frame(results, cfg["compare"], **kw)
    with atomic_path(a.csv, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(a.diff_csv, suffix=".csv") as tmp:
        diff.to_csv(tmp, index=False)
    notes = {k: str(r["note"]) for k, r in results.items() if str(r.get("note", ""))}
    metas = [score_meta(p) for p in a.scores]
    table1 = table1_markdown(
        df, specs, a.dataset, notes=notes, precision=scoring_precision_note(metas)
    )
    write_text(a.table1, table1)
    health = pd.read_csv(a.health).fillna({"note": ""})
    doc = "\n".join(
        [
            "## Table 1 layout (mean ± std over targets)\n",
            table1,
            "## Every attack and metric\n",
            markdown_table(df, cfg["fprs"]),
            coverage_note(df),
            f"## Per-target 95% bootstrap intervals (B = {cfg['bootstrap']})\n",
            interval_table(df, cfg["ci_fpr"]) if cfg["bootstrap"] > 0 else "bootstrap off\n",
            "## Paired AUROC differences (same bootstrap resamples for both attacks)\n",
            diff_markdown(diff, skipped) if cfg["bootstrap"] > 0 else "bootstrap off\n",
            "## Model health\n",
            health_markdown(health, a.min_test_acc),
            "## Code\n",
            "commit {commit}, code hash {code_hash} ({script})\n".format(
                **code_record("metrics.py")
            ),
        ]
    )
    write_text(a.md, doc)
    with atomic_path(a.roc, suffix=".png") as tmp:
        plot_roc(results, str(tmp))
    print(doc)


if __name__ == "__main__":
    main()
