"""Benchmark of the curvature engine against plain inference and a paper-style loop.

Measured in one run, for one model and input size, per configured batch size b:

- plain: eager forward throughput (images/s) in inference mode at batch b; the best over b
  is the bound the ZO engine is compared with;
- zo: scoring throughput (queries/s: one sample, one query = 1 clean forward + 4·niter
  perturbed forwards) of the engine as the workflow runs it, with the user's batch size b;
  efficiency = zo queries/s × (1 + 4·niter) ÷ best plain images/s;
- ref: a straightforward reference (the paper's code): per batch of b samples, one clean
  forward, then per iteration two Rademacher draws and four separate forward calls;
  speedup = zo queries/s ÷ the reference's queries/s at its own best batch size;
- hutch: cost of one Hutchinson probe in forward-equivalents, amortised over K probes of
  one batch (the forward and the graph-building backward shared): time(K probes) / K ÷
  time of one plain forward of that batch at the best plain throughput.

Example (the default model, then ResNet-18 on CIFAR-size inputs):
    python benchmarks/curvature.py --batch-sizes 1,8,64,256,512   # defaults: the default model
    python benchmarks/curvature.py --arch cifar_resnet18 --input 3,32,32 --batch-sizes 1,64,128
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.nn import functional as F

from curvmia.curvature import (
    forward,
    forward_batch_size,
    hutchinson,
    rademacher,
    zo_block_size,
    zo_curvature,
)
from curvmia.models import build_model


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, kernel selection)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="cifar_resnet", help="timm model name")
    ap.add_argument("--model-kwargs", default='{"width": 16, "layers": [1, 1]}', help="JSON")
    ap.add_argument("--input", default="1,8,8", help="C,H,W")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch-sizes", default="1,8,64,256,512")
    ap.add_argument("--niter", type=int, default=10)
    ap.add_argument("--min-samples", type=int, default=64, help="samples scored per batch size")
    ap.add_argument("--nprobes", type=int, default=4, help="Hutchinson probes K")
    ap.add_argument("--hutch-batch", type=int, default=64)
    ap.add_argument("--memory-mb", type=float, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the ZO forward (GPU)")
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)
    shape = tuple(int(v) for v in a.input.split(","))
    sizes = [int(v) for v in a.batch_sizes.split(",")]
    model = build_model(a.arch, a.classes, shape[0], json.loads(a.model_kwargs)).to(dev).eval()
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    n_max = max(max(sizes), a.min_samples)
    gen = torch.Generator().manual_seed(0)
    x_all = torch.randn(n_max, *shape, generator=gen).to(dev).contiguous(memory_format=fmt)
    y_all = torch.randint(0, a.classes, (n_max,), generator=gen).to(dev)
    max_batch = forward_batch_size(model, x_all[0], a.memory_mb)
    fwd = torch.compile(model, dynamic=False) if a.compile else None
    per_query = 1 + 4 * a.niter

    plain = {}
    for b in sizes:
        n = max(b, a.min_samples * 4)
        xb = torch.randn(b, *shape, generator=gen).to(dev).contiguous(memory_format=fmt)
        reps = -(-n // b)

        def run_plain(xb=xb, reps=reps):
            with torch.inference_mode():
                for _ in range(reps):
                    model(xb)
            sync()

        plain[b] = reps * b / best_time(run_plain, a.repeats)
    best_b = max(plain, key=plain.get)
    best_plain = plain[best_b]

    zo, ref = {}, {}
    for b in sizes:
        n = max(b, a.min_samples)
        x, y = x_all[:n], y_all[:n]
        block = zo_block_size(b, max_batch)

        def run_zo(x=x, y=y, n=n, block=block):
            for i in range(0, n, block):
                xb, yb = x[i : i + block], y[i : i + block]
                with torch.inference_mode():
                    forward(model, xb)
                zo_curvature(
                    model,
                    xb,
                    yb,
                    niter=a.niter,
                    seed=[0, 0, 0, 0],
                    index=torch.arange(i, i + len(yb)),
                    max_batch=max_batch,
                    fwd=fwd,
                    pad=fwd is not None,
                )
            sync()

        zo[b] = n / best_time(run_zo, a.repeats)

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

        ref[b] = n / best_time(run_ref, a.repeats)
    ref_best = max(ref.values())

    hb = a.hutch_batch
    xh, yh = x_all[:hb], y_all[:hb]
    if len(xh) < hb:
        xh = xh.repeat(-(-hb // len(xh)), *[1] * len(shape))[:hb]
        yh = yh.repeat(-(-hb // len(yh)))[:hb]

    def run_hutch():
        hutchinson(model, xh, yh, nprobes=a.nprobes, seed=[0])
        sync()

    t_h = best_time(run_hutch, a.repeats)
    fwd_equiv = t_h / a.nprobes / (hb / best_plain)

    print(
        f"model {a.arch} {json.loads(a.model_kwargs)} input {shape} device {dev} threads "
        f"{a.threads} niter {a.niter} forward batch (memory {a.memory_mb} MiB) {max_batch}"
        f"{' compiled' if a.compile else ''}{' channels_last' if a.channels_last else ''}"
    )
    print(f"plain forward best: {best_plain:.0f} img/s at batch {best_b}")
    print(f"reference loop best: {ref_best:.2f} queries/s")
    print(
        f"{'batch':>6} {'plain img/s':>12} {'zo q/s':>9} {'ref q/s':>9} {'eff':>6} {'speedup':>8}"
    )
    for b in sizes:
        eff = zo[b] * per_query / best_plain
        print(
            f"{b:>6} {plain[b]:>12.0f} {zo[b]:>9.2f} {ref[b]:>9.2f} {eff:>6.2f} "
            f"{zo[b] / ref_best:>8.2f}"
        )
    print(
        f"hutchinson: {a.nprobes} probes on batch {hb}: {t_h:.3f} s, "
        f"{fwd_equiv:.2f} forward-equivalents per probe"
    )


if __name__ == "__main__":
    main()
