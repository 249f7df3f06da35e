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
    ap.add_argument("--archive", default="", help="CIFAR: the verified archive")
    ap.add_argument(
        "--md5", default="", help="CIFAR: the archive's expected md5 (default: the official one)"
    )
    ap.add_argument("--path", default="", help="imagefolder: the dataset directory")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--stats", default="auto", choices=["auto", "computed", "imagenet"])
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    out = Path(a.manifest).parent
    m = prepare(
        a.dataset,
        out,
        test_size=a.test_size,
        split_seed=a.split_seed,
        archive=a.archive or None,
        md5=a.md5 or None,
        path=a.path or None,
        image_size=a.image_size,
        resize=a.resize,
        stats=a.stats,
        workers=a.workers,
        log=lambda s: print(s, flush=True),
    )
    print(
        f"prepared {a.dataset}: {m['n_train']} population, {m['n_test']} test, "
        f"{m['num_classes']} classes, shape {m['image_shape']}, mean {m['mean']}, std {m['std']}"
    )


if __name__ == "__main__":
    main()
