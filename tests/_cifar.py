"""Synthetic CIFAR archives in the official python-version format, for tests and the rehearsal.

The archive is a gzipped tar with the official member names (CIFAR-10:
cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta; CIFAR-100:
cifar-100-python/train, test, meta), each a pickled dict (protocol 2) like the official
ones: ``data`` (N x 3072 uint8, channel-major rows), ``labels`` / ``fine_labels``,
``filenames``, ``batch_label``. Random pixels and labels from a seed; the same arguments
give the same bytes (gzip and tar timestamps are 0), hence the same md5.

Command line (the rehearsal's archive, docs/testing.md):
    python tests/_cifar.py DIR    # writes DIR/cifar-10-python.tar.gz, prints its md5
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from curvmia.cifar import CIFAR  # noqa: E402

META = {
    "cifar10": (
        "cifar-10-batches-py/batches.meta",
        {
            "label_names": "airplane automobile bird cat deer dog frog horse ship truck".split(),
            "num_cases_per_batch": 10000,
            "num_vis": 3072,
        },
    ),
    "cifar100": (
        "cifar-100-python/meta",
        {
            "fine_label_names": [f"class_{i}" for i in range(100)],
            "coarse_label_names": [f"superclass_{i}" for i in range(20)],
        },
    ),
}


def _batch(rng: np.random.Generator, n: int, label_key: str, num_classes: int) -> dict:
    return {
        "batch_label": "testing batch",
        label_key: [int(v) for v in rng.integers(0, num_classes, n)],
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        "filenames": [f"img_{i}.png" for i in range(n)],
    }


def build_cifar_archive(
    dataset: str, n_per_batch: int, seed: int = 0, n_test: int | None = None
) -> tuple[bytes, dict]:
    """The archive's bytes and its batches ({member: dict}): ``n_per_batch`` images in each
    train batch and ``n_test`` (default ``n_per_batch``) in the test batch."""
    spec = CIFAR[dataset]
    rng = np.random.default_rng(seed)
    batches = {}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        members = [(m, n_per_batch) for m in spec["train"]]
        members += [(m, n_test or n_per_batch) for m in spec["test"]]
        for member, n in members:
            d = _batch(rng, n, spec["label_key"], spec["num_classes"])
            if dataset == "cifar100":
                d["coarse_labels"] = [v // 5 for v in d["fine_labels"]]
            batches[member] = d
        meta_name, meta = META[dataset]
        for member, d in [*batches.items(), (meta_name, meta)]:
            blob = pickle.dumps(d, protocol=2)
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return buf.getvalue(), batches


def write_cifar_archive(
    out_dir: str | Path, dataset: str = "cifar10", n_per_batch: int = 20, n_test: int = 20
) -> tuple[Path, str]:
    """Write the synthetic archive under its official file name in ``out_dir`` (a local
    mirror, config data.mirror); return its path and md5 (config data.md5)."""
    blob, _ = build_cifar_archive(dataset, n_per_batch, n_test=n_test)
    path = Path(out_dir) / CIFAR[dataset]["filename"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return path, hashlib.md5(blob).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", help="the mirror directory to write the archive into")
    ap.add_argument("--dataset", default="cifar10", choices=sorted(CIFAR))
    ap.add_argument("--per-batch", type=int, default=20, help="images per train batch")
    ap.add_argument("--test", type=int, default=20, help="images in the test batch")
    a = ap.parse_args()
    path, md5 = write_cifar_archive(a.out_dir, a.dataset, a.per_batch, a.test)
    print(f"{path}\nmd5 {md5}")


if __name__ == "__main__":
    main()
