"""Datasets in the ImageFolder layout (ImageNet included): checking and scanning the
directory, and decoding its images, resized and center-cropped, into a memory-mapped array.

The layout: ``<root>/train/<class>/<image>`` (one folder per class, classes in sorted name
order) and optionally ``<root>/val/<class>/<image>`` with the same class folders.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .io import atomic_path
from .progress import Progress

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


def _layout_error(root: Path, why: str) -> ValueError:
    return ValueError(
        f"data.path: {root}: {why}. Expected the ImageFolder layout "
        f"{root}/train/<class>/<image>.JPEG|png (one folder per class) and optionally "
        f"{root}/val/<class>/<image> with the same class folders (no val/: a seeded stratified "
        "split of train/ of data.test_size images is held out)."
    )


def check_imagefolder_layout(root: str | os.PathLike) -> None:
    """Cheap layout check (no full listing): train/ with a class folder holding an image."""
    root = Path(root)
    train = root / "train"
    if not train.is_dir():
        raise _layout_error(root, "no train/ directory")
    for cls in sorted(train.iterdir()):
        if cls.is_dir():
            if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in cls.iterdir()):
                return
            raise _layout_error(root, f"class folder {cls.name} holds no images")
    raise _layout_error(root, "train/ has no class folders")


def scan_imagefolder(
    root: str | os.PathLike,
) -> tuple[list[str], dict[str, tuple[list[Path], np.ndarray]]]:
    """Classes (sorted folder names) and, per split present, files and labels."""
    root = Path(root)
    train = root / "train"
    if not train.is_dir():
        raise _layout_error(root, "no train/ directory")
    classes = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not classes:
        raise _layout_error(root, "train/ has no class folders")
    splits = {}
    for split in ("train", "val"):
        d = root / split
        if not d.is_dir():
            continue
        extra = sorted({p.name for p in d.iterdir() if p.is_dir()} - set(classes))
        if extra:
            raise _layout_error(root, f"{split}/ has classes not in train/: {extra[:5]}")
        files, labels = [], []
        for c, name in enumerate(classes):
            if not (d / name).is_dir():
                continue
            found = sorted(p for p in (d / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            files += found
            labels += [c] * len(found)
        if not files:
            raise _layout_error(root, f"{split}/ holds no images")
        splits[split] = (files, np.asarray(labels, dtype=np.int64))
    return classes, splits


def load_center_crop(path: str | os.PathLike, size: int, resize: int) -> np.ndarray:
    """RGB image resized (shorter side = ``resize``, bilinear) and center-cropped to
    ``size`` x ``size``; uint8 (3, size, size)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = resize / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def _crop_job(args: tuple[str, int, int]) -> np.ndarray:
    return load_center_crop(*args)


def write_image_memmap(
    files: list[Path],
    out: Path,
    *,
    size: int,
    resize: int,
    workers: int = 1,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Decode ``files`` in order into a uint8 (N, 3, size, size) ``.npy`` written through a
    memory map (never all in RAM), atomically."""
    n = len(files)
    prog = Progress(n, f"{out.name}: decoding", log, unit="images", clock=clock)
    with atomic_path(out, suffix=".npy") as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
        jobs = ((str(f), size, resize) for f in files)
        if workers > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers) as pool:
                for i, img in enumerate(pool.imap(_crop_job, jobs, chunksize=64)):
                    arr[i] = img
                    prog.advance()
        else:
            for i, job in enumerate(jobs):
                arr[i] = _crop_job(job)
                prog.advance()
        arr.flush()
        del arr
