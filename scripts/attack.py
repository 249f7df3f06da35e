"""Run one configured attack against every target model."""

import argparse
import json

import numpy as np

from curvmia.attacks import run_attack
from curvmia.data import load_prepared
from curvmia.io import load_npz, save_npz
from curvmia.scores import FEATURES, load_features


def rows(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--masks", required=True)
    ap.add_argument("--shadow-rows", type=rows, required=True, help="comma-separated mask rows")
    ap.add_argument("--target-rows", type=rows, required=True, help="comma-separated mask rows")
    ap.add_argument("--shadow-scores", nargs="+", required=True, help="score files, row order")
    ap.add_argument("--target-scores", nargs="+", required=True, help="score files, row order")
    ap.add_argument("--spec", required=True, help="attack config entry as JSON")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    spec = json.loads(a.spec)
    masks = load_npz(a.masks)["masks"]
    labels = load_prepared(a.data).train_labels
    if len(a.shadow_scores) != len(a.shadow_rows) or len(a.target_scores) != len(a.target_rows):
        raise SystemExit("--shadow-scores/--target-scores must give one file per row")
    shadow = load_features(a.shadow_scores)
    target_stack = load_features(a.target_scores)
    targets = [{f: target_stack[f][i] for f in FEATURES} for i in range(len(a.target_rows))]
    scores, is_member = run_attack(
        spec, targets, shadow, masks[a.shadow_rows], masks[a.target_rows], labels
    )
    save_npz(a.out, scores=scores, is_member=is_member, targets=np.asarray(a.target_rows))
    print(
        f"{spec}: {len(a.shadow_rows)} shadows, {len(a.target_rows)} targets, "
        f"{int(np.isnan(scores).sum())} NaN scores"
    )


if __name__ == "__main__":
    main()
