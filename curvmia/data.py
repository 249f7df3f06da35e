"""Datasets in one canonical on-disk form, plus tensor-level augmentation.

Every dataset is prepared once into a directory holding
``train_images.npy`` (uint8, N×C×H×W), ``train_labels.npy`` (int64, N),
``test_images.npy`` / ``test_labels.npy`` (the held-out split that no model
ever trains on) and ``manifest.json`` (sha256 of each array, class count,
image shape, normalisation mean/std).  The *population* on which membership
is defined is the train split; the test split gives test accuracy and is the
reference population of later attacks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path, sha256_array, write_json

DATASETS = ("digits",)
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class Prepared:
    """A prepared dataset: population (train split) and held-out test split."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    manifest: dict

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.manifest["mean"], dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        return np.asarray(self.manifest["std"], dtype=np.float32)


def load_digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 (N, 1, 8, 8) images and int64 labels.

    The raw values are 0..16; they are stored as round(v·255/16) (SPEC §1).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images[:, None, :, :], d.target.astype(np.int64)


def stratified_split(
    labels: np.ndarray, test_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split into (population indices, test indices), both sorted."""
    n = len(labels)
    if not 0 < test_size < n:
        raise ValueError(f"data.test_size must be in (0, {n}), got {test_size}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Allocate test slots per class proportionally (largest remainder), then draw.
    exact = counts * test_size / n
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: test_size - quota.sum()]] += 1
    test = []
    for c, q in zip(classes, quota):
        members = np.flatnonzero(labels == c)
        test.append(rng.choice(members, size=q, replace=False))
    test_idx = np.sort(np.concatenate(test))
    pop_idx = np.setdiff1d(np.arange(n), test_idx)
    return pop_idx, test_idx


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1]."""
    x = images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3))
    return [float(v) for v in mean], [float(v) for v in std]


def prepare(dataset: str, out_dir: str | os.PathLike, *, test_size: int, split_seed: int) -> dict:
    """Prepare ``dataset`` into the canonical form under ``out_dir``; return the manifest."""
    if dataset not in DATASETS:
        raise ValueError(f"data.dataset: unknown dataset {dataset!r}; expected one of {DATASETS}")
    images, labels = load_digits_uint8()
    source = "sklearn.datasets.load_digits"
    pop_idx, test_idx = stratified_split(labels, test_size, split_seed)
    arrays = {
        "train_images": images[pop_idx],
        "train_labels": labels[pop_idx],
        "test_images": images[test_idx],
        "test_labels": labels[test_idx],
    }
    mean, std = channel_stats(arrays["train_images"])
    out = Path(out_dir)
    for name, arr in arrays.items():
        with atomic_path(out / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)
    manifest = {
        "dataset": dataset,
        "source": source,
        "n_train": int(len(pop_idx)),
        "n_test": int(len(test_idx)),
        "num_classes": int(labels.max() + 1),
        "image_shape": list(images.shape[1:]),
        "mean": mean,
        "std": std,
        "split": {"test_size": test_size, "split_seed": split_seed, "stratified": True},
        "sha256": {name: sha256_array(arr) for name, arr in arrays.items()},
    }
    write_json(out / "manifest.json", manifest)
    return manifest


def load_prepared(data_dir: str | os.PathLike, *, verify: bool = True) -> Prepared:
    """Load a prepared dataset (its directory or its manifest.json), checking each array
    against the manifest's sha256."""
    import json

    d = Path(data_dir)
    if d.name == "manifest.json":
        d = d.parent
    manifest_path = d / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: no prepared dataset here (run the prepare step)")
    manifest = json.loads(manifest_path.read_text())
    arrays = {name: np.load(d / f"{name}.npy", allow_pickle=False) for name in ARRAYS}
    if verify:
        for name, arr in arrays.items():
            if sha256_array(arr) != manifest["sha256"][name]:
                raise ValueError(f"{d / (name + '.npy')}: sha256 does not match {manifest_path}")
    return Prepared(manifest=manifest, **arrays)


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 images → float32 in [0, 1]."""
    return images_u8.to(torch.float32).div_(255.0)


def normalize(x: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """Per-channel normalisation of float images in [0, 1]."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def random_crop_flip(
    x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``) and horizontal flip, no per-image loop.

    ``x`` is (B, C, H, W); draws come from ``generator`` so training is seeded.
    """
    b, _, h, w = x.shape
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
        bidx = torch.arange(b, device=x.device)[:, None, None, None]
        cidx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[bidx, cidx, rows, cols]
    if flip:
        do = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(do[:, None, None, None], x.flip(3), x)
    return x
