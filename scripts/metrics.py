"""Metrics of every attack on every target: tidy CSV, markdown table, log-log ROC plot."""

import argparse
import json
from pathlib import Path

from curvmia.io import atomic_path, load_npz, write_text
from curvmia.report import markdown_table, metrics_frame, plot_roc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metrics", required=True, help="metrics config section as JSON")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--roc", required=True)
    ap.add_argument("attacks", nargs="+", help="attack result files <label>.npz")
    a = ap.parse_args()
    cfg = json.loads(a.metrics)
    results = {Path(p).stem: load_npz(p) for p in a.attacks}
    df = metrics_frame(results, fprs=cfg["fprs"], n_boot=cfg["bootstrap"], seed=cfg["seed"])
    with atomic_path(a.csv, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    table = markdown_table(df, cfg["fprs"])
    write_text(a.md, table)
    with atomic_path(a.roc, suffix=".png") as tmp:
        plot_roc(results, str(tmp))
    print(table)


if __name__ == "__main__":
    main()
