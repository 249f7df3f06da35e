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
    ap.add_argument("--scores-dir", required=True, help="directory of model_<row>.npz files")
    ap.add_argument("--shadows", type=rows, required=True, help="comma-separated rows")
    ap.add_argument("--targets", type=rows, required=True, help="comma-separated rows")
    ap.add_argument("--spec", required=True, help="attack config entry as JSON")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    spec = json.loads(a.spec)
    masks = load_npz(a.masks)["masks"]
    labels = load_prepared(a.data).train_labels
    path = lambda r: f"{a.scores_dir}/model_{r}.npz"  # noqa: E731
    shadow = load_features([path(r) for r in a.shadows])
    target_stack = load_features([path(r) for r in a.targets])
    targets = [{f: target_stack[f][i] for f in FEATURES} for i in range(len(a.targets))]
    scores, is_member = run_attack(
        spec, targets, shadow, masks[a.shadows], masks[a.targets], labels
    )
    save_npz(a.out, scores=scores, is_member=is_member, targets=np.asarray(a.targets))
    print(f"{spec}: {len(a.shadows)} shadows, {len(a.targets)} targets, "
          f"{int(np.isnan(scores).sum())} NaN scores")


if __name__ == "__main__":
    main()
