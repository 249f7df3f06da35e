"""Input-loss curvature estimators (docs/method.md: Estimators).

Zero-order (black-box) score, the paper's signal: for ``niter`` iterations
draw two independent Rademacher tensors r_v, r_u shaped like x, set
v = h(r_v + 1e-7), u = h(r_u + 1e-7), and average
|l(x+v+u) − l(x−v+u) − l(x+v−u) + l(x−v−u)| / (4h), with l the per-sample
cross-entropy at the true label.  It estimates h·E|r_uᵀ H r_v|, a tr(H²)-like
quantity, not tr(H).  ``zo_curvature_reference`` is that formula as written;
``zo_curvature`` is the engine the scorer runs (all perturbed copies in large forward
batches, batching and padding in ``_pair_batches`` and ``_batch_runner``), tested equal
to the reference on the same draws.

White-box scores, the paper's definition: Hutchinson tr(H) ≈ mean_k r_kᵀ H r_k
and tr(H²) ≈ mean_k ‖H r_k‖², with H·r an exact Hessian-vector product
(double backward of the batch-summed loss; samples do not interact in eval
mode, so the input gradient of the sum is each sample's own gradient).

Determinism.  With ``seed`` given, every Rademacher sign is a pure function of
(seed words, sample index, stream, element): a counter-based hash (splitmix64
finaliser, vectorised in int64 on x's device), so draws never depend on batch
size, internal chunking, memory budget or device.  Streams 2t and 2t+1 are
r_v and r_u of ZO iteration t; stream ``PROBE_STREAM + k`` is Hutchinson
probe k.  The CPU forward of a single image takes a different kernel path
than a batch (its rounding differs), so no forward here ever runs on one
image: a lone image is duplicated; second-order products repeat batches of
fewer than ``MIN_HVP_BATCH`` samples up to it, for the same reason.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

MASK64 = (1 << 64) - 1
PROBE_STREAM = 1 << 20  # Hutchinson probe streams start here (ZO uses 0 .. 2·niter−1)
MIN_HVP_BATCH = 4  # smaller batches are repeated up to it for second-order products
DRAW_GROUP_BYTES = 32 << 20  # ZO draws prepared at once (amortises the hash's per-call cost)
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _s64(v: int) -> int:
    """A 64-bit pattern as the signed int64 torch stores."""
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


def _srl(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64 finaliser on int64 tensors (wrapping arithmetic)."""
    z = (z ^ _srl(z, 30)) * _s64(_M1)
    z = (z ^ _srl(z, 27)) * _s64(_M2)
    return z ^ _srl(z, 31)


def _mix64_int(z: int) -> int:
    z &= MASK64
    z = ((z ^ (z >> 30)) * _M1) & MASK64
    z = ((z ^ (z >> 27)) * _M2) & MASK64
    return z ^ (z >> 31)


def base_key(seed_words: Sequence[int]) -> int:
    """Fold seed words (seed, model row, split, query, …) into one 64-bit key."""
    k = 0
    for w in seed_words:
        k = _mix64_int(k ^ _mix64_int((int(w) + _GOLDEN) & MASK64))
    return k


def sample_keys(seed_words: Sequence[int], index: torch.Tensor) -> torch.Tensor:
    """Per-sample int64 keys from the seed words and the samples' global indices."""
    idx = index.to(torch.int64)
    return mix64(mix64(idx + _s64(_GOLDEN)) ^ _s64(base_key(seed_words)))


