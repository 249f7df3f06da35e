"""Leave-one-out protocol: every model in turn as target, the others minus its complement
as shadows (docs/method.md: Membership layouts), every configured attack; beside the fixed targets'
results."""

import argparse
import json

import pandas as pd

from curvmia.attacks import needed_f32_features
from curvmia.data import load_prepared
from curvmia.health import kept_positions
from curvmia.io import atomic_path, load_npz, write_text
from curvmia.leave_one_out import loo_frame, loo_layouts, loo_markdown
from curvmia.scorefile import check_score_files
from curvmia.scores import check_float32_features, load_features


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--masks", required=True)
    ap.add_argument("--masks-cfg", required=True, help="masks section as JSON")
    ap.add_argument("--specs", required=True, help="attacks section as JSON")
    ap.add_argument("--fprs", required=True, help="metrics.fprs as JSON")
    ap.add_argument("--health", required=True, help="health.csv: unused models are left out")
    ap.add_argument("--fixed", required=True, help="metrics.csv of the fixed targets")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--scores", nargs="+", required=True, help="score files of every model")
    ap.add_argument(
        "--expect",
        required=True,
        help="JSON: per row, the identity its score file must carry (curvmia/scorefile.py)",
    )
    return ap.parse_args()


def main() -> None:
    a = parse_args()
    mcfg = json.loads(a.masks_cfg)
    rows = sorted(mcfg["shadows"] + mcfg["targets"])
    if len(a.scores) != len(rows):
        raise SystemExit("--scores: one file per model (shadows + targets, sorted by row)")
    check_score_files(a.scores, [json.loads(a.expect)[str(r)] for r in rows])
    keep, _ = kept_positions(a.health, rows)
    rows = [rows[i] for i in keep]
    paths = [a.scores[i] for i in keep]
    specs = json.loads(a.specs)
    check_float32_features(paths, sorted({f for sp in specs for f in needed_f32_features(sp)}))
    feats = load_features(paths)
    feats.update({f"test_{k}": v for k, v in load_features(paths, "test_").items()})
    masks = load_npz(a.masks)["masks"]
    labels = load_prepared(a.data).train_labels
    layouts = loo_layouts(rows, mcfg["n_random"], mcfg["complements"])
    df = loo_frame(specs, feats, masks, layouts, labels, fprs=json.loads(a.fprs))
    with atomic_path(a.csv, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    fixed = pd.read_csv(a.fixed, dtype={"target": str})
    md = loo_markdown(df, fixed)
    write_text(a.md, md)
    print(md)


if __name__ == "__main__":
    main()
