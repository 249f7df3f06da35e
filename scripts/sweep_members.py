"""Membership of the sweep targets: a fresh mask (DP sweep) or the first m of a seeded
permutation (size sweep); bool .npy over the population."""

import argparse
import json

import numpy as np

from curvmia.data import load_prepared
from curvmia.io import atomic_path, load_npz, write_json
from curvmia.masks import first_m_members, fresh_mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--masks", required=True, help="masks.npz of the experiment")
    ap.add_argument("--sweep", required=True, choices=["dp", "size"])
    ap.add_argument("--params", required=True, help="JSON: dp {mode, seed, pkeep}; size {m, seed}")
    ap.add_argument("--out", required=True)
    ap.add_argument("--info", help="dp: JSON note on the membership choice")
    a = ap.parse_args()
    p = json.loads(a.params)
    n = load_prepared(a.data, verify=False).manifest["n_train"]
    masks = load_npz(a.masks)["masks"]
    if a.sweep == "dp":
        if p["mode"] == "paper":
            members = masks[0].copy()
            note = (
                "paper: DP targets share mask row 0 with shadow 0 "
                "(biased, docs/method.md: Training recipes)"
            )
        else:
            members = fresh_mask(n, p["pkeep"], p["seed"], masks)
            note = "fresh: a mask no shadow uses"
        write_json(a.info, {"mode": p["mode"], "note": note, "n_members": int(members.sum())})
    else:
        members = first_m_members(n, p["m"], p["seed"])
    with atomic_path(a.out, suffix=".npy") as tmp:
        np.save(tmp, members)
    print(f"{a.sweep}: {int(members.sum())} members of {n}")


if __name__ == "__main__":
    main()