def keyed_rademacher(
    keys: torch.Tensor, streams: torch.Tensor | int, shape: Sequence[int], dtype: torch.dtype
) -> torch.Tensor:
    """±1 tensor (len(keys), *shape): row i is a function of (keys[i], streams[i]) only.

    Each 64-bit word hash(key, stream, word) gives 64 consecutive signs
    (bit j of word w is element 64w + j of the flattened shape; bit 1 → +1).
    """
    if sys.byteorder != "little":  # the byte-to-sign table below assumes it
        raise RuntimeError("keyed_rademacher needs a little-endian machine")
    d = math.prod(shape)
    nwords = (d + 63) // 64
    dev = keys.device
    streams = torch.as_tensor(streams, dtype=torch.int64, device=dev).expand(len(keys))
    ks = mix64(keys ^ mix64((streams + 1) * _s64(_GOLDEN)))
    words = torch.arange(1, nwords + 1, dtype=torch.int64, device=dev) * _s64(_M2)
    hw = mix64(ks[:, None] + words[None, :])
    # bytes of each word, least significant first (little-endian), then 8 signs per byte
    table = _sign_table(dtype, dev)
    signs = table[hw.view(torch.uint8).to(torch.int64)].reshape(len(keys), nwords * 64)
    return signs[:, :d].reshape(len(keys), *shape)


