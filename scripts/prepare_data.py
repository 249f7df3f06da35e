"""Prepare a dataset into curvmia's canonical form (uint8 arrays + manifest)."""

import argparse
from pathlib import Path

from curvmia.data import DATASETS, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, choices=DATASETS)
    ap.add_argument("--manifest", required=True, help="manifest.json to write (arrays beside it)")
    ap.add_argument("--test-size", type=int, required=True)
    ap.add_argument("--split-seed", type=int, required=True)
    a = ap.parse_args()
    out = Path(a.manifest).parent
    m = prepare(a.dataset, out, test_size=a.test_size, split_seed=a.split_seed)
    print(
        f"prepared {a.dataset}: {m['n_train']} population, {m['n_test']} test, "
        f"{m['num_classes']} classes, shape {m['image_shape']}, mean {m['mean']}, std {m['std']}"
    )


if __name__ == "__main__":
    main()
