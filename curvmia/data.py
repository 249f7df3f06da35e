"""Datasets in one canonical on-disk form: preparing them once, and loading them back.

Every dataset is prepared once into a directory holding
``train_images.npy`` (uint8, N×C×H×W), ``train_labels.npy`` (int64, N),
``test_images.npy`` / ``test_labels.npy`` (the held-out split that no model
ever trains on) and ``manifest.json`` (sha256 of each array, class count,
image shape, normalisation mean/std).  The *population* on which membership
is defined is the train split; the test split gives test accuracy and is the
reference population of later attacks.

Sources: scikit-learn's digits (offline default), CIFAR-10/100 from the official
python-version archives (:mod:`curvmia.cifar`: fetched with an md5 check, HTTP range resume
and retries, or taken from a local mirror / an already-downloaded archive) and any
directory in the ImageFolder layout (:mod:`curvmia.imagefolder`, ImageNet included),
center-cropped into a memory-mapped uint8 array.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cifar import CIFAR, is_official, read_cifar
from .imagefolder import scan_imagefolder, write_image_memmap
from .io import atomic_path, config_hash, sha256_array, write_json

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# Arrays above this size are memory-mapped on load and hashed only at prepare time.
MMAP_BYTES = 1 << 30


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

    The raw values are 0..16; they are stored as round(v·255/16) (docs/method.md: Membership
    layouts).
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


def sha256_npy(arr: np.ndarray, chunk_rows: int = 4096) -> str:
    """:func:`curvmia.io.sha256_array` computed in row chunks (same value, bounded RAM)."""
    h = hashlib.sha256()
    h.update(str(arr.dtype).encode())
    h.update(str(arr.shape).encode())
    for i in range(0, max(len(arr), 1), chunk_rows):
        h.update(np.ascontiguousarray(arr[i : i + chunk_rows]).tobytes())
    return h.hexdigest()


def channel_stats_chunked(images: np.ndarray, chunk_rows: int = 4096) -> tuple[list, list]:
    """Per-channel mean/std in [0, 1] over a (memory-mapped) uint8 array, in chunks."""
    s = np.zeros(images.shape[1])
    s2 = np.zeros(images.shape[1])
    for i in range(0, len(images), chunk_rows):
        x = images[i : i + chunk_rows].astype(np.float64) / 255.0
        s += x.sum(axis=(0, 2, 3))
        s2 += (x * x).sum(axis=(0, 2, 3))
    cnt = len(images) * images.shape[2] * images.shape[3]
    mean = s / cnt
    std = np.sqrt(np.maximum(s2 / cnt - mean**2, 0.0))
    return [float(v) for v in mean], [float(v) for v in std]


# Bump when a change to the preparation code changes the prepared bytes: it moves every
# prepared-data directory, so old and new preparations never mix.
PREPARE_VERSION = 1
CONTENT_KEYS = ("test_size", "split_seed", "image_size", "resize", "stats")  # imagefolder


def prepared_dir_name(data_cfg: dict) -> str:
    """Directory name of a prepared dataset: ``<dataset>-<8 hex>``.

    The hash covers every setting that changes the prepared content (and nothing else:
    loader workers, the mirror, the archive's location and data.path do not move it, so a
    moved ImageNet directory is not prepared again). Two experiments with different
    preparation settings (the digits default's test_size 297, the test config's 1297) get
    two directories instead of invalidating each other's models.
    """
    ds = data_cfg["dataset"]
    keys = {"digits": ("test_size", "split_seed", "stats"), "imagefolder": CONTENT_KEYS}
    used = {k: data_cfg[k] for k in keys.get(ds, ("stats",))}  # CIFAR: official split
    if ds in CIFAR and not is_official(ds, data_cfg.get("md5")):
        used["md5"] = data_cfg["md5"]  # another archive (data.md5): its own directory
    return f"{ds}-{config_hash({'dataset': ds, 'version': PREPARE_VERSION, **used})[:8]}"


def prepare(
    dataset: str,
    out_dir: str | os.PathLike,
    *,
    test_size: int,
    split_seed: int,
    archive: str | os.PathLike | None = None,
    md5: str | None = None,
    path: str | os.PathLike | None = None,
    image_size: int = 224,
    resize: int = 256,
    stats: str = "auto",
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> dict:
    """Prepare ``dataset`` into the canonical form under ``out_dir``; return the manifest.

    digits: a seeded stratified split of ``test_size``.  cifar10/cifar100: the
    official train/test splits read from the verified ``archive``.  imagefolder:
    the directory ``path`` (train/ and optional val/, else a stratified split of
    train/), each image resized and center-cropped to ``image_size`` into a
    memory-mapped ``.npy``.  ``stats``: ``auto`` = published constants for CIFAR
    and ImageNet-style data (``imagenet``), ``computed`` = measured on the population.
    """
    if dataset not in DATASETS:
        raise ValueError(f"data.dataset: unknown dataset {dataset!r}; expected one of {DATASETS}")
    out = Path(out_dir)
    if dataset == "imagefolder":
        return _prepare_imagefolder(
            Path(path) if path else None,
            out,
            test_size=test_size,
            split_seed=split_seed,
            image_size=image_size,
            resize=resize,
            stats=stats,
            workers=workers,
            log=log,
        )
    if dataset == "digits":
        arrays, fields = _digits_arrays(test_size, split_seed)
    else:
        arrays, fields = _cifar_arrays(dataset, archive, md5, stats)
    for name, arr in arrays.items():
        _save_npy(out / f"{name}.npy", arr)
    return _write_manifest(out, arrays, dataset=dataset, **fields)


def _stratified_record(test_size: int, split_seed: int) -> dict:
    """The manifest's ``split`` of a seeded stratified split."""
    return {"test_size": test_size, "split_seed": split_seed, "stratified": True}


