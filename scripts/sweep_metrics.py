"""Collect a sweep: targets.csv (one row per target), metrics.csv (every attack on every
target, against the main experiment's shadows) and attacks.npz (those attacks' scores)."""

import argparse
import json

import numpy as np
import pandas as pd

from curvmia.checkpoint import load_meta
from curvmia.data import load_prepared
from curvmia.health import kept_positions
from curvmia.io import atomic_path, load_npz, save_npz
from curvmia.scorefile import check_score_files
from curvmia.sweeps import scores_metrics, sweep_scores, targets_frame


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--masks", required=True)
    ap.add_argument("--sweep", required=True, choices=["dp", "size"])
    ap.add_argument("--targets", required=True, help="JSON list of {value, seed, model, ...}")
    ap.add_argument(
        "--health", required=True, help="health.csv: shadows with used=False are dropped"
    )
    ap.add_argument("--shadow-rows", required=True, help="comma-separated mask rows")
    ap.add_argument("--shadow-scores", nargs="+", required=True, help="score files, row order")
    ap.add_argument("--attacks", required=True, help="JSON {label: attack spec}")
    ap.add_argument("--metrics", required=True, help="metrics config section as JSON")
    ap.add_argument(
        "--expect", required=True, help="JSON: per shadow row, the identity of its score file"
    )
    ap.add_argument(
        "--expect-targets", required=True, help="JSON: per target score file, its identity"
    )
    ap.add_argument("--out-targets", required=True)
    ap.add_argument("--out-metrics", required=True)
    ap.add_argument(
        "--out-scores",
        required=True,
        help="npz: scores (attacks, targets, N), labels, is_member (targets, N), targets",
    )
    return ap.parse_args()


def sweep_targets(rows: list[dict], sweep: str) -> pd.DataFrame:
    """The targets table, each row with its checkpoint's test accuracy."""
    for r in rows:
        meta = load_meta(r.pop("checkpoint"))
        r["test_acc"] = float(meta["test_acc"])
        r["sweep"] = sweep
    return targets_frame(rows)


def check_scores(
    a: argparse.Namespace, shadow_rows: list[int], target_files: list[str]
) -> list[str]:
    """Every score file's identity against the workflow's (metadata alone); returns each
    target score file's identity hash (targets.csv records it for the theory step)."""
    expect, sweep = json.loads(a.expect), json.loads(a.expect_targets)
    check_score_files(a.shadow_scores, [expect[str(r)] for r in shadow_rows])
    digests = check_score_files(target_files, [sweep[p] for p in target_files])
    return [digests[str(p)] for p in target_files]


def main() -> None:
    a = parse_args()
    targets = sweep_targets(json.loads(a.targets), a.sweep)
    shadow_rows = [int(v) for v in a.shadow_rows.split(",")]
    if len(shadow_rows) != len(a.shadow_scores):
        raise SystemExit("--shadow-scores must give one file per shadow row")
    targets["score_identity"] = check_scores(a, shadow_rows, list(targets["scores"]))
    keep, unused = kept_positions(a.health, shadow_rows)
    shadow_files = [a.shadow_scores[i] for i in keep]
    shadow_rows = [shadow_rows[i] for i in keep]
    print(f"{len(shadow_rows)} shadows (excluded by health: {sorted(unused) or 'none'})")
    masks = load_npz(a.masks)["masks"]
    labels = load_prepared(a.data, verify=False).train_labels
    cfg = json.loads(a.metrics)
    attacks = json.loads(a.attacks)
    scores, is_member = sweep_scores(targets, shadow_files, masks[shadow_rows], labels, attacks)
    kw = {"fprs": cfg["fprs"], "n_boot": cfg["bootstrap"], "seed": cfg["seed"]}
    df = scores_metrics(targets, scores, is_member, **kw)
    save_npz(
        a.out_scores,
        scores=np.stack(list(scores.values())),
        labels=np.asarray(list(scores)),
        is_member=is_member,
        targets=np.asarray(targets["model"], dtype=str),
    )
    with atomic_path(a.out_targets, suffix=".csv") as tmp:
        targets.to_csv(tmp, index=False)
    with atomic_path(a.out_metrics, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    summary = df.groupby(["attack", "value"])["auroc"].mean().unstack("value")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
