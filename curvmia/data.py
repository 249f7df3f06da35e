"""Datasets in one canonical on-disk form, plus tensor-level augmentation.

Every dataset is prepared once into a directory holding
``train_images.npy`` (uint8, N×C×H×W), ``train_labels.npy`` (int64, N),
``test_images.npy`` / ``test_labels.npy`` (the held-out split that no model
ever trains on) and ``manifest.json`` (sha256 of each array, class count,
image shape, normalisation mean/std).  The *population* on which membership
is defined is the train split; the test split gives test accuracy and is the
reference population of later attacks.

Sources: scikit-learn's digits (offline default), CIFAR-10/100 from the official
python-version archives (downloaded with md5 check, HTTP range resume and
retries, or taken from a local mirror / an already-downloaded archive) and any
directory in the ImageFolder layout (ImageNet included), center-cropped into a
memory-mapped uint8 array.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pickle
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .io import atomic_path, config_hash, sha256_array, write_json
from .progress import Progress

if TYPE_CHECKING:  # torch is imported where used: the Snakefile imports this module
    import torch

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")

# The official python-version archives (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "filename": "cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
        "test": ["cifar-10-batches-py/test_batch"],
        "label_key": "labels",
        "num_classes": 10,
        "mean": [0.4914, 0.4822, 0.4465],
        "std": [0.2023, 0.1994, 0.2010],
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "filename": "cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": ["cifar-100-python/train"],
        "test": ["cifar-100-python/test"],
        "label_key": "fine_labels",
        "num_classes": 100,
        "mean": [0.5071, 0.4867, 0.4408],
        "std": [0.2675, 0.2565, 0.2761],
    },
}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
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


# ---------------------------------------------------------------- download


class ChecksumError(ValueError):
    """A downloaded or supplied archive does not have the expected md5."""


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """md5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify_and_install(tmp: Path, dest: Path, md5: str, whose: str = "") -> Path:
    got = md5_file(tmp)
    if got != md5:
        tmp.unlink()
        raise ChecksumError(
            f"{dest}: md5 {got} does not match the expected {md5}{whose}; "
            "the partial file was removed"
        )
    os.replace(tmp, dest)
    return dest


def download(
    url: str,
    dest: str | os.PathLike,
    md5: str,
    *,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 2.0,
    chunk: int = 1 << 20,
    log: Callable[[str], None] = print,
    whose: str = "",
) -> Path:
    """Download ``url`` to ``dest`` and verify its md5; resume and retry on failure.

    Bytes go to ``dest + '.part'``; a rerun (or a retry after a dropped
    connection) asks the server for the rest with an HTTP ``Range`` header and
    appends, or starts over when the server ignores the range.  ``dest`` appears
    only once the whole file matches ``md5``; a mismatch removes the partial file
    and raises :class:`ChecksumError` (its message adds ``whose``, where the md5 came from).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"User-Agent": "curvmia"})
        if have:
            req.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status = getattr(resp, "status", 200)
                mode = "ab" if (have and status == 206) else "wb"
                if have and mode == "wb":
                    log(f"{url}: server ignored the range request; starting over")
                elif have:
                    log(f"{url}: resuming at byte {have}")
                expected = resp.headers.get("Content-Length")
                got = 0
                with open(part, mode) as fh:
                    while block := resp.read(chunk):
                        fh.write(block)
                        got += len(block)
                if expected is not None and got < int(expected):
                    raise ConnectionError(f"connection closed after {got} of {expected} bytes")
            return _verify_and_install(part, dest, md5, whose)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # range past the end: the .part may be complete
                return _verify_and_install(part, dest, md5, whose)
            if 400 <= e.code < 500:
                raise RuntimeError(f"{url}: HTTP {e.code} {e.reason}") from e
            last_error = e
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            last_error = e
        log(f"{url}: attempt {attempt}/{retries} failed ({last_error}); retrying")
        time.sleep(backoff * (attempt - 1))
    raise RuntimeError(f"{url}: download failed after {retries} attempts: {last_error}")


def expected_md5(dataset: str, md5: str | None = None) -> str:
    """The md5 a CIFAR archive must have: ``md5`` (config data.md5) or the official one."""
    return md5 or CIFAR[dataset]["md5"]


def _whose_md5(dataset: str, md5: str | None) -> str:
    if md5 and md5 != CIFAR[dataset]["md5"]:
        return " (data.md5)"
    return (
        f" (the official {dataset} archive's; another archive, e.g. a mirror's own file, "
        "needs its md5 in data.md5)"
    )


def is_official(dataset: str, md5: str | None) -> bool:
    """Whether ``md5`` (config data.md5) names the official archive of ``dataset``."""
    return expected_md5(dataset, md5) == CIFAR[dataset]["md5"]


def raw_archive_path(data_cfg: dict) -> str:
    """Where the fetched archive of a CIFAR dataset is kept: ``<root>/raw/<file name>``, or
    ``<root>/raw/<md5>/<file name>`` for an archive other than the official one (data.md5),
    so that it never takes the official file's place."""
    spec = CIFAR[data_cfg["dataset"]]
    md5 = data_cfg.get("md5")
    sub = "" if is_official(data_cfg["dataset"], md5) else f"{md5}/"
    return f"{data_cfg['root']}/raw/{sub}{spec['filename']}"


