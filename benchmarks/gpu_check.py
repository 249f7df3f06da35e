"""Scoring checks of benchmarks/gpu_check.sh on synthetic CIFAR-shaped data (no download).

One randomly initialised model scores a synthetic population as the workflow does
(``curvmia.scores.score_model``: ZO curvature, Hutchinson, Conv-BN folding), and the script
checks and prints:

- determinism: two runs give identical arrays (the paper variant, TF32 off);
- sharding: shards 0/2 and 1/2 merged equal the unsharded run;
- TF32 on (matmul and cuDNN switched on after the model is prepared, which ``score_model``
  otherwise forbids): seconds and the largest relative change of the ZO curvature;
- the compiled ZO path (``scoring.compile``; a GPU only): seconds and the largest change.

Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curvmia import scores  # noqa: E402
from curvmia.data import Prepared  # noqa: E402
from curvmia.device import pick_device  # noqa: E402
from curvmia.models import build_model  # noqa: E402


def synthetic_cifar(n: int, n_test: int, seed: int = 0) -> Prepared:
    """Random uint8 images of CIFAR's shape (3x32x32, 10 classes), seeded."""
    rng = np.random.default_rng(seed)

    def images(k: int) -> np.ndarray:
        return rng.integers(0, 256, size=(k, 3, 32, 32), dtype=np.uint8)

    manifest = {"dataset": "synthetic", "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3}
    return Prepared(
        images(n), rng.integers(0, 10, n), images(n_test), rng.integers(0, 10, n_test), manifest
    )


def run(model_fn, data, scoring, device, shard=(0, 1), tf32=False):
    """score_model on a fresh copy of the model; (arrays, seconds)."""
    prepare = scores.prepare_model

    def prepare_with_tf32(model, cfg, dev):
        out = prepare(model, cfg, dev)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        return out

    scores.prepare_model = prepare_with_tf32
    try:
        t0 = time.perf_counter()
        arrays = scores.score_model(
            model_fn(), data, scoring=scoring, row=0, device=device, log=lambda s: None, shard=shard
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        return arrays, time.perf_counter() - t0
    finally:
        scores.prepare_model = prepare


def numeric(arrays: dict) -> dict[str, np.ndarray]:
    return {k: v for k, v in arrays.items() if k != "meta"}


def identical(a: dict, b: dict) -> bool:
    a, b = numeric(a), numeric(b)
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def max_rel_change(a: dict, b: dict, key: str) -> float:
    x, y = numeric(a)[key].astype(np.float64), numeric(b)[key].astype(np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.max(np.abs(x[ok] - y[ok]) / np.maximum(np.abs(x[ok]), 1e-12), initial=0.0))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--arch", default="cifar_resnet18")
    ap.add_argument("--model-kwargs", default="{}", help="JSON")
    ap.add_argument("--n", type=int, default=2048, help="population size")
    ap.add_argument("--n-test", type=int, default=512)
    ap.add_argument("--niter", type=int, default=10)
    ap.add_argument("--nprobes", type=int, default=2)
    ap.add_argument("--memory-mb", type=float, default=8192)
    return ap.parse_args()


def check_scoring(model_fn, data, scoring, device) -> tuple[list[str], float, dict]:
    """Two runs identical, shards merged = unsharded, TF32 on; (failures, seconds, arrays)."""
    failures = []
    first, t_first = run(model_fn, data, scoring, device)
    second, t_second = run(model_fn, data, scoring, device)
    same = identical(first, second)
    print(f"scores, TF32 off: {t_first:.1f} s, again {t_second:.1f} s; identical: {same}")
    failures += [] if same else ["two runs differ"]
    parts = [run(model_fn, data, scoring, device, shard=(i, 2))[0] for i in range(2)]
    merged = scores.merge_shards(parts, log=lambda s: None)
    same = identical(first, merged)
    print(f"sharded scoring (2 shards merged) equals unsharded: {same}")
    failures += [] if same else ["shards differ"]
    tf32, t_tf32 = run(model_fn, data, scoring, device, tf32=True)
    print(
        f"scores, TF32 on: {t_tf32:.1f} s ({t_second / t_tf32:.2f}x TF32 off); ZO curvature"
        f" max relative change {max_rel_change(second, tf32, 'curv_zo'):.2e}"
    )
    return failures, t_second, second


def check_compiled(model_fn, data, scoring, device, t_eager: float, eager: dict) -> list[str]:
    """The compiled ZO path (a GPU only): seconds, identical across runs, change vs eager."""
    if device.type != "cuda":
        print("compiled ZO path: skipped (scoring.compile applies on a GPU only)")
        return []
    comp, t_comp = run(model_fn, data, {**scoring, "compile": True}, device)
    comp2, t_comp2 = run(model_fn, data, {**scoring, "compile": True}, device)
    same = identical(comp, comp2)
    print(
        f"compiled ZO path: {t_comp:.1f} s (compiling), again {t_comp2:.1f} s"
        f" ({t_eager / t_comp2:.2f}x eager); identical across runs: {same}; ZO curvature"
        f" max relative change vs eager {max_rel_change(eager, comp, 'curv_zo'):.2e}"
    )
    return [] if same else ["compiled runs differ"]


def main() -> None:
    a = parse_args()
    device = pick_device(a.device)
    data = synthetic_cifar(a.n, a.n_test)
    kwargs = json.loads(a.model_kwargs)

    def model_fn():
        torch.manual_seed(0)
        return build_model(a.arch, 10, 3, kwargs).eval()

    scoring = {
        "variant": "paper",
        "h": 0.001,
        "niter": a.niter,
        "batch_size": 256,
        "seed": 0,
        "hutch_nprobes": a.nprobes,
        "memory_mb": a.memory_mb,
        "forward_batch": "auto",
        "fold_bn": True,
        "channels_last": "auto",
        "compile": False,
    }
    failures, t_eager, eager = check_scoring(model_fn, data, scoring, device)
    failures += check_compiled(model_fn, data, scoring, device, t_eager, eager)
    if failures:
        print("FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("scoring checks passed")


if __name__ == "__main__":
    main()
