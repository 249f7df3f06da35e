"""Theory table and figure of the main experiment's targets: KL, AUROC, bounds, empirical ε."""

import argparse
import json
from pathlib import Path

import pandas as pd

from curvmia.distinguish import absent_features
from curvmia.io import atomic_path, load_npz, write_text
from curvmia.scorefile import check_recorded_inputs, load_score_file, row_digests
from curvmia.theory import main_targets_frame
from curvmia.theory_plots import plot_main

# the columns of targets.md (targets.csv holds them all)
COLUMNS = [
    "target",
    "statistic",
    "kl_gauss",
    "kl_gauss_null_mean",
    "kl_gauss_null_sd",
    "kl_knn",
    "kl_knn_null_mean",
    "kl_knn_null_sd",
    "kl_knn_above_null",
    "gauss_model",
    "auroc",
    "eps_emp_lo",
    "audit_attack",
]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--theory", required=True, help="theory config section as JSON")
    ap.add_argument("--masks", required=True)
    ap.add_argument("--target-rows", required=True, help="comma-separated mask rows")
    ap.add_argument("--target-scores", nargs="+", required=True, help="score files, row order")
    ap.add_argument("--attacks", nargs="*", default=[], help="attack result files <label>.npz")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--fig", required=True)
    return ap.parse_args()


def targets_markdown(df: pd.DataFrame, score_file: str) -> str:
    """targets.md: the main columns, and which statistics the score files could not give."""
    table = df[COLUMNS].to_markdown(index=False, floatfmt=".4g")
    skipped = absent_features(load_score_file(score_file))
    if skipped:
        note = f"Not computed, skipped: {', '.join(skipped)} (scoring.hutch_nprobes is 0)."
        print(note)
        table += "\n\n" + note
    return table


def main() -> None:
    a = parse_args()
    cfg = json.loads(a.theory)
    rows = [int(v) for v in a.target_rows.split(",")]
    if len(rows) != len(a.target_scores):
        raise SystemExit("--target-scores must give one file per target row")
    current = row_digests(a.target_scores, rows)  # each file is its row's
    masks = load_npz(a.masks)["masks"]
    attacks = {Path(p).stem: load_npz(p) for p in a.attacks}
    for p, res in zip(a.attacks, attacks.values(), strict=True):  # computed from these files
        check_recorded_inputs(p, res, current)
    df = main_targets_frame(a.target_scores, rows, masks, attacks, cfg)
    with atomic_path(a.csv, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    table = targets_markdown(df, a.target_scores[0])
    write_text(a.md, table + "\n")
    with atomic_path(a.fig, suffix=".png") as tmp:
        plot_main(df, cfg, str(tmp))
    print(table)


if __name__ == "__main__":
    main()