_TABLES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _sign_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(256, 8) table: row v holds the signs of bits 0..7 of byte v."""
    key = (dtype, device)
    if key not in _TABLES:
        v = torch.arange(256)[:, None]
        _TABLES[key] = (((v >> torch.arange(8)) & 1) * 2 - 1).to(dtype=dtype, device=device)
    return _TABLES[key]


def rademacher(
    shape: torch.Size, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    """±1 tensor drawn on the CPU from a torch generator (the unkeyed, legacy draws)."""
    r = torch.randint(0, 2, shape, generator=generator, dtype=torch.int64)
    return (2 * r - 1).to(dtype)


def forward(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """model(x), never on a single image (duplicated so it takes the batched kernels)."""
    if x.shape[0] == 1:
        return model(torch.cat([x, x]))[:1]
    return model(x)


def fold_batchnorm(model: nn.Module, *, channels_last: bool = False) -> tuple[nn.Module, int]:
    """A copy of an eval-mode model for scoring, each Conv2d → BatchNorm2d pair folded
    into one convolution (a torch.fx graph); returns (copy, pairs folded).

    Scoring may run this copy, as torch.compile's inference freezing would: the same
    function, one layer fewer per pair and no per-module Python calls (measured on this
    CPU, channels_last, 1 thread: forwards of the default model 1.0–1.5× eager, CIFAR
    ResNet-18 1.04–1.05×; two Hutchinson probes of the default model 16% faster).  Outputs
    differ from the eager model's by float32 rounding only (6e-8 on the default model's
    logits; its Hutchinson features by up to 9e-4 relative on a trained default model,
    its ZO scores like any rounding change).  The original, BatchNorm statistics
    included, is left untouched.  Its convolutions are plain ``nn.Conv2d`` modules, so
    ``lean_second_order`` applies to them.  A model that torch.fx cannot trace, one in
    training mode, or one without a foldable pair comes back as itself with 0; a folded copy
    is put in channels_last with ``channels_last``.
    """
    from torch.fx.experimental.optimization import fuse

    pairs = sum(type(m) is nn.BatchNorm2d for m in model.modules())
    if model.training or pairs == 0:
        return model, 0
    try:
        folded = fuse(model, inplace=False)
    except Exception:  # noqa: BLE001 - fx raises many kinds for untraceable Python
        return model, 0
    done = pairs - sum(type(m) is nn.BatchNorm2d for m in folded.modules())
    if done == 0:
        return model, 0
    for p in folded.parameters():
        p.requires_grad_(False)
    if channels_last:
        folded = folded.to(memory_format=torch.channels_last)
    return folded.eval(), done


def activation_bytes(model: nn.Module, sample: torch.Tensor) -> int:
    """Bytes of all leaf-module outputs of one forward image (an upper bound on its memory)."""
    total = 0

    def hook(_m, _i, out):
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * out.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            model(torch.cat([sample[None], sample[None]]))
    finally:
        for hd in handles:
            hd.remove()
    return max(total // 2, sample.numel() * sample.element_size())


def forward_batch_size(
    model: nn.Module, sample: torch.Tensor, memory_mb: float, cap: int | None = None
) -> int:
    """Images per forward batch that fit ``memory_mb`` of activations (a multiple of 4, ≥ 4).

    ``cap`` (default 1024 on the CPU, 4096 on a GPU) bounds it from above; within it,
    ``tune_forward_batch`` picks the fastest size.
    """
    if cap is None:
        cap = 1024 if sample.device.type == "cpu" else 4096
    per = activation_bytes(model, sample) + 4 * sample.numel() * sample.element_size()
    n = int(memory_mb * 2**20 // per)
    return max(4, min(cap, n) // 4 * 4)


def candidate_batches(cap: int) -> list[int]:
    """Forward batch sizes the engine may use: 4, 8, 16, … up to ``cap``, and ``cap``."""
    return sorted({4 << k for k in range(cap.bit_length()) if 4 << k <= cap} | {cap})


def tune_forward_batch(
    model: nn.Module,
    sample: torch.Tensor,
    max_batch: int,
    *,
    channels_last: bool = False,
    min_seconds: float = 0.05,
    patience: int = 2,
    rounds: int = 2,
    tolerance: float = 0.1,
) -> int:
    """The fastest forward batch size (images/s) among 4, 8, 16, … up to ``max_batch``.

    Each timing is one warm-up forward, then forwards until ``min_seconds`` have passed
    (at least two).  The first round walks up the sizes and stops after ``patience``
    sizes in a row slower than the best; ``rounds − 1`` more rounds time the sizes it
    tried again and each size keeps its best rate, so one slow moment of a shared machine
    does not decide.  The largest size within ``tolerance`` of the best rate wins: short
    timings underrate large batches (measured here: 128 picked where 256 ran 6–13% faster
    over longer runs), and larger forward batches amortise the engine's per-batch work.
    On a CPU, large batches of a big model fall out of cache (ResNet-18 on 32×32 inputs,
    measured here: 66 images/s at batch 32, 40 at 256), so the memory bound alone is not
    the fastest choice.  Only the speed depends on the choice: scores are identical for
    any forward batch size.
    """
    fmt = torch.channels_last if channels_last and sample.dim() == 3 else torch.contiguous_format
    rate = partial(_images_per_second, model, sample, fmt=fmt, min_seconds=min_seconds)
    rates: dict[int, float] = {}
    with torch.inference_mode():
        worse = 0
        for size in candidate_batches(max_batch):
            rates[size] = rate(size)
            if rates[size] >= max(rates.values()):
                worse = 0
            else:
                worse += 1
                if worse >= patience:
                    break
        for _ in range(rounds - 1):
            for size in rates:
                rates[size] = max(rates[size], rate(size))
    top = max(rates.values())
    return max(size for size, r in rates.items() if r >= (1 - tolerance) * top)


def _images_per_second(
    model: Callable[[torch.Tensor], torch.Tensor],
    sample: torch.Tensor,
    size: int,
    *,
    fmt: torch.memory_format,
    min_seconds: float,
) -> float:
    """Forward rate on ``size`` copies of ``sample`` in layout ``fmt``: one warm-up
    forward, then forwards until ``min_seconds`` have passed (at least two)."""
    xb = sample[None].expand(size, *sample.shape).contiguous(memory_format=fmt)
    sync = torch.cuda.synchronize if sample.device.type == "cuda" else (lambda: None)
    model(xb)
    sync()
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < min_seconds:
        model(xb)
        sync()
        n += 1
    return n * size / (time.perf_counter() - t0)


class ForwardBatchChooser:
    """Chooses the ZO engine's forward batch size online, from the engine's own forwards.

    A start-up timing (``tune_forward_batch``) sees a fraction of a second of a shared
    machine: measured here, it picked 128 for the default model in one benchmark run where
    256–512 then ran 25% faster, and the run's efficiency fell to 0.75.  Scores never depend
    on the forward batch size, so it can change between forward batches: the chooser runs
    its current best size, every ``explore_every``-th forward batch tries a neighbour in
    ``sizes`` (alternately the smaller and the larger), and keeps per size the best rate of
    its last ``window`` full-size timings (a rate measured in a slow moment is not held
    against a size for long; only full batches count, a ragged last one is smaller).  The
    best is the largest size within ``tolerance`` of the top rate.  State is explicit (this
    object); the scoring job keeps one for all its blocks.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        start: int,
        *,
        explore_every: int = 8,
        window: int = 4,
        tolerance: float = 0.02,
    ) -> None:
        self.sizes = sorted(set(sizes) | {start})
        self.best = start
        self.explore_every = explore_every
        self.tolerance = tolerance
        self.rates: dict[int, deque[float]] = {s: deque(maxlen=window) for s in self.sizes}
        self._calls = 0
        self._up = False

    def next(self) -> int:
        """Images in the next forward batch."""
        self._calls += 1
        if self._calls % self.explore_every:
            return self.best
        i = self.sizes.index(self.best)
        near = [self.sizes[j] for j in (i - 1, i + 1) if 0 <= j < len(self.sizes)]
        if not near:
            return self.best
        self._up = not self._up
        return near[-1] if self._up else near[0]

    def record(self, size: int, images: int, seconds: float) -> None:
        """Report a timed forward batch; a batch smaller than ``size`` is ignored."""
        if images < size or seconds <= 0 or size not in self.rates:
            return
        self.rates[size].append(images / seconds)
        seen = {s: max(r) for s, r in self.rates.items() if r}
        top = max(seen.values())
        self.best = max(s for s, r in seen.items() if r >= (1 - self.tolerance) * top)

    def summary(self) -> str:
        """The current choice and each size's best recent rate (for the job's log)."""
        seen = ", ".join(f"{s}: {max(r):.0f}" for s, r in self.rates.items() if r)
        return f"forward batch {self.best} (recent best images/s by size: {seen})"


