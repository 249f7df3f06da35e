"""Per-sample, per-query features of one model (docs/method.md: Estimators).

For every population sample and every held-out test sample, and for each
query (0 = the original image, 1 = its horizontal flip), the score file holds
(arrays of shape (N, Q), float64):

- ``loss``: cross-entropy at the true label
- ``p_true``: softmax probability of the true label
- ``p_max``: max-softmax probability
- ``phi``: LiRA's logit-scaled confidence  z_y − logsumexp(z_{y'≠y})
- ``phi_max``: its max-class analogue  z_max − logsumexp(z_{y'≠max})
- ``mentr``: Song & Mittal's modified entropy
- ``curv_zo``: zero-order input-loss curvature
- ``curv_hutch``: Hutchinson tr(H) of the input Hessian (signed; NaN when
  ``scoring.hutch_nprobes`` is 0, i.e. not computed)
- ``curv_hutch_sq``: Hutchinson tr(H²) = mean ‖H r‖² (NaN when not computed)

Under ``scoring.variant: paper`` the file also holds, as float32 arrays, the values the
released code computed in float32 (softmax and cross-entropy of the float32 logits), with
their ties at loss 0 and p = 1 that float64 values cast afterwards do not recreate:
``loss_f32``, ``p_true_f32``, ``p_max_f32`` and ``mentr_f32`` (Mentr with the released
code's log(1 − p + 1e-9)).  The paper variants of the loss baselines and
``carlini_paper`` read them (docs/method.md, Estimators).

Population arrays use these names; test-split arrays are prefixed ``test_``.
``meta`` is a JSON string with the settings, device, dtype, precision flags,
torch version, the count of exactly-zero ZO values and the fraction of
negative traces.  Every random sign is keyed on (seed, model row, split,
query, sample index), so a split can be scored in shards (``shard``) whose
concatenation is bit-identical to one unsharded run on the CPU.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .curvature import (
    ForwardBatchChooser,
    candidate_batches,
    fold_batchnorm,
    forward,
    forward_batch_size,
    hutchinson,
    tune_forward_batch,
    zo_block_size,
    zo_curvature,
)
from .progress import Progress
from .scorefile import F32_FIELDS, FIELDS, HUTCH_FIELDS, load_score_file, score_fields
from .transforms import normalize, to_float

FEATURES = FIELDS  # the fields of a score file and their rules: curvmia/scorefile.py
HUTCH_FEATURES = HUTCH_FIELDS
F32_FEATURES = F32_FIELDS
SPLITS = (("", "population", 0), ("test_", "test", 1))
QUERIES = ("original", "hflip")


def logit_features(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss, probabilities, phi, phi_max and modified entropy from logits, in float64."""
    z = logits.to(torch.float64)
    logp = torch.log_softmax(z, dim=1)
    p = logp.exp()
    rows = torch.arange(len(y), device=z.device)
    onehot = torch.zeros_like(z, dtype=torch.bool)
    onehot[rows, y] = True
    zmax_idx = z.argmax(1)
    onehot_max = torch.zeros_like(onehot)
    onehot_max[rows, zmax_idx] = True
    neg_inf = torch.tensor(-torch.inf, dtype=z.dtype, device=z.device)
    lse_others = torch.logsumexp(torch.where(onehot, neg_inf, z), dim=1)
    lse_others_max = torch.logsumexp(torch.where(onehot_max, neg_inf, z), dim=1)
    logp_y = logp[rows, y]
    p_y = p[rows, y]
    # log(1 - p) computed from log p to stay accurate when p is close to 1.
    log1m_p = torch.log((-torch.expm1(logp)).clamp_min(1e-300))
    mentr_other = torch.where(onehot, torch.zeros_like(p), p * log1m_p).sum(1)
    return {
        "loss": -logp_y,
        "p_true": p_y,
        "p_max": p.max(1).values,
        "phi": z[rows, y] - lse_others,
        "phi_max": z[rows, zmax_idx] - lse_others_max,
        "mentr": -(1 - p_y) * logp_y - mentr_other,
    }


