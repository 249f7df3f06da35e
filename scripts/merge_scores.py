"""Join a model's shard score files (in shard order) into its score file."""

import argparse

from curvmia.io import load_npz, save_npz
from curvmia.scores import merge_shards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shards", nargs="+", required=True, help="shard files, shard order")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    arrays = merge_shards([load_npz(p) for p in a.shards], log=lambda s: print(s, flush=True))
    save_npz(a.out, **arrays)


if __name__ == "__main__":
    main()