def fetch_archive(
    dataset: str,
    dest: str | os.PathLike,
    *,
    mirror: str | None = None,
    archive: str | None = None,
    md5: str | None = None,
    url: str | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    log: Callable[[str], None] = print,
) -> Path:
    """Put the verified archive of a CIFAR ``dataset`` at ``dest``.

    Sources, first match wins: ``archive`` (an already-downloaded file, copied),
    ``mirror`` (a local directory holding the official file name, or a base URL),
    else the official URL (``url`` overrides it, e.g. for tests). The file must have the
    md5 ``md5`` (config data.md5) or, when it is None, the official archive's md5.
    """
    if dataset not in CIFAR:
        raise ValueError(
            f"data.dataset: {dataset!r} has no download; expected one of {list(CIFAR)}"
        )
    spec = CIFAR[dataset]
    want, whose = expected_md5(dataset, md5), _whose_md5(dataset, md5)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    local = None
    if archive:
        local = Path(archive)
        key = "data.archive"
    elif mirror and "://" not in mirror:
        local = Path(mirror) / spec["filename"]
        key = "data.mirror"
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"{key}: {local} does not exist")
        tmp = dest.with_name(dest.name + ".part")
        shutil.copyfile(local, tmp)
        log(f"copied {local}")
        return _verify_and_install(tmp, dest, want, whose)
    src = url or (f"{mirror.rstrip('/')}/{spec['filename']}" if mirror else spec["url"])
    log(f"downloading {src}")
    return download(src, dest, want, retries=retries, timeout=timeout, log=log, whose=whose)


def _no_object_dtype(*args: object) -> np.dtype:
    d = np.dtype(*args)
    if d.hasobject:
        raise pickle.UnpicklingError(f"object arrays are refused (dtype {d})")
    return d


def _plain_ndarray(subtype: object, *args: object) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"array subtype {subtype!r} is refused")
    return np.ndarray.__new__(np.ndarray, *args)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is refused except for latin1 bytes")
    return text.encode("latin1")


class CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batch files that accepts only what the format holds.

    Dicts, lists, bytes, strings, numbers and numeric numpy arrays; every other global
    (``os.system``, ``builtins.eval``, object arrays, array subclasses...) is refused, so a
    crafted batch file cannot run code.
    """

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _no_object_dtype,
        ("numpy.core.multiarray", "_reconstruct"): _plain_ndarray,
        ("numpy._core.multiarray", "_reconstruct"): _plain_ndarray,
        ("_codecs", "encode"): _latin1_bytes,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is refused") from None


def _check_plain(obj: object, where: str) -> None:
    """Refuse anything but dicts, lists, bytes, strings, numbers and numeric arrays."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, where)
            _check_plain(v, where)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_plain(v, where)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or type(obj) is not np.ndarray:
            raise pickle.UnpicklingError(f"{where}: object array refused")
    elif not isinstance(obj, (bytes, str, int, float, bool, type(None))):
        raise pickle.UnpicklingError(f"{where}: value of type {type(obj).__name__} refused")


def _unpickle(fh, where: str) -> dict:
    """One CIFAR batch (a Python 2 pickle) read with :class:`CifarUnpickler`."""
    try:
        d = CifarUnpickler(fh, encoding="latin1").load()
        if not isinstance(d, dict):
            raise pickle.UnpicklingError(f"expected a dict, got {type(d).__name__}")
        _check_plain(d, where)
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError) as e:
        raise ValueError(f"{where}: not a CIFAR batch file: {e}") from None
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def read_cifar(
    dataset: str, archive: str | os.PathLike, md5: str | None = None
) -> dict[str, np.ndarray]:
    """Read the train and test splits of a verified CIFAR python-version archive.

    Each batch is a pickled dict with ``data`` (N x 3072 uint8, channel-major
    rows) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).  The archive's md5
    (``md5``, default the official one) is checked again here (the file may have been
    swapped since the download), and the batches
    are read with :class:`CifarUnpickler`, which cannot run code.
    """
    spec = CIFAR[dataset]
    want = expected_md5(dataset, md5)
    got = md5_file(archive)
    if got != want:
        raise ChecksumError(
            f"{archive}: md5 {got} does not match the expected {want}"
            f"{_whose_md5(dataset, md5)}; delete it so that it is fetched again"
        )
    out: dict[str, np.ndarray] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for split in ("train", "test"):
            images, labels = [], []
            for member in spec[split]:
                fh = tar.extractfile(member)
                if fh is None:
                    raise ValueError(f"{archive}: member {member} is missing")
                d = _unpickle(fh, f"{archive}: {member}")
                images.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels.append(np.asarray(d[spec["label_key"]], dtype=np.int64))
            out[f"{split}_images"] = np.concatenate(images)
            out[f"{split}_labels"] = np.concatenate(labels)
    return out


# ---------------------------------------------------------------- ImageFolder


def imagefolder_layout_error(root: Path, why: str) -> ValueError:
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
        raise imagefolder_layout_error(root, "no train/ directory")
    for cls in sorted(train.iterdir()):
        if cls.is_dir():
            if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in cls.iterdir()):
                return
            raise imagefolder_layout_error(root, f"class folder {cls.name} holds no images")
    raise imagefolder_layout_error(root, "train/ has no class folders")