def zo_block_size(batch_size: int, max_batch: int) -> int:
    """Samples per ZO call: the user's batch, or at least one forward batch's worth of
    (sample, iteration) pairs, max_batch // 4.

    With that many samples the niter·block pairs fill niter forward batches exactly, so the
    forward batches stay full (no small ragged batch) whatever ``batch_size`` is.
    """
    return max(batch_size, max_batch // 4)


def seed_keys(
    seed: Sequence[int] | int, index: torch.Tensor | None, b: int, device: torch.device
) -> torch.Tensor:
    """Per-sample keys of ``seed`` (an int or seed words) for samples ``index`` (default
    0..b−1), on ``device``."""
    words = [seed] if isinstance(seed, int) else list(seed)
    idx = torch.arange(b) if index is None else torch.as_tensor(index)
    return sample_keys(words, idx.to(device))


def zo_draws(
    x: torch.Tensor,
    niter: int,
    *,
    generator: torch.Generator | None = None,
    seed: Sequence[int] | int | None = None,
    index: torch.Tensor | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The ZO signs as draws(samples, iterations) → the r_v rows, then the r_u rows.

    With ``seed``: keyed (streams 2t and 2t+1 of iteration t; the rows in one hash call).
    Otherwise all of them are drawn up front from ``generator`` on the CPU in the legacy
    order: per iteration r_v, then r_u, each for the whole batch.
    """
    shape = tuple(x.shape[1:])
    if seed is not None:
        keys = seed_keys(seed, index, x.shape[0], x.device)

        def keyed(sb: torch.Tensor, st: torch.Tensor) -> torch.Tensor:
            k = keys[sb]
            return keyed_rademacher(
                torch.cat([k, k]), torch.cat([2 * st, 2 * st + 1]), shape, x.dtype
            )

        return keyed
    pre = torch.stack(
        [
            torch.stack([rademacher(x.shape, generator, x.dtype) for _ in range(2)])
            for _ in range(niter)
        ]
    ).to(x.device)  # (niter, 2, B, *shape)
    return lambda sb, st: torch.cat([pre[st, 0, sb], pre[st, 1, sb]])


def zo_curvature_reference(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    h: float = 1e-3,
    niter: int = 10,
    generator: torch.Generator | None = None,
    seed: Sequence[int] | int | None = None,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """The paper's zero-order estimator as written, one iteration at a time: the reference
    the batched engine ``zo_curvature`` is tested against (same draws, same values)."""
    draws = zo_draws(x, niter, generator=generator, seed=seed, index=index)
    samples = torch.arange(len(x), device=x.device)
    total = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    with torch.inference_mode():
        for t in range(niter):
            r_v, r_u = draws(samples, torch.full_like(samples, t)).chunk(2)
            v, u = h * (r_v + 1e-7), h * (r_u + 1e-7)
            perturbed = (x + v + u, x - v + u, x + v - u, x - v - u)
            loss = [F.cross_entropy(forward(model, z), y, reduction="none") for z in perturbed]
            total += torch.abs((loss[0] - loss[1] - loss[2] + loss[3]) / (4 * h))
    return total / niter


def _pair_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    niter: int,
    draws: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    per_fwd: int,
    chooser: ForwardBatchChooser | None,
) -> Iterator[tuple[slice, int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The (sample, iteration) pairs in forward batches: (pairs, size asked, x, r_v, r_u, y).

    Pair p is sample p // niter at iteration p % niter; a batch holds ``per_fwd`` pairs, or
    ``chooser``'s size // 4.  Draws (and gathered inputs) are made for several forward
    batches at once: one hash call per group, within DRAW_GROUP_BYTES.
    """
    npairs = x.shape[0] * niter
    row_bytes = 3 * math.prod(x.shape[1:]) * x.element_size()  # r_v, r_u and x per pair
    group = per_fwd * max(1, DRAW_GROUP_BYTES // (per_fwd * row_bytes))
    for g0 in range(0, npairs, group):
        g1 = min(g0 + group, npairs)
        pidx = torch.arange(g0, g1, device=x.device)
        sb, st = pidx // niter, pidx % niter
        rv, ru = draws(sb, st).chunk(2)
        xg, yg = x[sb], y[sb]
        p0 = g0
        while p0 < g1:
            size = chooser.next() if chooser is not None else 4 * per_fwd
            p1 = min(p0 + max(1, size // 4), g1)
            o = slice(p0 - g0, p1 - g0)
            yield slice(p0, p1), size, xg[o], rv[o], ru[o], yg[o]
            p0 = p1


def _batch_runner(
    run: Callable[[torch.Tensor], torch.Tensor],
    per_fwd: int,
    pad: bool,
    chooser: ForwardBatchChooser | None,
) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """The engine's forward of a batch of 4·n images asked as ``size``: padded up to
    4·``per_fwd`` images with ``pad`` (one fixed shape), or timed for ``chooser``."""

    def padded(batch: torch.Tensor, size: int) -> torch.Tensor:
        fill = 4 * per_fwd - batch.shape[0]
        if fill <= 0:
            return run(batch)
        return run(torch.cat([batch, batch[:1].expand(fill, *batch.shape[1:])]))[:-fill]

    def timed(batch: torch.Tensor, size: int) -> torch.Tensor:
        t0 = time.perf_counter()
        logits = run(batch)
        chooser.record(size, batch.shape[0], time.perf_counter() - t0)
        return logits

    if pad:
        return padded
    return timed if chooser is not None else lambda batch, size: run(batch)


def zo_curvature(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    h: float = 1e-3,
    niter: int = 10,
    generator: torch.Generator | None = None,
    seed: Sequence[int] | int | None = None,
    index: torch.Tensor | None = None,
    max_batch: int | None = None,
    fwd: Callable[[torch.Tensor], torch.Tensor] | None = None,
    pad: bool = False,
    chooser: ForwardBatchChooser | None = None,
) -> torch.Tensor:
    """Zero-order curvature score of each sample, shape (B,), in x's dtype: the batched
    engine, equal to ``zo_curvature_reference`` on the same draws.

    ``x`` is the normalised input batch, ``y`` the true labels; the model must
    already be in eval mode.  Draws: with ``seed`` (an int or seed words) the
    keyed draws of samples ``index`` (default 0..B−1), identical for any batch
    or chunk size; otherwise r_v then r_u per iteration from ``generator`` on
    the CPU.  All 4·niter·B perturbed copies go through the model in forward
    batches of at most ``max_batch`` images (default: everything at once);
    ``fwd`` replaces ``model`` as the forward (e.g. a compiled one) and ``pad``
    fills the last batch up to ``max_batch`` so its shape never changes.
    ``chooser`` (instead of ``max_batch``, never with ``pad``) picks each forward batch's
    size and is told how fast it ran; the scores are the same for any sizes.
    """
    if niter < 1:
        raise ValueError(f"niter must be >= 1, got {niter}")
    if chooser is not None:
        if pad:
            raise ValueError("a chooser varies the forward batch: it cannot pad to one shape")
        max_batch = max(chooser.sizes)
    b = x.shape[0]
    per_fwd = b * niter if max_batch is None else max(1, max_batch // 4)
    draws = zo_draws(x, niter, generator=generator, seed=seed, index=index)
    run = _batch_runner(fwd if fwd is not None else model, per_fwd, pad, chooser)
    vals = torch.empty(b * niter, dtype=x.dtype, device=x.device)
    with torch.inference_mode():
        for pairs, size, xb, rv, ru, yb in _pair_batches(x, y, niter, draws, per_fwd, chooser):
            v, u = h * (rv + 1e-7), h * (ru + 1e-7)
            a, c = xb + v, xb - v
            batch = torch.cat([a + u, c + u, a - u, c - u])  # x+v+u, x−v+u, x+v−u, x−v−u
            loss = F.cross_entropy(run(batch, size), yb.repeat(4), reduction="none").view(4, -1)
            vals[pairs] = torch.abs((loss[0] - loss[1] - loss[2] + loss[3]) / (4 * h))
        per = vals.view(b, niter)
        acc = per[:, 0].clone()
        for t in range(1, niter):  # fixed summation order, independent of b
            acc += per[:, t]
    return acc / niter


class _ConvInputGrad(torch.autograd.Function):
    """conv2d whose backward is a differentiable transposed convolution of the input only.

    Backpropagating through PyTorch's own convolution backward (the second backward of an
    HVP) also computes a weight-gradient convolution per layer, which input HVPs never
    need; this backward leaves weights and bias out, so the HVP costs one convolution
    per layer there instead of two (measured on the default model at batch 256: one HVP
    3.2 → 2.1 forward-equivalents).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):  # noqa: D102
        ctx.save_for_backward(weight.detach())
        ctx.conf = (stride, padding, dilation, groups, tuple(x.shape[-2:]))
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        (w,) = ctx.saved_tensors
        stride, padding, dilation, groups, size = ctx.conf
        out_pad = [
            size[i]
            - (
                (g.shape[2 + i] - 1) * stride[i]
                - 2 * padding[i]
                + dilation[i] * (w.shape[2 + i] - 1)
                + 1
            )
            for i in range(2)
        ]
        gx = F.conv_transpose2d(g, w, None, stride, padding, out_pad, groups, dilation)
        return gx, None, None, None, None, None, None


def _lean_conv(mod: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor, bias) -> torch.Tensor:
    if x.dim() != 4:  # unbatched input: the plain convolution
        return F.conv2d(x, weight, bias, mod.stride, mod.padding, mod.dilation, mod.groups)
    return _ConvInputGrad.apply(x, weight, bias, mod.stride, mod.padding, mod.dilation, mod.groups)


def _lean_batchnorm(mod: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode batch norm as the affine map it is: x·scale + shift (running statistics)."""
    with torch.no_grad():
        scale = torch.rsqrt(mod.running_var.to(x.dtype) + mod.eps)
        if mod.weight is not None:
            scale = scale * mod.weight.to(x.dtype)
        shift = -mod.running_mean.to(x.dtype) * scale
        if mod.bias is not None:
            shift = shift + mod.bias.to(x.dtype)
    view = (1, -1) + (1,) * (x.dim() - 2)
    return x * scale.view(view) + shift.view(view)


@contextmanager
def lean_second_order(model: nn.Module):
    """Within this context, plain nn.Conv2d and eval-mode BatchNorm layers of ``model``
    build graphs whose second backward is cheap (same values, exact derivatives).

    Only modules that keep their class's own forward are touched (subclasses with a
    forward of their own, such as timm's BatchNormAct2d or Conv2dSame, run unchanged);
    convolutions with non-zero padding modes or string padding are left alone.  The
    instance attributes set here are removed on exit, so the model is unchanged after.
    """
    patched = []
    bn_forward = nn.modules.batchnorm._BatchNorm.forward
    for mod in model.modules():
        if (
            isinstance(mod, nn.Conv2d)
            and type(mod).forward is nn.Conv2d.forward
            and type(mod)._conv_forward is nn.Conv2d._conv_forward
            and mod.padding_mode == "zeros"
            and not isinstance(mod.padding, str)
            and "_conv_forward" not in mod.__dict__
        ):
            mod._conv_forward = partial(_lean_conv, mod)
            patched.append((mod, "_conv_forward"))
        elif (
            isinstance(mod, nn.modules.batchnorm._BatchNorm)
            and type(mod).forward is bn_forward
            and not mod.training
            and mod.running_mean is not None
            and mod.running_var is not None
            and "forward" not in mod.__dict__
        ):
            mod.forward = partial(_lean_batchnorm, mod)
            patched.append((mod, "forward"))
    try:
        yield
    finally:
        for mod, name in patched:
            delattr(mod, name)


def _hvp_fn(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, Callable[..., torch.Tensor]]:
    """Set up exact Hessian-vector products of the per-sample loss w.r.t. the input.

    Returns the input actually used (a batch of fewer than ``MIN_HVP_BATCH`` samples is
    repeated up to it: the CPU's backward kernels round a batch of 1–3 differently,
    measured) and hvp(R) → H R
    for a stack R of shape (K, *padded x shape).  One forward and one
    graph-building backward (under ``lean_second_order``) are shared by all
    products; each product is one backward through that graph.  ``batched=True``
    runs the K products as one vectorised backward (``is_grads_batched``, falling
    back to the loop where an op has no batching rule): faster for many products of
    a small batch (the exact Hessian's basis), slower for a few probes of a large one
    (measured on the CPU, default model, K = 4: 3.9 against 2.4 forward-equivalents
    per probe at batch 256).  Both were faster than torch.func forward-over-reverse.
    ``last=True`` frees the graph during the final product (no more calls; measured: two
    probes 5% faster).
    """
    if x.shape[0] < MIN_HVP_BATCH:
        idx = torch.arange(MIN_HVP_BATCH, device=x.device) % x.shape[0]
        x, y = x[idx], y[idx]
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), lean_second_order(model):
        loss = F.cross_entropy(model(xg), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xg, create_graph=True)

    def hvp(rs: torch.Tensor, batched: bool = False, last: bool = False) -> torch.Tensor:
        with torch.enable_grad():
            if batched and rs.shape[0] > 1:
                try:
                    (hv,) = torch.autograd.grad(
                        g, xg, grad_outputs=rs, retain_graph=True, is_grads_batched=True
                    )
                    return hv.detach()
                except RuntimeError:
                    pass
            out = [
                torch.autograd.grad(
                    g, xg, grad_outputs=r, retain_graph=not last or k < len(rs) - 1
                )[0]
                for k, r in enumerate(rs)
            ]
        return torch.stack(out).detach()

    return xg.detach(), hvp


def hutchinson(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    nprobes: int = 10,
    generator: torch.Generator | None = None,
    seed: Sequence[int] | int | None = None,
    index: torch.Tensor | None = None,
    probes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hutchinson estimates (tr H, tr H²) per sample, each of shape (B,), in x's dtype.

    Probes: ``probes`` (K, *x.shape[1:]) shared by all samples when given (the
    rows of a Hadamard matrix make both estimates exact); otherwise ``nprobes``
    Rademacher tensors per sample, keyed like ``zo_curvature`` when ``seed`` is
    given (stream PROBE_STREAM + k), else drawn from ``generator`` on the CPU.
    """
    b = x.shape[0]
    shape = tuple(x.shape[1:])
    if probes is not None:
        nprobes = probes.shape[0]
    if nprobes < 1:
        raise ValueError(f"nprobes must be >= 1, got {nprobes}")
    if probes is not None:
        rs = probes.to(x)[:, None].expand(nprobes, b, *shape)
    elif seed is not None:
        keys = seed_keys(seed, index, b, x.device)
        rs = torch.stack(
            [keyed_rademacher(keys, PROBE_STREAM + k, shape, x.dtype) for k in range(nprobes)]
        )
    else:
        rs = torch.stack([rademacher(x.shape, generator, x.dtype) for _ in range(nprobes)])
        rs = rs.to(x.device)
    xg, hvp = _hvp_fn(model, x, y)
    if xg.shape[0] != b:  # a small batch was repeated: repeat its probes alike
        rs = rs[:, torch.arange(xg.shape[0], device=rs.device) % b]
    hv = hvp(rs.contiguous(), last=True)[:, :b]
    rs = rs[:, :b]
    tr = (rs[0] * hv[0]).flatten(1).sum(1)
    tr2 = hv[0].pow(2).flatten(1).sum(1)
    for k in range(1, nprobes):  # fixed summation order
        tr += (rs[k] * hv[k]).flatten(1).sum(1)
        tr2 += hv[k].pow(2).flatten(1).sum(1)
    return tr / nprobes, tr2 / nprobes


def hutchinson_trace(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    nprobes: int = 10,
    square: bool = False,
    generator: torch.Generator | None = None,
    seed: Sequence[int] | int | None = None,
    index: torch.Tensor | None = None,
    probes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hutchinson tr(H) (or tr(H²) with ``square``) of the input Hessian per sample, (B,)."""
    tr, tr2 = hutchinson(
        model, x, y, nprobes=nprobes, generator=generator, seed=seed, index=index, probes=probes
    )
    return tr2 if square else tr


def input_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact per-sample input Hessian (B, D, D), D = x[0].numel(), from D basis HVPs.

    For small inputs (tests, diagnostics): costs D backward passes of the batch.
    """
    b = x.shape[0]
    d = x[0].numel()
    xg, hvp = _hvp_fn(model, x, y)
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    basis = eye[:, None, :].expand(d, xg.shape[0], d).reshape(d, *xg.shape)
    cols = hvp(basis.contiguous(), batched=True)[:, :b].reshape(d, b, d)  # cols[j] = H e_j
    return cols.permute(1, 2, 0)


def exact_hessian_trace(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, square: bool = False
) -> torch.Tensor:
    """Exact per-sample tr(H) (or tr(H²) = ‖H‖_F²) of the input Hessian, (B,)."""
    hess = input_hessian(model, x, y)
    if square:
        return hess.pow(2).sum((1, 2))
    return hess.diagonal(dim1=1, dim2=2).sum(1)