def float32_features(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss, true/max-class probability and Mentr as the released scorer computed them:
    softmax and cross-entropy of float32 logits, in float32 (confident samples tie at
    exactly 0 loss and p = 1)."""
    z = logits.to(torch.float32)
    rows = torch.arange(len(y), device=z.device)
    prob = torch.softmax(z, dim=1)
    p_y = prob[rows, y]
    others = prob.clone()
    others[rows, y] = 0.0
    mentr = -(1 - p_y) * torch.log(p_y) - (others * torch.log(1 - others + 1e-9)).sum(1)
    return {
        "loss_f32": nn.functional.cross_entropy(z, y, reduction="none"),
        "p_true_f32": p_y,
        "p_max_f32": prob.max(1).values,
        "mentr_f32": mentr,
    }


def query_view(x: torch.Tensor, query: int) -> torch.Tensor:
    """Query 0 is the image itself, query 1 its horizontal flip."""
    if query == 0:
        return x
    if query == 1:
        return x.flip(3)
    raise ValueError(f"unknown query {query}; expected 0 (original) or 1 (hflip)")


def shard_range(n: int, shard: int, nshards: int) -> tuple[int, int]:
    """Sample range [start, stop) of shard ``shard`` of ``nshards`` (sizes differ ≤ 1)."""
    if not 0 <= shard < nshards:
        raise ValueError(f"shard {shard} out of range for {nshards} shards")
    return n * shard // nshards, n * (shard + 1) // nshards


@dataclass(frozen=True)
class ScoreSettings:
    """How ``score_split`` scores: the estimators' settings (``scoring`` config, built by
    ``score_settings``) and the forward batching, which changes the speed, never the scores.

    ``max_batch``: images per forward batch (default ``4·niter·batch_size``); ``chooser``
    sizes the ZO engine's forward batches online instead, up to its largest size; ``fwd``
    replaces the model as the ZO forward (a compiled one, fed batches padded to one shape).
    """

    h: float
    niter: int
    batch_size: int
    device: torch.device
    dtype: torch.dtype
    nprobes: int = 0
    with_float32: bool = False
    channels_last: bool = False
    max_batch: int | None = None
    fwd: Callable[[torch.Tensor], torch.Tensor] | None = None
    chooser: ForwardBatchChooser | None = None

    @property
    def forward_batch(self) -> int:
        """The largest forward batch: the chooser's largest size, else ``max_batch``."""
        if self.chooser is not None:
            return max(self.chooser.sizes)
        return 4 * self.niter * self.batch_size if self.max_batch is None else self.max_batch


