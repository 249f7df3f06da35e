"""Benchmark of the curvature engine against plain inference and a paper-style loop.

Measured in one run, for one model and input size, in two phases.  Every timing is the
best of its rounds, and the rounds interleave all measurements of a phase so that a load
change hits them alike.

1. Scan (--scan-rounds): eager plain forward throughput (images/s, inference mode) at
   batch sizes 4, 8, 16, … up to the memory cap plus the configured ones, in both memory
   layouts (contiguous, channels_last); and the reference loop at each --reference-sizes.
   This picks the best plain (layout, batch) and the reference's best batch.
2. Measurement (--rounds): plain at that best (layout, batch) and the reference at its best
   batch are timed again, interleaved with the engine at every user batch size b.  The
   maxima of the scan are not reused as the bars: a maximum over many noisy timings is
   biased upwards (the winner's curse), and the engine gets one timing per b.

- zo: scoring throughput (queries/s: one sample, one query = 1 clean forward + 4·niter
  perturbed forwards) of the engine as the workflow runs it for a user batch size b: its
  layout (--layout, default channels_last as ``scoring.channels_last: auto``), its
  scoring model (Conv2d-BatchNorm2d pairs folded, as ``scoring.fold_bn: true``; the
  eager model with --no-fold; the plain bars stay eager, as the efficiency is defined),
  forward batch tuned at start under --memory-mb (``tune_forward_batch``), then chosen
  online by a ``ForwardBatchChooser`` on a CPU, one for all the engine's timings;
  efficiency = zo queries/s × (1 + 4·niter) ÷ plain images/s at the best (layout, batch);
- ref: a straightforward reference (the paper's code, contiguous layout): per batch of b
  samples, one clean forward, then ``zo_curvature_reference`` (the estimator as written: per
  iteration two Rademacher draws and four separate forward calls); speedup = zo queries/s
  at b ÷ the reference's queries/s at its best batch;
- hutch: one Hutchinson probe (on the scoring model, as scoring runs it) in
  forward-equivalents, amortised over K probes of one batch (the forward and the
  graph-building backward shared), for each K of --nprobes:
  time(K probes) / K ÷ time of one plain forward of that many images at the best plain
  throughput; also the shared part and one Hessian-vector product alone.

Examples (the default model, then ResNet-18 on CIFAR-size inputs):
    python benchmarks/curvature.py --batch-sizes 1,8,64,256,512
    python benchmarks/curvature.py --arch cifar_resnet18 --model-kwargs '{}' --input 3,32,32 \\
        --batch-sizes 1,8,64 --reference-sizes 8,64 --rounds 2 --scan-rounds 1 --min-samples 64
    # on a GPU: --device cuda --memory-mb 8192 --batch-sizes 256,512,1024,2048 --compile
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from curvmia.curvature import (
    ForwardBatchChooser,
    _hvp_fn,
    candidate_batches,
    fold_batchnorm,
    forward,
    forward_batch_size,
    hutchinson,
    tune_forward_batch,
    zo_block_size,
    zo_curvature,
    zo_curvature_reference,
)
from curvmia.models import build_model

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


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


def parse_args() -> argparse.Namespace:
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
    ap.add_argument(
        "--min-samples",
        type=int,
        default=512,
        help="samples per timing (at least b): timings of equal work, so that short ones do "
        "not catch more of a noisy machine's fast moments than long ones",
    )
    ap.add_argument(
        "--nprobes", default="2,10", help="Hutchinson probes K (config: 2; API default: 10)"
    )
    ap.add_argument("--hutch-batch", type=int, default=256, help="config scoring.batch_size")
    ap.add_argument("--memory-mb", type=float, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the measurement phase")
    ap.add_argument("--scan-rounds", type=int, default=3, help="rounds of the scan phase")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the ZO forward (GPU)")
    ap.add_argument(
        "--layout",
        choices=["channels_last", "contiguous"],
        default="channels_last",
        help="the engine's memory layout (scoring.channels_last: auto = channels_last)",
    )
    ap.add_argument(
        "--no-fold",
        action="store_true",
        help="the engine runs the eager model (scoring.fold_bn: false)",
    )
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
    return ap.parse_args()


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


@dataclass
class Bench:
    """The models, data and engine settings every timing of one run shares."""

    a: argparse.Namespace
    dev: torch.device
    shape: tuple[int, ...]
    models: dict[str, torch.nn.Module]  # the same weights in both layouts, eager
    fast: torch.nn.Module  # the engine's scoring model (folded unless --no-fold)
    folded: int
    gen: torch.Generator
    x_all: torch.Tensor
    y_all: torch.Tensor
    x_eng: torch.Tensor  # x_all in the engine's layout
    cap: int  # the memory bound on the forward batch
    fb: int  # the engine's forward batch (tuned, or the cap when compiled)
    tune_s: float
    chooser: ForwardBatchChooser | None
    fwd: Callable[[torch.Tensor], torch.Tensor] | None

    @property
    def per_query(self) -> int:
        return 1 + 4 * self.a.niter

    @property
    def n_diag(self) -> int:  # samples of the --per-batch diagnostic
        return max(self.a.min_samples, 64)

    def sync(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize()


def make_bench(a: argparse.Namespace) -> Bench:
    """The model in both layouts, the engine's scoring model and forward batch, the data."""
    torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)
    shape = tuple(ints(a.input))
    base = build_model(a.arch, a.classes, shape[0], json.loads(a.model_kwargs)).to(dev).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    # the same weights in both layouts (Module.to converts in place, hence the copy)
    models = {
        "contiguous": base,
        "channels_last": copy.deepcopy(base).to(memory_format=torch.channels_last),
    }
    model = models[a.layout]
    # the model the engine scores with, as scoring builds it (scoring.fold_bn: true)
    fast, folded = (
        (model, 0) if a.no_fold else fold_batchnorm(model, channels_last=a.layout != "contiguous")
    )
    gen = torch.Generator().manual_seed(0)
    n_max = max(*ints(a.batch_sizes), *ints(a.reference_sizes or a.batch_sizes))
    n_max = max(n_max, a.min_samples, a.hutch_batch, max(a.min_samples, 64))
    x_all = torch.randn(n_max, *shape, generator=gen).to(dev)
    y_all = torch.randint(0, a.classes, (n_max,), generator=gen).to(dev)
    x_eng = x_all.contiguous(memory_format=LAYOUTS[a.layout])
    cap = forward_batch_size(fast, x_eng[0], a.memory_mb)
    fwd = torch.compile(fast, dynamic=False) if a.compile else None
    t0 = time.perf_counter()
    cl = a.layout != "contiguous"
    fb = cap if a.compile else tune_forward_batch(fast, x_eng[0], cap, channels_last=cl)
    tune_s = time.perf_counter() - t0
    # as scoring does on a CPU: the tuned size is where the online choice starts (one
    # chooser for all of the engine's timings, as one scoring job keeps one for its blocks)
    chooser = None
    if dev.type == "cpu" and not a.compile:
        chooser = ForwardBatchChooser(candidate_batches(cap), fb)
    return Bench(a, dev, shape, models, fast, folded, gen, x_all, y_all, x_eng, cap, fb,
                 tune_s, chooser, fwd)  # fmt: skip


