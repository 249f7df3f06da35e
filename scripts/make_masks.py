"""Draw the seeded membership mask set of an experiment (SPEC §1)."""

import argparse
import json

from curvmia.data import load_prepared
from curvmia.io import save_npz
from curvmia.masks import make_masks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--masks", required=True, help="masks config section as JSON")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = json.loads(a.masks)
    n = load_prepared(a.data).manifest["n_train"]
    masks = make_masks(n, cfg["n_random"], cfg["pkeep"], cfg["seed"], cfg["complements"])
    save_npz(a.out, masks=masks)
    print(f"{masks.shape[0]} mask rows over {n} samples; mean row size {masks.sum(1).mean():.1f}")


if __name__ == "__main__":
    main()