def score_settings(
    model: nn.Module,
    sample: torch.Tensor,
    scoring: dict,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> ScoreSettings:
    """The settings of a scoring run from the ``scoring`` config, with its forward batch:
    ``forward_batch`` (a number) within ``memory_mb``, or ``auto``: timed at the start on
    ``sample`` and then chosen online on a CPU; a compiled forward keeps the memory bound."""
    memory_mb = scoring.get("memory_mb", 256)
    max_batch = forward_batch_size(model, sample, memory_mb)
    compiled = bool(scoring.get("compile", False)) and device.type == "cuda"
    choice = scoring.get("forward_batch", "auto")
    chooser = None
    if choice != "auto":
        max_batch = min(int(choice), max_batch)
    elif not compiled:  # a compiled forward keeps one padded shape: the memory bound
        cap = max_batch
        max_batch = tune_forward_batch(model, sample, cap, channels_last=use_channels_last(scoring))
        if device.type == "cpu":  # timing a CUDA forward would need a sync per batch
            chooser = ForwardBatchChooser(candidate_batches(cap), max_batch)
    log(f"forward batch: {max_batch} images ({choice}; memory_mb {memory_mb})")
    return ScoreSettings(
        h=scoring["h"],
        niter=scoring["niter"],
        batch_size=scoring["batch_size"],
        device=device,
        dtype=scoring_dtype(scoring),
        nprobes=scoring.get("hutch_nprobes", 0),
        with_float32=scoring["variant"] == "paper",
        channels_last=use_channels_last(scoring),
        max_batch=max_batch,
        fwd=torch.compile(model, dynamic=False) if compiled else None,
        chooser=chooser,
    )


def score_split(
    model: nn.Module,
    images_u8: np.ndarray,
    labels: np.ndarray,
    settings: ScoreSettings,
    *,
    mean: np.ndarray,
    std: np.ndarray,
    seed_words: list[int],
    start: int = 0,
    name: str = "population",
    log: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """All features of one split (or of samples start.. of it), each (N, Q) float64,
    plus the float32 ones (``F32_FEATURES``, float32 arrays) when ``settings.with_float32``.

    ``images_u8[i]`` is sample ``start + i`` of the split: its draws are keyed on
    that global index, so results never depend on the batch sizes or sharding.
    Samples go to the ZO engine in blocks large enough to fill its forward batches;
    Hutchinson runs in batches of ``settings.batch_size`` samples.
    """
    n = len(labels)
    out = _feature_arrays(n, settings)
    y_all = torch.from_numpy(labels).to(settings.device)
    block = zo_block_size(settings.batch_size, settings.forward_batch)
    prog = Progress(n * len(QUERIES), f"{name} (both queries)", log)
    for q in range(len(QUERIES)):
        rate = _RateLog(f"{name} query {q} ({QUERIES[q]})", n, log)
        for i in range(0, n, block):
            xb = _model_input(images_u8[i : i + block], mean, std, q, settings)
            yb = y_all[i : i + block]
            idx = torch.arange(start + i, start + i + len(yb))
            feats = _block_features(model, xb, yb, [*seed_words, q], idx, settings)
            for f, v in feats.items():
                out[f][i : i + len(yb), q] = v.to(torch.float64).cpu().numpy().astype(out[f].dtype)
            prog.advance(len(yb))
            rate.done(min(i + block, n))
    return out


def _feature_arrays(n: int, settings: ScoreSettings) -> dict[str, np.ndarray]:
    """Zeroed (n, Q) arrays of every feature; NaN for Hutchinson's when it does not run."""
    out = {f: np.zeros((n, len(QUERIES)), dtype=np.float64) for f in FEATURES}
    if settings.with_float32:
        out.update({f: np.zeros((n, len(QUERIES)), dtype=np.float32) for f in F32_FEATURES})
    if settings.nprobes == 0:
        for f in HUTCH_FEATURES:
            out[f][:] = np.nan
    return out


def _model_input(
    images_u8: np.ndarray, mean: np.ndarray, std: np.ndarray, query: int, s: ScoreSettings
) -> torch.Tensor:
    """uint8 images as the model's input for ``query``: normalised, in its dtype and layout."""
    xb = torch.from_numpy(images_u8).to(s.device)
    xb = query_view(normalize(to_float(xb), mean, std), query).to(s.dtype)
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    return xb.contiguous(memory_format=fmt) if xb.dim() == 4 else xb


def _block_features(
    model: nn.Module,
    xb: torch.Tensor,
    yb: torch.Tensor,
    words: list[int],
    idx: torch.Tensor,
    s: ScoreSettings,
) -> dict[str, torch.Tensor]:
    """Every feature of a block of samples for one query, keyed on ``words`` and ``idx``."""
    clean = s.chooser.best if s.chooser is not None else s.forward_batch
    with torch.inference_mode():
        logits = torch.cat([forward(model, xb[j : j + clean]) for j in range(0, len(yb), clean)])
    feats = logit_features(logits, yb)
    if s.with_float32:
        feats.update(float32_features(logits, yb))
    feats["curv_zo"] = zo_curvature(
        model,
        xb,
        yb,
        h=s.h,
        niter=s.niter,
        seed=words,
        index=idx,
        max_batch=None if s.chooser is not None else s.forward_batch,
        fwd=s.fwd,
        pad=s.fwd is not None,
        chooser=s.chooser,
    )
    if s.nprobes:
        hb = s.batch_size
        traces = [
            hutchinson(
                model,
                xb[j : j + hb],
                yb[j : j + hb],
                nprobes=s.nprobes,
                seed=words,
                index=idx[j : j + hb],
            )  # fmt: skip
            for j in range(0, len(yb), hb)
        ]
        feats["curv_hutch"] = torch.cat([tr for tr, _ in traces])
        feats["curv_hutch_sq"] = torch.cat([tr2 for _, tr2 in traces])
    return feats


class _RateLog:
    """A query's progress line: after more than 5 s since the last one, and at the end."""

    def __init__(self, label: str, n: int, log: Callable[[str], None]) -> None:
        self.label, self.n, self.log = label, n, log
        self.t0 = self.last = time.perf_counter()

    def done(self, k: int) -> None:
        """``k`` of the ``n`` samples are scored."""
        now = time.perf_counter()
        if now - self.last > 5.0 or k == self.n:
            self.log(f"{self.label}: {k}/{self.n} samples, {k / (now - self.t0):.0f} samples/s")
            self.last = now


def disable_fused_attention() -> None:
    """Make timm build attention layers without fused SDPA kernels (call before building).

    Fused attention kernels have no double backward, which the Hutchinson path needs;
    timm layers read the flag when they are constructed.
    """
    from timm.layers import set_fused_attn

    set_fused_attn(False)


def scoring_dtype(scoring: dict) -> torch.dtype:
    """float64 for the clean variant, float32 (TF32 off) for paper."""
    return torch.float64 if scoring["variant"] == "clean" else torch.float32


def set_tf32(scoring: dict) -> None:
    """TF32 for the whole process from ``scoring.tf32``: false (default) = off everywhere;
    true = PyTorch's defaults, the released scorer's setting (cuDNN convolutions on,
    matmuls off).  No effect on a CPU or on an older GPU."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = bool(scoring.get("tf32", False))


def prepare_model(model: nn.Module, scoring: dict, device: torch.device) -> nn.Module:
    """Cast and move the model for scoring, in eval mode (BatchNorm statistics untouched).

    TF32 as ``scoring.tf32`` says (:func:`set_tf32`).  channels_last (``auto`` = on)
    applies to 4-D weights only.
    """
    set_tf32(scoring)
    model = model.to(device=device, dtype=scoring_dtype(scoring)).eval()
    if use_channels_last(scoring):
        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def use_channels_last(scoring: dict) -> bool:
    """channels_last: true, false, or auto (= true on every device).

    Measured on this project's CPU (1 thread, eager inference): the default model runs
    about 30% faster in channels_last (batch 64–512, float32 and float64), CIFAR
    ResNet-18 10–20% faster; on GPUs it is the layout cuDNN prefers.  The choice is a
    config value, never a timing, because the layout changes float32 rounding (measured:
    losses by ~1e-7 relative, the paper-variant ZO score, a difference of four nearly equal
    losses, by a median 5% per sample, correlation 0.998), so a rerun must make the same
    choice; within one layout scores are bit-identical for any batch size.
    """
    mode = scoring.get("channels_last", "auto")
    return mode is True or mode == "auto"


def score_model(
    model: nn.Module,
    data,
    *,
    scoring: dict,
    row: int,
    device: torch.device,
    log: Callable[[str], None] = print,
    shard: tuple[int, int] = (0, 1),
) -> dict[str, np.ndarray]:
    """Score population and test split of a prepared dataset; return arrays for ``save_npz``.

    The model is moved and cast in place. ``scoring.variant``: ``paper`` runs in float32
    (TF32 off) and keeps exact zero curvature values; ``clean`` runs the model in float64.
    ``shard = (i, n)`` scores only shard i of n of each split (``merge_shards`` joins them).
    """
    model = prepare_model(model, scoring, device)
    shape = tuple(data.train_images.shape[1:])
    sample = torch.zeros(shape, dtype=scoring_dtype(scoring), device=device)
    folded = 0
    if scoring.get("fold_bn", True):  # score a folded copy; ``model`` stays as it is
        model, folded = fold_batchnorm(model, channels_last=use_channels_last(scoring))
    log(f"scoring model: {folded} Conv2d-BatchNorm2d pairs folded")
    settings = score_settings(model, sample, scoring, device, log)
    arrays: dict[str, np.ndarray] = {}
    for prefix, name, split_id in SPLITS:
        which = "train" if split_id == 0 else "test"
        imgs, labs = getattr(data, f"{which}_images"), getattr(data, f"{which}_labels")
        lo, hi = shard_range(len(labs), *shard)
        feats = score_split(model, imgs[lo:hi], labs[lo:hi], settings, mean=data.mean,
                            std=data.std, seed_words=[scoring["seed"], row, split_id],
                            start=lo, name=name, log=log)  # fmt: skip
        arrays.update({prefix + k: v for k, v in feats.items()})
    if settings.chooser is not None:
        log(f"online choice at the end: {settings.chooser.summary()}")
    meta = _score_meta(scoring, settings, row=row, folded=folded, data=data)
    if shard != (0, 1):
        meta["shard"] = list(shard)
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        return arrays
    return finalize(arrays, meta, log)


def _score_meta(scoring: dict, s: ScoreSettings, *, row: int, folded: int, data) -> dict:
    """The score file's metadata: settings, device, precision flags, versions, sizes."""
    device = s.device
    return {
        "row": row,
        "scoring": {k: v for k, v in scoring.items() if k != "shards"},
        "dtype": str(s.dtype),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": str(torch.__version__),
        "tf32": {
            "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32),
        },
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "channels_last": s.channels_last,
        "float32_features": list(F32_FEATURES) if s.with_float32 else [],
        "folded_bn": folded,
        "compiled": s.fwd is not None,
        "threads": torch.get_num_threads(),
        "queries": list(QUERIES),
        "n": len(data.train_labels),
        "n_test": len(data.test_labels),
    }


def finalize(
    arrays: dict[str, np.ndarray], meta: dict, log: Callable[[str], None] = print
) -> dict[str, np.ndarray]:
    """Add the summary counts (exact-zero ZO values, negative traces) to meta."""
    meta = {k: v for k, v in meta.items() if k != "shard"}
    for prefix, name, _ in SPLITS:
        zo = arrays[prefix + "curv_zo"]
        tr = arrays[prefix + "curv_hutch"]
        key = "" if prefix == "" else "_test"
        meta["zero_curv_zo" + key] = int((zo == 0).sum())
        meta["negative_curv_hutch_frac" + key] = (
            float((tr < 0).mean()) if np.isfinite(tr).all() and tr.size else None
        )
        log(
            f"{name}: exact zero curv_zo {meta['zero_curv_zo' + key]}, "
            f"negative curv_hutch fraction {meta['negative_curv_hutch_frac' + key]}"
        )
    out = {k: v for k, v in arrays.items() if k != "meta"}
    out["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return out


def merge_shards(parts: list[dict[str, np.ndarray]], log: Callable[[str], None] = print):
    """Join shard results (in shard order) into the arrays of one unsharded run."""
    metas = [json.loads(str(p["meta"])) for p in parts]
    n = len(parts)
    for i, m in enumerate(metas):
        if m.get("shard") != [i, n]:
            raise ValueError(f"shard {i} of {n}: file holds shard {m.get('shard')}")
        # shards may run on different machines: their kernels may differ (recorded below)
        rest = {k: v for k, v in m.items() if k not in ("shard", "kernels")}
        first = {k: v for k, v in metas[0].items() if k not in ("shard", "kernels")}
        if rest != first:
            diff = sorted(k for k in set(rest) | set(first) if rest.get(k) != first.get(k))
            raise ValueError(f"shard {i} of {n}: metadata differs from shard 0 in {diff}")
    keys = [k for k in parts[0] if k != "meta"]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    for prefix, name, _ in SPLITS:
        want = metas[0]["n" if prefix == "" else "n_test"]
        got = len(arrays[prefix + "loss"])
        if got != want:
            raise ValueError(f"merged {name} split has {got} samples, expected {want}")
    meta = dict(metas[0])
    kernels = [m.get("kernels") for m in metas]
    if any(k != kernels[0] for k in kernels):
        meta["kernels_per_shard"] = kernels
    return finalize(arrays, meta, log)


def load_features(
    paths: list[str], prefix: str = "", expect: list[dict] | None = None
) -> dict[str, np.ndarray]:
    """Stack the features of several score files into arrays of shape (S, N, Q); the
    float32 ones (``F32_FEATURES``) only where every file holds them. ``expect``: per file,
    the identity it must carry (curvmia/scorefile.py: check_score_identity)."""
    per = [load_score_file(p, e) for p, e in zip(paths, expect or [None] * len(paths), strict=True)]
    names = [*FEATURES, *(f for f in F32_FEATURES if all(prefix + f in d for d in per))]
    return {f: np.stack([d[prefix + f] for d in per]) for f in names}


def check_float32_features(paths: list[str], needed: list[str]) -> None:
    """Raise, naming the first score file that lacks a needed float32 field, and say to
    rescore (those values cannot be recreated from the float64 ones)."""
    for p in paths:
        files = score_fields(p)  # a damaged file names itself
        missing = [f for f in needed for key in (f, "test_" + f) if key not in files]
        if missing:
            raise ValueError(
                f"{p}: no {sorted(set(missing))} (float32 values as the released code computed "
                "them), which the paper variant of this attack reads; rescore this model with "
                "scoring.variant: paper (delete the file and rerun), or set the attack's "
                "variant: clean"
            )
