"""The shadow budget: every configured attack's AUROC and label-free TPR with K of the
reference models, over seeded subsets per K (docs/method.md: Shadow budget)."""

import argparse
import json

import numpy as np

from curvmia.attacks import needed_f32_features
from curvmia.budget import budget_frame, budget_summary, budget_units
from curvmia.data import load_prepared
from curvmia.health import kept_positions
from curvmia.io import atomic_path, load_npz
from curvmia.report_figures import plot_budget
from curvmia.scorefile import check_score_files
from curvmia.scores import check_float32_features, load_features


def rows(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory")
    ap.add_argument("--masks", required=True)
    ap.add_argument("--health", required=True, help="health.csv: unused shadows are left out")
    ap.add_argument("--shadow-rows", type=rows, required=True, help="comma-separated mask rows")
    ap.add_argument("--target-rows", type=rows, required=True, help="comma-separated mask rows")
    ap.add_argument("--shadow-scores", nargs="+", required=True, help="score files, row order")
    ap.add_argument("--target-scores", nargs="+", required=True, help="score files, row order")
    ap.add_argument(
        "--expect", required=True, help="JSON: per row, the identity its score file must carry"
    )
    ap.add_argument("--specs", required=True, help="attacks section as JSON")
    ap.add_argument("--fprs", required=True, help="metrics.fprs as JSON")
    ap.add_argument(
        "--budget", required=True, help="JSON: metrics.budget_ks, budget_draws and seed"
    )
    ap.add_argument("--n-random", type=int, required=True, help="masks.n_random")
    ap.add_argument("--complements", choices=("true", "false"), required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--png", required=True)
    return ap.parse_args()


def load(a: argparse.Namespace, specs: list[dict]):
    """The kept shadows' rows and features, the targets' features, the masks and labels,
    after every score file's identity and float32 fields are checked."""
    if len(a.shadow_scores) != len(a.shadow_rows) or len(a.target_scores) != len(a.target_rows):
        raise SystemExit("--shadow-scores/--target-scores must give one file per row")
    expect = json.loads(a.expect)
    paths = a.shadow_scores + a.target_scores
    check_score_files(paths, [expect[str(r)] for r in a.shadow_rows + a.target_rows])
    check_float32_features(paths, sorted({f for s in specs for f in needed_f32_features(s)}))
    keep, _ = kept_positions(a.health, a.shadow_rows)

    def feats(files: list[str]) -> dict[str, np.ndarray]:
        out = load_features(files)
        return out | {f"test_{k}": v for k, v in load_features(files, "test_").items()}

    shadow, target = feats([a.shadow_scores[i] for i in keep]), feats(a.target_scores)
    targets = [{f: v[i] for f, v in target.items()} for i in range(len(a.target_rows))]
    masks = load_npz(a.masks)["masks"]
    return [a.shadow_rows[i] for i in keep], shadow, targets, masks, load_prepared(a.data)


def usable_ks(ks: list[int] | None, n_units: int) -> list[int] | None:
    """metrics.budget_ks less the Ks beyond the units left after health exclusions (the
    config check counted the configured shadows); all units when none is left."""
    if ks is None:
        return None
    keep = [k for k in ks if k <= n_units]
    if len(keep) < len(ks):
        print(f"metrics.budget_ks: {sorted(set(ks) - set(keep))} exceed the {n_units} units left")
    return keep or [n_units]


def main() -> None:
    a = parse_args()
    specs, cfg = json.loads(a.specs), json.loads(a.budget)
    kept, shadow, targets, masks, data = load(a, specs)
    complements = a.complements == "true"
    df = budget_frame(
        specs,
        targets,
        masks[a.target_rows],
        shadow,
        masks[kept],
        kept,
        data.train_labels,
        n_random=a.n_random,
        complements=complements,
        ks=usable_ks(cfg["budget_ks"], len(budget_units(kept, a.n_random, complements))),
        draws=cfg["budget_draws"],
        seed=cfg["seed"],
        fprs=json.loads(a.fprs),
    )
    with atomic_path(a.csv, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    summary = budget_summary(df)
    pairs = len(budget_units(kept, a.n_random, complements)) < len(kept)
    with atomic_path(a.png, suffix=".png") as tmp:
        plot_budget(
            summary, str(tmp), unit="pairs" if pairs else "models", fpr_level=df.fpr_level.iloc[0]
        )
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
