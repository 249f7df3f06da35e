"""Benchmark of the curvature engine against plain inference and a paper-style loop.

Measured in one run, for one model and input size (every timing is the best of --rounds
rounds, the rounds interleaving all measurements so that a load change hits them alike):

- plain: eager forward throughput (images/s) in inference mode at batch sizes 4, 8, 16, …
  up to the memory cap, plus the configured ones; the best is the bound the engine is
  compared with;
- zo: scoring throughput (queries/s: one sample, one query = 1 clean forward + 4·niter
  perturbed forwards) of the engine as the workflow runs it for a user batch size b
  (forward batch chosen by ``tune_forward_batch`` under --memory-mb, as scoring does);
  efficiency = zo queries/s × (1 + 4·niter) ÷ best plain images/s;
- ref: a straightforward reference (the paper's code): per batch of b samples, one clean
  forward, then per iteration two Rademacher draws and four separate forward calls;
  speedup = zo queries/s at b ÷ the reference's queries/s at its own best batch size;
- hutch: one Hutchinson probe in forward-equivalents, amortised over K probes of one batch
  (the forward and the graph-building backward shared): time(K probes) / K ÷ time of one
  plain forward of that many images at the best plain throughput; also the shared part and
  one Hessian-vector product alone.

Examples (the default model, then ResNet-18 on CIFAR-size inputs):
    python benchmarks/curvature.py --batch-sizes 1,8,64,256,512
    python benchmarks/curvature.py --arch cifar_resnet18 --model-kwargs '{}' --input 3,32,32 \\
        --batch-sizes 1,8,64,256,512 --rounds 1 --min-samples 16
    # on a GPU: --device cuda --memory-mb 8192 --batch-sizes 256,512,1024,2048 --compile
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial

import torch
from torch.nn import functional as F

from curvmia.curvature import (
    _hvp_fn,
    forward,
    forward_batch_size,
    hutchinson,
    rademacher,
    tune_forward_batch,
    zo_block_size,
    zo_curvature,
)
from curvmia.models import build_model


def interleaved_best(
    fns: dict[str, Callable[[], None]], rounds: int, warmup: bool = True
) -> dict[str, float]:
    """Best wall time of each function over ``rounds`` rounds (after one warm-up each)."""
    for fn in fns.values() if warmup else []:
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="cifar_resnet", help="timm model name")
    ap.add_argument("--model-kwargs", default='{"width": 16, "layers": [1, 1]}', help="JSON")
    ap.add_argument("--input", default="1,8,8", help="C,H,W")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch-sizes", default="1,8,64,256,512", help="user batch sizes b")
    ap.add_argument(
        "--reference-sizes",
        default=None,
        help="batch sizes of the reference loop (default: --batch-sizes); its best is the bar",
    )
    ap.add_argument("--niter", type=int, default=10)
    ap.add_argument("--min-samples", type=int, default=64, help="samples scored per batch size")
    ap.add_argument("--nprobes", type=int, default=2, help="Hutchinson probes K (config: 2)")
    ap.add_argument("--hutch-batch", type=int, default=256, help="config scoring.batch_size")
    ap.add_argument("--memory-mb", type=float, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the ZO forward (GPU)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument(
        "--no-warmup",
        action="store_true",
        help="no untimed first call (for long measurements of big models)",
    )
    ap.add_argument(
        "--per-batch",
        action="store_true",
        help="also time the engine at every forward batch size (its overhead alone)",
    )
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)
    shape = tuple(int(v) for v in a.input.split(","))
    sizes = [int(v) for v in a.batch_sizes.split(",")]
    ref_sizes = [int(v) for v in (a.reference_sizes or a.batch_sizes).split(",")]
    if not set(ref_sizes) <= set(sizes):
        ap.error("--reference-sizes must be among --batch-sizes")
    model = build_model(a.arch, a.classes, shape[0], json.loads(a.model_kwargs)).to(dev).eval()
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    n_diag = max(a.min_samples, 64)  # samples of the --per-batch diagnostic
    n_max = max(max(sizes), a.min_samples, a.hutch_batch, n_diag)
    x_all = torch.randn(n_max, *shape, generator=gen).to(dev).contiguous(memory_format=fmt)
    y_all = torch.randint(0, a.classes, (n_max,), generator=gen).to(dev)
    sample = x_all[0]
    cap = forward_batch_size(model, sample, a.memory_mb)
    fwd = torch.compile(model, dynamic=False) if a.compile else None
    t0 = time.perf_counter()
    fb = cap if a.compile else tune_forward_batch(model, sample, cap, channels_last=a.channels_last)
    tune_s = time.perf_counter() - t0
    per_query = 1 + 4 * a.niter
    niter_f = 4 * a.niter  # perturbed forwards per query

    fns: dict[str, Callable[[], None]] = {}
    work: dict[str, int] = {}  # images (plain) or queries (zo, ref) per call
    plain_sizes = sorted({4 << k for k in range(cap.bit_length()) if 4 << k <= cap} | set(sizes))
    for b in plain_sizes:
        xb = torch.randn(b, *shape, generator=gen).to(dev).contiguous(memory_format=fmt)
        reps = max(1, -(-(a.min_samples * per_query) // b))  # as many images as a ZO timing

        def run_plain(xb=xb, reps=reps):
            with torch.inference_mode():
                for _ in range(reps):
                    model(xb)
            sync()

        fns[f"plain{b}"], work[f"plain{b}"] = run_plain, reps * b

    for b in sizes:
        n = max(b, a.min_samples)
        x, y = x_all[:n], y_all[:n]
        block = zo_block_size(b, fb)

        def run_zo(x=x, y=y, n=n, block=block):
            for i in range(0, n, block):
                xb, yb = x[i : i + block], y[i : i + block]
                with torch.inference_mode():
                    for j in range(0, len(yb), fb):
                        forward(model, xb[j : j + fb])
                zo_curvature(
                    model,
                    xb,
                    yb,
                    niter=a.niter,
                    seed=[0, 0, 0, 0],
                    index=torch.arange(i, i + len(yb)),
                    max_batch=fb,
                    fwd=fwd,
                    pad=fwd is not None,
                )
            sync()

        def run_ref(x=x, y=y, n=n, b=b):
            g = torch.Generator().manual_seed(0)
            with torch.inference_mode():
                for i in range(0, n, b):
                    xb, yb = x[i : i + b], y[i : i + b]
                    model(xb)
                    acc = torch.zeros(len(yb), device=dev)
                    for _ in range(a.niter):
                        v = 1e-3 * (rademacher(xb.shape, g, xb.dtype).to(dev) + 1e-7)
                        u = 1e-3 * (rademacher(xb.shape, g, xb.dtype).to(dev) + 1e-7)
                        ls = [
                            F.cross_entropy(model(z), yb, reduction="none")
                            for z in (xb + v + u, xb - v + u, xb + v - u, xb - v - u)
                        ]
                        acc += torch.abs((ls[0] - ls[1] - ls[2] + ls[3]) / 4e-3)
            sync()

        fns[f"zo{b}"], work[f"zo{b}"] = run_zo, n
        if b in ref_sizes:
            fns[f"ref{b}"], work[f"ref{b}"] = run_ref, n

    # diagnostic: the engine's perturbed forwards alone with each plain size as forward batch
    # (separates its own overhead from the choice of the forward batch)

    def run_zo_at(fbatch: int) -> None:
        zo_curvature(
            model,
            x_all[:n_diag],
            y_all[:n_diag],
            niter=a.niter,
            seed=[0, 0, 0, 0],
            index=torch.arange(n_diag),
            max_batch=fbatch,
        )
        sync()

    for pb in plain_sizes if a.per_batch else []:
        if pb % 4 == 0 and not a.compile:
            fns[f"zofb{pb}"], work[f"zofb{pb}"] = partial(run_zo_at, pb), n_diag

    hb = a.hutch_batch
    xh, yh = x_all[:hb], y_all[:hb]
    rs = torch.randint(0, 2, (1, hb, *shape), generator=gen).to(dev, x_all.dtype) * 2 - 1

    def run_hutch():
        hutchinson(model, xh, yh, nprobes=a.nprobes, seed=[0])
        sync()

    def run_setup():
        _hvp_fn(model, xh, yh)
        sync()

    _, hvp = _hvp_fn(model, xh, yh)

    def run_hvp():
        hvp(rs)
        sync()

    fns.update(hutch=run_hutch, setup=run_setup, hvp=run_hvp)
    best = interleaved_best(fns, a.rounds, warmup=not a.no_warmup)
    rate = {k: work[k] / t for k, t in best.items() if k in work}

    plain = {b: rate[f"plain{b}"] for b in plain_sizes}
    best_b = max(plain, key=plain.get)
    best_plain = plain[best_b]
    ref_rates = {b: rate[f"ref{b}"] for b in sizes if b in ref_sizes}
    ref_b = max(ref_rates, key=ref_rates.get)
    ref_best = ref_rates[ref_b]
    t_fwd = hb / best_plain  # one forward of hb images at the best plain throughput

    print(
        f"model {a.arch} {json.loads(a.model_kwargs)} input {shape} device {dev} threads "
        f"{a.threads} niter {a.niter} rounds {a.rounds} torch {torch.__version__}"
        f"{' compiled' if a.compile else ''}{' channels_last' if a.channels_last else ''}"
    )
    print(
        f"forward batch: memory cap ({a.memory_mb} MiB) {cap}, engine's choice {fb} "
        f"({'fixed: compiled' if a.compile else f'tuned in {tune_s:.2f} s'})"
    )
    print("plain forward img/s by batch: " + ", ".join(f"{b}: {plain[b]:.0f}" for b in plain))
    print(f"plain forward best: {best_plain:.0f} img/s at batch {best_b}")
    print(f"reference loop best: {ref_best:.2f} queries/s at batch {ref_b}")
    print(f"{'batch':>6} {'zo q/s':>9} {'ref q/s':>9} {'eff':>6} {'ref eff':>8} {'speedup':>8}")
    effs, speedups = [], []
    for b in sizes:
        eff = rate[f"zo{b}"] * per_query / best_plain
        effs.append(eff)
        speedups.append(rate[f"zo{b}"] / ref_best)
        ref_q = f"{ref_rates[b]:>9.2f}" if b in ref_rates else f"{'-':>9}"
        ref_e = f"{ref_rates[b] * per_query / best_plain:>8.2f}" if b in ref_rates else f"{'-':>8}"
        print(f"{b:>6} {rate[f'zo{b}']:>9.2f} {ref_q} {eff:>6.2f} {ref_e} {speedups[-1]:>8.2f}")
    zofb = {pb: rate[f"zofb{pb}"] * niter_f / plain[pb] for pb in plain if f"zofb{pb}" in rate}
    if zofb:
        print(
            "engine's perturbed forwards at each forward batch, img/s ÷ plain img/s there: "
            + ", ".join(f"{pb}: {r:.2f}" for pb, r in zofb.items())
        )
    print(
        f"ZO efficiency min {min(effs):.2f}; "
        f"speedup over the best reference min {min(speedups):.2f}"
    )
    print(
        f"hutchinson: K={a.nprobes} probes on a batch of {hb}: {best['hutch']:.3f} s = "
        f"{best['hutch'] / a.nprobes / t_fwd:.2f} forward-equivalents per probe "
        f"(shared forward + graph-building backward {best['setup'] / t_fwd:.2f}, "
        f"one Hessian-vector product {best['hvp'] / t_fwd:.2f})"
    )


if __name__ == "__main__":
    main()