def scan_imagefolder(
    root: str | os.PathLike,
) -> tuple[list[str], dict[str, tuple[list[Path], np.ndarray]]]:
    """Classes (sorted folder names) and, per split present, files and labels."""
    root = Path(root)
    train = root / "train"
    if not train.is_dir():
        raise imagefolder_layout_error(root, "no train/ directory")
    classes = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not classes:
        raise imagefolder_layout_error(root, "train/ has no class folders")
    splits = {}
    for split in ("train", "val"):
        d = root / split
        if not d.is_dir():
            continue
        extra = sorted({p.name for p in d.iterdir() if p.is_dir()} - set(classes))
        if extra:
            raise imagefolder_layout_error(root, f"{split}/ has classes not in train/: {extra[:5]}")
        files, labels = [], []
        for c, name in enumerate(classes):
            if not (d / name).is_dir():
                continue
            found = sorted(p for p in (d / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            files += found
            labels += [c] * len(found)
        if not files:
            raise imagefolder_layout_error(root, f"{split}/ holds no images")
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


# ---------------------------------------------------------------- prepare

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
    split: dict = {}
    if dataset == "digits":
        images, labels = load_digits_uint8()
        source = "sklearn.datasets.load_digits"
        pop_idx, test_idx = stratified_split(labels, test_size, split_seed)
        arrays = {
            "train_images": images[pop_idx],
            "train_labels": labels[pop_idx],
            "test_images": images[test_idx],
            "test_labels": labels[test_idx],
        }
        split = {"test_size": test_size, "split_seed": split_seed, "stratified": True}
        num_classes = int(labels.max() + 1)
    elif dataset in CIFAR:
        if archive is None:
            raise ValueError(f"data.dataset {dataset}: the prepare step needs the archive")
        arrays = read_cifar(dataset, archive, md5)
        source = CIFAR[dataset]["url"]
        if not is_official(dataset, md5):
            source = f"{CIFAR[dataset]['filename']} with md5 {md5} (data.md5)"
        split = {"official": True}
        num_classes = CIFAR[dataset]["num_classes"]
    else:
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
    if stats == "auto" and dataset in CIFAR:
        mean, std = CIFAR[dataset]["mean"], CIFAR[dataset]["std"]
    else:
        mean, std = channel_stats(arrays["train_images"])
    for name, arr in arrays.items():
        with atomic_path(out / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)
    manifest = {
        "dataset": dataset,
        "source": source,
        "n_train": int(len(arrays["train_labels"])),
        "n_test": int(len(arrays["test_labels"])),
        "num_classes": num_classes,
        "image_shape": list(arrays["train_images"].shape[1:]),
        "mean": mean,
        "std": std,
        "split": split,
        "sha256": {name: sha256_array(arr) for name, arr in arrays.items()},
    }
    write_json(out / "manifest.json", manifest)
    return manifest


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
    if root is None:
        raise ValueError("data.path: dataset imagefolder needs the directory of the images")
    classes, splits = scan_imagefolder(root)
    files, labels = splits["train"]
    if "val" in splits:
        tr_files, tr_labels = files, labels
        te_files, te_labels = splits["val"]
        split = {"official": True, "test_dir": "val"}
    else:
        pop_idx, test_idx = stratified_split(labels, test_size, split_seed)
        tr_files, tr_labels = [files[i] for i in pop_idx], labels[pop_idx]
        te_files, te_labels = [files[i] for i in test_idx], labels[test_idx]
        split = {"test_size": test_size, "split_seed": split_seed, "stratified": True}
    log(f"{root}: {len(classes)} classes, {len(tr_files)} population, {len(te_files)} test")
    for name, fl in (("train_images", tr_files), ("test_images", te_files)):
        write_image_memmap(
            fl, out / f"{name}.npy", size=image_size, resize=resize, workers=workers, log=log
        )
    for name, lab in (("train_labels", tr_labels), ("test_labels", te_labels)):
        with atomic_path(out / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, lab)
    arrays = {
        name: np.load(out / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS
    }
    if stats == "imagenet" or (stats == "auto" and len(classes) == 1000):
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = channel_stats_chunked(arrays["train_images"])
    manifest = {
        "dataset": "imagefolder",
        "source": str(Path(root).resolve()),
        "classes": classes,
        "n_train": len(tr_files),
        "n_test": len(te_files),
        "num_classes": len(classes),
        "image_shape": [3, image_size, image_size],
        "preprocess": {"resize_shorter": resize, "center_crop": image_size},
        "mean": mean,
        "std": std,
        "split": split,
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


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 images → float32 in [0, 1]."""
    import torch

    return images_u8.to(torch.float32).div_(255.0)


def normalize(x: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """Per-channel normalisation of float images in [0, 1]."""
    import torch

    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def random_crop_flip(
    x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``) and horizontal flip, no per-image loop.

    ``x`` is (B, C, H, W); draws come from ``generator`` so training is seeded.
    """
    import torch

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