def plain_fn(
    bn: Bench, layout: str, b: int, m: torch.nn.Module | None = None
) -> tuple[Callable[[], None], int]:
    """Plain inference at batch b in ``layout``, as many images as a ZO timing; (fn, images)."""
    m = bn.models[layout] if m is None else m
    xb = torch.randn(b, *bn.shape, generator=bn.gen).to(bn.dev)
    xb = xb.contiguous(memory_format=LAYOUTS[layout])
    reps = max(1, -(-(bn.a.min_samples * bn.per_query) // b))

    def run_plain() -> None:
        with torch.inference_mode():
            for _ in range(reps):
                m(xb)
        bn.sync()

    return run_plain, reps * b


def ref_fn(bn: Bench, b: int) -> tuple[Callable[[], None], int]:
    """The paper-style loop (contiguous): per batch of b samples one clean forward, then the
    reference form of the estimator; (fn, queries)."""
    m = bn.models["contiguous"]
    n = max(b, bn.a.min_samples)
    x, y = bn.x_all[:n], bn.y_all[:n]

    def run_ref() -> None:
        g = torch.Generator().manual_seed(0)
        for i in range(0, n, b):
            xb, yb = x[i : i + b], y[i : i + b]
            with torch.inference_mode():
                m(xb)
            zo_curvature_reference(m, xb, yb, h=1e-3, niter=bn.a.niter, generator=g)
        bn.sync()

    return run_ref, n


def zo_fn(bn: Bench, b: int) -> tuple[Callable[[], None], int]:
    """The engine as the workflow runs it for a user batch size b; (fn, queries)."""
    n = max(b, bn.a.min_samples)
    x, y = bn.x_eng[:n], bn.y_all[:n]
    chooser = bn.chooser
    block = zo_block_size(b, bn.cap if chooser is not None else bn.fb)

    def run_zo() -> None:
        for i in range(0, n, block):
            xb, yb = x[i : i + block], y[i : i + block]
            clean = chooser.best if chooser is not None else bn.fb
            with torch.inference_mode():
                for j in range(0, len(yb), clean):
                    forward(bn.fast, xb[j : j + clean])
            zo_curvature(bn.fast, xb, yb, niter=bn.a.niter, seed=[0, 0, 0, 0],
                         index=torch.arange(i, i + len(yb)),
                         max_batch=None if chooser is not None else bn.fb, fwd=bn.fwd,
                         pad=bn.fwd is not None, chooser=chooser)  # fmt: skip
        bn.sync()

    return run_zo, n


def run_zo_at(bn: Bench, fbatch: int) -> None:
    """The engine's perturbed forwards alone, at forward batch ``fbatch``."""
    n = bn.n_diag
    zo_curvature(bn.fast, bn.x_eng[:n], bn.y_all[:n], niter=bn.a.niter, seed=[0, 0, 0, 0],
                 index=torch.arange(n), max_batch=fbatch)  # fmt: skip
    bn.sync()


def scan_phase(bn: Bench, plain_sizes: list[int]) -> dict[str, float]:
    """Phase 1: plain throughput per (layout, batch), the reference per batch, and with
    --per-batch the engine per forward batch; rates (images or queries per second)."""
    fns: dict[str, Callable[[], None]] = {}
    work: dict[str, int] = {}  # images (plain) or queries (zo, ref) per call
    for layout in LAYOUTS:
        for b in plain_sizes:
            fns[f"plain {layout} {b}"], work[f"plain {layout} {b}"] = plain_fn(bn, layout, b)
    for b in ints(bn.a.reference_sizes or bn.a.batch_sizes):
        fns[f"ref {b}"], work[f"ref {b}"] = ref_fn(bn, b)
    for pb in plain_sizes if bn.a.per_batch and not bn.a.compile else []:
        if pb % 4 == 0:
            fns[f"zofb {pb}"], work[f"zofb {pb}"] = partial(run_zo_at, bn, pb), bn.n_diag
    best = interleaved_best(fns, bn.a.scan_rounds, warmup=not bn.a.no_warmup)
    return {k: work[k] / t for k, t in best.items()}


def measure_phase(
    bn: Bench, best_layout: str, best_b: int, ref_b: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Phase 2: plain and reference at their best, the engine at every b, Hutchinson;
    (rates of those with a work count, best seconds of every timing)."""
    a = bn.a
    fns, work = {}, {}
    fns["plain"], work["plain"] = plain_fn(bn, best_layout, best_b)
    if bn.folded:  # the engine's own forward at the same batch (for its overhead alone)
        fns["fast"], work["fast"] = plain_fn(bn, a.layout, best_b, bn.fast)
    fns["ref"], work["ref"] = ref_fn(bn, ref_b)
    for b in ints(a.batch_sizes):
        fns[f"zo {b}"], work[f"zo {b}"] = zo_fn(bn, b)
    fns.update(hutch_fns(bn))
    best = interleaved_best(fns, a.rounds, warmup=not a.no_warmup)
    return {k: work[k] / t for k, t in best.items() if k in work}, best


def hutch_fns(bn: Bench) -> dict[str, Callable[[], None]]:
    """Hutchinson on the scoring model at --hutch-batch: K probes for each K of --nprobes,
    the shared forward + graph-building backward, and one Hessian-vector product."""
    hb = bn.a.hutch_batch
    xh, yh = bn.x_eng[:hb], bn.y_all[:hb]
    r1 = torch.randint(0, 2, (hb, *bn.shape), generator=bn.gen).to(bn.dev, bn.x_all.dtype) * 2 - 1
    rs = r1.contiguous(memory_format=LAYOUTS[bn.a.layout])[None]  # one probe, engine's layout
    _, hvp = _hvp_fn(bn.fast, xh, yh)

    def run_hutch(k: int) -> None:
        hutchinson(bn.fast, xh, yh, nprobes=k, seed=[0])
        bn.sync()

    def run_setup() -> None:
        _hvp_fn(bn.fast, xh, yh)
        bn.sync()

    def run_hvp() -> None:
        hvp(rs)
        bn.sync()

    fns = {f"hutch {k}": partial(run_hutch, k) for k in ints(bn.a.nprobes)}
    return {**fns, "setup": run_setup, "hvp": run_hvp}


def print_setup(bn: Bench, scan: dict[str, float], plain_sizes: list[int]) -> None:
    a = bn.a
    print(
        f"model {a.arch} {json.loads(a.model_kwargs)} input {bn.shape} device {bn.dev} threads "
        f"{a.threads} niter {a.niter} rounds {a.scan_rounds} + {a.rounds} torch "
        f"{torch.__version__} engine {a.layout}{' compiled' if a.compile else ''}"
    )
    print(
        f"forward batch: memory cap ({a.memory_mb} MiB) {bn.cap}, engine's choice {bn.fb} "
        f"({'fixed: compiled' if a.compile else f'tuned in {bn.tune_s:.2f} s'})"
    )
    for layout in LAYOUTS:
        print(
            f"scan: plain forward img/s by batch, {layout}: "
            + ", ".join(f"{b}: {scan[f'plain {layout} {b}']:.0f}" for b in plain_sizes)
        )
    ref_sizes = ints(a.reference_sizes or a.batch_sizes)
    print(
        "scan: reference queries/s by batch: "
        + ", ".join(f"{b}: {scan[f'ref {b}']:.2f}" for b in ref_sizes)
    )


def print_bars(bn: Bench, scan: dict, rate: dict, plain_key: str, ref_b: int) -> None:
    _, best_layout, best_b = plain_key.split()
    print(
        f"plain forward best: {rate['plain']:.0f} img/s at batch {best_b}, {best_layout} "
        f"(scan: {scan[plain_key]:.0f})"
    )
    print(
        f"reference loop best: {rate['ref']:.2f} queries/s at batch {ref_b} "
        f"(scan: {scan[f'ref {ref_b}']:.2f})"
    )
    if bn.folded:
        print(
            f"engine's scoring model: {bn.folded} Conv2d-BatchNorm2d pairs folded; plain "
            f"forward of it at batch {best_b}, {bn.a.layout}: {rate['fast']:.0f} img/s "
            f"({rate['fast'] / rate['plain']:.2f}× the eager best)"
        )


def print_engine(bn: Bench, scan: dict, rate: dict, plain_sizes: list[int]) -> None:
    """The engine's table (queries/s, efficiency, speedup per b) and its summaries."""
    print(f"{'batch':>6} {'zo q/s':>9} {'eff':>6} {'speedup':>8}")
    effs, speedups = [], []
    for b in ints(bn.a.batch_sizes):
        q = rate[f"zo {b}"]
        effs.append(q * bn.per_query / rate["plain"])
        speedups.append(q / rate["ref"])
        print(f"{b:>6} {q:>9.2f} {effs[-1]:>6.2f} {speedups[-1]:>8.2f}")
    zofb = {
        pb: scan[f"zofb {pb}"] * 4 * bn.a.niter / scan[f"plain {bn.a.layout} {pb}"]
        for pb in plain_sizes
        if f"zofb {pb}" in scan
    }
    if zofb:
        print(
            f"scan: engine's perturbed forwards at each forward batch, img/s ÷ plain "
            f"{bn.a.layout} img/s there: " + ", ".join(f"{pb}: {r:.2f}" for pb, r in zofb.items())
        )
    if bn.chooser is not None:
        print(f"engine's online choice at the end: {bn.chooser.summary()}")
    print(
        f"ZO efficiency min {min(effs):.2f}; "
        f"speedup over the best reference min {min(speedups):.2f}"
    )


def print_hutch(bn: Bench, best: dict[str, float], rate: dict[str, float]) -> None:
    hb = bn.a.hutch_batch
    t_fwd = hb / rate["plain"]  # one forward of hb images at the best plain throughput
    print(
        f"hutchinson on a batch of {hb}: shared forward + graph-building backward "
        f"{best['setup'] / t_fwd:.2f} forward-equivalents, one Hessian-vector product "
        f"{best['hvp'] / t_fwd:.2f}"
    )
    for k in ints(bn.a.nprobes):
        print(
            f"hutchinson: K={k} probes on a batch of {hb}: {best[f'hutch {k}']:.3f} s = "
            f"{best[f'hutch {k}'] / k / t_fwd:.2f} forward-equivalents per probe"
        )


def main() -> None:
    bn = make_bench(parse_args())
    plain_sizes = sorted({*candidate_batches(bn.cap), *ints(bn.a.batch_sizes)})
    scan = scan_phase(bn, plain_sizes)
    plain_key = max((k for k in scan if k.startswith("plain")), key=scan.get)
    _, best_layout, best_b = plain_key.split()
    ref_sizes = ints(bn.a.reference_sizes or bn.a.batch_sizes)
    ref_b = max(ref_sizes, key=lambda b: scan[f"ref {b}"])
    rate, best = measure_phase(bn, best_layout, int(best_b), ref_b)
    print_setup(bn, scan, plain_sizes)
    print_bars(bn, scan, rate, plain_key, ref_b)
    print_engine(bn, scan, rate, plain_sizes)
    print_hutch(bn, best, rate)


if __name__ == "__main__":
    main()