def _digits_arrays(test_size: int, split_seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """scikit-learn's digits split into population and test (a seeded stratified split of
    ``test_size``), and their manifest fields (statistics always measured)."""
    images, labels = load_digits_uint8()
    pop_idx, test_idx = stratified_split(labels, test_size, split_seed)
    arrays = {
        "train_images": images[pop_idx],
        "train_labels": labels[pop_idx],
        "test_images": images[test_idx],
        "test_labels": labels[test_idx],
    }
    mean, std = channel_stats(arrays["train_images"])
    return arrays, {
        "source": "sklearn.datasets.load_digits",
        "split": _stratified_record(test_size, split_seed),
        "num_classes": int(labels.max() + 1),
        "mean": mean,
        "std": std,
    }


def _cifar_arrays(
    dataset: str, archive: str | os.PathLike | None, md5: str | None, stats: str
) -> tuple[dict[str, np.ndarray], dict]:
    """The official train/test splits of a verified CIFAR archive and their manifest fields
    (``stats`` ``auto``: the published mean and std, else measured)."""
    if archive is None:
        raise ValueError(f"data.dataset {dataset}: the prepare step needs the archive")
    spec = CIFAR[dataset]
    arrays = read_cifar(dataset, archive, md5)
    source = spec["url"]
    if not is_official(dataset, md5):
        source = f"{spec['filename']} with md5 {md5} (data.md5)"
    if stats == "auto":
        mean, std = spec["mean"], spec["std"]
    else:
        mean, std = channel_stats(arrays["train_images"])
    return arrays, {
        "source": source,
        "split": {"official": True},
        "num_classes": spec["num_classes"],
        "mean": mean,
        "std": std,
    }


def _prepare_imagefolder(
    root: Path | None,
    out: Path,
    *,
    test_size: int,
    split_seed: int,
    image_size: int,
    resize: int,
    stats: str,
    workers: int,
    log: Callable[[str], None],
) -> dict:
    """:func:`prepare` of an ImageFolder directory: images decoded into memory-mapped arrays,
    statistics and hashes computed in chunks (ImageNet does not fit in RAM)."""
    if root is None:
        raise ValueError("data.path: dataset imagefolder needs the directory of the images")
    classes, (tr_files, tr_labels), (te_files, te_labels), split = _imagefolder_split(
        root, test_size, split_seed
    )
    log(f"{root}: {len(classes)} classes, {len(tr_files)} population, {len(te_files)} test")
    for name, fl in (("train_images", tr_files), ("test_images", te_files)):
        write_image_memmap(
            fl, out / f"{name}.npy", size=image_size, resize=resize, workers=workers, log=log
        )
    for name, lab in (("train_labels", tr_labels), ("test_labels", te_labels)):
        _save_npy(out / f"{name}.npy", lab)
    arrays = {
        name: np.load(out / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS
    }
    if stats == "imagenet" or (stats == "auto" and len(classes) == 1000):
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = channel_stats_chunked(arrays["train_images"])
    return _write_manifest(
        out,
        arrays,
        dataset="imagefolder",
        source=str(Path(root).resolve()),
        classes=classes,
        num_classes=len(classes),
        preprocess={"resize_shorter": resize, "center_crop": image_size},
        mean=mean,
        std=std,
        split=split,
    )


def _imagefolder_split(root: Path, test_size: int, split_seed: int) -> tuple:
    """Classes, (files, labels) of the population and of the test split, and the manifest's
    ``split``: val/ when the folder has one, else a seeded stratified split of train/."""
    classes, splits = scan_imagefolder(root)
    files, labels = splits["train"]
    if "val" in splits:
        return classes, (files, labels), splits["val"], {"official": True, "test_dir": "val"}
    pop_idx, test_idx = stratified_split(labels, test_size, split_seed)
    pop = [files[i] for i in pop_idx], labels[pop_idx]
    test = [files[i] for i in test_idx], labels[test_idx]
    return classes, pop, test, _stratified_record(test_size, split_seed)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    """One array as ``.npy``, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr)


def _write_manifest(out: Path, arrays: dict[str, np.ndarray], **fields: object) -> dict:
    """Write ``out/manifest.json``: ``fields`` (dataset, source, split, class count, mean,
    std...) plus the sizes, the image shape and the sha256 of every array; return it."""
    manifest = {
        **fields,
        "n_train": int(len(arrays["train_labels"])),
        "n_test": int(len(arrays["test_labels"])),
        "image_shape": list(arrays["train_images"].shape[1:]),
        "sha256": {name: sha256_npy(arr) for name, arr in arrays.items()},
    }
    write_json(out / "manifest.json", manifest)
    return manifest


def load_prepared(data_dir: str | os.PathLike, *, verify: bool | str = True) -> Prepared:
    """Load a prepared dataset (its directory or its manifest.json).

    Arrays over 1 GiB (ImageNet) are memory-mapped read-only.  ``verify``:
    True checks every in-memory array against the manifest's sha256 and, for
    memory-mapped ones, the file's shape and size only (hashing ~190 GB on
    every job would cost minutes); ``"full"`` hashes those too; False skips.
    """
    d = Path(data_dir)
    if d.name == "manifest.json":
        d = d.parent
    manifest_path = d / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: no prepared dataset here (run the prepare step)")
    try:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), dict):
            raise ValueError("not a manifest (no sha256 table)")
    except ValueError as e:
        raise ValueError(f"{manifest_path}: not a readable manifest ({e})") from None
    arrays = {}
    for name in ARRAYS:
        f = d / f"{name}.npy"
        big = f.stat().st_size > MMAP_BYTES
        try:
            arr = np.load(f, mmap_mode="r" if big else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"{f}: not a readable .npy array ({e})") from None
        arrays[name] = arr
        if verify is False or (big and verify != "full"):
            continue
        ok = (sha256_npy(arr) if big else sha256_array(arr)) == manifest["sha256"][name]
        if not ok:
            raise ValueError(f"{f}: sha256 does not match {manifest_path}")
    n_train = manifest["n_train"]
    if len(arrays["train_images"]) != n_train or len(arrays["train_labels"]) != n_train:
        raise ValueError(f"{d}: arrays do not hold the manifest's n_train = {n_train} samples")
    return Prepared(manifest=manifest, **arrays)
