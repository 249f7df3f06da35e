"""Table of every model (trained or imported): role, mask row, training-set size, accuracies."""

import argparse
import json
import os
import re

import pandas as pd

from curvmia.checkpoint import load_meta
from curvmia.io import atomic_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shadows", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument(
        "--row-hashes",
        help="JSON {row: hash}: the recipe (or import entry) hash each checkpoint must carry",
    )
    ap.add_argument("--out", required=True)
    ap.add_argument("checkpoints", nargs="+", help="model_<row>.pt, one per row")
    a = ap.parse_args()
    targets = {int(v) for v in a.targets.split(",")}
    hashes = json.loads(a.row_hashes) if a.row_hashes else {}
    rows = []
    for p in a.checkpoints:
        row = int(re.fullmatch(r"model_(\d+)\.pt", os.path.basename(p)).group(1))
        expect = {"row": row}
        if str(row) in hashes:
            expect["train_hash"] = hashes[str(row)]
        m = load_meta(p, expect)
        rows.append(
            {
                "row": m["row"],
                "role": "target" if m["row"] in targets else "shadow",
                "source": "imported" if "imported" in m else "trained",
                "arch": m["arch"],
                "n_train": m["n_train"],
                "train_acc": m["train_acc"],
                "test_acc": m["test_acc"],
                "train_hash": m["train_hash"],
                "n_params": m.get("n_params"),
                "seconds": m["seconds"],
            }
        )
    df = pd.DataFrame(rows).sort_values("row")
    with atomic_path(a.out, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
