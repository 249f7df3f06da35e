"""Draw the seeded membership mask set of an experiment (docs/method.md: Membership layouts);
imported rows take
their declared membership instead (docs/audit-your-model.md)."""

import argparse
import json

import numpy as np

from curvmia.data import load_prepared
from curvmia.imported import check_file, read_members
from curvmia.io import save_npz
from curvmia.masks import make_masks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--masks", required=True, help="masks config section as JSON")
    ap.add_argument(
        "--imported",
        default="{}",
        help="JSON {row: members spec or null (unknown)} of the imported rows",
    )
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = json.loads(a.masks)
    n = load_prepared(a.data).manifest["n_train"]
    masks = make_masks(n, cfg["n_random"], cfg["pkeep"], cfg["seed"], cfg["complements"])
    # known[r]: row r's membership is known (False only for an imported target whose
    # training set is not known: its row is empty and no metric uses it)
    known = np.ones(len(masks), dtype=bool)
    for row, spec in json.loads(a.imported).items():
        r, where = int(row), f"imported.models[row {row}].members"
        if spec is None:
            masks[r], known[r] = False, False
            continue
        try:
            check_file(spec["path"], spec["sha256"], where)
            masks[r] = read_members(spec, n, where)
        except ValueError as e:
            raise SystemExit(f"Invalid imported membership: {e}") from None
        print(f"row {r}: {int(masks[r].sum())} members from {spec['path']} ({spec['source']})")
    save_npz(a.out, masks=masks, known=known)
    print(f"{masks.shape[0]} mask rows over {n} samples; mean row size {masks.sum(1).mean():.1f}")


if __name__ == "__main__":
    main()
