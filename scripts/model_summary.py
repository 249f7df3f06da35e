"""Table of every trained model: role, mask row, training-set size, accuracies."""

import argparse

import pandas as pd
import torch

from curvmia.io import atomic_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shadows", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("checkpoints", nargs="+")
    a = ap.parse_args()
    targets = {int(v) for v in a.targets.split(",")}
    rows = []
    for p in a.checkpoints:
        m = torch.load(p, map_location="cpu", weights_only=True)
        rows.append(
            {
                "row": m["row"],
                "role": "target" if m["row"] in targets else "shadow",
                "arch": m["arch"],
                "n_train": m["n_train"],
                "train_acc": m["train_acc"],
                "test_acc": m["test_acc"],
                "train_hash": m["train_hash"],
                "seconds": m["seconds"],
            }
        )
    df = pd.DataFrame(rows).sort_values("row")
    with atomic_path(a.out, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
