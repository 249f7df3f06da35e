"""Per-sample, per-query features of one model (SPEC §3).

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

Population arrays use these names; test-split arrays are prefixed ``test_``.
``meta`` is a JSON string with the settings, device, dtype, torch version and
the count of exactly-zero curvature values.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .curvature import zo_curvature
from .data import normalize, to_float
from .io import load_npz

FEATURES = ("loss", "p_true", "p_max", "phi", "phi_max", "mentr", "curv_zo")
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


def query_view(x: torch.Tensor, query: int) -> torch.Tensor:
    """Query 0 is the image itself, query 1 its horizontal flip."""
    if query == 0:
        return x
    if query == 1:
        return x.flip(3)
    raise ValueError(f"unknown query {query}; expected 0 (original) or 1 (hflip)")


def score_split(
    model: nn.Module,
    images_u8: np.ndarray,
    labels: np.ndarray,
    *,
    mean: np.ndarray,
    std: np.ndarray,
    h: float,
    niter: int,
    seed_words: list[int],
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    log: Callable[[str], None] = print,
    name: str = "population",
) -> dict[str, np.ndarray]:
    """All features of one split, each (N, Q) float64."""
    n = len(labels)
    out = {f: np.zeros((n, len(QUERIES)), dtype=np.float64) for f in FEATURES}
    y_all = torch.from_numpy(labels).to(device)
    for q in range(len(QUERIES)):
        gen = torch.Generator().manual_seed(
            int(np.random.SeedSequence([*seed_words, q]).generate_state(1, np.uint64)[0] >> 1)
        )
        t0 = time.perf_counter()
        last = t0
        for i in range(0, n, batch_size):
            xb = torch.from_numpy(images_u8[i : i + batch_size]).to(device)
            xb = query_view(normalize(to_float(xb), mean, std), q).to(dtype)
            yb = y_all[i : i + batch_size]
            with torch.no_grad():
                feats = logit_features(model(xb), yb)
            feats["curv_zo"] = zo_curvature(model, xb, yb, h=h, niter=niter, generator=gen)
            for f in FEATURES:
                out[f][i : i + len(yb), q] = feats[f].to(torch.float64).cpu().numpy()
            now = time.perf_counter()
            done = min(i + batch_size, n)
            if now - last > 5.0 or done == n:
                log(
                    f"{name} query {q} ({QUERIES[q]}): {done}/{n} samples, "
                    f"{done / (now - t0):.0f} samples/s"
                )
                last = now
    return out


def score_model(
    model: nn.Module,
    data,
    *,
    scoring: dict,
    row: int,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """Score population and test split of a prepared dataset; return arrays for ``save_npz``.

    The model is moved and cast in place. ``scoring.variant``: ``paper`` runs in float32
    (TF32 off) and keeps exact zero curvature values; ``clean`` runs the model in float64.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dtype = torch.float64 if scoring["variant"] == "clean" else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    arrays: dict[str, np.ndarray] = {}
    for prefix, imgs, labs, name, split_id in (
        ("", data.train_images, data.train_labels, "population", 0),
        ("test_", data.test_images, data.test_labels, "test", 1),
    ):
        feats = score_split(
            model,
            imgs,
            labs,
            mean=data.mean,
            std=data.std,
            h=scoring["h"],
            niter=scoring["niter"],
            seed_words=[scoring["seed"], row, split_id],
            batch_size=scoring["batch_size"],
            device=device,
            dtype=dtype,
            log=log,
            name=name,
        )
        arrays.update({prefix + k: v for k, v in feats.items()})
    meta = {
        "row": row,
        "scoring": scoring,
        "dtype": str(dtype),
        "device": str(device),
        "torch": str(torch.__version__),
        "tf32": False,
        "queries": list(QUERIES),
        "zero_curv_zo": int((arrays["curv_zo"] == 0).sum()),
        "zero_curv_zo_test": int((arrays["test_curv_zo"] == 0).sum()),
    }
    log(f"exact zero curv_zo: {meta['zero_curv_zo']} population, {meta['zero_curv_zo_test']} test")
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return arrays


def load_features(paths: list[str], prefix: str = "") -> dict[str, np.ndarray]:
    """Stack the features of several score files into arrays of shape (S, N, Q)."""
    per = [load_npz(p) for p in paths]
    return {f: np.stack([d[prefix + f] for d in per]) for f in FEATURES}
