"""Paper-size benchmark of the shadow budget step (issue 29 item 5).

Synthetic features of the paper's CIFAR size (benchmarks/attacks.py: 64 shadows x 50,000
samples x 2 queries, 3 targets, a 10,000-sample test split) in the paper's independent
layout; every attack entry of config/cifar10.yaml at the default K list (1, 2, 4, ..., 64)
with metrics.budget_draws = 5 and the default FPR levels: each draw scores the targets and
every reference of the subset as a pseudo-target (curvmia/budget.py). Prints the wall time
per K and in total against the target of the issue (15 minutes on 2 cores).

    OMP_NUM_THREADS=2 python benchmarks/budget.py [--samples 50000 --shadows 64]
"""

import argparse
import importlib.util
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's package

from curvmia import budget  # noqa: E402

LIMIT_S = 15 * 60


def synthetic_features(n_models: int, n: int, n_z: int):
    """benchmarks/attacks.py's features, with the white-box traces the configs' curvature
    entries read (curv_hutch, curv_hutch_sq) made from curv_zo."""
    spec = importlib.util.spec_from_file_location("bench_attacks", REPO / "benchmarks/attacks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    feats, masks, labels = mod.synthetic(n_models, n, n_z)
    for prefix in ("", "test_"):
        feats[prefix + "curv_hutch"] = feats[prefix + "curv_zo"]
        feats[prefix + "curv_hutch_sq"] = feats[prefix + "curv_zo"] ** 2
    return feats, masks, labels


def time_per_k(a, specs, fprs, targets, t_in, shadow, s_in, labels):
    """Run the budget one K at a time, printing each K's wall and CPU seconds; returns the
    total wall time and the K = all frame."""
    rows = list(range(a.shadows))
    total, frames = 0.0, []
    for k in budget.budget_ks(None, a.shadows):
        t0, c0 = time.perf_counter(), time.process_time()
        frames.append(
            budget.budget_frame(
                specs, targets, t_in, shadow, s_in, rows, labels, n_random=a.shadows,
                complements=False, ks=[k], draws=a.draws, seed=0, fprs=fprs,
            )
        )  # fmt: skip
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        total += dt
        print(
            f"  K = {k:3d}: {len(frames[-1]) // len(specs)} draws, {dt:7.1f} s wall, "
            f"{dc:7.1f} s CPU",
            flush=True,
        )
    return total, frames[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shadows", type=int, default=64)
    ap.add_argument("--samples", type=int, default=50_000)
    ap.add_argument("--test-samples", type=int, default=10_000)
    ap.add_argument("--targets", type=int, default=3)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--config", default=str(REPO / "config" / "cifar10.yaml"))
    a = ap.parse_args()
    cfg = yaml.safe_load(Path(a.config).read_text())
    specs, fprs = cfg["attacks"], cfg["metrics"]["fprs"]
    feats, masks, labels = synthetic_features(a.shadows + a.targets, a.samples, a.test_samples)
    rows = list(range(a.shadows))
    shadow = {f: v[: a.shadows] for f, v in feats.items()}
    targets = [{f: v[a.shadows + t] for f, v in feats.items()} for t in range(a.targets)]
    t_in = masks[a.shadows :]
    print(
        f"{a.shadows} shadows x {a.samples} samples x 2 queries, {a.targets} targets, "
        f"{len(specs)} attack entries of {Path(a.config).name}, {a.draws} draws per K, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    cpu0 = time.process_time()
    total, df = time_per_k(a, specs, fprs, targets, t_in, shadow, masks[rows], labels)
    print(df[["attack", "auroc", "tpr", "fpr", "fpr_level"]].to_string(index=False))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    cpu = time.process_time() - cpu0
    print(
        f"TOTAL {total:.1f} s wall (target {LIMIT_S} s on 2 cores, ratio {total / LIMIT_S:.2f}); "
        f"{cpu:.1f} s CPU (this process, all threads; the wall time of an otherwise idle "
        f"machine is about this or less); load average {os.getloadavg()[0]:.1f}; "
        f"PEAK RSS {peak:.2f} GiB; mean AUROC at K = all {np.nanmean(df.auroc):.3f}"
    )


if __name__ == "__main__":
    main()
